/**
 * The driver: runs a replica's Ready loop on a real clock with real storage and transport.
 *
 *   apply -> send the accept requests -> append (do not wait) -> next Ready
 *                                        `-> once durable, in Ready order: persisted(ready), send the rest
 *
 * (A Ready whose `send` waits for its append and that proposes nothing — a follower's
 * acknowledgements — applies after that send instead, on the next check phase: see `handle`.)
 *
 * Readies are pipelined: a new one is taken as soon as there is work, while earlier appends are
 * still being made durable. The storage writes appends in order and group-commits the ones that
 * queue up behind an fsync in flight, so under load one fsync covers the records of many Readies
 * and many client commands, without any timer. A leader's replies therefore wait only for a
 * quorum, which may be two followers' fsyncs while its own is still running. Ticks come from an
 * interval timer; the replica never sees the clock.
 */
import { assert } from '../core/assert.js';
import type { Command } from '../core/command.js';
import type { Replica } from '../core/multipaxos/replica.js';
import { type CommittedEntry, type Message, type ProposeResult, type ReadIndexResult, type Ready, type ReplicaStatus } from '../core/multipaxos/types.js';
import type { NodeId } from '../core/ballot.js';
import type { LogStorage } from '../storage/adapter.js';
import type { Transport } from '../transport/transport.js';

export interface DriverLogger {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const silentLogger: DriverLogger = { info: () => {}, error: () => {} };

export interface DriverOptions {
  readonly replica: Replica;
  readonly storage: LogStorage;
  readonly transport: Transport;
  /** Real time per replica tick. */
  readonly tickMs: number;
  /** Receives chosen entries in log order, each exactly once. */
  readonly onApply: (entry: CommittedEntry) => void;
  /** Receives read-index answers, after the entries of the same Ready were applied. */
  readonly onReads?: (reads: readonly ReadIndexResult[]) => void;
  /** Observes each durable append: how many records, and how long it took (ms). */
  readonly onPersist?: (records: number, durationMs: number) => void;
  /** Called once if the loop fails (a storage error): the node must stop, not continue unsafely. */
  readonly onFatal?: (error: unknown) => void;
  readonly logger?: DriverLogger;
}

/** A Ready whose `send` may leave once `durable` (its records are on disk, or it needs none there). */
interface WaitingReady {
  readonly ready: Ready;
  durable: boolean;
}

export interface DriverStats {
  readonly readies: number;
  readonly persistedRecords: number;
  readonly appends: number;
  readonly messagesSent: number;
  readonly entriesApplied: number;
}

export class NodeDriver {
  private readonly replica: Replica;
  private readonly logger: DriverLogger;
  private ticker: NodeJS.Timeout | null = null;
  private draining = false;
  /** A `schedule` is queued on a microtask (see `scheduleSoon`). */
  private scheduledSoon = false;
  /** Readies handed out and not yet completed, oldest first (from `waitingHead`). */
  private readonly waiting: WaitingReady[] = [];
  private waitingHead = 0;
  /** Readies whose applies and reads wait for the next check phase, oldest first (see `handle`). */
  private readonly deferredApplies: Ready[] = [];
  /** The latest append: appends finish in order, so stop waits for this one. */
  private lastAppend: Promise<void> = Promise.resolve();
  private stopped = false;
  private failed = false;
  private appliedThrough = 0;
  private counters = { readies: 0, persistedRecords: 0, appends: 0, messagesSent: 0, entriesApplied: 0 };
  /** Heartbeat round trips per peer: when the unanswered heartbeat left, and the last measured RTT. */
  private readonly heartbeatSentAt = new Map<NodeId, number>();
  private readonly rtt = new Map<NodeId, number>();

  constructor(private readonly options: DriverOptions) {
    assert(options.tickMs > 0, 'tick interval must be positive');
    this.replica = options.replica;
    this.logger = options.logger ?? silentLogger;
  }

  async start(): Promise<void> {
    this.options.transport.onMessage((message) => this.receive(message));
    await this.options.transport.start();
    this.ticker = setInterval(() => this.tick(), this.options.tickMs);
    this.schedule(); // a restarted replica replays its chosen prefix
  }

  /** Stops ticking and receiving, lets the Ready in progress finish, closes storage and transport. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.applyDeferred();
    await this.lastAppend.catch(() => undefined); // a failure was already reported
    await this.options.transport.stop();
    await this.options.storage.close();
  }

  /** Offers a client command to the replica (only a leader takes it). */
  propose(command: Command): ProposeResult {
    if (this.stopped || this.failed) return { ok: false, error: 'not_leader', leaderHint: null };
    const result = this.replica.propose(command);
    if (result.ok) this.scheduleSoon();
    return result;
  }

  /** Asks for a read index; the answer comes through `onReads` (only a leader takes it). */
  readIndex(id: number): ProposeResult {
    if (this.stopped || this.failed) return { ok: false, error: 'not_leader', leaderHint: null };
    const result = this.replica.readIndex(id);
    if (result.ok) this.scheduleSoon();
    return result;
  }

  /** The last heartbeat round trip to each peer this node led (ms). */
  peerRttMs(): ReadonlyMap<NodeId, number> {
    return this.rtt;
  }

  /** True once the loop failed (storage error): the node serves nothing more. */
  get hasFailed(): boolean {
    return this.failed;
  }

  /** Starts an election now (operator action, tests). */
  campaign(): void {
    if (this.stopped || this.failed) return;
    this.replica.campaign();
    this.schedule();
  }

  status(): ReplicaStatus {
    return this.replica.status();
  }

  stats(): DriverStats {
    return { ...this.counters };
  }

  private receive(message: Message): void {
    if (this.stopped || this.failed) return;
    if (message.type === 'heartbeat-ack') {
      const sentAt = this.heartbeatSentAt.get(message.from);
      if (sentAt !== undefined) {
        this.rtt.set(message.from, performance.now() - sentAt);
        this.heartbeatSentAt.delete(message.from);
      }
    }
    this.guarded(() => this.replica.step(message));
    this.schedule();
  }

  private tick(): void {
    if (this.stopped || this.failed) return;
    this.guarded(() => this.replica.tick());
    this.schedule();
  }

  /**
   * Runs a replica input; a throw (a log entry read back from a damaged disk, a broken invariant)
   * stops the node as a failed append does, instead of escaping into the transport or a timer.
   */
  private guarded(input: () => void): void {
    try {
      input();
    } catch (error: unknown) {
      this.fail(error);
    }
  }

  /**
   * Drains the replica's Readies once the current synchronous run ends. A front end proposes the
   * requests of one socket read one by one; draining after each would send the first alone, in a
   * slot of its own, and leave the rest queued behind it (with a one-slot window, a closed loop
   * then alternates one-command slots with full ones, each costing a round of messages and
   * fsyncs). On a microtask, every command proposed in this run shares the next slot.
   */
  private scheduleSoon(): void {
    if (this.scheduledSoon) return;
    this.scheduledSoon = true;
    queueMicrotask(() => {
      this.scheduledSoon = false;
      this.schedule();
    });
  }

  /**
   * Drains every Ready the replica has, synchronously; re-entrant calls (a callback proposing) are
   * picked up by the running drain. Nothing here waits for the disk: a Ready whose records must be
   * durable first is queued until they are (see `completeDurable`).
   */
  private schedule(): void {
    if (this.draining || this.failed) return;
    this.draining = true;
    try {
      // Bounded by the work the replica has: each Ready drains what accumulated since the last.
      while (!this.failed && this.replica.hasReady()) this.handle(this.replica.ready());
    } catch (error: unknown) {
      this.fail(error);
    } finally {
      this.draining = false;
    }
  }

  private handle(ready: Ready): void {
    this.counters.readies += 1;
    if (ready.apply.length > 0 || ready.reads.length > 0) {
      // Chosen entries apply (and their clients hear back) before this Ready's fsync: being
      // chosen needs none of these records (see the contract on `Ready`). But a Ready whose
      // messages wait for its fsync and that proposes nothing (a follower acknowledging accepts)
      // applies after them: the acknowledgement is what the leader and its clients wait for, the
      // apply is not. A leader's Ready (accept requests in `sendNow`) applies at once: its
      // entries' clients are waiting.
      const deferred = ready.durability === 'sync' && ready.persist.length > 0 && ready.sendNow.length === 0;
      if (deferred || this.deferredApplies.length > 0) this.deferApply(ready);
      else this.apply(ready);
    }
    // A leader's accept requests leave now: the followers' fsyncs overlap with ours.
    if (ready.sendNow.length > 0) this.sendAll(ready.sendNow);
    const waiting: WaitingReady = { ready, durable: true };
    if (ready.persist.length > 0) {
      const started = performance.now();
      const records = ready.persist.length;
      this.counters.appends += 1;
      this.counters.persistedRecords += records;
      const sync = ready.durability === 'sync';
      // Appends are written in call order; a Ready that needs its records durable waits for them
      // (and so for every earlier one), while later Readies go ahead (pipelining). A lazy append
      // gets no fsync of its own: it rides with the next one.
      const appended = this.options.storage.append(ready.persist, ready.durability);
      this.lastAppend = appended;
      waiting.durable = !sync;
      appended.then(
        () => {
          if (this.failed) return;
          this.options.onPersist?.(records, performance.now() - started);
          // In seq order (appends finish in order): a leader's own acceptances count from now.
          this.replica.persisted(ready);
          if (sync) {
            waiting.durable = true;
            this.completeDurable();
          }
          this.schedule();
        },
        (error: unknown) => this.fail(error),
      );
    }
    this.waiting.push(waiting);
    this.completeDurable();
  }

  private apply(ready: Ready): void {
    for (const entry of ready.apply) {
      assert(entry.slot === this.appliedThrough + 1, 'entries are applied in log order, exactly once');
      this.appliedThrough = entry.slot;
      this.options.onApply(entry);
    }
    this.counters.entriesApplied += ready.apply.length;
    if (ready.reads.length > 0) this.options.onReads?.(ready.reads);
  }

  /**
   * Queues a Ready's applies and reads behind the ones already queued, for the next check phase:
   * after this turn's microtasks, which run the fsync and send what waited for it.
   */
  private deferApply(ready: Ready): void {
    // A non-empty queue already has its check-phase run scheduled (or is being applied now).
    if (this.deferredApplies.push(ready) > 1) return;
    setImmediate(() => this.applyDeferred());
  }

  /** Applies every queued Ready, in order; later Readies queue behind them until this runs. */
  private applyDeferred(): void {
    if (this.failed) return;
    try {
      // Bounded: applying hands out no Readies (callbacks that propose only queue a drain).
      for (const ready of this.deferredApplies) this.apply(ready);
    } catch (error: unknown) {
      this.fail(error);
    } finally {
      this.deferredApplies.length = 0;
    }
  }

  private sendAll(messages: readonly Message[]): void {
    const now = performance.now();
    for (const message of messages) {
      // The latest heartbeat's send time: acks return long before the next one leaves.
      if (message.type === 'heartbeat') this.heartbeatSentAt.set(message.to, now);
      this.options.transport.send(message);
    }
    this.counters.messagesSent += messages.length;
  }

  /** Sends, in Ready order, the messages of every Ready whose records (and all earlier) are durable. */
  private completeDurable(): void {
    while (!this.failed && this.waitingHead < this.waiting.length) {
      const next = this.waiting[this.waitingHead];
      assert(next !== undefined, 'waiting index in range');
      if (!next.durable) return;
      this.waitingHead += 1;
      if (next.ready.send.length > 0) this.sendAll(next.ready.send);
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingHead = 0;
    }
  }

  /** A failed fsync leaves durability unknown: continuing could break a promise already made. */
  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.logger.error({ err: error }, 'ready loop failed; the node stops serving');
    this.options.onFatal?.(error);
  }
}

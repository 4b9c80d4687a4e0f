/**
 * The driver: runs a replica's Ready loop on a real clock with real storage and transport.
 *
 *   apply -> send the accept requests -> persist (await durability) -> send the rest -> next Ready
 *
 * One Ready is in progress at a time. While its records are being made durable, messages keep
 * arriving and are stepped into the replica; they accumulate into the next Ready, so under load
 * one fsync covers the records of many messages and many client commands (group commit) without
 * any timer. Ticks come from an interval timer; the replica never sees the clock.
 */
import { assert } from '../core/assert.js';
import type { Command } from '../core/command.js';
import type { Replica } from '../core/multipaxos/replica.js';
import { needsDurabilityBeforeSend, type CommittedEntry, type Message, type ProposeResult, type ReadIndexResult, type ReplicaStatus } from '../core/multipaxos/types.js';
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
  private looping = false;
  private stopped = false;
  private failed = false;
  private appliedThrough = 0;
  private counters = { readies: 0, persistedRecords: 0, appends: 0, messagesSent: 0, entriesApplied: 0 };
  /** Resolves when the current loop run finishes (for a clean stop). */
  private idle: Promise<void> = Promise.resolve();
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
    await this.idle;
    await this.options.transport.stop();
    await this.options.storage.close();
  }

  /** Offers a client command to the replica (only a leader takes it). */
  propose(command: Command): ProposeResult {
    if (this.stopped || this.failed) return { ok: false, error: 'not_leader', leaderHint: null };
    const result = this.replica.propose(command);
    if (result.ok) this.schedule();
    return result;
  }

  /** Asks for a read index; the answer comes through `onReads` (only a leader takes it). */
  readIndex(id: number): ProposeResult {
    if (this.stopped || this.failed) return { ok: false, error: 'not_leader', leaderHint: null };
    const result = this.replica.readIndex(id);
    if (result.ok) this.schedule();
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
    this.replica.step(message);
    this.schedule();
  }

  private tick(): void {
    if (this.stopped || this.failed) return;
    this.replica.tick();
    this.schedule();
  }

  /** Runs the Ready loop unless it is already running; it drains everything ready before exiting. */
  private schedule(): void {
    if (this.looping || this.failed || !this.replica.hasReady()) return;
    this.looping = true;
    this.idle = this.loop().finally(() => {
      this.looping = false;
    });
  }

  private async loop(): Promise<void> {
    try {
      // Bounded by the work the replica has: each Ready drains what accumulated since the last.
      while (!this.failed && this.replica.hasReady()) {
        const ready = this.replica.ready();
        this.counters.readies += 1;
        // Chosen entries apply (and their clients hear back) before this Ready's fsync: being
        // chosen needs none of these records (see the contract on `Ready`).
        for (const entry of ready.apply) {
          assert(entry.slot === this.appliedThrough + 1, 'entries are applied in log order, exactly once');
          this.appliedThrough = entry.slot;
          this.options.onApply(entry);
        }
        this.counters.entriesApplied += ready.apply.length;
        if (ready.reads.length > 0) this.options.onReads?.(ready.reads);
        // A leader's accept requests leave now: the followers' fsyncs overlap with ours.
        for (const message of ready.sendNow) this.options.transport.send(message);
        this.counters.messagesSent += ready.sendNow.length;
        if (ready.persist.length > 0) {
          const started = performance.now();
          const records = ready.persist.length;
          this.counters.appends += 1;
          this.counters.persistedRecords += records;
          if (needsDurabilityBeforeSend(ready.persist)) {
            await this.options.storage.append(ready.persist);
            this.options.onPersist?.(records, performance.now() - started);
          } else {
            // Only chosen marks: nothing to wait for; they ride with the next durable append.
            this.options.storage.append(ready.persist, 'lazy').then(
              () => this.options.onPersist?.(records, performance.now() - started),
              (error: unknown) => this.fail(error),
            );
          }
        }
        this.replica.persisted();
        // Durable: now the messages may leave.
        const now = performance.now();
        for (const message of ready.send) {
          // The latest heartbeat's send time: acks return long before the next one leaves.
          if (message.type === 'heartbeat') this.heartbeatSentAt.set(message.to, now);
          this.options.transport.send(message);
        }
        this.counters.messagesSent += ready.send.length;
        if (this.stopped) return;
      }
    } catch (error: unknown) {
      this.fail(error);
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

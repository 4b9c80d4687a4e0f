/**
 * A simulated cluster: Multi-Paxos replicas (the production core, unchanged) driven by a simulated
 * driver over a faulty network with virtual time. Each node keeps a `MemoryLogStore` that survives
 * crashes; a crash loses everything the driver had not yet persisted, and every message of a Ready
 * whose persist had not completed.
 *
 * The driver follows the `Ready` contract as the real one does: apply the chosen entries at once,
 * persist (after a simulated disk latency), then send; one Ready at a time, applied slots
 * contiguous and exactly once per incarnation.
 */
import { assert } from '../core/assert.js';
import { type NodeId, formatBallot } from '../core/ballot.js';
import type { Command } from '../core/command.js';
import { Prng } from '../core/prng.js';
import { Configuration, StaticConfiguration } from '../core/quorum/majority.js';
import { DEFAULT_REPLICA_OPTIONS, Replica, type ReplicaOptions, entryKey } from '../core/multipaxos/replica.js';
import { type CommittedEntry, type LogEntry, type Message, type PersistRecord, type PersistentState, type ReadIndexResult, type Ready } from '../core/multipaxos/types.js';
import { MemoryLogStore } from '../storage/memory.js';
import { AgreementOracle } from '../check/agreement.js';
import { EventQueue } from './event-queue.js';

/** Builds a replica; tests pass a factory that makes a deliberately broken one. */
export type ReplicaFactory = (options: ReplicaOptions, state: PersistentState | undefined) => Replica;

export const defaultReplicaFactory: ReplicaFactory = (options, state) => new Replica(options, state);

/** What the cluster tells the code above it (clients, scenarios) when a node applies an entry. */
export interface ApplyListener {
  onApply(node: NodeId, entry: CommittedEntry): void;
  /** Read-index answers, delivered after the same Ready's entries were applied. */
  onReads?(node: NodeId, reads: readonly ReadIndexResult[]): void;
}

export interface NetworkFaults {
  lossProbability: number;
  duplicateProbability: number;
  delayUsMin: number;
  delayUsMax: number;
}

export const RELIABLE_NETWORK: NetworkFaults = { lossProbability: 0, duplicateProbability: 0, delayUsMin: 100, delayUsMax: 2_000 };

export interface ClusterOptions {
  readonly seed: number;
  readonly nodeCount: number;
  readonly tickUs: number;
  readonly diskLatencyUsMin: number;
  readonly diskLatencyUsMax: number;
  readonly replicaOptions?: Partial<Omit<ReplicaOptions, 'nodeId' | 'configuration' | 'random'>>;
  readonly replicaFactory?: ReplicaFactory;
  readonly trace?: (line: string) => void;
}

/** One simulated node: its replica, its durable store and its driver state. */
/** A Ready whose `send` waits until its records, and every earlier Ready's, are durable. */
interface SimWaitingReady {
  readonly ready: Ready;
  durable: boolean;
  readonly rejoinFinished: boolean;
}

export class SimNode {
  replica: Replica | null = null;
  /** The disk: survives crashes; `SimCluster.loseDisk` replaces it with an empty one. */
  store = new MemoryLogStore();
  /**
   * Durable "rejoin in progress" flag (the server's marker file): set when the disk is lost and
   * the node is to rejoin, cleared once the replica's finishing promise is persisted. While set,
   * every boot is in rejoin mode.
   */
  rejoinMarker = false;
  up = false;
  /** Bumped on every crash so that completions scheduled before it are discarded. */
  incarnation = 0;
  /** True while `pump` runs (a re-entrant call is picked up by the running one). */
  pumping = false;
  /** Readies handed out and not yet completed (their `send` not yet sent), oldest first. */
  waiting: SimWaitingReady[] = [];
  /** Virtual time the node's latest disk write finishes: writes finish in order. */
  diskDoneAt = 0;
  /** Entries this node's replicas read back from the disk after dropping them from memory. */
  logReadsFromDisk = 0;
  appliedThrough = 0;
  /**
   * A paused process (SIGSTOP, a long GC pause): it runs nothing; what arrives meanwhile (messages,
   * client requests, its own disk completions) waits in `backlog` and runs in order on resume. Its
   * clock does not tick while paused.
   */
  paused = false;
  backlog: (() => void)[] = [];

  constructor(readonly id: NodeId) {}
}

export class SimCluster {
  readonly queue = new EventQueue();
  readonly random: Prng;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly configuration: Configuration;
  readonly oracle: AgreementOracle;
  network: NetworkFaults = RELIABLE_NETWORK;
  /** blocked.has(`${from}>${to}`): messages from `from` to `to` are dropped (partitions). */
  readonly blocked = new Set<string>();
  readonly listeners: ApplyListener[] = [];
  messagesSent = 0;
  messagesDelivered = 0;
  /**
   * Scripted mode: messages are held instead of scheduled, and a scenario script decides which
   * to deliver and which to drop (`deliverHeld`, `dropHeld`).
   */
  holdMessages = false;
  held: Message[] = [];
  private readonly nodeRandom = new Map<NodeId, Prng>();

  constructor(readonly options: ClusterOptions) {
    this.random = new Prng(options.seed);
    const ids = Array.from({ length: options.nodeCount }, (_, index) => index + 1);
    this.configuration = new Configuration(ids);
    this.oracle = new AgreementOracle(this.configuration.quorumSize);
    for (const id of ids) {
      this.nodes.set(id, new SimNode(id));
      this.nodeRandom.set(id, this.random.fork());
    }
  }

  get now(): number {
    return this.queue.now;
  }

  node(id: NodeId): SimNode {
    const node = this.nodes.get(id);
    assert(node !== undefined, `no node ${id}`);
    return node;
  }

  /** Starts every node and its tick timer (staggered so nodes do not tick in lock step). */
  start(): void {
    for (const node of this.nodes.values()) {
      this.boot(node);
      this.queue.after(this.random.int(0, this.options.tickUs), () => this.tickLoop(node));
    }
  }

  private tickLoop(node: SimNode): void {
    if (node.up && node.replica !== null && !node.paused) {
      node.replica.tick();
      this.pump(node);
    }
    this.queue.after(this.options.tickUs, () => this.tickLoop(node));
  }

  /** Creates the node's replica from its durable state (a fresh start or a restart). */
  boot(node: SimNode): void {
    assert(!node.up, 'boot only a stopped node');
    const random = this.nodeRandom.get(node.id) as Prng;
    const options: ReplicaOptions = {
      ...DEFAULT_REPLICA_OPTIONS,
      // Both ways of writing a leader's own acceptances run in every scenario: even nodes at once.
      eagerLeaderAcceptances: node.id % 2 === 0,
      // And the log in memory: a node keeps all of it, or only what its disk has not caught up with
      // (catch-up and phase 1 below that read the disk: the store, which holds only durable records).
      ...this.logMemory(node),
      ...this.options.replicaOptions,
      nodeId: node.id,
      configuration: new StaticConfiguration(this.configuration),
      random,
      ...(node.rejoinMarker ? { rejoin: true } : {}),
    };
    const factory = this.options.replicaFactory ?? defaultReplicaFactory;
    const state = node.incarnation === 0 ? undefined : node.store.state();
    node.replica = factory(options, state);
    if (this.options.trace !== undefined) {
      const trace = this.options.trace;
      node.replica.observer = { trace: (line) => trace(`${this.stamp()} ${line}`) };
    }
    node.up = true;
    node.waiting = [];
    node.appliedThrough = 0;
    this.pump(node);
  }

  /**
   * Node ids 1, 4, 7… keep their whole log in memory; the others compact it, keeping 0 slots
   * (3, 6, 9…) or 3 slots within 200 bytes (2, 5, 8…: the byte budget binds for entries with
   * commands, the slot count for no-ops).
   */
  private logMemory(node: SimNode): Pick<ReplicaOptions, 'readDurableEntry' | 'logRetainSlots' | 'logRetainBytes'> {
    if (node.id % 3 === 1) return {};
    const store = node.store; // this incarnation's disk (a lost disk is replaced along with the replica)
    const readDurableEntry = (slot: number): LogEntry | undefined => {
      node.logReadsFromDisk += 1;
      return store.entry(slot);
    };
    return node.id % 3 === 0 ? { readDurableEntry, logRetainSlots: 0 } : { readDurableEntry, logRetainSlots: 3, logRetainBytes: 200 };
  }

  /** Runs `action` at the node now, or on resume if it is paused. */
  whenRunning(node: SimNode, action: () => void): void {
    if (node.paused) node.backlog.push(action);
    else action();
  }

  /** Pauses a running node (see `SimNode.paused`). */
  pause(node: SimNode): void {
    if (!node.up || node.paused) return;
    this.traceLine(`PAUSE n${node.id}`);
    node.paused = true;
  }

  /** Resumes a paused node: everything that arrived meanwhile runs first, in arrival order. */
  resume(node: SimNode): void {
    if (!node.paused) return;
    this.traceLine(`RESUME n${node.id} (${node.backlog.length} events waited)`);
    node.paused = false;
    const backlog = node.backlog;
    node.backlog = [];
    for (const action of backlog) action();
    this.pump(node);
  }

  /** Stops a node at once: un-persisted effects and in-flight Ready work are lost. */
  crash(node: SimNode): void {
    if (!node.up) return;
    this.traceLine(`CRASH n${node.id}`);
    node.up = false;
    node.replica = null;
    node.incarnation += 1;
    node.waiting = [];
    node.paused = false;
    node.backlog = [];
  }

  /**
   * The node's disk is lost (corrupt beyond use, or replaced): it crashes, and its durable state is
   * gone. With `rejoin` it restarts in rejoin mode (the safe procedure); without, it restarts as an
   * empty acceptor — the amnesia that Paxos cannot survive, kept to prove the checkers catch it.
   */
  loseDisk(node: SimNode, rejoin: boolean): void {
    this.crash(node);
    this.traceLine(`DISK LOST n${node.id}${rejoin ? ' (will rejoin)' : ' (restarts empty: amnesia)'}`);
    node.store = new MemoryLogStore();
    node.rejoinMarker = rejoin;
  }

  restart(node: SimNode): void {
    if (node.up) return;
    this.traceLine(`RESTART n${node.id}`);
    this.boot(node);
  }

  /**
   * Runs the node's Ready loop as the real driver does, pipelined: every Ready is taken at once;
   * apply and `sendNow` happen now; records go to a disk that finishes writes in order (each after
   * a random latency, never before the previous one); `send` leaves, in Ready order, once the
   * Ready's records and all earlier ones are on the disk.
   */
  pump(node: SimNode): void {
    const replica = node.replica;
    if (!node.up || node.paused || replica === null || node.pumping) return;
    node.pumping = true;
    try {
      while (node.up && !node.paused && node.replica === replica && replica.hasReady()) this.handleReady(node, replica, replica.ready());
    } finally {
      node.pumping = false;
    }
  }

  private handleReady(node: SimNode, replica: Replica, ready: Ready): void {
    const incarnation = node.incarnation;
    // Every record of a finished rejoin is in this Ready or an earlier one: clear the marker once durable.
    const rejoinFinished = node.rejoinMarker && !replica.isRejoining();
    // Chosen entries apply at once, as the real driver does: chosen is a fact that needs none of
    // this node's pending records (a crash now loses them, and replay rebuilds the state machine).
    this.applyReady(node, ready);
    for (const message of ready.sendNow) this.send(message);
    const waiting: SimWaitingReady = { ready, durable: true, rejoinFinished };
    node.waiting.push(waiting);
    if (ready.persist.length > 0) {
      // A lazy Ready (chosen marks; a leader's own acceptances) sends at once, as the real driver
      // does; its records reach the disk later, in order, and a crash before then loses them.
      const sync = ready.durability === 'sync';
      waiting.durable = !sync;
      const write = (): void => {
        if (node.incarnation !== incarnation) return; // crashed before the disk finished: all lost
        this.writeRecords(node, ready.persist); // after every earlier write: the disk keeps order
        this.atNode(node, incarnation, () => {
          node.replica?.persisted(ready);
          if (sync) waiting.durable = true;
          this.completeInOrder(node);
        });
      };
      if (this.options.diskLatencyUsMax === 0) write(); // scripted runs: an instant disk
      else this.queue.at(this.diskCompletion(node, sync), write);
    }
    this.completeInOrder(node);
  }

  /** When a write issued now finishes: after a random latency, and never before an earlier write. */
  private diskCompletion(node: SimNode, sync: boolean): number {
    // A lazy write waits longer (it rides with a later fsync, or a timer), so it is often lost by a crash.
    const latency = this.random.int(this.options.diskLatencyUsMin, this.options.diskLatencyUsMax + 1) * (sync ? 1 : 4);
    node.diskDoneAt = Math.max(node.diskDoneAt, this.queue.now + latency);
    return node.diskDoneAt;
  }

  /** Runs `action` at the node now, or when it resumes if paused; dropped if it crashed meanwhile. */
  private atNode(node: SimNode, incarnation: number, action: () => void): void {
    if (node.incarnation !== incarnation) return;
    if (node.paused) {
      node.backlog.push(() => this.atNode(node, incarnation, action));
      return;
    }
    action();
  }

  private writeRecords(node: SimNode, records: readonly PersistRecord[]): void {
    for (const record of records) {
      const entry = node.store.apply(record);
      if (entry === null) continue;
      const key = entryKey(entry.value);
      if (record.type === 'accept') this.oracle.onAccepted(node.id, entry.slot, entry.ballot, key);
      else this.oracle.onMarkedChosen(node.id, entry.slot, key);
    }
  }

  /** Completes, in Ready order, every Ready whose records (and all earlier ones) are durable. */
  private completeInOrder(node: SimNode): void {
    while (node.up && !node.paused && node.waiting.length > 0 && node.waiting[0]?.durable === true) {
      const { ready, rejoinFinished } = node.waiting.shift() as SimWaitingReady;
      if (rejoinFinished && node.rejoinMarker) {
        node.rejoinMarker = false;
        this.traceLine(`n${node.id} rejoined: marker cleared`);
      }
      // Persisted: now the messages may leave.
      for (const message of ready.send) this.send(message);
    }
    this.pump(node);
  }

  private applyReady(node: SimNode, ready: Ready): void {
    for (const entry of ready.apply) {
      assert(entry.slot === node.appliedThrough + 1, 'entries are applied in log order, exactly once');
      node.appliedThrough = entry.slot;
      this.oracle.onApplied(node.id, entry.slot, entryKey(entry.value));
      for (const listener of this.listeners) listener.onApply(node.id, entry);
    }
    if (ready.reads.length > 0) for (const listener of this.listeners) listener.onReads?.(node.id, ready.reads);
  }

  /** Puts a message on the simulated network: loss, duplication, delay (hence reordering), partitions. */
  send(message: Message): void {
    this.messagesSent += 1;
    if (this.holdMessages) {
      this.held.push(message);
      return;
    }
    const network = this.network;
    if (this.blocked.has(`${message.from}>${message.to}`)) return;
    if (network.lossProbability > 0 && this.random.chance(network.lossProbability)) return;
    const copies = network.duplicateProbability > 0 && this.random.chance(network.duplicateProbability) ? 2 : 1;
    for (let copy = 0; copy < copies; copy += 1) {
      const delay = this.random.int(network.delayUsMin, network.delayUsMax + 1);
      this.queue.after(delay, () => this.deliver(message));
    }
  }

  private deliver(message: Message): void {
    const node = this.node(message.to);
    if (!node.up || node.replica === null) return;
    if (this.blocked.has(`${message.from}>${message.to}`)) return; // cut while in flight
    if (node.paused) {
      node.backlog.push(() => this.deliver(message));
      return;
    }
    this.messagesDelivered += 1;
    if (this.options.trace !== undefined) this.traceLine(`deliver ${describeMessage(message)}`);
    node.replica.step(message);
    this.pump(node);
  }

  /** Proposes a command at a node, as a client request arriving there would. */
  propose(nodeId: NodeId, command: Command): ReturnType<Replica['propose']> {
    const node = this.node(nodeId);
    if (!node.up || node.replica === null) return { ok: false, error: 'not_leader', leaderHint: null };
    const result = node.replica.propose(command);
    this.pump(node);
    return result;
  }

  /** Asks a node for a read index, as a client read arriving there would. */
  readIndex(nodeId: NodeId, id: number): ReturnType<Replica['readIndex']> {
    const node = this.node(nodeId);
    if (!node.up || node.replica === null) return { ok: false, error: 'not_leader', leaderHint: null };
    const result = node.replica.readIndex(id);
    this.pump(node);
    return result;
  }

  /** The node that currently serves as leader, if exactly one does. */
  servingLeader(): SimNode | null {
    let found: SimNode | null = null;
    for (const node of this.nodes.values()) {
      if (node.up && node.replica?.isServing() === true) {
        if (found !== null) return null;
        found = node;
      }
    }
    return found;
  }

  // ----------------------------------------------------------- scripted runs

  /** Boots every node without tick timers: time only moves when the script says so. */
  startScripted(): void {
    this.holdMessages = true;
    for (const node of this.nodes.values()) this.boot(node);
  }

  /**
   * Delivers, in order, the held messages that match; messages they cause are held in turn.
   * Returns how many were delivered.
   */
  deliverHeld(matches: (message: Message) => boolean): number {
    const now = this.held;
    this.held = [];
    let delivered = 0;
    const rest: Message[] = [];
    for (const message of now) {
      if (!matches(message)) {
        rest.push(message);
        continue;
      }
      delivered += 1;
      this.deliver(message);
    }
    this.held = [...rest, ...this.held];
    return delivered;
  }

  /** Delivers matching messages, and the matching messages they cause, until none are left. */
  deliverHeldUntilQuiet(matches: (message: Message) => boolean, roundsMax = 100): number {
    let total = 0;
    for (let round = 0; round < roundsMax; round += 1) {
      const delivered = this.deliverHeld(matches);
      if (delivered === 0) return total;
      total += delivered;
    }
    throw new Error('scripted delivery did not quiesce');
  }

  /** Drops the held messages that match (they are lost). */
  dropHeld(matches: (message: Message) => boolean): number {
    const before = this.held.length;
    this.held = this.held.filter((message) => {
      if (!matches(message)) return true;
      this.traceLine(`drop ${describeMessage(message)}`);
      return false;
    });
    return before - this.held.length;
  }

  /** Ticks one node (scripted runs drive time by hand). */
  tickNode(id: NodeId, ticks = 1): void {
    const node = this.node(id);
    for (let tick = 0; tick < ticks; tick += 1) {
      if (node.replica === null) return;
      node.replica.tick();
      this.pump(node);
    }
  }

  /** Makes a node start an election now. */
  campaign(id: NodeId): void {
    const node = this.node(id);
    assert(node.replica !== null, 'campaign on a running node');
    node.replica.campaign();
    this.pump(node);
  }

  // ----------------------------------------------------------- partitions

  /** Cuts the link from `from` to `to` (one way). */
  cut(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Splits the nodes into two groups that cannot talk to each other. */
  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.cut(a, b);
        this.cut(b, a);
      }
    }
  }

  heal(): void {
    this.blocked.clear();
  }

  /** Runs events until virtual time `until`; bounded by `eventsMax` as a runaway guard. */
  runUntil(until: number, eventsMax = 50_000_000): void {
    let events = 0;
    while (this.queue.runNext(until)) {
      events += 1;
      assert(events <= eventsMax, 'simulation exceeded its event budget');
    }
    if (this.queue.now < until) this.queue.advanceTo(until);
  }

  stamp(): string {
    return `[${(this.queue.now / 1000).toFixed(3).padStart(9)}ms]`;
  }

  traceLine(line: string): void {
    if (this.options.trace !== undefined) this.options.trace(`${this.stamp()} ${line}`);
  }
}

/** A one-line description of a message for traces. */
export function describeMessage(message: Message): string {
  const head = `n${message.from}->n${message.to} ${message.type}`;
  switch (message.type) {
    case 'prepare':
      return `${head}(${formatBallot(message.ballot)}, from slot ${message.firstUnchosen})`;
    case 'promise':
      return `${head}(${formatBallot(message.ballot)}, ${message.entries.length} entries, max ${message.maxSlot})`;
    case 'accept':
      return `${head}(${formatBallot(message.ballot)}, slots ${message.entries.map((entry) => entry.slot).join(',')}, commit<${message.commitIndex})`;
    case 'accepted':
      return `${head}(${formatBallot(message.ballot)}, slots ${message.slots.join(',')})`;
    case 'nack':
      return `${head}(${formatBallot(message.ballot)}, promised ${formatBallot(message.promised)})`;
    case 'heartbeat':
      return `${head}(${formatBallot(message.ballot)}, commit<${message.commitIndex})`;
    case 'heartbeat-ack':
      return `${head}(${formatBallot(message.ballot)}, firstUnchosen ${message.firstUnchosen})`;
    case 'learn':
      return `${head}(slots ${message.slots.slice(0, 8).join(',')}${message.slots.length > 8 ? ',…' : ''})`;
    case 'learned':
      return `${head}(${message.entries.length} entries)`;
    case 'rejoin':
      return `${head}(fence ${formatBallot(message.fence)}, nonce ${message.nonce})`;
    case 'rejoin-ack':
      return `${head}(promised ${formatBallot(message.promised)}, nonce ${message.nonce})`;
  }
}

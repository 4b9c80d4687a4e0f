/**
 * One seeded simulation run, in two phases as TigerBeetle's simulator does:
 * 1. faults: clients issue put/get/cas/delete while the network loses, duplicates, delays and
 *    reorders messages, partitions come and go (symmetric, one-way, isolating one node) and nodes
 *    crash and restart;
 * 2. liveness: everything heals (all nodes up, no partitions, no loss) and every pending client
 *    operation must complete within a bounded virtual time, after which all replicas must converge.
 * Then the checkers run: agreement (the oracle, throughout), replica consistency (applied
 * sequences agree, state machines converge), and linearizability of the client history.
 */
import { assert } from '../core/assert.js';
import type { NodeId } from '../core/ballot.js';
import type { Command } from '../core/command.js';
import type { Prng } from '../core/prng.js';
import type { CommittedEntry, ReadIndexResult } from '../core/multipaxos/types.js';
import { checkLinearizability } from '../check/linearizability.js';
import type { HistoryOp, JsonValue } from '../check/history.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { type KvOperation, type KvReadOperation, type KvResult, encodeOperation } from '../kv/ops.js';
import { type ReplicaFactory, RELIABLE_NETWORK, SimCluster, type SimNode } from './cluster.js';

export interface SimulationOptions {
  readonly seed: number;
  readonly nodeCount: number;
  readonly clientCount: number;
  readonly keyCount: number;
  /** Virtual length of the fault phase. */
  readonly faultPhaseUs: number;
  /** Bound on the liveness phase: every pending operation must finish within it. */
  readonly livenessPhaseUs: number;
  /** Whether faults are injected at all (`false`: a fault-free run, for benchmarks and baselines). */
  readonly faults: boolean;
  /** How gets are served: `index` (read index, no log write) or `log` (through the log like writes). */
  readonly readMode: 'index' | 'log';
  /**
   * Disk loss among the crash faults: a crashed node sometimes loses its whole durable state.
   * `rejoin`: it restarts in rejoin mode (one node at a time, as the operator procedure says);
   * `amnesia`: it restarts as an empty acceptor (unsafe; proves the checkers notice). Default: none.
   */
  readonly diskLoss?: 'rejoin' | 'amnesia';
  readonly replicaFactory?: ReplicaFactory;
  /** The leader's window of slots in flight (default: the core's); the node runs with 1. */
  readonly pipelineDepthMax?: number;
  readonly trace?: (line: string) => void;
}

export const DEFAULT_SIMULATION_OPTIONS: Omit<SimulationOptions, 'seed'> = {
  nodeCount: 3,
  clientCount: 16,
  keyCount: 8,
  faultPhaseUs: 3_000_000,
  livenessPhaseUs: 15_000_000,
  faults: true,
  readMode: 'index',
};

export interface SimulationResult {
  readonly seed: number;
  /** Client operations with a definite outcome. */
  readonly ops: number;
  /** Client operations whose outcome stayed unknown (abandoned after retries). */
  readonly unknownOps: number;
  readonly violations: readonly string[];
  readonly livenessFailure: string | null;
  readonly history: readonly HistoryOp[];
  readonly virtualUs: number;
  readonly faultsInjected: number;
  /** Crashes that also lost the node's disk (`diskLoss`). */
  readonly disksLost: number;
  /** Log entries nodes read back from their disks after compacting them out of memory. */
  readonly logReadsFromDisk: number;
  readonly messagesDelivered: number;
}

/** Timing of the simulated world, in microseconds of virtual time. */
const TICK_US = 10_000;
const REQUEST_TIMEOUT_US = 400_000;
/** A client abandons an operation (outcome unknown) after this many timed-out attempts. */
const CLIENT_TIMEOUTS_MAX = 6;
const SETTLE_US = 2_000_000;

interface PendingOp {
  readonly history: {
    client: number;
    op: HistoryOp['op'];
    key: string;
    value?: JsonValue;
    expected?: JsonValue;
    call: number;
  };
  readonly command: Command;
  /** Set for a get served by read index (readMode `index`). */
  readonly read: KvReadOperation | null;
  /** Attempts that timed out (an answered `not_leader` does not count: it proposed nothing). */
  timeouts: number;
  attemptTimer: number;
}

/** A read-index request at a node; `index` is set once the leader confirmed it. */
interface WaitingRead {
  readonly client: SimClient;
  readonly pending: PendingOp;
  readonly index: number;
}

/** A closed-loop client: one operation at a time, retried with the same (clientId, seq). */
class SimClient {
  readonly clientId: string;
  seq = 0;
  pending: PendingOp | null = null;
  target: NodeId;
  writes = 0;
  stopped = false;

  constructor(
    readonly index: number,
    nodeCount: number,
  ) {
    this.clientId = `c${index}`;
    this.target = (index % nodeCount) + 1;
  }
}

export class Simulation {
  readonly cluster: SimCluster;
  private readonly random: Prng;
  private readonly clients: SimClient[] = [];
  /** (clientId:seq) -> client waiting, per node: the node answers when it applies the command. */
  private readonly waiting = new Map<NodeId, Map<string, SimClient>>();
  /** Read-index requests per node: asked (id -> read), then confirmed and waiting for their index to apply. */
  private readonly readsAsked = new Map<NodeId, Map<number, WaitingRead>>();
  private readonly readsConfirmed = new Map<NodeId, WaitingRead[]>();
  private readIds = 0;
  private readonly stateMachines = new Map<NodeId, KvStateMachine>();
  private readonly history: HistoryOp[] = [];
  private faultsInjected = 0;
  private disksLost = 0;
  private inFaultPhase = true;

  constructor(readonly options: SimulationOptions) {
    this.cluster = new SimCluster({
      seed: options.seed,
      nodeCount: options.nodeCount,
      tickUs: TICK_US,
      diskLatencyUsMin: 50,
      diskLatencyUsMax: 1_500,
      ...(options.replicaFactory === undefined ? {} : { replicaFactory: options.replicaFactory }),
      ...(options.pipelineDepthMax === undefined ? {} : { replicaOptions: { pipelineDepthMax: options.pipelineDepthMax } }),
      ...(options.trace === undefined ? {} : { trace: options.trace }),
    });
    this.random = this.cluster.random.fork();
    for (let index = 0; index < options.clientCount; index += 1) this.clients.push(new SimClient(index, options.nodeCount));
    for (const id of this.cluster.nodes.keys()) {
      this.waiting.set(id, new Map());
      this.readsAsked.set(id, new Map());
      this.readsConfirmed.set(id, []);
      this.stateMachines.set(id, new KvStateMachine());
    }
    this.cluster.listeners.push({
      onApply: (node, entry) => this.onApply(node, entry),
      onReads: (node, reads) => this.onReads(node, reads),
    });
  }

  run(): SimulationResult {
    const cluster = this.cluster;
    if (this.options.faults) {
      cluster.network = { lossProbability: 0.05, duplicateProbability: 0.03, delayUsMin: 100, delayUsMax: 12_000 };
    }
    this.startNodes();
    for (const client of this.clients) cluster.queue.after(this.random.int(0, 50_000), () => this.nextOperation(client));
    if (this.options.faults) this.scheduleFault();
    const faultEnd = this.options.faultPhaseUs;
    cluster.runUntil(faultEnd);
    this.beginLivenessPhase();
    const deadline = faultEnd + this.options.livenessPhaseUs;
    let livenessFailure: string | null = null;
    while (cluster.now < deadline && this.clients.some((client) => client.pending !== null)) {
      cluster.runUntil(Math.min(deadline, cluster.now + 100_000));
    }
    const stuck = this.clients.filter((client) => client.pending !== null);
    if (stuck.length > 0) {
      livenessFailure = `${stuck.length} client operation(s) still pending ${this.options.livenessPhaseUs / 1e6}s after healing`;
    } else {
      cluster.runUntil(cluster.now + SETTLE_US);
      livenessFailure = this.convergenceFailure();
    }
    for (const client of this.clients) if (client.pending !== null) this.finish(client, null, 'pending at end of run');
    return this.result(livenessFailure);
  }

  private startNodes(): void {
    this.cluster.start();
  }

  private resetStateMachine(node: SimNode): void {
    this.stateMachines.set(node.id, new KvStateMachine());
    (this.waiting.get(node.id) as Map<string, SimClient>).clear();
    (this.readsAsked.get(node.id) as Map<number, WaitingRead>).clear();
    this.readsConfirmed.set(node.id, []);
  }

  // --------------------------------------------------------------- clients

  private nextOperation(client: SimClient): void {
    if (!this.inFaultPhase || client.stopped) return;
    client.seq += 1;
    const key = `k${this.random.int(0, this.options.keyCount)}`;
    const roll = this.random.next();
    let operation: KvOperation;
    const history: PendingOp['history'] = { client: client.index, op: 'get', key, call: this.cluster.now };
    if (roll < 0.4) {
      client.writes += 1;
      const value = `${client.clientId}-${client.writes}`;
      operation = { type: 'put', key, value };
      Object.assign(history, { op: 'put', value });
    } else if (roll < 0.75) {
      operation = { type: 'get', key };
    } else if (roll < 0.9) {
      client.writes += 1;
      const value = `${client.clientId}-${client.writes}`;
      const expected = this.random.chance(0.3) ? null : `c${this.random.int(0, this.options.clientCount)}-${this.random.int(1, client.writes + 1)}`;
      operation = { type: 'cas', key, value, expectedValue: expected };
      Object.assign(history, { op: 'cas', value, expected });
    } else {
      operation = { type: 'delete', key };
      history.op = 'delete';
    }
    const command: Command = { clientId: client.clientId, seq: client.seq, payload: encodeOperation(operation) };
    const read = operation.type === 'get' && this.options.readMode === 'index' ? operation : null;
    client.pending = { history, command, read, timeouts: 0, attemptTimer: 0 };
    this.attempt(client);
  }

  /** Sends the pending command to the client's target node over the (lossy) client link. */
  private attempt(client: SimClient): void {
    const pending = client.pending;
    if (pending === null) return;
    pending.attemptTimer += 1;
    const timer = pending.attemptTimer;
    const target = client.target;
    this.clientHop(() =>
      this.cluster.whenRunning(this.cluster.node(target), () => {
        if (pending.read === null) this.receiveRequest(target, client, pending.command);
        else this.receiveRead(target, client, pending);
      }),
    );
    this.cluster.queue.after(REQUEST_TIMEOUT_US, () => {
      if (client.pending !== pending || pending.attemptTimer !== timer) return;
      pending.timeouts += 1;
      this.retry(client, null);
    });
  }

  private retry(client: SimClient, hint: NodeId | null): void {
    const pending = client.pending;
    if (pending === null) return;
    if (this.inFaultPhase && pending.timeouts >= CLIENT_TIMEOUTS_MAX) {
      this.finish(client, null, 'gave up after retries');
      return;
    }
    client.target = hint ?? (client.target % this.options.nodeCount) + 1;
    const delay = hint === null ? this.random.int(10_000, 50_000) : this.random.int(100, 2_000);
    const timer = pending.attemptTimer;
    this.cluster.queue.after(delay, () => {
      if (client.pending === pending && pending.attemptTimer === timer) this.attempt(client);
    });
  }

  /** Client <-> node messages: delayed, and lost with the network's loss probability. */
  private clientHop(deliver: () => void): void {
    const network = this.cluster.network;
    if (network.lossProbability > 0 && this.random.chance(network.lossProbability)) return;
    this.cluster.queue.after(this.random.int(network.delayUsMin, network.delayUsMax + 1), deliver);
  }

  private receiveRequest(nodeId: NodeId, client: SimClient, command: Command): void {
    const result = this.cluster.propose(nodeId, command);
    const node = this.cluster.node(nodeId);
    if (result.ok) {
      (this.waiting.get(nodeId) as Map<string, SimClient>).set(`${command.clientId}:${command.seq}`, client);
      return;
    }
    if (!node.up) return; // a down node answers nothing
    this.clientHop(() => {
      if (client.pending?.command !== command) return;
      this.retry(client, result.leaderHint === nodeId ? null : result.leaderHint);
    });
  }

  private receiveRead(nodeId: NodeId, client: SimClient, pending: PendingOp): void {
    const id = (this.readIds += 1);
    const asked = this.readsAsked.get(nodeId) as Map<number, WaitingRead>;
    asked.set(id, { client, pending, index: 0 }); // before asking: a single-member leader answers at once
    const result = this.cluster.readIndex(nodeId, id);
    if (result.ok) return;
    asked.delete(id);
    if (!this.cluster.node(nodeId).up) return;
    this.clientHop(() => {
      if (client.pending === pending) this.retry(client, result.leaderHint === nodeId ? null : result.leaderHint);
    });
  }

  /** Confirmed reads wait until the node has applied their index; failed ones send the client elsewhere. */
  private onReads(nodeId: NodeId, reads: readonly ReadIndexResult[]): void {
    const asked = this.readsAsked.get(nodeId) as Map<number, WaitingRead>;
    const confirmed = this.readsConfirmed.get(nodeId) as WaitingRead[];
    for (const read of reads) {
      const waiting = asked.get(read.id);
      if (waiting === undefined) continue;
      asked.delete(read.id);
      if (!read.ok) {
        this.clientHop(() => {
          if (waiting.client.pending === waiting.pending) this.retry(waiting.client, null);
        });
        continue;
      }
      confirmed.push({ ...waiting, index: read.index });
    }
    this.serveReads(nodeId);
  }

  private serveReads(nodeId: NodeId): void {
    const confirmed = this.readsConfirmed.get(nodeId) as WaitingRead[];
    if (confirmed.length === 0) return;
    const appliedThrough = this.cluster.node(nodeId).appliedThrough;
    const machine = this.stateMachines.get(nodeId) as KvStateMachine;
    const remaining: WaitingRead[] = [];
    for (const waiting of confirmed) {
      if (waiting.index > appliedThrough) {
        remaining.push(waiting);
        continue;
      }
      const read = waiting.pending.read;
      assert(read !== null, 'a read-index request carries its read');
      const result = machine.read(read);
      this.clientHop(() => {
        if (waiting.client.pending === waiting.pending) this.finish(waiting.client, result, undefined);
      });
    }
    this.readsConfirmed.set(nodeId, remaining);
  }

  private onApply(nodeId: NodeId, entry: CommittedEntry): void {
    // A restarted node replays from slot 1 into the fresh state machine `restartNode` gave it.
    const machine = this.stateMachines.get(nodeId) as KvStateMachine;
    if (entry.value.type !== 'commands' || entry.skipped) {
      this.serveReads(nodeId);
      return;
    }
    const waiting = this.waiting.get(nodeId) as Map<string, SimClient>;
    for (const command of entry.value.commands) {
      const result = machine.apply(command, entry.slot);
      const key = `${command.clientId}:${command.seq}`;
      const client = waiting.get(key);
      if (client === undefined) continue;
      waiting.delete(key);
      this.clientHop(() => {
        if (client.pending?.command.clientId === command.clientId && client.pending.command.seq === command.seq) {
          this.finish(client, result, undefined);
        }
      });
    }
    this.serveReads(nodeId);
  }

  /** Records the operation's outcome in the history and starts the client's next one. */
  private finish(client: SimClient, result: KvResult | null, error: string | undefined): void {
    const pending = client.pending;
    assert(pending !== null, 'finishing a pending operation');
    client.pending = null;
    const base = { ...pending.history, call: pending.history.call * 1000 };
    if (result === null) {
      this.history.push({ ...base, ok: null, return: null, ...(error === undefined ? {} : { error }) });
    } else if (result.ok) {
      const output = result.type === 'get' ? { output: result.value } : {};
      this.history.push({ ...base, ok: true, return: this.cluster.now * 1000, ...output });
    } else {
      const failure = result.error === 'cas_failed' ? {} : { error: result.error };
      this.history.push({ ...base, ok: false, return: this.cluster.now * 1000, ...failure });
    }
    this.cluster.queue.after(this.random.int(0, 5_000), () => this.nextOperation(client));
  }

  // --------------------------------------------------------------- faults

  private scheduleFault(): void {
    this.cluster.queue.after(this.random.int(100_000, 600_000), () => {
      if (!this.inFaultPhase) return;
      this.injectFault();
      this.scheduleFault();
    });
  }

  private injectFault(): void {
    const cluster = this.cluster;
    const ids = [...cluster.nodes.keys()];
    const pick = (): NodeId => ids[this.random.int(0, ids.length)] as NodeId;
    const roll = this.random.next();
    this.faultsInjected += 1;
    if (roll < 0.25) {
      const leader = cluster.servingLeader();
      const victim = leader !== null && this.random.chance(0.6) ? leader : cluster.node(pick());
      if (this.options.diskLoss !== undefined && this.random.chance(0.4) && this.mayLoseDisk(victim)) {
        cluster.loseDisk(victim, this.options.diskLoss === 'rejoin');
        this.disksLost += 1;
      } else {
        cluster.crash(victim);
      }
      this.cluster.queue.after(this.random.int(50_000, 1_500_000), () => {
        if (this.inFaultPhase && !victim.up) this.restartNode(victim);
      });
    } else if (roll < 0.38) {
      const down = [...cluster.nodes.values()].filter((node) => !node.up);
      if (down.length > 0) this.restartNode(down[this.random.int(0, down.length)] as SimNode);
    } else if (roll < 0.5) {
      // A process pause (SIGSTOP, GC): the leader more often. It wakes up believing it still leads.
      const leader = cluster.servingLeader();
      const victim = leader !== null && this.random.chance(0.7) ? leader : cluster.node(pick());
      cluster.pause(victim);
      this.cluster.queue.after(this.random.int(100_000, 1_200_000), () => cluster.resume(victim));
    } else if (roll < 0.62) {
      const isolated = pick();
      cluster.traceLine(`PARTITION isolate n${isolated}`);
      cluster.partition([isolated], ids.filter((id) => id !== isolated));
    } else if (roll < 0.74) {
      if (ids.length < 2) return; // nothing to split
      const shuffled = [...ids].sort(() => this.random.next() - 0.5);
      const cut = this.random.int(1, ids.length);
      cluster.traceLine(`PARTITION split ${shuffled.slice(0, cut).join(',')} | ${shuffled.slice(cut).join(',')}`);
      cluster.partition(shuffled.slice(0, cut), shuffled.slice(cut));
    } else if (roll < 0.84) {
      const from = pick();
      const to = pick();
      if (from !== to) {
        cluster.traceLine(`PARTITION one-way n${from} -x-> n${to}`);
        cluster.cut(from, to);
      }
    } else {
      cluster.traceLine('HEAL network');
      cluster.heal();
    }
  }

  /** One member rebuilds at a time (the operator procedure): no disk loss while another rejoins. */
  private mayLoseDisk(victim: SimNode): boolean {
    if (this.options.diskLoss === 'amnesia') return true;
    return [...this.cluster.nodes.values()].every((node) => node === victim || !node.rejoinMarker);
  }

  private restartNode(node: SimNode): void {
    this.resetStateMachine(node);
    this.cluster.restart(node);
  }

  private beginLivenessPhase(): void {
    this.inFaultPhase = false;
    const cluster = this.cluster;
    cluster.traceLine('LIVENESS PHASE: heal everything, restart every node, no loss');
    cluster.heal();
    cluster.network = RELIABLE_NETWORK;
    for (const node of cluster.nodes.values()) cluster.resume(node);
    for (const node of cluster.nodes.values()) if (!node.up) this.restartNode(node);
  }

  private convergenceFailure(): string | null {
    const nodes = [...this.cluster.nodes.values()];
    const applied = nodes.map((node) => node.appliedThrough);
    if (new Set(applied).size !== 1) return `replicas did not converge: applied through ${applied.join(', ')}`;
    const digests = nodes.map((node) => (this.stateMachines.get(node.id) as KvStateMachine).digest());
    if (new Set(digests).size !== 1) return 'replicas applied the same slots but their state machines differ';
    return null;
  }

  private result(livenessFailure: string | null): SimulationResult {
    const violations = [...this.cluster.oracle.violations];
    const check = checkLinearizability(this.history);
    if (check.linearizable === false) {
      violations.push(`history is not linearizable: ${check.explanation ?? `key ${check.failedKey ?? '?'}`}`);
    }
    const unknownOps = this.history.filter((op) => op.ok === null).length;
    return {
      seed: this.options.seed,
      ops: this.history.length - unknownOps,
      unknownOps,
      violations,
      livenessFailure,
      history: this.history,
      virtualUs: this.cluster.now,
      faultsInjected: this.faultsInjected,
      disksLost: this.disksLost,
      logReadsFromDisk: [...this.cluster.nodes.values()].reduce((sum, node) => sum + node.logReadsFromDisk, 0),
      messagesDelivered: this.cluster.messagesDelivered,
    };
  }
}

/** Runs one seed with the default options (all faults on) plus overrides. */
export function simulate(seed: number, overrides: Partial<Omit<SimulationOptions, 'seed'>> = {}): SimulationResult {
  return new Simulation({ ...DEFAULT_SIMULATION_OPTIONS, ...overrides, seed }).run();
}

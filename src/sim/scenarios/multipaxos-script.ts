/**
 * A harness for scripting Multi-Paxos scenarios message by message: the production replicas in a
 * `SimCluster` in scripted mode (messages held until the script delivers or drops them, instant
 * disk, no timers), a KV state machine per node fed by the apply stream, and helpers to describe
 * what each node holds and applied. Every delivery, drop and role change goes to the trace.
 */
import { assert } from '../../core/assert.js';
import { type Ballot, type NodeId, formatBallot } from '../../core/ballot.js';
import type { EntryValue, Message, ReadIndexResult, ReplicaStatus } from '../../core/multipaxos/types.js';
import { KvStateMachine } from '../../kv/state-machine.js';
import { decodeOperation, encodeOperation } from '../../kv/ops.js';
import { type ReplicaFactory, SimCluster } from '../cluster.js';
import type { ScenarioRecorder } from '../scenario.js';

/** Followers refuse other candidates for this many ticks after hearing a leader. */
const SCRIPT_STICKINESS_TICKS = 10;

export type MessageFilter = (message: Message) => boolean;

/** Matches messages by type, sender and receiver (each optional). */
export function messages(type?: Message['type'], from?: NodeId, to?: NodeId): MessageFilter {
  return (message) =>
    (type === undefined || message.type === type) &&
    (from === undefined || message.from === from) &&
    (to === undefined || message.to === to);
}

export const anyMessage: MessageFilter = () => true;

/** Messages that touch a node (sent by it or to it). */
export function touching(node: NodeId): MessageFilter {
  return (message) => message.from === node || message.to === node;
}

/** A readable label for an entry value: `put(x=C)`, `noop`, `StartWorking(2.3)`. */
export function describeValue(value: EntryValue | undefined): string {
  if (value === undefined) return '-';
  switch (value.type) {
    case 'noop':
      return 'noop';
    case 'start-working':
      return `StartWorking(${formatBallot(value.epoch)})`;
    case 'commands':
      return value.commands
        .map((command) => {
          const operation = decodeOperation(command.payload);
          return operation.type === 'put' ? `put(${operation.key}=${operation.value})` : operation.type;
        })
        .join('+');
  }
}

export type ReadOutcome = { status: 'pending' | 'refused' } | { status: 'served'; value: string | null };

interface ScriptRead {
  readonly node: NodeId;
  readonly key: string;
  /** Set once the node confirmed the read. */
  index: number | null;
  outcome: ReadOutcome;
}

export class MultiPaxosScript {
  readonly cluster: SimCluster;
  private readonly machines = new Map<NodeId, KvStateMachine>();
  /** What each node applied at each slot (label), and whether replay skipped it. */
  readonly applied = new Map<NodeId, Map<number, string>>();
  private clientSeq = 0;
  private readIds = 0;
  /** Read-index requests: the key each reads, and the outcome once known. */
  private readonly reads = new Map<number, ScriptRead>();

  constructor(
    readonly recorder: ScenarioRecorder,
    nodeCount: number,
    replicaFactory?: ReplicaFactory,
  ) {
    this.cluster = new SimCluster({
      seed: 1,
      nodeCount,
      tickUs: 10_000,
      diskLatencyUsMin: 0,
      diskLatencyUsMax: 0,
      // Nobody campaigns by themselves: the script decides who runs for leader and when.
      replicaOptions: { electionTicksMin: SCRIPT_STICKINESS_TICKS, electionTicksMax: 1_000_000 },
      trace: (line) => recorder.step(line.replace(/^\[\s*[\d.]+ms\] /, '  ')),
      ...(replicaFactory === undefined ? {} : { replicaFactory }),
    });
    for (const id of this.cluster.nodes.keys()) {
      this.machines.set(id, new KvStateMachine());
      this.applied.set(id, new Map());
    }
    this.cluster.listeners.push({
      onApply: (node, entry) => {
        const label = `${describeValue(entry.value)}${entry.skipped ? ' [skipped by replay]' : ''}`;
        (this.applied.get(node) as Map<number, string>).set(entry.slot, label);
        if (entry.value.type !== 'commands' || entry.skipped) return;
        for (const command of entry.value.commands) (this.machines.get(node) as KvStateMachine).apply(command, entry.slot);
        this.serveReads(node);
      },
      onReads: (node, answers) => this.onReads(node, answers),
    });
    this.cluster.startScripted();
  }

  /** A script step: a heading line in the trace. */
  say(line: string): void {
    this.recorder.step(line);
  }

  /** A client writes key=value through `node` (which must lead); returns the slot it took. */
  put(node: NodeId, key: string, value: string): number {
    this.clientSeq += 1;
    const payload = encodeOperation({ type: 'put', key, value });
    const replica = this.cluster.node(node).replica;
    assert(replica !== null, 'put through a running node');
    const before = replica.status().maxSlot;
    const result = this.cluster.propose(node, { clientId: 'script', seq: this.clientSeq, payload });
    assert(result.ok, `put through n${node} was refused: ${result.ok ? '' : result.error}`);
    const slot = replica.status().maxSlot;
    assert(slot > before, 'the put took a new slot');
    this.say(`client: put(${key}=${value}) via n${node} -> slot ${slot}`);
    return slot;
  }

  /** A client read served from `node`'s applied state (the node must be a serving leader). */
  read(node: NodeId, key: string): string | null {
    const machine = this.machines.get(node) as KvStateMachine;
    const result = machine.read({ type: 'get', key });
    assert(result.ok && result.type === 'get', 'read answered');
    this.say(`client: read(${key}) at n${node} -> ${result.value ?? 'absent'}`);
    return result.value;
  }

  /**
   * A client reads `key` at `node` by read index: the node answers once a quorum confirmed its
   * round and it applied the index, as a server would; see `readOutcome`.
   */
  readByIndex(node: NodeId, key: string): number {
    const id = (this.readIds += 1);
    const read: ScriptRead = { node, key, index: null, outcome: { status: 'pending' } };
    this.reads.set(id, read); // before asking: a single-member or broken leader answers at once
    this.say(`client: read(${key}) #${id} at n${node} by read index`);
    const result = this.cluster.readIndex(node, id);
    if (!result.ok) {
      read.outcome = { status: 'refused' };
      this.say(`client: read #${id} refused by n${node}: ${result.error}`);
    }
    return id;
  }

  /** Where read `id` stands: pending, refused (not leader, or leadership lost), or served. */
  readOutcome(id: number): ReadOutcome {
    const read = this.reads.get(id);
    assert(read !== undefined, 'a read this script asked for');
    return read.outcome;
  }

  private onReads(node: NodeId, answers: readonly ReadIndexResult[]): void {
    for (const answer of answers) {
      const read = this.reads.get(answer.id);
      if (read === undefined || read.node !== node) continue;
      if (answer.ok) read.index = answer.index;
      else {
        read.outcome = { status: 'refused' };
        this.say(`client: read #${answer.id} refused by n${node}: leadership lost before confirmation`);
      }
    }
    this.serveReads(node);
  }

  /** Serves the node's confirmed reads whose index it has applied. */
  private serveReads(node: NodeId): void {
    for (const [id, read] of this.reads) {
      if (read.node !== node || read.index === null || read.outcome.status !== 'pending') continue;
      if (this.cluster.node(node).appliedThrough < read.index) continue;
      const result = (this.machines.get(node) as KvStateMachine).read({ type: 'get', key: read.key });
      assert(result.ok && result.type === 'get', 'read answered');
      read.outcome = { status: 'served', value: result.value };
      this.say(`client: read(${read.key}) #${id} served by n${node} at index ${read.index} -> ${result.value ?? 'absent'}`);
    }
  }

  deliver(filter: MessageFilter): number {
    return this.cluster.deliverHeldUntilQuiet(filter);
  }

  drop(filter: MessageFilter): number {
    return this.cluster.dropHeld(filter);
  }

  crash(node: NodeId): void {
    this.cluster.crash(this.cluster.node(node));
    this.drop(touching(node));
  }

  /**
   * `node` loses its disk and restarts at once: in rejoin mode (`rejoin`), or as an empty
   * acceptor (the unsafe amnesia a plain restart on a wiped data directory would be).
   */
  loseDisk(node: NodeId, rejoin: boolean): void {
    this.cluster.loseDisk(this.cluster.node(node), rejoin);
    this.drop(touching(node));
    this.restart(node);
  }

  restart(node: NodeId): void {
    this.machines.set(node, new KvStateMachine());
    (this.applied.get(node) as Map<number, string>).clear();
    this.cluster.restart(this.cluster.node(node));
  }

  /**
   * Runs an election at `node`, delivering only the messages `filter` lets through. First the
   * other nodes' clocks move past the leader-stickiness window, as if the old leader had been
   * silent for an election timeout.
   */
  elect(node: NodeId, filter: MessageFilter = anyMessage): void {
    for (const other of this.cluster.nodes.values()) {
      if (other.id !== node && other.up) this.cluster.tickNode(other.id, SCRIPT_STICKINESS_TICKS);
    }
    this.say(`n${node} campaigns`);
    this.cluster.campaign(node);
    this.deliver(filter);
    if (this.cluster.node(node).replica?.status().role !== "leader") this.say(`n${node} was NOT elected`);
  }

  /** Lets the leader tell everyone what is chosen (heartbeats), until quiet. */
  heartbeat(leader: NodeId, filter: MessageFilter = anyMessage): void {
    const replica = this.cluster.node(leader).replica;
    assert(replica !== null, 'heartbeat from a running node');
    this.cluster.tickNode(leader, 2);
    this.deliver(filter);
  }

  /** The label of what `node` applied at `slot`, or '-' if it has not applied it. */
  appliedAt(node: NodeId, slot: number): string {
    return this.applied.get(node)?.get(slot) ?? '-';
  }

  /** The label of what `node`'s acceptor holds at `slot` (accepted or chosen). */
  holds(node: NodeId, slot: number): string {
    const entry = this.cluster.node(node).store.entry(slot);
    if (entry === undefined) return '-';
    return `${describeValue(entry.value)}@${formatBallot(entry.ballot as Ballot)}${entry.chosen ? ' chosen' : ''}`;
  }

  /** One trace line per node showing slots [from, to]: what its acceptor holds. */
  showLogs(from: number, to: number): void {
    for (const id of this.cluster.nodes.keys()) {
      const cells: string[] = [];
      for (let slot = from; slot <= to; slot += 1) cells.push(`${slot}:${this.holds(id, slot)}`);
      this.say(`  log n${id}: ${cells.join('  ')}`);
    }
  }

  statusOf(node: NodeId): ReplicaStatus {
    const replica = this.cluster.node(node).replica;
    assert(replica !== null, 'status of a running node');
    return replica.status();
  }
}

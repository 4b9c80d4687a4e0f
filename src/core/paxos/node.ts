/**
 * A Basic Paxos node: one acceptor (when the node is a member of the configuration), a proposer
 * per variable it is proposing for, and a learner of the values its proposers saw chosen.
 *
 * The surface is etcd raft's: `propose`, `step`, `tick` queue work, and `ready()` hands the
 * driver what to persist, what to send and which requests finished. The node never does I/O,
 * never reads a clock and takes randomness only from the injected `Random`, so the simulator
 * runs this exact code and a seed replays a run.
 *
 * A node reaches its own acceptor the same way it reaches the others, by a message addressed to
 * itself in `Ready.send`: the persist-before-send rule then covers the local promise too.
 */
import { assert, assertNever } from '../assert.js';
import { BALLOT_ZERO, nextBallot, type Ballot, type NodeId } from '../ballot.js';
import type { Random } from '../prng.js';
import type { Configuration } from '../quorum/majority.js';
import {
  ACCEPTOR_STATE_INITIAL,
  acceptorStateOf,
  assertAcceptorTransition,
  basicAcceptorRules,
  type AcceptorRecord,
  type AcceptorRules,
  type AcceptorState,
} from './acceptor.js';
import type { AcceptorReply, AcceptorRequest, Message, Value, Variable } from './messages.js';
import { Proposer, type ProposerEnvironment, type ProposerOutcome, type ProposerTimings } from './proposer.js';

/**
 * The durable form of the proposer's ballot counter: the highest ballot this node has used.
 * Persisted before the first prepare that uses a ballot, so that after a restart the node only
 * uses higher ones — two different rounds under one ballot could choose two values.
 */
export interface ProposerRecord {
  readonly type: 'proposer';
  readonly ballotUsedMax: Ballot;
}

/** Everything a node asks its driver to make durable. Replaying them in order rebuilds the node. */
export type PersistRecord = AcceptorRecord | ProposerRecord;

/** Why a proposal failed. `timeout`: no majority answered within `proposeTicksMax`; `overloaded`: too many variables in flight. */
export type ProposeError = 'timeout' | 'overloaded';

/** The seed's `<ok, f> | <error>`: on success, the chosen value, which may not be the one proposed. */
export type ProposeOutcome =
  | { readonly ok: true; readonly chosen: Value }
  | { readonly ok: false; readonly error: ProposeError };

/** The outcome of one `propose` call, identified by the request id `propose` returned. */
export interface ProposeResult {
  readonly requestId: number;
  readonly variable: Variable;
  readonly result: ProposeOutcome;
}

/**
 * The effects a node has queued since the last `ready()`.
 *
 * Contract for the driver: make every record in `persist` durable, in order, BEFORE any message
 * in `send` leaves the node — a promise or an acceptance that is sent and then forgotten in a
 * crash breaks Paxos' safety, and a ballot that is used and then forgotten may be reused.
 * Messages may then be sent in any order, lost, duplicated or delayed; the protocol tolerates it.
 * `results` answer earlier `propose` calls and may be delivered at any time after `persist`.
 */
export interface Ready {
  readonly persist: readonly PersistRecord[];
  readonly send: readonly Message[];
  readonly results: readonly ProposeResult[];
}

/** How a node is built. Every limit has a default in {@link PAXOS_NODE_DEFAULTS}. */
export interface PaxosNodeConfig extends Partial<ProposerTimings> {
  readonly nodeId: NodeId;
  /** The acceptors. The node runs an acceptor only if it is a member; a non-member only proposes. */
  readonly configuration: Configuration;
  /** The source of the backoff randomness. */
  readonly random: Random;
  /** The most variables this node proposes for at once. */
  readonly proposalsMax?: number;
  /** The acceptor's rules; tests inject broken ones to exercise the checkers. */
  readonly acceptorRules?: AcceptorRules;
}

/** The defaults of every node limit (ticks are the driver's unit of time). */
export const PAXOS_NODE_DEFAULTS = Object.freeze({
  retransmitTicks: 10,
  proposeTicksMax: 1000,
  backoff: true,
  backoffTicksMin: 2,
  backoffTicksMax: 64,
  proposalsMax: 1024,
});

/** A Basic Paxos node: acceptor, proposers and learner behind a `propose/step/tick/ready` surface. */
export class PaxosNode {
  readonly nodeId: NodeId;
  readonly configuration: Configuration;
  private readonly rules: AcceptorRules;
  private readonly proposalsMax: number;
  private readonly environment: ProposerEnvironment;
  private readonly acceptors = new Map<Variable, AcceptorState>();
  private readonly proposers = new Map<Variable, Proposer>();
  /** What this node's proposers saw chosen (the learner). A chosen value never changes. */
  private readonly chosen = new Map<Variable, Value>();
  private ballotUsedMax: Ballot = BALLOT_ZERO;
  private requestIdNext = 1;
  private persistQueue: PersistRecord[] = [];
  private sendQueue: Message[] = [];
  private resultQueue: ProposeResult[] = [];

  constructor(config: PaxosNodeConfig) {
    this.nodeId = config.nodeId;
    this.configuration = config.configuration;
    this.rules = config.acceptorRules ?? basicAcceptorRules;
    this.proposalsMax = config.proposalsMax ?? PAXOS_NODE_DEFAULTS.proposalsMax;
    assert(this.proposalsMax >= 1, 'proposalsMax is at least 1');
    const timings: ProposerTimings = {
      retransmitTicks: config.retransmitTicks ?? PAXOS_NODE_DEFAULTS.retransmitTicks,
      proposeTicksMax: config.proposeTicksMax ?? PAXOS_NODE_DEFAULTS.proposeTicksMax,
      backoff: config.backoff ?? PAXOS_NODE_DEFAULTS.backoff,
      backoffTicksMin: config.backoffTicksMin ?? PAXOS_NODE_DEFAULTS.backoffTicksMin,
      backoffTicksMax: config.backoffTicksMax ?? PAXOS_NODE_DEFAULTS.backoffTicksMax,
    };
    this.environment = {
      nodeId: config.nodeId,
      configuration: config.configuration,
      random: config.random,
      timings,
      allocateBallot: (variable, above) => this.allocateBallot(variable, above),
      send: (message) => this.sendQueue.push(message),
    };
  }

  /**
   * Rebuilds a node after a restart from the records its driver made durable (in the order they
   * were persisted). Proposals in flight are not persisted: their callers see no result and retry.
   * Learned values are not persisted either: the acceptors hold a chosen value, so a restarted
   * node that is asked again finds it by running Paxos.
   */
  static restore(config: PaxosNodeConfig, records: readonly PersistRecord[]): PaxosNode {
    const node = new PaxosNode(config);
    for (const record of records) {
      switch (record.type) {
        case 'acceptor': {
          const state = acceptorStateOf(record);
          assertAcceptorTransition(node.acceptorState(record.variable), state);
          node.acceptors.set(record.variable, state);
          break;
        }
        case 'proposer':
          assert(record.ballotUsedMax >= node.ballotUsedMax, 'persisted ballots only grow');
          node.ballotUsedMax = record.ballotUsedMax;
          break;
        default:
          assertNever(record, 'persist record');
      }
    }
    return node;
  }

  /**
   * The seed's `propose(var, V)`: starts Paxos for `variable` and returns a request id; the
   * result arrives in a later `ready().results`. If this node already learned the chosen value,
   * the result is that value at once — a chosen value never changes, so re-running Paxos would
   * only cost two round trips to find it again. A second propose for a variable already in
   * flight on this node joins that proposal and gets its outcome: the answer to either call is
   * whatever value gets chosen, and one proposer cannot preempt another of the same node.
   */
  propose(variable: Variable, value: Value): number {
    const requestId = this.requestIdNext;
    this.requestIdNext += 1;
    const chosen = this.chosen.get(variable);
    const running = this.proposers.get(variable);
    if (chosen !== undefined) {
      this.resultQueue.push({ requestId, variable, result: { ok: true, chosen } });
    } else if (running !== undefined) {
      running.requestIds.push(requestId);
    } else if (this.proposers.size >= this.proposalsMax) {
      this.resultQueue.push({ requestId, variable, result: { ok: false, error: 'overloaded' } });
    } else {
      const proposer = new Proposer(this.environment, variable, value, requestId);
      this.proposers.set(variable, proposer);
      proposer.start();
    }
    return requestId;
  }

  /** Handles one message from the network (or from this node to itself). */
  step(message: Message): void {
    assert(message.to === this.nodeId, 'a message reaches the node it is addressed to');
    switch (message.type) {
      case 'prepare':
      case 'accept':
        this.stepAcceptor(message);
        return;
      case 'promise':
      case 'accepted':
      case 'nack':
        this.stepProposer(message);
        return;
      default:
        assertNever(message, 'message');
    }
  }

  /** Advances this node's time by one tick: retransmissions, backoffs and deadlines. */
  tick(): void {
    for (const proposer of [...this.proposers.values()]) {
      this.settle(proposer, proposer.onTick());
    }
  }

  /** Drains the effects queued since the last call; see {@link Ready} for the ordering contract. */
  ready(): Ready {
    const ready: Ready = { persist: this.persistQueue, send: this.sendQueue, results: this.resultQueue };
    this.persistQueue = [];
    this.sendQueue = [];
    this.resultQueue = [];
    return ready;
  }

  /** True when `ready()` would return something. */
  hasReady(): boolean {
    return this.persistQueue.length + this.sendQueue.length + this.resultQueue.length > 0;
  }

  /** This node's acceptor state for `variable` (initial if it never heard of it). */
  acceptorState(variable: Variable): AcceptorState {
    return this.acceptors.get(variable) ?? ACCEPTOR_STATE_INITIAL;
  }

  /** The value this node learned as chosen for `variable`, if any. */
  chosenValue(variable: Variable): Value | undefined {
    return this.chosen.get(variable);
  }

  /** The highest ballot this node has used (and persisted). */
  get ballotUsed(): Ballot {
    return this.ballotUsedMax;
  }

  /** True while a proposal for `variable` is running on this node. */
  isProposing(variable: Variable): boolean {
    return this.proposers.has(variable);
  }

  private stepAcceptor(message: AcceptorRequest): void {
    assert(this.configuration.has(this.nodeId), 'only members run an acceptor');
    const before = this.acceptorState(message.variable);
    const step = message.type === 'prepare' ? this.rules.prepare(before, message) : this.rules.accept(before, message);
    assertAcceptorTransition(before, step.state);
    assert(step.reply.to === message.from && step.reply.from === this.nodeId, 'the reply answers the sender');
    assert(step.reply.ballot === message.ballot, 'the reply names the request ballot');
    this.acceptors.set(message.variable, step.state);
    if (step.persist !== null) this.persistQueue.push(step.persist);
    this.sendQueue.push(step.reply);
  }

  private stepProposer(message: AcceptorReply): void {
    const proposer = this.proposers.get(message.variable);
    if (proposer === undefined) return; // A late reply for a proposal that already finished.
    switch (message.type) {
      case 'promise':
        this.settle(proposer, proposer.onPromise(message));
        return;
      case 'accepted':
        this.settle(proposer, proposer.onAccepted(message));
        return;
      case 'nack':
        this.settle(proposer, proposer.onNack(message));
        return;
      default:
        assertNever(message, 'reply');
    }
  }

  /** Ends a proposal that chose a value or timed out, answering every request that waits on it. */
  private settle(proposer: Proposer, outcome: ProposerOutcome): void {
    let result: ProposeOutcome;
    switch (outcome.type) {
      case 'running':
        return;
      case 'chosen':
        this.learn(proposer.variable, outcome.value);
        result = { ok: true, chosen: outcome.value };
        break;
      case 'timeout':
        result = { ok: false, error: 'timeout' };
        break;
      default:
        assertNever(outcome, 'proposer outcome');
    }
    assert(this.proposers.get(proposer.variable) === proposer, 'a settled proposal is the running one');
    this.proposers.delete(proposer.variable);
    for (const requestId of proposer.requestIds) {
      this.resultQueue.push({ requestId, variable: proposer.variable, result });
    }
  }

  private learn(variable: Variable, value: Value): void {
    const known = this.chosen.get(variable);
    assert(known === undefined || known === value, 'a chosen value never changes');
    this.chosen.set(variable, value);
  }

  private allocateBallot(variable: Variable, above: Ballot): Ballot {
    let floor = above > this.ballotUsedMax ? above : this.ballotUsedMax;
    // Our own acceptor's promise is the cheapest information about competing rounds.
    const promised = this.acceptorState(variable).promised;
    if (promised > floor) floor = promised;
    const ballot = nextBallot(floor, this.nodeId);
    assert(ballot > this.ballotUsedMax, 'a ballot is never reused');
    this.ballotUsedMax = ballot;
    this.persistQueue.push({ type: 'proposer', ballotUsedMax: ballot });
    return ballot;
  }
}

/**
 * The Basic Paxos proposer for one variable on one node: phase 1 (prepare / promise), phase 2
 * (accept / accepted), preemption (nack), retransmission and the overall deadline.
 *
 * It does no I/O: messages go out through `ProposerEnvironment.send`, and the node turns them
 * into `Ready.send`. Ballots come from `ProposerEnvironment.allocateBallot`, which also queues
 * the persist record of the ballot, so a restarted node never reuses one.
 *
 * Livelock (seed 001 "活锁", SCENARIOS.md S3): two proposers can preempt each other forever.
 * After a preemption this proposer waits a random number of ticks, drawn from a window that
 * doubles with every consecutive preemption, so that one of them gets a quiet round trip.
 * `backoff: false` gives the naive proposer, which retries at once.
 */
import { assert, assertNever } from '../assert.js';
import { BALLOT_ZERO, type Ballot, type NodeId } from '../ballot.js';
import type { Random } from '../prng.js';
import type { Configuration } from '../quorum/majority.js';
import type {
  AcceptedMessage,
  AcceptedProposal,
  Message,
  NackMessage,
  PromiseMessage,
  Value,
  Variable,
} from './messages.js';

/** The proposer's time limits, all in ticks. */
export interface ProposerTimings {
  /** Resend the current phase's message to acceptors that have not answered, this often. */
  readonly retransmitTicks: number;
  /** Give up with `timeout` this long after the proposal started. */
  readonly proposeTicksMax: number;
  /** Wait a random time after a preemption (false: the naive proposer, retrying at once). */
  readonly backoff: boolean;
  /** The shortest wait after a preemption. */
  readonly backoffTicksMin: number;
  /** The cap of the wait window, which doubles with each consecutive preemption. */
  readonly backoffTicksMax: number;
}

/** What the proposer needs from its node. */
export interface ProposerEnvironment {
  readonly nodeId: NodeId;
  readonly configuration: Configuration;
  readonly random: Random;
  readonly timings: ProposerTimings;
  /**
   * A ballot of this node above `above`, above the node's own acceptor's promise and above every
   * ballot the node ever used; the node queues its persist record before any message using it.
   */
  allocateBallot(variable: Variable, above: Ballot): Ballot;
  /** Queues a message (to be sent after the pending persist records are durable). */
  send(message: Message): void;
}

/** Where a proposal stands after an event. */
export type ProposerOutcome =
  | { readonly type: 'running' }
  | { readonly type: 'chosen'; readonly value: Value }
  | { readonly type: 'timeout' };

const RUNNING: ProposerOutcome = Object.freeze({ type: 'running' });

type Phase = 'prepare' | 'accept' | 'backoff';

/** One proposal in progress: the request ids waiting on it and the state of the current round. */
export class Proposer {
  /** Requests answered by this proposal's outcome (a second propose on the same variable joins). */
  readonly requestIds: number[] = [];
  private phase: Phase = 'backoff';
  private ballot: Ballot = BALLOT_ZERO;
  /** The highest ballot seen in a refusal: the next round must be above it. */
  private ballotSeenMax: Ballot = BALLOT_ZERO;
  private readonly promisedBy = new Set<NodeId>();
  /** The highest-ballot accepted proposal reported in this round's promises. */
  private acceptedHighest: AcceptedProposal | null = null;
  /** Acceptors that refused our prepare because they already promised it: their promise was lost. */
  private readonly promiseLostBy = new Set<NodeId>();
  private readonly acceptedBy = new Set<NodeId>();
  /** The value of this round's phase 2 (ours, or the one adopted in phase 1). */
  private proposal: Value | null = null;
  private ticksElapsed = 0;
  private ticksSinceSend = 0;
  private backoffTicksLeft = 0;
  private preemptions = 0;

  constructor(
    private readonly environment: ProposerEnvironment,
    readonly variable: Variable,
    readonly value: Value,
    requestId: number,
  ) {
    const timings = environment.timings;
    assert(timings.retransmitTicks >= 1, 'retransmitTicks is at least 1');
    assert(timings.proposeTicksMax >= 1, 'proposeTicksMax is at least 1');
    assert(timings.backoffTicksMin >= 1, 'backoffTicksMin is at least 1');
    assert(timings.backoffTicksMax >= timings.backoffTicksMin, 'backoffTicksMax is at least backoffTicksMin');
    this.requestIds.push(requestId);
  }

  /** The ballot of the current (or last) round; zero before the first. */
  get currentBallot(): Ballot {
    return this.ballot;
  }

  /** Starts the first round. */
  start(): void {
    assert(this.ballot === BALLOT_ZERO, 'a proposer starts once');
    this.startRound();
  }

  /** Phase 1b: count the promise; on a majority, move to phase 2. */
  onPromise(message: PromiseMessage): ProposerOutcome {
    this.assertReply(message);
    if (this.phase !== 'prepare' || message.ballot !== this.ballot) return RUNNING; // Stale.
    if (this.promisedBy.has(message.from)) return RUNNING; // Duplicate.
    this.promisedBy.add(message.from);
    this.promiseLostBy.delete(message.from);
    const accepted = message.accepted;
    if (accepted !== null) {
      assert(accepted.ballot < this.ballot, 'a promise reports only proposals below its ballot');
      const highest = this.acceptedHighest;
      if (highest !== null && highest.ballot === accepted.ballot) {
        assert(highest.value === accepted.value, 'one ballot carries one value');
      }
      if (highest === null || accepted.ballot > highest.ballot) this.acceptedHighest = accepted;
    }
    if (this.environment.configuration.isQuorum(this.promisedBy)) this.startAccept();
    return RUNNING;
  }

  /** Phase 2b: count the acceptance; on a majority the proposal is chosen. */
  onAccepted(message: AcceptedMessage): ProposerOutcome {
    this.assertReply(message);
    if (this.phase !== 'accept' || message.ballot !== this.ballot) return RUNNING; // Stale.
    this.acceptedBy.add(message.from);
    if (!this.environment.configuration.isQuorum(this.acceptedBy)) return RUNNING;
    assert(this.proposal !== null, 'phase 2 has a value');
    return { type: 'chosen', value: this.proposal };
  }

  /** A refusal: a higher ballot preempted this round, or our own promise was lost. */
  onNack(message: NackMessage): ProposerOutcome {
    this.assertReply(message);
    assert(message.promised >= message.ballot, 'a refusal names a promise at least the refused ballot');
    if (message.promised > this.ballotSeenMax) this.ballotSeenMax = message.promised;
    if (this.phase === 'backoff' || message.ballot !== this.ballot) return RUNNING; // Stale.
    if (message.promised === this.ballot) {
      // Only a prepare is refused at its own ballot (an accept at the promised ballot is taken):
      // the acceptor promised this very round before, so this refuses a duplicate or a
      // retransmission. Not a preemption. If the first promise never reached us it was lost,
      // and `retransmit` starts a new round, since resending the prepare would be refused again.
      if (this.phase === 'prepare' && !this.promisedBy.has(message.from)) this.promiseLostBy.add(message.from);
      return RUNNING;
    }
    this.preemptions += 1;
    if (this.environment.timings.backoff) {
      this.phase = 'backoff';
      this.backoffTicksLeft = this.backoffTicks();
    } else {
      this.startRound();
    }
    return RUNNING;
  }

  /** Advances time by one tick: deadline, end of backoff, retransmission. */
  onTick(): ProposerOutcome {
    this.ticksElapsed += 1;
    if (this.ticksElapsed >= this.environment.timings.proposeTicksMax) return { type: 'timeout' };
    switch (this.phase) {
      case 'backoff':
        this.backoffTicksLeft -= 1;
        if (this.backoffTicksLeft <= 0) this.startRound();
        return RUNNING;
      case 'prepare':
      case 'accept':
        this.ticksSinceSend += 1;
        if (this.ticksSinceSend >= this.environment.timings.retransmitTicks) this.retransmit();
        return RUNNING;
      default:
        return assertNever(this.phase, 'proposer phase');
    }
  }

  private startRound(): void {
    const above = this.ballotSeenMax > this.ballot ? this.ballotSeenMax : this.ballot;
    const ballot = this.environment.allocateBallot(this.variable, above);
    assert(ballot > this.ballot, 'each round uses a higher ballot');
    this.ballot = ballot;
    this.phase = 'prepare';
    this.promisedBy.clear();
    this.promiseLostBy.clear();
    this.acceptedBy.clear();
    this.acceptedHighest = null;
    this.proposal = null;
    this.sendPhaseMessages(this.environment.configuration.members);
  }

  private startAccept(): void {
    assert(this.phase === 'prepare', 'phase 2 follows phase 1');
    // The seeds' "the later one accepts the earlier" (后者认同前者): a value some acceptor of
    // this majority accepted may already be chosen, and the highest-ballot one is the only
    // candidate, so it must be proposed instead of our own.
    this.proposal = this.acceptedHighest?.value ?? this.value;
    this.phase = 'accept';
    this.sendPhaseMessages(this.environment.configuration.members);
  }

  private retransmit(): void {
    if (this.phase === 'prepare' && this.promiseLostBy.size > 0) {
      // Resending the prepare to an acceptor that already promised it only earns another
      // refusal (prepare at the promised ballot is refused), so a new round is the way forward.
      this.startRound();
      return;
    }
    const answered = this.phase === 'prepare' ? this.promisedBy : this.acceptedBy;
    const silent = this.environment.configuration.members.filter((member) => !answered.has(member));
    this.sendPhaseMessages(silent);
  }

  private sendPhaseMessages(targets: readonly NodeId[]): void {
    this.ticksSinceSend = 0;
    for (const to of targets) {
      const address = { from: this.environment.nodeId, to, variable: this.variable, ballot: this.ballot };
      if (this.phase === 'prepare') {
        this.environment.send({ type: 'prepare', ...address });
      } else {
        assert(this.phase === 'accept' && this.proposal !== null, 'accepts carry the phase 2 value');
        this.environment.send({ type: 'accept', ...address, value: this.proposal });
      }
    }
  }

  /** A random wait from a window that doubles with each consecutive preemption, capped. */
  private backoffTicks(): number {
    const timings = this.environment.timings;
    const doublings = Math.min(this.preemptions, 30);
    const windowTicks = Math.min(timings.backoffTicksMax, timings.backoffTicksMin * 2 ** doublings);
    const ticks = this.environment.random.int(timings.backoffTicksMin, windowTicks + 1);
    assert(ticks >= timings.backoffTicksMin && ticks <= timings.backoffTicksMax, 'backoff within its bounds');
    return ticks;
  }

  private assertReply(message: PromiseMessage | AcceptedMessage | NackMessage): void {
    assert(message.to === this.environment.nodeId, 'a reply reaches the proposer it answers');
    assert(message.variable === this.variable, 'a reply reaches the proposal of its variable');
    assert(this.environment.configuration.has(message.from), 'replies come from members');
  }
}

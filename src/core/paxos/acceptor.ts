/**
 * The Basic Paxos acceptor as pure functions: (state, request) -> (new state, reply, persist).
 *
 * The rules are those of seed 001 (`minProposal`):
 * - prepare(n) is refused when n <= promised — equality included, so a second prepare with the
 *   same ballot (a duplicate, or another proposer's collision) cannot get a second promise;
 *   otherwise promised := n and the reply reports the last accepted (ballot, value), or null.
 * - accept(n, v) is refused when n < promised; n == promised is accepted, since that is the
 *   round this acceptor promised. Otherwise accepted := (n, v) and promised := n.
 *
 * Seed 004 describes a variant in which an acceptor keeps the first value it accepted forever
 * ("一视同仁"); this project follows seed 001 and Lamport: a later ballot may overwrite the
 * accepted value, which is safe because that ballot's proposer adopted the highest accepted
 * value it saw in phase 1.
 *
 * The functions never write anything: the new state must be made durable (the `persist`
 * record) before the reply leaves the node, which the node's `Ready` contract guarantees.
 */
import { assert } from '../assert.js';
import { BALLOT_ZERO, type Ballot } from '../ballot.js';
import type {
  AcceptMessage,
  AcceptedProposal,
  AcceptorReply,
  PrepareMessage,
  Variable,
} from './messages.js';

/** One acceptor's durable state for one variable (the seed's minProposal and accepted pair). */
export interface AcceptorState {
  /** The highest ballot promised or accepted; never decreases. */
  readonly promised: Ballot;
  /** The last accepted proposal, or null when nothing has been accepted. */
  readonly accepted: AcceptedProposal | null;
}

/** The state of a variable the acceptor has never heard of. */
export const ACCEPTOR_STATE_INITIAL: AcceptorState = Object.freeze({ promised: BALLOT_ZERO, accepted: null });

/**
 * The durable form of one variable's acceptor state. A full snapshot rather than a delta, so a
 * driver keeps the last record per variable and replaying records in order is idempotent.
 */
export interface AcceptorRecord {
  readonly type: 'acceptor';
  readonly variable: Variable;
  readonly promised: Ballot;
  readonly accepted: AcceptedProposal | null;
}

/** What handling one request produces. */
export interface AcceptorStep {
  readonly state: AcceptorState;
  readonly reply: AcceptorReply;
  /** The record to make durable before `reply` is sent; null when the state did not change. */
  readonly persist: AcceptorRecord | null;
}

/**
 * The acceptor's two rules. Production code uses {@link basicAcceptorRules}; tests inject broken
 * variants to prove that the simulator's agreement checker can fail.
 */
export interface AcceptorRules {
  prepare(state: AcceptorState, message: PrepareMessage): AcceptorStep;
  accept(state: AcceptorState, message: AcceptMessage): AcceptorStep;
}

/** Phase 1b: promise `message.ballot` if it is above every ballot promised so far. */
export function acceptorPrepare(state: AcceptorState, message: PrepareMessage): AcceptorStep {
  assertAcceptorState(state);
  const replyAddress = { from: message.to, to: message.from, variable: message.variable, ballot: message.ballot };
  if (message.ballot <= state.promised) {
    return { state, reply: { type: 'nack', ...replyAddress, promised: state.promised }, persist: null };
  }
  const next: AcceptorState = { promised: message.ballot, accepted: state.accepted };
  assertAcceptorTransition(state, next);
  return {
    state: next,
    reply: { type: 'promise', ...replyAddress, accepted: state.accepted },
    persist: acceptorRecord(message.variable, next),
  };
}

/** Phase 2b: accept `message.value` unless a higher ballot has been promised. */
export function acceptorAccept(state: AcceptorState, message: AcceptMessage): AcceptorStep {
  assertAcceptorState(state);
  const replyAddress = { from: message.to, to: message.from, variable: message.variable, ballot: message.ballot };
  if (message.ballot < state.promised) {
    return { state, reply: { type: 'nack', ...replyAddress, promised: state.promised }, persist: null };
  }
  const next: AcceptorState = { promised: message.ballot, accepted: { ballot: message.ballot, value: message.value } };
  assertAcceptorTransition(state, next);
  // A proposer sends one value per ballot, so a repeated accept (a retransmission or a
  // duplicate) changes nothing and needs no new write.
  const unchanged = state.promised === next.promised && state.accepted?.ballot === message.ballot;
  if (unchanged) assert(state.accepted?.value === message.value, 'one ballot carries one value');
  return {
    state: unchanged ? state : next,
    reply: { type: 'accepted', ...replyAddress },
    persist: unchanged ? null : acceptorRecord(message.variable, next),
  };
}

/** The acceptor rules of seed 001, as used by every production node. */
export const basicAcceptorRules: AcceptorRules = Object.freeze({
  prepare: acceptorPrepare,
  accept: acceptorAccept,
});

/** The durable record of `state` for `variable`. */
export function acceptorRecord(variable: Variable, state: AcceptorState): AcceptorRecord {
  return { type: 'acceptor', variable, promised: state.promised, accepted: state.accepted };
}

/** The acceptor state a record describes. */
export function acceptorStateOf(record: AcceptorRecord): AcceptorState {
  const state: AcceptorState = { promised: record.promised, accepted: record.accepted };
  assertAcceptorState(state);
  return state;
}

/** An acceptor never holds a value accepted above its promise. */
export function assertAcceptorState(state: AcceptorState): void {
  assert(state.accepted === null || state.accepted.ballot <= state.promised, 'accepted ballot is at most promised');
}

/**
 * Invariants of every acceptor transition, whatever rules produced it: the promise never
 * decreases (the seed's two promises would otherwise be broken), and the state stays well formed.
 */
export function assertAcceptorTransition(before: AcceptorState, after: AcceptorState): void {
  assert(after.promised >= before.promised, 'promised ballot never decreases');
  assertAcceptorState(after);
}

/**
 * The five messages of Basic Paxos (seeds 001 and 004), as a discriminated union on `type`.
 *
 * Every message names one `variable`: the seed's API is `propose(var, V)`, and each variable is
 * an independent single-decree Paxos instance, so the acceptor and proposer state is keyed by it.
 * Every message carries the `ballot` of the round it belongs to, which is how a proposer tells a
 * reply to its current round from a stale one.
 */
import { formatBallot, type Ballot, type NodeId } from '../ballot.js';
import { assertNever } from '../assert.js';

/** The name of one single-decree instance (the seed's `var`). */
export type Variable = string;

/** A proposed or chosen value. Opaque to the protocol. */
export type Value = string;

/** A value an acceptor has accepted, with the ballot it accepted it at. */
export interface AcceptedProposal {
  readonly ballot: Ballot;
  readonly value: Value;
}

/** Phase 1a: the proposer asks for a promise to ignore every ballot below `ballot`. */
export interface PrepareMessage {
  readonly type: 'prepare';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly variable: Variable;
  readonly ballot: Ballot;
}

/** Phase 1b: the acceptor promises `ballot` and reports what it accepted last (or null). */
export interface PromiseMessage {
  readonly type: 'promise';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly variable: Variable;
  readonly ballot: Ballot;
  readonly accepted: AcceptedProposal | null;
}

/** Phase 2a: the proposer asks the acceptor to accept `value` at `ballot`. */
export interface AcceptMessage {
  readonly type: 'accept';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly variable: Variable;
  readonly ballot: Ballot;
  readonly value: Value;
}

/** Phase 2b: the acceptor accepted the proposal at `ballot` (the value is the proposer's own). */
export interface AcceptedMessage {
  readonly type: 'accepted';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly variable: Variable;
  readonly ballot: Ballot;
}

/**
 * A refused prepare or accept. `ballot` is the refused request's ballot (so the proposer can
 * discard stale refusals) and `promised` the higher ballot the acceptor is bound to, so that the
 * proposer's next ballot can jump past it instead of climbing one round at a time.
 */
export interface NackMessage {
  readonly type: 'nack';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly variable: Variable;
  readonly ballot: Ballot;
  readonly promised: Ballot;
}

/** Every Basic Paxos message. */
export type Message = PrepareMessage | PromiseMessage | AcceptMessage | AcceptedMessage | NackMessage;

/** The messages an acceptor handles. */
export type AcceptorRequest = PrepareMessage | AcceptMessage;

/** The messages an acceptor answers with, which its proposer handles. */
export type AcceptorReply = PromiseMessage | AcceptedMessage | NackMessage;

/** The `type` tags of {@link Message}. */
export type MessageType = Message['type'];

/** True for the messages addressed to an acceptor (prepare, accept). */
export function isAcceptorRequest(message: Message): message is AcceptorRequest {
  return message.type === 'prepare' || message.type === 'accept';
}

/** True for the replies addressed to a proposer (promise, accepted, nack). */
export function isAcceptorReply(message: Message): message is AcceptorReply {
  return !isAcceptorRequest(message);
}

/** How a trace prints a ballot; the default is `round.node` from `core/ballot`. */
export type BallotFormatter = (ballot: Ballot) => string;

/**
 * The body of a message as trace lines show it, without sender and receiver:
 * `prepare(0.2)`, `promise(0.2, none)`, `accept(0.1, "1+1=1")`, `accepted(0.3)`,
 * `nack(0.1, promised 0.3)`.
 */
export function formatMessage(message: Message, ballotFormatter: BallotFormatter = formatBallot): string {
  const ballot = ballotFormatter(message.ballot);
  switch (message.type) {
    case 'prepare':
      return `prepare(${ballot})`;
    case 'promise':
      return `promise(${ballot}, ${formatAccepted(message.accepted, ballotFormatter)})`;
    case 'accept':
      return `accept(${ballot}, ${JSON.stringify(message.value)})`;
    case 'accepted':
      return `accepted(${ballot})`;
    case 'nack':
      return `nack(${ballot}, promised ${ballotFormatter(message.promised)})`;
    default:
      return assertNever(message, 'message');
  }
}

/** An accepted proposal as traces show it: `(0.1, "V1")`, or `none`. */
export function formatAccepted(
  accepted: AcceptedProposal | null,
  ballotFormatter: BallotFormatter = formatBallot,
): string {
  if (accepted === null) return 'none';
  return `(${ballotFormatter(accepted.ballot)}, ${JSON.stringify(accepted.value)})`;
}

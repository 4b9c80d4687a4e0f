/**
 * Basic Paxos (single decree per variable), the seeds' `propose(var, V) -> <ok, f> | <error>`,
 * as a pure library: build a {@link PaxosNode} per process, feed it `propose`, `step` and
 * `tick`, and run its `ready()` effects — persist first, then send.
 */
export {
  ACCEPTOR_STATE_INITIAL,
  acceptorAccept,
  acceptorPrepare,
  acceptorRecord,
  acceptorStateOf,
  assertAcceptorState,
  assertAcceptorTransition,
  basicAcceptorRules,
  type AcceptorRecord,
  type AcceptorRules,
  type AcceptorState,
  type AcceptorStep,
} from './acceptor.js';
export {
  formatAccepted,
  formatMessage,
  isAcceptorReply,
  isAcceptorRequest,
  type AcceptMessage,
  type AcceptedMessage,
  type AcceptedProposal,
  type AcceptorReply,
  type AcceptorRequest,
  type BallotFormatter,
  type Message,
  type MessageType,
  type NackMessage,
  type PrepareMessage,
  type PromiseMessage,
  type Value,
  type Variable,
} from './messages.js';
export {
  PAXOS_NODE_DEFAULTS,
  PaxosNode,
  type PaxosNodeConfig,
  type PersistRecord,
  type ProposeError,
  type ProposeOutcome,
  type ProposeResult,
  type ProposerRecord,
  type Ready,
} from './node.js';
export { Proposer, type ProposerEnvironment, type ProposerOutcome, type ProposerTimings } from './proposer.js';

/**
 * Multi-Paxos: log entries, messages between replicas, persisted records and the `Ready` batch
 * of effects that the pure replica hands to its driver.
 */
import type { Ballot, NodeId } from '../ballot.js';
import type { Command } from '../command.js';

/**
 * What a slot of the log holds.
 * - `noop` fills a true gap found during recovery (the seed's "maximum-commit principle").
 * - `start-working` is committed by every new leader before it serves; its `epoch` (the leader's
 *   ballot) makes replay ignore older leaders' entries that appear after it (no ghost reappearance).
 * - `commands` is a batch of client commands written by the leader of `epoch`. The epoch is fixed
 *   when the entry is created and survives re-proposal by later leaders.
 */
export type EntryValue =
  | { readonly type: 'noop' }
  | { readonly type: 'start-working'; readonly epoch: Ballot }
  | { readonly type: 'commands'; readonly epoch: Ballot; readonly commands: readonly Command[] };

/** One slot as an acceptor holds it: the accepted (ballot, value), and whether it is known chosen. */
export interface LogEntry {
  readonly slot: number;
  readonly ballot: Ballot;
  readonly value: EntryValue;
  readonly chosen: boolean;
}

/** A (slot, value) pair in an accept message; the ballot is the message's. */
export interface ProposedEntry {
  readonly slot: number;
  readonly value: EntryValue;
}

/** A chosen slot as sent to a learner that asked for it. */
export interface ChosenEntry {
  readonly slot: number;
  readonly ballot: Ballot;
  readonly value: EntryValue;
}

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
}

/** Phase 1a for the whole open range [firstUnchosen, ∞): one prepare elects a leader for all future slots. */
export interface PrepareMessage extends Envelope {
  readonly type: 'prepare';
  readonly ballot: Ballot;
  readonly firstUnchosen: number;
}

/** Phase 1b: the acceptor's entries at or above the candidate's firstUnchosen, and its max log id. */
export interface PromiseMessage extends Envelope {
  readonly type: 'promise';
  readonly ballot: Ballot;
  readonly entries: readonly LogEntry[];
  /** The highest slot this acceptor holds (the seed's GetMaxLogID). 0 when the log is empty. */
  readonly maxSlot: number;
}

/** Phase 2a for one or more slots; carries the leader's chosen point (a commit notification). */
export interface AcceptMessage extends Envelope {
  readonly type: 'accept';
  readonly ballot: Ballot;
  readonly entries: readonly ProposedEntry[];
  /** Every slot below this is chosen (the leader's firstUnchosen). */
  readonly commitIndex: number;
}

/** Phase 2b for the listed slots. */
export interface AcceptedMessage extends Envelope {
  readonly type: 'accepted';
  readonly ballot: Ballot;
  readonly slots: readonly number[];
  readonly firstUnchosen: number;
}

/** A refusal of a prepare, accept or heartbeat: the acceptor has promised a higher ballot. */
export interface NackMessage extends Envelope {
  readonly type: 'nack';
  readonly ballot: Ballot;
  readonly promised: Ballot;
}

/** Leader liveness and commit notification when there is nothing to accept. */
export interface HeartbeatMessage extends Envelope {
  readonly type: 'heartbeat';
  readonly ballot: Ballot;
  readonly commitIndex: number;
  /** The leader's latest read-index round (0: none yet); the ack echoes it. */
  readonly readRound: number;
}

/** A follower's answer to a heartbeat: where its log stands, so the leader can track lag. */
export interface HeartbeatAckMessage extends Envelope {
  readonly type: 'heartbeat-ack';
  readonly ballot: Ballot;
  readonly firstUnchosen: number;
  readonly maxSlot: number;
  /** The `readRound` of the heartbeat answered: this acceptor still had not promised above `ballot`. */
  readonly readRound: number;
}

/** A learner asks which values were chosen at these slots (it holds none, or only an unconfirmed one). */
export interface LearnMessage extends Envelope {
  readonly type: 'learn';
  readonly slots: readonly number[];
}

/** The chosen values a peer knows for the slots asked about. */
export interface LearnedMessage extends Envelope {
  readonly type: 'learned';
  readonly entries: readonly ChosenEntry[];
}

/**
 * From a rejoining member (its durable state was lost; see `ReplicaOptions.rejoin`) to each peer:
 * "tell me your promise", and when `fence` is above it, "then promise at least `fence`". The
 * peer answers with `rejoin-ack`; a peer that is itself rejoining does not answer.
 */
export interface RejoinMessage extends Envelope {
  readonly type: 'rejoin';
  /** Names the round; an answer to an older round is ignored. */
  readonly nonce: number;
  /** 0 in the first round (a question only); later, a ballot of the rejoining member. */
  readonly fence: Ballot;
}

/** A peer's answer to `rejoin`: its promise as it was before it applied the fence. */
export interface RejoinAckMessage extends Envelope {
  readonly type: 'rejoin-ack';
  readonly nonce: number;
  readonly promised: Ballot;
}

export type Message =
  | PrepareMessage
  | PromiseMessage
  | AcceptMessage
  | AcceptedMessage
  | NackMessage
  | HeartbeatMessage
  | HeartbeatAckMessage
  | LearnMessage
  | LearnedMessage
  | RejoinMessage
  | RejoinAckMessage;

/**
 * A record the driver must make durable. Replaying the records of a node in order rebuilds its
 * acceptor state (`PersistentState`).
 * - `promise`: the acceptor's minProposal for the open range; also the highest round this node
 *   has used as a proposer, so a restarted node never reuses a ballot.
 * - `accept`: the acceptor accepted (ballot, value) at slot.
 * - `chosen`: slot is known chosen. `value` is present when the local log did not already hold the
 *   chosen value at `ballot` (learned from a peer); otherwise the existing entry is marked.
 */
export type PersistRecord =
  | { readonly type: 'promise'; readonly ballot: Ballot }
  | { readonly type: 'accept'; readonly slot: number; readonly ballot: Ballot; readonly value: EntryValue }
  | { readonly type: 'chosen'; readonly slot: number; readonly ballot: Ballot; readonly value?: EntryValue };

/** A chosen entry handed to the state machine, in log order, exactly once per replica lifetime. */
export interface CommittedEntry {
  readonly slot: number;
  readonly value: EntryValue;
  /**
   * True when replay ignores this entry: a `commands` entry whose epoch is lower than that of a
   * StartWorking entry earlier in the log (the ghost-reappearance rule). Its commands take no effect.
   */
  readonly skipped: boolean;
}

/**
 * The effects the replica asks its driver to carry out. The contract, which the simulator's driver
 * asserts and the real driver follows:
 * 1. every record in `persist`, and in every earlier Ready, is durable (fsync'd) before any message
 *    in `send` leaves the node (`sendNow` may leave before), unless `durability` is `lazy`; the
 *    driver calls `persisted(ready)` once `persist` is durable, in `seq` order, and only for
 *    Readies with records (a leader's own acceptances count from then on);
 * 2. then `send` is sent (order within it does not matter);
 * 3. `apply` is applied to the state machine in the given (log) order; across all Ready batches
 *    each slot appears exactly once and slots increase by one. It need not wait for 1: every
 *    entry in it is chosen (a quorum holds it durably), which none of this node's pending records
 *    can change, so the state machine may apply it, and its clients hear back, before the fsync;
 *    a crash before the fsync loses only this node's marks, and replay or catch-up restores them;
 * 4. `ready()` may be called again before an earlier batch is durable (pipelining): persists are
 *    written in `seq` order, and each batch's `send` waits for its own and every earlier persist.
 * `reads` answers earlier `readIndex` calls; a confirmed read may be served once the state machine
 * has applied its `index` (which may take later Ready batches).
 */
export interface Ready {
  /** Increases by one per `ready()` call: names this batch in `Replica.persisted(ready)`. */
  readonly seq: number;
  /**
   * `sync`: `send` waits until `persist` (and every earlier persist) is durable. `lazy`: nothing
   * in `send` depends on `persist`, which the driver writes without an fsync of its own (it rides
   * with the next one); `persisted(ready)` is still called once it is durable.
   */
  readonly durability: 'sync' | 'lazy';
  readonly persist: readonly PersistRecord[];
  /**
   * Messages that need none of `persist` and may leave at once, while it is being written: a
   * leader's accept requests (proposer messages; its ballot's promise was made durable before
   * its prepares left). After `persist` is durable the driver calls `Replica.persisted()`.
   */
  readonly sendNow: readonly Message[];
  readonly send: readonly Message[];
  readonly apply: readonly CommittedEntry[];
  readonly reads: readonly ReadIndexResult[];
}

/**
 * The answer to `Replica.readIndex(id)`.
 * - ok: this node was the leader at some moment after the call (a quorum acknowledged a heartbeat
 *   sent after it). A read executed on a state machine that has applied every slot up to `index`
 *   is linearizable: every write acknowledged before the call sits at or below `index`.
 * - not ok: leadership was lost before confirmation; the read was not served (retry elsewhere).
 */
export type ReadIndexResult =
  | { readonly id: number; readonly ok: true; readonly index: number }
  | { readonly id: number; readonly ok: false };

/** A node's durable acceptor state, as rebuilt from its persisted records. */
export interface PersistentState {
  readonly promised: Ballot;
  /** Entries in any order; at most one per slot. */
  readonly entries: Iterable<LogEntry>;
}

export type Role = 'follower' | 'candidate' | 'leader';

/** Why a proposal was not taken. */
export type ProposeError = 'not_leader' | 'overloaded' | 'too_large';

export type ProposeResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: ProposeError; readonly leaderHint: NodeId | null };

/** A snapshot of a replica's externally visible state (status pages, traces, tests). */
export interface ReplicaStatus {
  readonly nodeId: NodeId;
  readonly role: Role;
  readonly promised: Ballot;
  readonly leaderHint: NodeId | null;
  /** True once this node leads and its StartWorking entry is chosen. */
  readonly serving: boolean;
  readonly firstUnchosen: number;
  readonly appliedThrough: number;
  readonly maxSlot: number;
  /** Entries below this slot left memory (chosen, applied, durable): read from the disk on demand. */
  readonly logInMemoryFrom: number;
  /** A leader's view of each peer's chosen prefix (its firstUnchosen, last reported); empty otherwise. */
  readonly peers: readonly PeerProgress[];
  /** True while this member rebuilds lost state from its peers and does not vote (`ReplicaOptions.rejoin`). */
  readonly rejoining: boolean;
}

export interface PeerProgress {
  readonly nodeId: NodeId;
  /** The peer's firstUnchosen as last reported to this leader (0: not heard from yet). */
  readonly firstUnchosen: number;
}

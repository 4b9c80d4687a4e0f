/**
 * The Multi-Paxos replica: acceptor, proposer/leader and learner of one member, as a pure state
 * machine in the shape of etcd's RawNode. Inputs: `step(message)`, `tick()`, `propose(command)`,
 * `campaign()`. Output: `ready()`, the effects to persist, send and apply (see `Ready` for the
 * ordering contract). No I/O, no clock, no randomness except the injected `Random`.
 *
 * Protocol summary (DESIGN.md, "Multi-Paxos as the seeds teach it"):
 * - Election is phase 1 over [firstUnchosen, ∞) with ballot (round, nodeId). Acceptors reply with
 *   their entries in that range and their max slot.
 * - The new leader re-runs phase 2 with its own ballot for every slot in [firstUnchosen, maxSlot]
 *   not known chosen: the highest-ballot accepted value, or a no-op for a true gap. Then it
 *   commits StartWorking(epoch = its ballot) and serves.
 * - A stable leader runs phase 2 only, many slots in flight (`pipelineDepthMax`), many commands
 *   per slot (`batchCountMax`, `batchBytesMax`).
 * - Commit notifications (the leader's commitIndex) ride on accepts and heartbeats. A follower
 *   marks slot s chosen only if it accepted s at the leader's own ballot; otherwise it asks
 *   (`learn`) rather than assumes (seed scenario S6).
 */
import { assert, assertNever } from '../assert.js';
import { type Ballot, type NodeId, BALLOT_ZERO, ballotNode, formatBallot, nextBallot } from '../ballot.js';
import { type Command, commandBytes } from '../command.js';
import type { Random } from '../prng.js';
import type { Configuration, ConfigurationSource } from '../quorum/majority.js';
import type {
  AcceptMessage,
  AcceptedMessage,
  ChosenEntry,
  CommittedEntry,
  EntryValue,
  HeartbeatAckMessage,
  HeartbeatMessage,
  LearnMessage,
  LearnedMessage,
  LogEntry,
  Message,
  NackMessage,
  PersistRecord,
  PersistentState,
  PrepareMessage,
  PromiseMessage,
  ProposeResult,
  ProposedEntry,
  Ready,
  ReplicaStatus,
  Role,
  ReadIndexResult,
  PeerProgress,
  RejoinAckMessage,
  RejoinMessage,
} from './types.js';

/** Tunables. Every limit has a name with its unit. */
export interface ReplicaOptions {
  readonly nodeId: NodeId;
  readonly configuration: ConfigurationSource;
  readonly random: Random;
  /** A follower campaigns after a random silence in [min, max) ticks. */
  readonly electionTicksMin: number;
  readonly electionTicksMax: number;
  /** The leader sends heartbeats every this many ticks. */
  readonly heartbeatTicks: number;
  /** Unanswered prepares, accepts and learns are resent after this many ticks. */
  readonly retransmitTicks: number;
  /** Slots a leader may have proposed and not yet seen chosen (the sliding window). */
  readonly pipelineDepthMax: number;
  /** Commands per slot. */
  readonly batchCountMax: number;
  /** Encoded command bytes per slot. */
  readonly batchBytesMax: number;
  /** Commands waiting for a slot; beyond this `propose` answers `overloaded`. */
  readonly proposalQueueMax: number;
  /** Slots asked for, or answered, in one learn exchange. */
  readonly learnBatchMax: number;
  /**
   * A leader syncs its own acceptances at once, so that it and its fastest follower can choose a
   * slot, instead of writing them lazily while its followers alone form a quorum (see
   * `readyDurability`). Off by default: measured on the bench machine it was even for puts, and
   * behind under a mix of reads and writes, whose read-index heartbeats then wait for the
   * leader's fsync (README "Benchmarks").
   */
  readonly eagerLeaderAcceptances?: boolean;
  /**
   * Start as a rejoining member: this node's durable acceptor state was lost (a corrupt or wiped
   * log), so it must not vote until it has rebuilt enough from its peers. See "Rejoin" below.
   */
  readonly rejoin?: boolean;
  /**
   * Reads an entry back from this node's durable log (undefined if no durable record holds the
   * slot). With it the replica keeps only a tail of the log in memory: once a slot is applied and
   * its records are durable (`persisted`), and `logRetainSlots` later slots are too (or the
   * applied, durable entries in memory hold over `logRetainBytes`), the entry leaves memory, and
   * the rare requests for it — a lagging peer's `learn`, a candidate's prepare from far behind —
   * are answered from the disk. Without it every entry stays in memory.
   */
  readonly readDurableEntry?: (slot: number) => LogEntry | undefined;
  /** Applied, durable slots kept in memory below the applied point (default 1024). */
  readonly logRetainSlots?: number;
  /**
   * At most this many bytes of applied, durable entries stay in memory (`entryBytes`: their
   * commands' payloads and client ids; default 16 MiB), whatever `logRetainSlots` allows: a slot
   * holds a whole batch, so a count of slots alone bounds nothing under large batches or values.
   */
  readonly logRetainBytes?: number;
}

/** Default of `ReplicaOptions.logRetainSlots`. */
export const LOG_RETAIN_SLOTS_DEFAULT = 1024;
/** Default of `ReplicaOptions.logRetainBytes`. */
export const LOG_RETAIN_BYTES_DEFAULT = 16 * 1024 * 1024;
/** What `entryBytes` counts per entry and per command besides payload and client id bytes. */
const ENTRY_OVERHEAD_BYTES = 64;
const COMMAND_OVERHEAD_BYTES = 32;

/**
 * The memory an entry's value holds, roughly: what `logRetainBytes` budgets (the payloads and
 * client ids dominate; the overheads stand for the objects around them).
 */
export function entryBytes(value: EntryValue): number {
  let bytes = ENTRY_OVERHEAD_BYTES;
  if (value.type !== 'commands') return bytes;
  for (const command of value.commands) bytes += COMMAND_OVERHEAD_BYTES + command.clientId.length + command.payload.byteLength;
  return bytes;
}

export const DEFAULT_REPLICA_OPTIONS = {
  electionTicksMin: 10,
  electionTicksMax: 20,
  heartbeatTicks: 2,
  retransmitTicks: 4,
  pipelineDepthMax: 64,
  batchCountMax: 256,
  batchBytesMax: 256 * 1024,
  proposalQueueMax: 16_384,
  learnBatchMax: 256,
} as const;

/** A leader's slot in flight: the value it proposed at its ballot and who has accepted it. */
interface Proposal {
  readonly value: EntryValue;
  readonly acceptors: Set<NodeId>;
  sentTick: number;
}

interface CandidateState {
  readonly ballot: Ballot;
  readonly promises: Map<NodeId, PromiseMessage>;
  sentTick: number;
}

export interface LeaderState {
  readonly ballot: Ballot;
  /** Slot that holds this leader's StartWorking entry; serving starts once it is chosen. */
  readonly startWorkingSlot: number;
  readonly proposals: Map<number, Proposal>;
  /** The next slot to assign to a new batch. */
  nextSlot: number;
  /** Ticks since the last heartbeat round. */
  heartbeatElapsed: number;
  /** Peers heard from (with this ballot) since the last quorum check. */
  readonly heardFrom: Set<NodeId>;
  /**
   * The followers alone formed a quorum in the current or the last quorum-check period: then the
   * leader's own acceptances are not needed promptly and are written without an fsync of their
   * own (see `readyDurability`). False for a new leader until its followers answer.
   */
  followersQuorate: boolean;
  quorumCheckElapsed: number;
  /** Read index: the latest round sent with heartbeats, and whether reads wait for a new one. */
  readRound: number;
  readRoundDue: boolean;
  /** Per peer, the highest read round it acknowledged at this ballot. */
  readonly readRoundAcked: Map<NodeId, number>;
  /** Per peer, its firstUnchosen as last reported (heartbeat acks, accepted): for lag reporting. */
  readonly peerFirstUnchosen: Map<NodeId, number>;
  /** Reads waiting for their round to be confirmed, in arrival (and round) order. */
  pendingReads: PendingRead[];
}

interface SelfAccept {
  readonly slot: number;
  readonly ballot: Ballot;
}

interface PendingRead {
  readonly id: number;
  readonly index: number;
  readonly round: number;
}

/** A rejoining member's progress (see "Rejoin" in the class comment). */
interface RejoinState {
  /**
   * An upper bound on every ballot the lost incarnation of this node can have promised or accepted:
   * the highest promise among the answers of every peer to the first round. Null until all answered.
   */
  bound: Ballot | null;
  /** The current round: its nonce, and its fence (0 in the first round). */
  nonce: number;
  fence: Ballot;
  /** Peers that answered the current round, with the promise they reported. */
  readonly answered: Map<NodeId, Ballot>;
  sentTick: number;
}

/** Hooks a scenario or a test can observe; never used for control flow. */
export interface ReplicaObserver {
  trace(line: string): void;
}

/**
 * Rejoin (`ReplicaOptions.rejoin`): recovery of a member whose durable state was lost.
 *
 * An acceptor that forgets a promise or an acceptance it already revealed breaks Paxos: it could
 * accept below a promise a proposer counted on, or answer a later prepare without a value that
 * was chosen with its vote, and two values could be chosen for one slot. So a member that lost its
 * log must not simply start empty and vote. A rejoining member:
 *
 * 1. never votes: it answers no prepare, accept or heartbeat (so it counts in no quorum, also not
 *    in a read-index round), never campaigns, and takes no proposals. It only learns chosen
 *    values (the `learn` exchange, driven by the leader's heartbeats) and applies them.
 * 2. asks every other member for its promise (`rejoin`, fence 0) and waits for all of them.
 *    `bound` = the highest answer. Every ballot b the lost incarnation promised or accepted was
 *    issued by some member L that made its own promise of b durable before sending it (a
 *    candidate persists its self-promise before its prepares leave). If L is a peer, L's promise
 *    is still >= b (promises never decrease; L's disk is intact), so bound >= b. If L was this
 *    node itself, it accepted its own value only after a phase-1 quorum, whose other members
 *    promised b durably, so again bound >= b; a ballot of its own that never completed phase 1
 *    carried no value and no peer's vote. Hence bound >= every ballot the lost state could
 *    contain. This needs an answer from every peer (one that is down may be that L), and peers
 *    that are themselves rejoining do not answer: one member rejoins at a time.
 * 3. makes sure a leader with a ballot above `bound` gets elected: it sends every peer a fence,
 *    one of its own ballots above `bound`; a peer whose promise is lower raises it (always safe
 *    for an acceptor), so the current leader is refused and steps down, and the next election is
 *    above the fence.
 * 4. finishes once it has applied a StartWorking entry whose epoch E exceeds `bound`: it promises
 *    max(promised, E), durably, and from then on votes as a normal member.
 *
 * Why 4 is safe. The leader of E won phase 1 with a quorum of peers only: this node did not vote,
 * and its lost incarnation never promised E (E > bound). Take any value v chosen at slot s with a
 * vote of the lost incarnation: it was accepted at some b <= bound by a quorum C of which at least
 * f members are peers (n = 2f + 1). E's quorum holds f + 1 of the 2f peers, so it meets C in a peer
 * with intact disk that accepted (s, v, b) before promising E (after the promise it would have
 * refused b < E), and reported it. So s <= E's recovery range, below E's StartWorking slot, and
 * the chosen value at s — v — is in this node's chosen prefix once it has applied StartWorking(E).
 * From then on it reports s as chosen, so no later leader can pick another value there. Values
 * the lost incarnation accepted that were never chosen may be forgotten (like any acceptance
 * overwritten by a higher ballot, they can then never be chosen: at most f voters hold them). And
 * its new promise E exceeds every ballot it promised before, so it never accepts below an old
 * promise and never votes twice in one ballot. No assumption about message delivery is needed:
 * messages still in flight from the lost incarnation carry ballots <= bound.
 *
 * Crash while rejoining: the driver must keep the "rejoining" flag durable until the finishing
 * promise is durable (the server keeps a marker file) and restart in rejoin mode until then.
 */
export class Replica {
  readonly nodeId: NodeId;
  protected readonly options: ReplicaOptions;

  // Acceptor state (durable through `persist`).
  protected promised: Ballot;
  /** Entries at slots >= `compactedBelow` (below it they are read back from the disk). */
  protected readonly log = new Map<number, LogEntry>();
  protected maxSlot = 0;
  /**
   * Every slot below this is chosen, applied and durable at this node, and no longer in `log`
   * (see `ReplicaOptions.readDurableEntry`). Never above `appliedThrough + 1`.
   */
  private compactedBelow = 1;
  /** Applied, durable slots through this one are counted in `retainedBytes` (while in memory). */
  private retainedThrough = 0;
  /** `entryBytes` of the entries in memory at slots `compactedBelow`..`retainedThrough`. */
  private retainedBytes = 0;
  /** The applied point as each Ready left (oldest first): durable once `persisted` covers it. */
  private readonly appliedAtReady: { readonly seq: number; readonly appliedThrough: number }[] = [];

  // Learner state.
  /** Every slot below this is chosen (in `log`, or below `compactedBelow` on the disk). */
  protected firstUnchosen = 1;
  /** The last slot handed to `apply`. */
  protected appliedThrough = 0;
  /** Highest StartWorking epoch applied so far (the replay rule). */
  protected startWorkingEpoch: Ballot = BALLOT_ZERO;
  /** Ballot of the leader whose commit notifications we follow, and its chosen point. */
  private leaderBallot: Ballot = BALLOT_ZERO;
  private leaderCommitIndex = 1;
  private learnSentTick = -Infinity;

  // Roles.
  protected role: Role = 'follower';
  private candidate: CandidateState | null = null;
  protected leader: LeaderState | null = null;
  /** Highest ballot seen anywhere (promises, nacks); the next campaign outbids it. */
  private highestBallotSeen: Ballot = BALLOT_ZERO;

  // Time.
  private tickCount = 0;
  private electionElapsed = 0;
  private electionTimeout: number;
  /** Tick at which we last heard from a live leader (for leader stickiness). */
  private leaderHeardTick = -Infinity;

  // Client commands waiting for a slot.
  private readonly queue: Command[] = [];
  private queueHead = 0;

  // Effects accumulated for the next Ready.
  private persistOut: PersistRecord[] = [];
  private sendOut: Message[] = [];
  private applyOut: CommittedEntry[] = [];
  private readsOut: ReadIndexResult[] = [];
  private sendNowOut: Message[] = [];
  /**
   * The leader's own acceptances: accumulating for the next Ready, and those of Readies being
   * persisted (oldest first, by Ready sequence number). Each counts toward its quorum only once
   * `persisted()` says its Ready is durable.
   */
  private selfAccepts: SelfAccept[] = [];
  private readonly selfAcceptsInFlight: { readonly seq: number; readonly accepts: SelfAccept[] }[] = [];
  private readySeq = 0;
  /** Non-null while rejoining (see "Rejoin"): the node does not vote. */
  private rejoin: RejoinState | null = null;

  observer: ReplicaObserver | null = null;

  constructor(options: ReplicaOptions, state?: PersistentState) {
    assert(options.electionTicksMin > options.heartbeatTicks, 'election timeout must exceed heartbeat interval');
    assert(options.electionTicksMax > options.electionTicksMin, 'election timeout range must be non-empty');
    assert(options.pipelineDepthMax >= 1 && options.batchCountMax >= 1, 'window and batch must be positive');
    for (const bound of [options.logRetainSlots, options.logRetainBytes]) {
      assert(bound === undefined || (Number.isSafeInteger(bound) && bound >= 0), 'log retention bounds must be non-negative integers');
    }
    this.options = options;
    this.nodeId = options.nodeId;
    this.promised = BALLOT_ZERO;
    if (options.rejoin === true) {
      this.rejoin = { bound: null, nonce: this.randomNonce(), fence: BALLOT_ZERO, answered: new Map(), sentTick: 0 };
    }
    if (state !== undefined) this.restore(state);
    this.electionTimeout = this.randomElectionTimeout();
    if (this.rejoin !== null) {
      this.trace('rejoining: asking every peer for its promise');
      this.sendRejoin(this.rejoin);
    }
  }

  // ---------------------------------------------------------------- inputs

  /** Handles one message from a peer. Messages from non-members are ignored (and traced). */
  step(message: Message): void {
    assert(message.to === this.nodeId, 'message delivered to the wrong node');
    if (!this.configuration().has(message.from)) {
      this.trace(`dropped ${message.type} from non-member ${message.from}`);
      return;
    }
    if (this.rejoin !== null && (message.type === 'prepare' || message.type === 'accept')) {
      this.noteBallot(message.ballot);
      return; // a rejoining member does not vote (see "Rejoin")
    }
    switch (message.type) {
      case 'prepare':
        return this.onPrepare(message);
      case 'promise':
        return this.onPromise(message);
      case 'accept':
        return this.onAccept(message);
      case 'accepted':
        return this.onAccepted(message);
      case 'nack':
        return this.onNack(message);
      case 'heartbeat':
        return this.onHeartbeat(message);
      case 'heartbeat-ack':
        return this.onHeartbeatAck(message);
      case 'learn':
        return this.onLearn(message);
      case 'learned':
        return this.onLearned(message);
      case 'rejoin':
        return this.onRejoin(message);
      case 'rejoin-ack':
        return this.onRejoinAck(message);
      default:
        return assertNever(message, 'message type');
    }
  }

  /** Advances logical time by one tick: elections, heartbeats, retransmissions, quorum checks. */
  tick(): void {
    this.tickCount += 1;
    switch (this.role) {
      case 'follower':
        if (this.rejoin !== null) {
          this.tickRejoin(this.rejoin);
          return;
        }
        this.electionElapsed += 1;
        if (this.electionElapsed >= this.electionTimeout) this.campaign();
        else this.retryLearn();
        return;
      case 'candidate':
        this.tickCandidate();
        return;
      case 'leader':
        this.tickLeader();
        return;
      default:
        assertNever(this.role, 'role');
    }
  }

  /** Queues a client command. Only a leader takes proposals; others point at the leader. */
  propose(command: Command): ProposeResult {
    if (this.role !== 'leader') return { ok: false, error: 'not_leader', leaderHint: this.leaderHint() };
    if (commandBytes(command) > this.options.batchBytesMax) {
      return { ok: false, error: 'too_large', leaderHint: this.nodeId };
    }
    if (this.queue.length - this.queueHead >= this.options.proposalQueueMax) {
      return { ok: false, error: 'overloaded', leaderHint: this.nodeId };
    }
    this.queue.push(command);
    return { ok: true };
  }

  /**
   * Asks for a read index (see `ReadIndexResult`); the answer comes in a later `Ready.reads` under
   * `id`. Only a leader takes it. The index is this leader's commit point (the last slot of its
   * chosen prefix), but at least its StartWorking slot. Every write acknowledged before now is
   * chosen at or below it: a write chosen under an earlier ballot was accepted by a quorum, which
   * intersects this leader's phase-1 quorum, so recovery placed StartWorking above it; a write
   * chosen under this ballot was applied here before it was acknowledged; a write under a later
   * ballot would mean a quorum promised above ours, and the confirming round would then fail.
   * Unlike the last assigned slot, the commit point does not make reads wait for in-flight writes.
   * All reads arriving before the next heartbeat round share that round: one quorum exchange
   * confirms any number of reads.
   */
  readIndex(id: number): ProposeResult {
    const leader = this.leader;
    if (leader === null) return { ok: false, error: 'not_leader', leaderHint: this.leaderHint() };
    if (leader.pendingReads.length >= this.options.proposalQueueMax) {
      return { ok: false, error: 'overloaded', leaderHint: this.nodeId };
    }
    const index = Math.max(this.firstUnchosen - 1, leader.startWorkingSlot);
    leader.pendingReads.push({ id, index, round: leader.readRound + 1 });
    leader.readRoundDue = true;
    return { ok: true };
  }

  /** Starts phase 1 with a ballot higher than any seen (an election). */
  campaign(): void {
    if (this.rejoin !== null) {
      this.trace('not campaigning: rejoining');
      return;
    }
    const ballot = nextBallot(Math.max(this.promised, this.highestBallotSeen) as Ballot, this.nodeId);
    this.becomeFollower(); // drops any leader or candidate state first
    this.role = 'candidate';
    this.candidate = { ballot, promises: new Map(), sentTick: this.tickCount };
    // Self-promise: durable before any prepare leaves (persist-before-send), so the round is never reused.
    this.setPromised(ballot);
    this.trace(`campaign with ballot ${formatBallot(ballot)} over [${this.firstUnchosen}, ∞)`);
    this.candidate.promises.set(this.nodeId, this.promiseFor(ballot, this.nodeId, this.firstUnchosen));
    this.broadcastPrepare();
    this.maybeWinElection();
  }

  /** True when there are effects waiting for `ready()`. */
  hasReady(): boolean {
    if (this.persistOut.length > 0 || this.sendOut.length > 0 || this.applyOut.length > 0) return true;
    if (this.readsOut.length > 0 || this.sendNowOut.length > 0) return true;
    return this.role === 'leader' && (this.canFlush() || this.leader?.readRoundDue === true);
  }

  /** Drains the effects accumulated since the last call (see the contract on `Ready`). */
  ready(): Ready {
    if (this.role === 'leader') {
      this.flushProposals();
      this.startReadRound();
    }
    this.readySeq += 1;
    if (this.options.readDurableEntry !== undefined && this.applyOut.length > 0) {
      // A slot is applied in the Ready that holds its chosen mark, or a later one.
      this.appliedAtReady.push({ seq: this.readySeq, appliedThrough: this.appliedThrough });
    }
    const ready: Ready = {
      seq: this.readySeq,
      durability: this.readyDurability(),
      persist: this.persistOut,
      sendNow: this.sendNowOut,
      send: this.sendOut,
      apply: this.applyOut,
      reads: this.readsOut,
    };
    this.persistOut = [];
    this.sendNowOut = [];
    this.sendOut = [];
    this.applyOut = [];
    this.readsOut = [];
    if (this.selfAccepts.length > 0) this.selfAcceptsInFlight.push({ seq: ready.seq, accepts: this.selfAccepts });
    this.selfAccepts = [];
    return ready;
  }

  /**
   * Whether the next Ready's `send` must wait for its `persist` (see `Ready.durability`). `lazy`
   * when it holds only chosen marks — a chosen mark records a fact that holds whether or not this
   * node remembers it: a crash that loses marks leaves the node with its accepted entries (each
   * durable before it was acknowledged) and a lower `firstUnchosen`, the state of a node that had
   * not learned those slots yet; it relearns them, and as a candidate it runs phase 1 over more
   * slots, which is only conservative — or — at a leader whose followers alone form a quorum — only
   * chosen marks and the leader's own acceptances, unless `eagerLeaderAcceptances` is on: those
   * count only once durable (`persisted`), and nothing in `send` reveals them (a promise, which
   * would, makes the Ready `sync`; the log keeps order, so the acceptances are durable before
   * it). A leader that lost them in a crash simply never voted for those slots. So the leader's
   * fsync leaves the write path (its heartbeats and chosen notices do not wait for it), though a
   * slot in a 3-node cluster then waits for both followers instead of the faster one.
   */
  private readyDurability(): 'sync' | 'lazy' {
    let accepts = 0;
    for (const record of this.persistOut) {
      if (record.type === 'promise') return 'sync';
      if (record.type === 'accept') accepts += 1;
    }
    if (accepts === 0) return 'lazy';
    const leader = this.leader;
    if (this.options.eagerLeaderAcceptances === true || this.role !== 'leader' || leader === null || !leader.followersQuorate) return 'sync';
    return accepts === this.selfAccepts.length ? 'lazy' : 'sync';
  }

  /**
   * The driver reports that the `persist` of `ready` — and of every Ready before it — is durable
   * (no argument: of every Ready handed out so far). The leader's own acceptances in them now
   * count toward their quorums (until then only the followers' could: the leader's accept
   * requests left before its own disk write finished, so the fsyncs overlap).
   */
  persisted(ready?: Ready): void {
    const upTo = ready?.seq ?? this.readySeq;
    let durableApplied = 0;
    while (this.appliedAtReady.length > 0 && (this.appliedAtReady[0]?.seq ?? Infinity) <= upTo) {
      durableApplied = this.appliedAtReady.shift()?.appliedThrough ?? 0;
    }
    if (durableApplied > 0) this.compact(durableApplied);
    let counted = false;
    const leader = this.leader;
    while (this.selfAcceptsInFlight.length > 0 && (this.selfAcceptsInFlight[0]?.seq ?? Infinity) <= upTo) {
      const batch = this.selfAcceptsInFlight.shift();
      if (batch === undefined || leader === null) continue;
      for (const accept of batch.accepts) {
        if (accept.ballot !== leader.ballot) continue;
        this.recordAcceptance(accept.slot, this.nodeId);
        counted = true;
      }
    }
    if (counted) this.advanceChosen();
  }

  status(): ReplicaStatus {
    return {
      nodeId: this.nodeId,
      role: this.role,
      promised: this.promised,
      leaderHint: this.leaderHint(),
      serving: this.isServing(),
      firstUnchosen: this.firstUnchosen,
      appliedThrough: this.appliedThrough,
      maxSlot: this.maxSlot,
      logInMemoryFrom: this.compactedBelow,
      peers: this.peerProgress(),
      rejoining: this.rejoin !== null,
    };
  }

  /** True while rebuilding lost state from the peers (see "Rejoin"); such a node does not vote. */
  isRejoining(): boolean {
    return this.rejoin !== null;
  }

  private peerProgress(): PeerProgress[] {
    const leader = this.leader;
    if (leader === null) return [];
    const peers: PeerProgress[] = [];
    for (const member of this.configuration().members) {
      if (member !== this.nodeId) peers.push({ nodeId: member, firstUnchosen: leader.peerFirstUnchosen.get(member) ?? 0 });
    }
    return peers;
  }

  /** The acceptor's entry at a slot (for tests, scenarios and catch-up). */
  entry(slot: number): LogEntry | undefined {
    return this.entryAt(slot);
  }

  /** The entry at `slot`, from memory or, below `compactedBelow`, from the durable log. */
  private entryAt(slot: number): LogEntry | undefined {
    const entry = this.log.get(slot);
    if (entry !== undefined || slot >= this.compactedBelow || slot < 1) return entry;
    const durable = this.options.readDurableEntry?.(slot);
    assert(durable !== undefined && durable.chosen, `compacted slot ${slot} is chosen in the durable log`);
    return durable;
  }

  /**
   * Drops from memory the entries of slots applied and durable through `durableApplied`, but for
   * the last `logRetainSlots` of them (a lagging peer usually asks for those) as far as they fit
   * in `logRetainBytes`.
   */
  private compact(durableApplied: number): void {
    if (this.options.readDurableEntry === undefined) return;
    // Bounded: each iteration counts one more applied, durable slot.
    while (this.retainedThrough < durableApplied) {
      this.retainedThrough += 1;
      if (this.retainedThrough < this.compactedBelow) continue;
      const entry = this.log.get(this.retainedThrough);
      if (entry !== undefined) this.retainedBytes += entryBytes(entry.value);
    }
    const below = durableApplied + 1 - (this.options.logRetainSlots ?? LOG_RETAIN_SLOTS_DEFAULT);
    const bytesMax = this.options.logRetainBytes ?? LOG_RETAIN_BYTES_DEFAULT;
    // Bounded: each iteration raises compactedBelow, which stops at durableApplied + 1.
    while (this.compactedBelow <= durableApplied && (this.compactedBelow < below || this.retainedBytes > bytesMax)) {
      // Every slot up to durableApplied is counted (the loop above), so this one is.
      const entry = this.log.get(this.compactedBelow);
      if (entry !== undefined) this.retainedBytes -= entryBytes(entry.value);
      this.log.delete(this.compactedBelow);
      this.compactedBelow += 1;
    }
  }

  /** True when this node leads and its StartWorking entry is chosen. */
  isServing(): boolean {
    return this.leader !== null && this.firstUnchosen > this.leader.startWorkingSlot;
  }

  // ---------------------------------------------------------------- acceptor

  /** The acceptor's rule for phase 1: refuse unless strictly above the promise. Overridable by tests only. */
  protected acceptorGrantsPrepare(ballot: Ballot): boolean {
    return ballot > this.promised;
  }

  /** The acceptor's rule for phase 2: refuse below the promise. Overridable by tests only. */
  protected acceptorGrantsAccept(ballot: Ballot): boolean {
    return ballot >= this.promised;
  }

  private onPrepare(message: PrepareMessage): void {
    this.noteBallot(message.ballot);
    if (!this.acceptorGrantsPrepare(message.ballot) || this.stickyToLeader(message.from)) {
      this.send({ type: 'nack', from: this.nodeId, to: message.from, ballot: message.ballot, promised: this.promised });
      return;
    }
    this.becomeFollower();
    this.setPromised(message.ballot);
    this.electionElapsed = 0;
    this.send(this.promiseFor(message.ballot, message.from, message.firstUnchosen));
  }

  private promiseFor(ballot: Ballot, to: NodeId, fromSlot: number): PromiseMessage {
    const entries: LogEntry[] = [];
    for (let slot = Math.max(fromSlot, 1); slot <= this.maxSlot; slot += 1) {
      const entry = this.entryAt(slot);
      if (entry !== undefined) entries.push(entry);
    }
    return { type: 'promise', from: this.nodeId, to, ballot, entries, maxSlot: this.maxSlot };
  }

  private onAccept(message: AcceptMessage): void {
    this.noteBallot(message.ballot);
    if (!this.acceptorGrantsAccept(message.ballot)) {
      this.send({ type: 'nack', from: this.nodeId, to: message.from, ballot: message.ballot, promised: this.promised });
      return;
    }
    if (message.ballot > this.promised) this.setPromised(message.ballot);
    this.followLeader(message.ballot, message.from);
    const slots: number[] = [];
    for (const proposed of message.entries) {
      this.acceptorAccept(message.ballot, proposed);
      slots.push(proposed.slot);
    }
    this.send({
      type: 'accepted',
      from: this.nodeId,
      to: message.from,
      ballot: message.ballot,
      slots,
      firstUnchosen: this.firstUnchosen,
    });
    this.learnCommitIndex(message.ballot, message.commitIndex, message.from);
  }

  /** Stores an accepted value, unless the slot is already known chosen (then it must agree). */
  private acceptorAccept(ballot: Ballot, proposed: ProposedEntry): void {
    const existing = this.entryAt(proposed.slot);
    if (existing !== undefined && existing.chosen) {
      // A chosen slot never changes; a correct leader only re-proposes the chosen value there.
      if (existing.ballot === ballot) {
        assert(entryKey(existing.value) === entryKey(proposed.value), 'a ballot proposed two values for one slot');
      }
      return;
    }
    if (existing !== undefined && existing.ballot === ballot) {
      assert(entryKey(existing.value) === entryKey(proposed.value), 'a ballot proposed two values for one slot');
      return; // duplicate delivery: already accepted and persisted
    }
    this.storeEntry({ slot: proposed.slot, ballot, value: proposed.value, chosen: false });
    this.persistOut.push({ type: 'accept', slot: proposed.slot, ballot, value: proposed.value });
  }

  private setPromised(ballot: Ballot): void {
    assert(ballot >= this.promised, 'promised ballot never decreases');
    if (ballot === this.promised) return;
    this.promised = ballot;
    this.persistOut.push({ type: 'promise', ballot });
  }

  private storeEntry(entry: LogEntry): void {
    assert(entry.slot >= this.compactedBelow, 'a compacted slot is chosen and never stored again');
    this.log.set(entry.slot, entry);
    if (entry.slot > this.maxSlot) this.maxSlot = entry.slot;
  }

  // ---------------------------------------------------------------- candidate

  private tickCandidate(): void {
    const candidate = this.candidate;
    assert(candidate !== null, 'candidate state present');
    this.electionElapsed += 1;
    if (this.electionElapsed >= this.electionTimeout) {
      this.campaign();
      return;
    }
    if (this.tickCount - candidate.sentTick >= this.options.retransmitTicks) {
      candidate.sentTick = this.tickCount;
      this.broadcastPrepare();
    }
  }

  private broadcastPrepare(): void {
    const candidate = this.candidate;
    assert(candidate !== null, 'candidate state present');
    for (const member of this.configuration().members) {
      if (member === this.nodeId || candidate.promises.has(member)) continue;
      this.send({
        type: 'prepare',
        from: this.nodeId,
        to: member,
        ballot: candidate.ballot,
        firstUnchosen: this.firstUnchosen,
      });
    }
  }

  private onPromise(message: PromiseMessage): void {
    if (this.role !== 'candidate' || this.candidate === null || message.ballot !== this.candidate.ballot) return;
    // An acceptor lists its entries from the slot our prepare asked for (at most our firstUnchosen)
    // up to its max slot, which holds one; listing none, its max slot is below our firstUnchosen.
    // A promise claiming more is from no real log, and recovery would fill every slot up to it.
    if (message.entries.length === 0 && message.maxSlot >= this.firstUnchosen) {
      this.trace(`ignored promise from ${message.from}: maxSlot ${message.maxSlot} without entries`);
      return;
    }
    this.candidate.promises.set(message.from, message);
    this.maybeWinElection();
  }

  private maybeWinElection(): void {
    const candidate = this.candidate;
    assert(candidate !== null, 'candidate state present');
    if (!this.configuration().isQuorum(new Set(candidate.promises.keys()))) return;
    this.becomeLeader(candidate);
  }

  // ---------------------------------------------------------------- leader: recovery

  private becomeLeader(candidate: CandidateState): void {
    const ballot = candidate.ballot;
    const promises = [...candidate.promises.values()];
    let maxSlot = this.maxSlot;
    for (const promise of promises) maxSlot = Math.max(maxSlot, promise.maxSlot);
    this.learnChosenFromPromises(promises);
    const recovery = this.recoveryValues(promises, maxSlot);
    const startWorkingSlot = maxSlot + 1;
    this.role = 'leader';
    this.candidate = null;
    this.leader = {
      ballot,
      startWorkingSlot,
      proposals: new Map(),
      nextSlot: startWorkingSlot + 1,
      heartbeatElapsed: 0,
      heardFrom: new Set(),
      followersQuorate: false,
      quorumCheckElapsed: 0,
      readRound: 0,
      readRoundDue: false,
      readRoundAcked: new Map(),
      peerFirstUnchosen: new Map(),
      pendingReads: [],
    };
    this.leaderBallot = ballot;
    this.trace(
      `elected with ballot ${formatBallot(ballot)}: recovering [${this.firstUnchosen}, ${maxSlot}] ` +
        `(${recovery.size} slots), StartWorking at ${startWorkingSlot}`,
    );
    const entries: ProposedEntry[] = [];
    for (const [slot, value] of recovery) entries.push({ slot, value });
    entries.push({ slot: startWorkingSlot, value: this.startWorkingValue(ballot) });
    this.proposeEntries(entries);
    this.sendHeartbeats();
  }

  /** Entries that acceptors report as chosen are chosen: adopt them without re-running Paxos. */
  private learnChosenFromPromises(promises: readonly PromiseMessage[]): void {
    for (const promise of promises) {
      for (const entry of promise.entries) {
        if (entry.chosen) this.markChosen(entry.slot, entry.ballot, entry.value);
      }
    }
    this.advanceChosen();
  }

  /**
   * The recovery rule: for every slot in [firstUnchosen, maxSlot] not known chosen, the value
   * with the highest ballot among the promises, or a no-op if no promise holds one.
   * Overridable by tests only (to prove the checkers catch a leader that skips recovery).
   */
  protected recoveryValues(promises: readonly PromiseMessage[], maxSlot: number): Map<number, EntryValue> {
    const best = new Map<number, LogEntry>();
    for (const promise of promises) {
      for (const entry of promise.entries) {
        const current = best.get(entry.slot);
        if (current === undefined || entry.ballot > current.ballot) best.set(entry.slot, entry);
      }
    }
    const values = new Map<number, EntryValue>();
    for (let slot = this.firstUnchosen; slot <= maxSlot; slot += 1) {
      if (this.log.get(slot)?.chosen === true) continue;
      values.set(slot, best.get(slot)?.value ?? NOOP);
    }
    return values;
  }

  /** The entry a new leader commits before serving. Overridable by tests only (S5 without the fix). */
  protected startWorkingValue(ballot: Ballot): EntryValue {
    return { type: 'start-working', epoch: ballot };
  }

  // ---------------------------------------------------------------- leader: steady state

  private canFlush(): boolean {
    const leader = this.leader;
    if (leader === null || !this.isServing()) return false;
    return this.queue.length > this.queueHead && leader.proposals.size < this.options.pipelineDepthMax;
  }

  /** Packs queued commands into batches, one slot each, while the window has room. */
  private flushProposals(): void {
    const leader = this.leader;
    assert(leader !== null, 'leader state present');
    if (!this.canFlush()) return;
    const entries: ProposedEntry[] = [];
    let room = this.options.pipelineDepthMax - leader.proposals.size;
    while (room > 0 && this.queueHead < this.queue.length) {
      entries.push({ slot: leader.nextSlot, value: { type: 'commands', epoch: leader.ballot, commands: this.takeBatch() } });
      leader.nextSlot += 1;
      room -= 1;
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
    this.proposeEntries(entries);
  }

  /** Takes the next batch off the queue: at most batchCountMax commands and batchBytesMax bytes. */
  private takeBatch(): Command[] {
    const commands: Command[] = [];
    let bytes = 0;
    while (this.queueHead < this.queue.length && commands.length < this.options.batchCountMax) {
      const command = this.queue[this.queueHead] as Command;
      const size = commandBytes(command);
      if (commands.length > 0 && bytes + size > this.options.batchBytesMax) break;
      commands.push(command);
      bytes += size;
      this.queueHead += 1;
    }
    assert(commands.length > 0, 'a batch holds at least one command');
    return commands;
  }

  /** Phase 2 for these slots at the leader's ballot: accept locally, send to every peer. */
  private proposeEntries(entries: readonly ProposedEntry[]): void {
    const leader = this.leader;
    assert(leader !== null, 'leader state present');
    for (const entry of entries) {
      assert(!leader.proposals.has(entry.slot), 'a leader proposes at most one value per slot');
      leader.proposals.set(entry.slot, { value: entry.value, acceptors: new Set(), sentTick: this.tickCount });
      // The leader's own acceptor persists in this Ready and counts once that is durable
      // (`persisted`); the accept requests leave at once: they are a proposer's messages and
      // reveal no acceptor state, so they need not wait for this node's disk.
      this.acceptorAccept(leader.ballot, entry);
      this.selfAccepts.push({ slot: entry.slot, ballot: leader.ballot });
    }
    for (const member of this.configuration().members) {
      if (member === this.nodeId) continue;
      this.sendNowOut.push({ type: 'accept', from: this.nodeId, to: member, ballot: leader.ballot, entries, commitIndex: this.firstUnchosen });
    }
  }

  private onAccepted(message: AcceptedMessage): void {
    const leader = this.leader;
    if (leader === null || message.ballot !== leader.ballot) return;
    this.heard(leader, message.from);
    leader.peerFirstUnchosen.set(message.from, message.firstUnchosen);
    for (const slot of message.slots) this.recordAcceptance(slot, message.from);
    this.advanceChosen();
  }

  private heard(leader: LeaderState, from: NodeId): void {
    if (leader.heardFrom.has(from)) return;
    leader.heardFrom.add(from);
    if (!leader.followersQuorate && this.configuration().isQuorum(leader.heardFrom)) leader.followersQuorate = true;
  }

  private recordAcceptance(slot: number, acceptor: NodeId): void {
    const leader = this.leader;
    assert(leader !== null, 'leader state present');
    const proposal = leader.proposals.get(slot);
    if (proposal === undefined) return; // already chosen, or a stale reply
    proposal.acceptors.add(acceptor);
    if (!this.configuration(slot).isQuorum(proposal.acceptors)) return;
    leader.proposals.delete(slot);
    this.markChosen(slot, leader.ballot, proposal.value);
  }

  private tickLeader(): void {
    const leader = this.leader;
    assert(leader !== null, 'leader state present');
    leader.heartbeatElapsed += 1;
    if (leader.heartbeatElapsed >= this.options.heartbeatTicks) this.sendHeartbeats();
    this.retransmitAccepts(leader);
    leader.quorumCheckElapsed += 1;
    if (leader.quorumCheckElapsed >= this.options.electionTicksMax) {
      // Check quorum: a leader that has not heard from a majority within an election timeout steps
      // down, so clients are redirected rather than left waiting on a partitioned leader.
      const heard = new Set(leader.heardFrom);
      heard.add(this.nodeId);
      if (!this.configuration().isQuorum(heard)) {
        this.trace('lost contact with a majority: stepping down');
        this.becomeFollower();
        return;
      }
      leader.followersQuorate = this.configuration().isQuorum(leader.heardFrom);
      leader.heardFrom.clear();
      leader.quorumCheckElapsed = 0;
    }
  }

  private sendHeartbeats(): void {
    const leader = this.leader;
    assert(leader !== null, 'leader state present');
    leader.heartbeatElapsed = 0;
    for (const member of this.configuration().members) {
      if (member === this.nodeId) continue;
      // A proposer's message, like an accept request: its ballot's promise was durable before the
      // prepares left, and its commit index counts the leader's own acceptances only once durable
      // (`persisted`). So it leaves at once, and a read-index round never waits for this node's
      // disk (it would while the leader syncs its own acceptances, `eagerLeaderAcceptances`).
      this.sendNowOut.push({
        type: 'heartbeat',
        from: this.nodeId,
        to: member,
        ballot: leader.ballot,
        commitIndex: this.firstUnchosen,
        readRound: leader.readRound,
      });
    }
  }

  /** Opens a new read round for the reads that arrived since the last one: a heartbeat to all. */
  private startReadRound(): void {
    const leader = this.leader;
    assert(leader !== null, 'leader state present');
    if (!leader.readRoundDue) return;
    leader.readRoundDue = false;
    leader.readRound += 1;
    this.sendHeartbeats();
    this.confirmReads(leader); // a single-member configuration confirms at once
  }

  /** Answers, in order, every pending read whose round a quorum (this leader included) acknowledged. */
  private confirmReads(leader: LeaderState): void {
    let confirmed = 0;
    let confirmedRound = 0;
    for (const read of leader.pendingReads) {
      if (read.round > leader.readRound) break; // its round has not been sent yet
      if (read.round > confirmedRound) {
        if (!this.readRoundConfirmed(leader, read.round)) break;
        confirmedRound = read.round;
      }
      this.readsOut.push({ id: read.id, ok: true, index: read.index });
      confirmed += 1;
    }
    if (confirmed > 0) leader.pendingReads = leader.pendingReads.slice(confirmed);
  }

  /** True when a quorum (this leader included) acknowledged `round`. Overridable by tests only. */
  protected readRoundConfirmed(leader: LeaderState, round: number): boolean {
    const acknowledged = new Set<NodeId>([this.nodeId]);
    for (const [member, acked] of leader.readRoundAcked) if (acked >= round) acknowledged.add(member);
    return this.configuration().isQuorum(acknowledged);
  }

  /** Resends, per peer in one message, the in-flight slots it has not accepted yet. */
  private retransmitAccepts(leader: LeaderState): void {
    const perPeer = new Map<NodeId, ProposedEntry[]>();
    for (const [slot, proposal] of leader.proposals) {
      if (this.tickCount - proposal.sentTick < this.options.retransmitTicks) continue;
      proposal.sentTick = this.tickCount;
      for (const member of this.configuration(slot).members) {
        if (member === this.nodeId || proposal.acceptors.has(member)) continue;
        let list = perPeer.get(member);
        if (list === undefined) perPeer.set(member, (list = []));
        list.push({ slot, value: proposal.value });
      }
    }
    for (const [member, entries] of perPeer) {
      this.send({ type: 'accept', from: this.nodeId, to: member, ballot: leader.ballot, entries, commitIndex: this.firstUnchosen });
    }
  }

  private onHeartbeatAck(message: HeartbeatAckMessage): void {
    const leader = this.leader;
    if (leader === null || message.ballot !== leader.ballot) return;
    this.heard(leader, message.from);
    leader.peerFirstUnchosen.set(message.from, message.firstUnchosen);
    if (message.readRound > (leader.readRoundAcked.get(message.from) ?? 0)) {
      leader.readRoundAcked.set(message.from, message.readRound);
      if (leader.pendingReads.length > 0) this.confirmReads(leader);
    }
  }

  private onNack(message: NackMessage): void {
    this.noteBallot(message.promised);
    const ownBallot = this.leader?.ballot ?? this.candidate?.ballot;
    if (ownBallot === undefined || message.ballot !== ownBallot || message.promised <= ownBallot) return;
    this.trace(`preempted: ${message.from} promised ${formatBallot(message.promised)} > ${formatBallot(ownBallot)}`);
    this.becomeFollower();
  }

  // ---------------------------------------------------------------- follower and learner

  private onHeartbeat(message: HeartbeatMessage): void {
    this.noteBallot(message.ballot);
    if (this.rejoin !== null) {
      // Learn from the newest leader heard; no ack (that would count as a vote for its read
      // rounds) and no nack (our promise means nothing yet).
      if (message.ballot < this.leaderBallot) return;
      this.followLeader(message.ballot, message.from);
      this.learnCommitIndex(message.ballot, message.commitIndex, message.from);
      return;
    }
    if (message.ballot < this.promised) {
      this.send({ type: 'nack', from: this.nodeId, to: message.from, ballot: message.ballot, promised: this.promised });
      return;
    }
    this.followLeader(message.ballot, message.from);
    this.send({
      type: 'heartbeat-ack',
      from: this.nodeId,
      to: message.from,
      ballot: message.ballot,
      firstUnchosen: this.firstUnchosen,
      maxSlot: this.maxSlot,
      readRound: message.readRound,
    });
    this.learnCommitIndex(message.ballot, message.commitIndex, message.from);
  }

  /** Accepts `from` (at `ballot`, which is >= promised) as the current leader. */
  private followLeader(ballot: Ballot, from: NodeId): void {
    assert(ballotNode(ballot) === from, 'only the owner of a ballot leads with it');
    if (this.role !== 'follower') this.becomeFollower();
    this.electionElapsed = 0;
    this.leaderHeardTick = this.tickCount;
    if (ballot !== this.leaderBallot) {
      this.leaderBallot = ballot;
      this.leaderCommitIndex = 1;
    }
  }

  /**
   * A commit notification: every slot below `commitIndex` is chosen. A local entry accepted at the
   * leader's own ballot is that chosen value (one ballot proposes one value per slot, and the
   * leader's phase 1 guarantees it re-proposed any earlier chosen value); any other slot below
   * the commit point must be learned from the leader, never assumed.
   */
  private learnCommitIndex(ballot: Ballot, commitIndex: number, from: NodeId): void {
    if (ballot !== this.leaderBallot) return;
    if (commitIndex > this.leaderCommitIndex) this.leaderCommitIndex = commitIndex;
    const limit = Math.min(this.leaderCommitIndex, this.firstUnchosen + this.options.learnBatchMax * 4);
    for (let slot = this.firstUnchosen; slot < limit; slot += 1) {
      const entry = this.log.get(slot);
      if (entry !== undefined && !entry.chosen && this.confirmedByNotification(entry, ballot)) {
        this.markChosen(slot, entry.ballot, entry.value);
      }
    }
    this.advanceChosen();
    if (this.firstUnchosen < this.leaderCommitIndex) this.requestLearn(from);
  }

  /** Whether a commit notification from the leader of `ballot` confirms this entry. Overridable by tests only. */
  protected confirmedByNotification(entry: LogEntry, ballot: Ballot): boolean {
    return entry.ballot === ballot;
  }

  private requestLearn(from: NodeId): void {
    if (this.tickCount - this.learnSentTick < this.options.retransmitTicks) return;
    const slots: number[] = [];
    for (let slot = this.firstUnchosen; slot < this.leaderCommitIndex && slots.length < this.options.learnBatchMax; slot += 1) {
      if (this.log.get(slot)?.chosen !== true) slots.push(slot);
    }
    if (slots.length === 0) return;
    this.learnSentTick = this.tickCount;
    this.send({ type: 'learn', from: this.nodeId, to: from, slots });
  }

  private retryLearn(): void {
    if (this.firstUnchosen < this.leaderCommitIndex && this.leaderBallot !== BALLOT_ZERO) {
      this.requestLearn(ballotNode(this.leaderBallot));
    }
  }

  private onLearn(message: LearnMessage): void {
    const entries: ChosenEntry[] = [];
    for (const slot of message.slots.slice(0, this.options.learnBatchMax)) {
      const entry = this.entryAt(slot);
      if (entry !== undefined && entry.chosen) entries.push({ slot, ballot: entry.ballot, value: entry.value });
    }
    if (entries.length > 0) this.send({ type: 'learned', from: this.nodeId, to: message.from, entries });
  }

  private onLearned(message: LearnedMessage): void {
    for (const entry of message.entries) this.markChosen(entry.slot, entry.ballot, entry.value);
    this.advanceChosen();
    this.learnSentTick = -Infinity; // ask for the next batch at once, if behind
    if (this.role === 'follower' && this.firstUnchosen < this.leaderCommitIndex) this.requestLearn(message.from);
  }

  // ---------------------------------------------------------------- chosen and apply

  /** Records that `value` is chosen at `slot`. A chosen slot never changes (asserted). */
  private markChosen(slot: number, ballot: Ballot, value: EntryValue): void {
    const existing = this.entryAt(slot);
    if (existing !== undefined && existing.chosen) {
      assert(entryKey(existing.value) === entryKey(value), `slot ${slot} chosen twice with different values`);
      return;
    }
    if (existing !== undefined && entryKey(existing.value) === entryKey(value)) {
      this.storeEntry({ ...existing, chosen: true });
      this.persistOut.push({ type: 'chosen', slot, ballot: existing.ballot });
      return;
    }
    // The local entry, if any, holds a value that was accepted but not chosen: replace it.
    this.storeEntry({ slot, ballot, value, chosen: true });
    this.persistOut.push({ type: 'chosen', slot, ballot, value });
  }

  /** Moves firstUnchosen over the chosen prefix and hands newly contiguous entries to apply. */
  private advanceChosen(): void {
    while (this.log.get(this.firstUnchosen)?.chosen === true) this.firstUnchosen += 1;
    while (this.appliedThrough + 1 < this.firstUnchosen) {
      const slot = this.appliedThrough + 1;
      const entry = this.log.get(slot);
      assert(entry !== undefined && entry.chosen, 'applying only chosen entries');
      this.applyOut.push({ slot, value: entry.value, skipped: this.replaySkips(entry.value) });
      this.appliedThrough = slot;
    }
    if (this.rejoin !== null) this.maybeFinishRejoin(this.rejoin);
  }

  // ---------------------------------------------------------------- rejoin (see the class comment)

  /** A peer answers a rejoining member: its promise, then the fence applied. */
  private onRejoin(message: RejoinMessage): void {
    if (this.rejoin !== null) {
      this.trace(`ignored rejoin from ${message.from}: rejoining too (one member rejoins at a time)`);
      return;
    }
    this.noteBallot(message.fence);
    const promised = this.promised;
    if (message.fence > this.promised) {
      // A leader or candidate below the fence could no longer accept its own proposals.
      const own = this.leader?.ballot ?? this.candidate?.ballot;
      if (own !== undefined && own < message.fence) this.becomeFollower();
      this.setPromised(message.fence);
      this.trace(`rejoin fence from ${message.from}: promised ${formatBallot(message.fence)}`);
    }
    // In `send`: it leaves only once the raised promise is durable.
    this.send({ type: 'rejoin-ack', from: this.nodeId, to: message.from, nonce: message.nonce, promised });
  }

  /** The rejoining member collects one round of answers, from every peer. */
  private onRejoinAck(message: RejoinAckMessage): void {
    const rejoin = this.rejoin;
    if (rejoin === null || message.nonce !== rejoin.nonce) return;
    this.noteBallot(message.promised);
    rejoin.answered.set(message.from, message.promised);
    if (rejoin.answered.size < this.peers().length) return;
    if (rejoin.bound !== null) {
      this.trace(`rejoin: every peer promised at least ${formatBallot(rejoin.fence)}`);
      return; // the fence round is complete; nothing more to send
    }
    let bound = BALLOT_ZERO;
    for (const promised of rejoin.answered.values()) if (promised > bound) bound = promised;
    rejoin.bound = bound;
    this.trace(`rejoin: highest peer promise ${formatBallot(bound)}; waiting for a leader above it`);
    this.maybeFinishRejoin(rejoin);
    if (this.rejoin === null) return;
    // Second round: raise every peer's promise above the bound, forcing an election above it.
    rejoin.fence = nextBallot(Math.max(bound, this.highestBallotSeen) as Ballot, this.nodeId);
    rejoin.nonce = this.randomNonce();
    rejoin.answered.clear();
    this.sendRejoin(rejoin);
  }

  private tickRejoin(rejoin: RejoinState): void {
    const roundOpen = rejoin.answered.size < this.peers().length;
    if (roundOpen && this.tickCount - rejoin.sentTick >= this.options.retransmitTicks) this.sendRejoin(rejoin);
    this.retryLearn();
  }

  /** Sends the current round to every peer that has not answered it. */
  private sendRejoin(rejoin: RejoinState): void {
    rejoin.sentTick = this.tickCount;
    for (const peer of this.peers()) {
      if (rejoin.answered.has(peer)) continue;
      this.send({ type: 'rejoin', from: this.nodeId, to: peer, nonce: rejoin.nonce, fence: rejoin.fence });
    }
  }

  /** Step 4: a StartWorking above the bound is applied, so this node may vote again. */
  private maybeFinishRejoin(rejoin: RejoinState): void {
    if (rejoin.bound === null || this.startWorkingEpoch <= rejoin.bound) return;
    this.rejoin = null;
    const promise = Math.max(this.promised, this.startWorkingEpoch) as Ballot;
    this.setPromised(promise);
    this.electionElapsed = 0;
    this.trace(
      `rejoined: applied StartWorking ${formatBallot(this.startWorkingEpoch)} above every peer's promise ` +
        `${formatBallot(rejoin.bound)}; promised ${formatBallot(promise)}, voting again`,
    );
  }

  private peers(): NodeId[] {
    return this.configuration().members.filter((member) => member !== this.nodeId);
  }

  private randomNonce(): number {
    return this.options.random.int(1, 2 ** 31);
  }

  /** The StartWorking replay rule: ignore commands of an epoch older than a StartWorking before them. */
  protected replaySkips(value: EntryValue): boolean {
    switch (value.type) {
      case 'start-working':
        if (value.epoch > this.startWorkingEpoch) this.startWorkingEpoch = value.epoch;
        return false;
      case 'commands':
        return value.epoch < this.startWorkingEpoch;
      case 'noop':
        return false;
      default:
        return assertNever(value, 'entry value');
    }
  }

  // ---------------------------------------------------------------- roles and helpers

  private becomeFollower(): void {
    if (this.role !== 'follower') this.trace(`${this.role} -> follower`);
    this.role = 'follower';
    this.candidate = null;
    // Reads not yet confirmed cannot be: this node may no longer lead. Their callers retry elsewhere.
    for (const read of this.leader?.pendingReads ?? []) this.readsOut.push({ id: read.id, ok: false });
    this.leader = null;
    this.queue.length = 0;
    this.queueHead = 0;
    this.electionElapsed = 0;
    this.electionTimeout = this.randomElectionTimeout();
  }

  /**
   * Leader stickiness: while a live leader is being heard, a follower refuses other candidates'
   * prepares, so a node that was cut off and comes back with a high ballot cannot depose a healthy
   * leader. Refusing is always safe; liveness holds because followers stop hearing a dead leader.
   */
  private stickyToLeader(candidate: NodeId): boolean {
    if (this.role === 'leader') return this.leader !== null && this.leader.heardFrom.size > 0 && candidate !== this.nodeId;
    if (this.role !== 'follower' || this.leaderBallot === BALLOT_ZERO) return false;
    if (ballotNode(this.leaderBallot) === candidate) return false;
    return this.tickCount - this.leaderHeardTick < this.options.electionTicksMin;
  }

  private noteBallot(ballot: Ballot): void {
    if (ballot > this.highestBallotSeen) this.highestBallotSeen = ballot;
  }

  private leaderHint(): NodeId | null {
    if (this.role === 'leader') return this.nodeId;
    return this.leaderBallot === BALLOT_ZERO ? null : ballotNode(this.leaderBallot);
  }

  private randomElectionTimeout(): number {
    return this.options.random.int(this.options.electionTicksMin, this.options.electionTicksMax);
  }

  protected configuration(slot?: number): Configuration {
    return this.options.configuration.configurationFor(slot ?? this.firstUnchosen);
  }

  private send(message: Message): void {
    this.sendOut.push(message);
  }

  protected trace(line: string): void {
    this.observer?.trace(`n${this.nodeId} [${formatBallot(this.promised)}] ${line}`);
  }

  private restore(state: PersistentState): void {
    this.promised = state.promised;
    this.highestBallotSeen = state.promised;
    for (const entry of state.entries) this.storeEntry(entry);
    // The state machine is rebuilt by replaying the chosen prefix from the start.
    this.advanceChosen();
    this.compact(this.appliedThrough); // all of it came from the disk
  }
}

const NOOP: EntryValue = { type: 'noop' };

/**
 * A canonical identity for an entry value: two values with the same key are the same proposal.
 * Used by assertions and by the simulator's agreement oracle.
 */
export function entryKey(value: EntryValue): string {
  switch (value.type) {
    case 'noop':
      return 'noop';
    case 'start-working':
      return `sw:${value.epoch}`;
    case 'commands': {
      let key = `c:${value.epoch}`;
      for (const command of value.commands) key += `|${command.clientId}:${command.seq}`;
      return key;
    }
    default:
      return assertNever(value, 'entry value');
  }
}

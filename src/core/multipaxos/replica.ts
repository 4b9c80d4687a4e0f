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

/** Hooks a scenario or a test can observe; never used for control flow. */
export interface ReplicaObserver {
  trace(line: string): void;
}

export class Replica {
  readonly nodeId: NodeId;
  protected readonly options: ReplicaOptions;

  // Acceptor state (durable through `persist`).
  protected promised: Ballot;
  protected readonly log = new Map<number, LogEntry>();
  protected maxSlot = 0;

  // Learner state.
  /** Every slot below this is chosen and present in `log`. */
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
   * The leader's own acceptances: accumulating for the next Ready, and those of the Ready being
   * persisted. Each counts toward its quorum only once `persisted()` says it is durable.
   */
  private selfAccepts: SelfAccept[] = [];
  private selfAcceptsInFlight: SelfAccept[] = [];

  observer: ReplicaObserver | null = null;

  constructor(options: ReplicaOptions, state?: PersistentState) {
    assert(options.electionTicksMin > options.heartbeatTicks, 'election timeout must exceed heartbeat interval');
    assert(options.electionTicksMax > options.electionTicksMin, 'election timeout range must be non-empty');
    assert(options.pipelineDepthMax >= 1 && options.batchCountMax >= 1, 'window and batch must be positive');
    this.options = options;
    this.nodeId = options.nodeId;
    this.promised = BALLOT_ZERO;
    if (state !== undefined) this.restore(state);
    this.electionTimeout = this.randomElectionTimeout();
  }

  // ---------------------------------------------------------------- inputs

  /** Handles one message from a peer. Messages from non-members are ignored (and traced). */
  step(message: Message): void {
    assert(message.to === this.nodeId, 'message delivered to the wrong node');
    if (!this.configuration().has(message.from)) {
      this.trace(`dropped ${message.type} from non-member ${message.from}`);
      return;
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
      default:
        return assertNever(message, 'message type');
    }
  }

  /** Advances logical time by one tick: elections, heartbeats, retransmissions, quorum checks. */
  tick(): void {
    this.tickCount += 1;
    switch (this.role) {
      case 'follower':
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
    const ready: Ready = {
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
    this.selfAcceptsInFlight = this.selfAccepts;
    this.selfAccepts = [];
    return ready;
  }

  /**
   * The driver reports that the last Ready's `persist` is durable. The leader's own acceptances in
   * it now count toward their quorums (until then only the followers' could: the leader's accept
   * requests left before its own disk write finished, so the two fsyncs overlap).
   */
  persisted(): void {
    const accepts = this.selfAcceptsInFlight;
    this.selfAcceptsInFlight = [];
    const leader = this.leader;
    if (leader === null || accepts.length === 0) return;
    for (const accept of accepts) if (accept.ballot === leader.ballot) this.recordAcceptance(accept.slot, this.nodeId);
    this.advanceChosen();
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
      peers: this.peerProgress(),
    };
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
    return this.log.get(slot);
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
      const entry = this.log.get(slot);
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
    const existing = this.log.get(proposed.slot);
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
    assert(entry.slot >= 1, 'slots start at 1');
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
    leader.heardFrom.add(message.from);
    leader.peerFirstUnchosen.set(message.from, message.firstUnchosen);
    for (const slot of message.slots) this.recordAcceptance(slot, message.from);
    this.advanceChosen();
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
      this.send({
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
    leader.heardFrom.add(message.from);
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
      const entry = this.log.get(slot);
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
    const existing = this.log.get(slot);
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

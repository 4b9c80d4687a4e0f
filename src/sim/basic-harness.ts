/**
 * A deterministic, in-memory cluster of Basic Paxos nodes for scripted scenarios and seeded
 * random runs.
 *
 * Outgoing messages wait in one queue. In scripted mode (no `network` option) nothing moves
 * until the script says so: `deliver(predicate)`, `drop(predicate)`, `deliverAll()`. In random
 * mode each message gets a random delay (which reorders messages), may be lost and may be
 * duplicated, all drawn from one seeded PRNG, and `tick()` delivers whatever is due.
 *
 * The harness is the driver of the nodes' `Ready` contract: it applies every persist record to
 * the node's in-memory disk before it queues any message of the same `Ready`, and asserts, for
 * every message, that the state the message reveals is already durable. An {@link BasicAgreementOracle}
 * watches every durable acceptance and reports two different values chosen for one variable.
 *
 * Every delivered message becomes a trace line: `User2 -> User3: prepare(0.2)`,
 * `User1 -> User2: accept(0.1, "1+1=1") rejected: promised 0.3`.
 */
import { assert } from '../core/assert.js';
import { formatBallot, type Ballot, type NodeId } from '../core/ballot.js';
import { Prng } from '../core/prng.js';
import { Configuration } from '../core/quorum/majority.js';
import {
  formatMessage,
  PaxosNode,
  type AcceptedProposal,
  type Message,
  type MessageType,
  type PaxosNodeConfig,
  type PersistRecord,
  type ProposeOutcome,
  type Value,
  type Variable,
} from '../core/paxos/index.js';

/** One acceptance that reached an acceptor's disk. */
export interface AcceptObservation {
  readonly acceptor: NodeId;
  readonly variable: Variable;
  readonly ballot: Ballot;
  readonly value: Value;
  readonly tick: number;
}

/** A (variable, ballot) whose value a majority accepted: that value is chosen. */
export interface ChosenObservation {
  readonly variable: Variable;
  readonly ballot: Ballot;
  readonly value: Value;
  readonly tick: number;
}

interface BallotTally {
  readonly value: Value;
  readonly acceptors: Set<NodeId>;
  chosen: boolean;
}

/**
 * The agreement checker: an observer of every acceptance made durable by any acceptor. For each
 * (variable, ballot) it tracks which acceptors accepted which value; when a ballot reaches a
 * majority its value is chosen. Paxos' safety is that only one value is ever chosen per variable
 * (and, by construction, a ballot carries one value); anything else is recorded in `violations`
 * rather than thrown, so that a test can show the checker catching a broken acceptor.
 */
export class BasicAgreementOracle {
  /** Every safety violation seen, in order. Empty in every correct run. */
  readonly violations: string[] = [];
  /** Every first acceptance of (acceptor, variable, ballot), in order. */
  readonly accepts: AcceptObservation[] = [];
  /** Every (variable, ballot) that reached a majority, in order. */
  readonly chosenLog: ChosenObservation[] = [];
  private readonly tallies = new Map<Variable, Map<Ballot, BallotTally>>();

  constructor(private readonly configuration: Configuration) {}

  /** Records that `acceptor` durably accepted `proposal` for `variable` at virtual time `tick`. */
  observeAccept(acceptor: NodeId, variable: Variable, proposal: AcceptedProposal, tick: number): void {
    assert(this.configuration.has(acceptor), 'only members accept');
    let byBallot = this.tallies.get(variable);
    if (byBallot === undefined) {
      byBallot = new Map();
      this.tallies.set(variable, byBallot);
    }
    let tally = byBallot.get(proposal.ballot);
    if (tally === undefined) {
      tally = { value: proposal.value, acceptors: new Set(), chosen: false };
      byBallot.set(proposal.ballot, tally);
    }
    if (tally.value !== proposal.value) {
      this.violations.push(
        `${variable}: ballot ${formatBallot(proposal.ballot)} carries two values ` +
          `${JSON.stringify(tally.value)} and ${JSON.stringify(proposal.value)}`,
      );
      return;
    }
    if (tally.acceptors.has(acceptor)) return;
    tally.acceptors.add(acceptor);
    this.accepts.push({ acceptor, variable, ballot: proposal.ballot, value: proposal.value, tick });
    if (tally.chosen || !this.configuration.isQuorum(tally.acceptors)) return;
    tally.chosen = true;
    const first = this.chosen(variable);
    this.chosenLog.push({ variable, ballot: proposal.ballot, value: proposal.value, tick });
    if (first !== undefined && first.value !== proposal.value) {
      this.violations.push(
        `${variable}: two values chosen, ${JSON.stringify(first.value)} at ballot ${formatBallot(first.ballot)} ` +
          `and ${JSON.stringify(proposal.value)} at ballot ${formatBallot(proposal.ballot)}`,
      );
    }
  }

  /** The first value chosen for `variable`, if any. */
  chosen(variable: Variable): ChosenObservation | undefined {
    return this.chosenLog.find((entry) => entry.variable === variable);
  }

  /** Every distinct value chosen for `variable` (at most one in a correct run). */
  chosenValues(variable: Variable): Set<Value> {
    return new Set(this.chosenLog.filter((entry) => entry.variable === variable).map((entry) => entry.value));
  }

  /** Every distinct value any acceptor ever accepted for `variable`. */
  acceptedValues(variable: Variable): Set<Value> {
    return new Set(this.accepts.filter((entry) => entry.variable === variable).map((entry) => entry.value));
  }

  /** True when `acceptor` durably accepted something for `variable` at `ballot`. */
  hasAccepted(acceptor: NodeId, variable: Variable, ballot: Ballot): boolean {
    return this.tallies.get(variable)?.get(ballot)?.acceptors.has(acceptor) ?? false;
  }
}

/** The faults of random mode. Delays are whole ticks, at least one. */
export interface RandomNetwork {
  readonly delayTicksMin: number;
  readonly delayTicksMax: number;
  /** Probability that a message is lost. */
  readonly lossProbability: number;
  /** Probability that a message is delivered twice (each copy with its own delay). */
  readonly duplicateProbability: number;
}

/** A node's limits and rules, without its identity and randomness (which the harness provides). */
export type HarnessNodeOptions = Omit<PaxosNodeConfig, 'nodeId' | 'configuration' | 'random'>;

/** Builds a node; `records` is null for a fresh node and the durable records for a restart. */
export type NodeFactory = (config: PaxosNodeConfig, records: readonly PersistRecord[] | null) => PaxosNode;

/** How a harness is built. */
export interface BasicHarnessOptions {
  /** The acceptors (each also a proposer). */
  readonly members: readonly NodeId[];
  /** Extra proposer-only nodes, outside the configuration (the seed's separate proposers). */
  readonly clients?: readonly NodeId[];
  /** Display names for traces (default `n<id>`). */
  readonly names?: Readonly<Record<number, string>>;
  /** The seed of every random choice (network faults and node backoffs). */
  readonly seed?: number;
  /** Random mode; absent means scripted mode. */
  readonly network?: RandomNetwork;
  /** Limits and rules for every node. */
  readonly node?: HarnessNodeOptions;
  /** Builds nodes (default: `new PaxosNode` / `PaxosNode.restore`); tests inject variants here. */
  readonly createNode?: NodeFactory;
  /** Where trace lines go (default: `harness.traceLines`). */
  readonly traceSink?: (line: string) => void;
  /** False skips building trace lines (fast random runs). */
  readonly traceEnabled?: boolean;
  /** Prefix each traced message with its variable (for runs with several variables). */
  readonly showVariables?: boolean;
  /** The bound on messages in flight; exceeding it is a bug (a message storm). */
  readonly queueMessagesMax?: number;
}

/** True for the messages a `deliver` or `drop` call should act on. */
export type MessagePredicate = (message: Message) => boolean;

/** What a script selects messages by; every given field must match (arrays: any of). */
export interface MessagePattern {
  readonly type?: MessageType | readonly MessageType[];
  readonly from?: NodeId | readonly NodeId[];
  readonly to?: NodeId | readonly NodeId[];
  readonly ballot?: Ballot;
}

/** A predicate from a pattern, for scripts: `matching({ type: 'promise', to: 1 })`. */
export function matching(pattern: MessagePattern): MessagePredicate {
  const oneOf = <T>(wanted: T | readonly T[] | undefined, actual: T): boolean =>
    wanted === undefined || (Array.isArray(wanted) ? wanted.includes(actual) : wanted === actual);
  return (message) =>
    oneOf(pattern.type, message.type) &&
    oneOf(pattern.from, message.from) &&
    oneOf(pattern.to, message.to) &&
    (pattern.ballot === undefined || pattern.ballot === message.ballot);
}

/** Messages a node sends to its own acceptor or proposer. */
export const isSelfMessage: MessagePredicate = (message) => message.from === message.to;

/** A `propose` call submitted through the harness, and its outcome once the node answers. */
export interface HarnessRequest {
  readonly nodeId: NodeId;
  /** How many times the node had restarted when the request was made (request ids restart too). */
  readonly incarnation: number;
  readonly requestId: number;
  readonly variable: Variable;
  readonly value: Value;
  readonly submittedTick: number;
  /** Null until the node answers (and forever if the node restarted before answering). */
  result: ProposeOutcome | null;
  resultTick: number | null;
}

interface InFlight {
  readonly message: Message;
  readonly deliverAtTick: number;
  readonly sequence: number;
}

const defaultFactory: NodeFactory = (config, records) =>
  records === null ? new PaxosNode(config) : PaxosNode.restore(config, records);

/** The deterministic Basic Paxos cluster; see the module comment. */
export class BasicHarness {
  /** The acceptors' configuration. */
  readonly configuration: Configuration;
  readonly oracle: BasicAgreementOracle;
  /** Trace lines, when no `traceSink` was given. */
  readonly traceLines: string[] = [];
  /** Every request submitted, in order. */
  readonly requests: HarnessRequest[] = [];
  private readonly options: BasicHarnessOptions;
  private readonly prng: Prng;
  private readonly networkPrng: Prng;
  private readonly nodes = new Map<NodeId, PaxosNode>();
  private readonly disks = new Map<NodeId, Map<string, PersistRecord>>();
  private readonly incarnations = new Map<NodeId, number>();
  private queue: InFlight[] = [];
  private sequenceNext = 0;
  private nowTicks = 0;

  constructor(options: BasicHarnessOptions) {
    this.options = options;
    this.configuration = new Configuration(options.members);
    this.oracle = new BasicAgreementOracle(this.configuration);
    this.prng = new Prng(options.seed ?? 1);
    this.networkPrng = this.prng.fork();
    const network = options.network;
    if (network !== undefined) {
      assert(network.delayTicksMin >= 1, 'a message takes at least one tick');
      assert(network.delayTicksMax >= network.delayTicksMin, 'delayTicksMax is at least delayTicksMin');
    }
    const clients = options.clients ?? [];
    for (const nodeId of [...options.members, ...clients]) {
      assert(!this.nodes.has(nodeId), 'node ids are distinct');
      assert(!clients.includes(nodeId) || !this.configuration.has(nodeId), 'clients are not members');
      this.disks.set(nodeId, new Map());
      this.nodes.set(nodeId, this.buildNode(nodeId, null));
    }
  }

  /** Virtual time in ticks. */
  get now(): number {
    return this.nowTicks;
  }

  /** Every node id, members first. */
  get nodeIds(): NodeId[] {
    return [...this.nodes.keys()];
  }

  /** The live node with id `nodeId`. */
  node(nodeId: NodeId): PaxosNode {
    const node = this.nodes.get(nodeId);
    assert(node !== undefined, `unknown node ${nodeId}`);
    return node;
  }

  /** The display name of a node. */
  name(nodeId: NodeId): string {
    return this.options.names?.[nodeId] ?? `n${nodeId}`;
  }

  /** The messages in flight, oldest first. */
  pending(): Message[] {
    return this.queue.map((entry) => entry.message);
  }

  /** The records `nodeId` made durable (the last one per key), as a restart would read them. */
  durableRecords(nodeId: NodeId): PersistRecord[] {
    const disk = this.disks.get(nodeId);
    assert(disk !== undefined, `unknown node ${nodeId}`);
    return [...disk.values()];
  }

  /** Appends a line to the trace (scenarios narrate their script steps with it). */
  note(line: string): void {
    if (this.traceEnabled) this.emit(line);
  }

  /** Starts `propose(variable, value)` on `nodeId`; the returned request fills in when it ends. */
  submit(nodeId: NodeId, variable: Variable, value: Value): HarnessRequest {
    const requestId = this.node(nodeId).propose(variable, value);
    const request: HarnessRequest = {
      nodeId,
      incarnation: this.incarnations.get(nodeId) ?? 0,
      requestId,
      variable,
      value,
      submittedTick: this.nowTicks,
      result: null,
      resultTick: null,
    };
    this.requests.push(request);
    this.note(`${this.name(nodeId)}: propose(${JSON.stringify(variable)}, ${JSON.stringify(value)}) = request ${requestId}`);
    this.drainAndTrace(nodeId);
    return request;
  }

  /**
   * The seed's `propose(var, V) -> <ok, f> | <error>`, synchronously: submits, then runs the
   * cluster (delivering everything in scripted mode) until the node answers.
   */
  propose(nodeId: NodeId, variable: Variable, value: Value, ticksMax = 100_000): ProposeOutcome {
    const request = this.submit(nodeId, variable, value);
    this.runUntil(() => request.result !== null, ticksMax);
    assert(request.result !== null, `request ${request.requestId} on ${this.name(nodeId)} ended within ${ticksMax} ticks`);
    return request.result;
  }

  /** Delivers, in queue order, every message now queued that matches; returns how many. */
  deliver(predicate: MessagePredicate): number {
    const selected = this.queue.filter((entry) => predicate(entry.message));
    this.queue = this.queue.filter((entry) => !predicate(entry.message));
    for (const entry of selected) this.deliverOne(entry.message);
    return selected.length;
  }

  /** Delivers matching messages, including the ones they cause, until none is left. */
  deliverWhile(predicate: MessagePredicate, messagesMax = 100_000): number {
    let delivered = 0;
    while (true) {
      const count = this.deliver(predicate);
      if (count === 0) return delivered;
      delivered += count;
      assert(delivered <= messagesMax, `deliverWhile settled within ${messagesMax} messages`);
    }
  }

  /** Delivers everything, including the messages that deliveries cause, until the queue is empty. */
  deliverAll(messagesMax = 100_000): number {
    return this.deliverWhile(() => true, messagesMax);
  }

  /** Removes every queued message that matches, as a lossy network would; returns how many. */
  drop(predicate: MessagePredicate): number {
    const selected = this.queue.filter((entry) => predicate(entry.message));
    this.queue = this.queue.filter((entry) => !predicate(entry.message));
    if (this.traceEnabled) for (const entry of selected) this.emit(`drop ${this.describe(entry.message)}`);
    return selected.length;
  }

  /** Advances virtual time: in random mode delivers what is due, then ticks every node. */
  tick(count = 1): void {
    assert(Number.isInteger(count) && count >= 0, 'tick count is a non-negative integer');
    for (let index = 0; index < count; index += 1) {
      this.nowTicks += 1;
      if (this.options.network !== undefined) this.deliverDue();
      for (const nodeId of this.nodes.keys()) {
        this.node(nodeId).tick();
        this.drainAndTrace(nodeId);
      }
    }
  }

  /**
   * Runs until `condition` holds or `ticksMax` ticks pass; returns whether it holds. Scripted mode
   * delivers everything queued before each check, random mode lets the network decide.
   */
  runUntil(condition: () => boolean, ticksMax: number): boolean {
    for (let ticks = 0; ; ticks += 1) {
      if (this.options.network === undefined) this.deliverAll();
      if (condition()) return true;
      if (ticks >= ticksMax) return false;
      this.tick();
    }
  }

  /**
   * Crashes `nodeId` and restarts it from its durable records (disks survive). Messages in flight
   * stay in flight; the node's unanswered requests stay unanswered, as after a real crash.
   */
  restart(nodeId: NodeId): void {
    this.node(nodeId); // Asserts the node exists.
    this.nodes.set(nodeId, this.buildNode(nodeId, this.durableRecords(nodeId)));
    this.incarnations.set(nodeId, (this.incarnations.get(nodeId) ?? 0) + 1);
    this.note(`${this.name(nodeId)}: restarted from its durable records`);
  }

  /**
   * Agreement over the whole run: the oracle's violations, plus every `ok` result that disagrees
   * with the value the oracle saw chosen (a proposer may only report a value a majority accepted).
   */
  agreementViolations(): string[] {
    const violations = [...this.oracle.violations];
    for (const request of this.requests) {
      if (request.result === null || !request.result.ok) continue;
      const chosen = this.oracle.chosen(request.variable);
      if (chosen === undefined || chosen.value !== request.result.chosen) {
        violations.push(
          `${this.name(request.nodeId)} request ${request.requestId} returned ${JSON.stringify(request.result.chosen)} ` +
            `but the acceptors chose ${chosen === undefined ? 'nothing' : JSON.stringify(chosen.value)}`,
        );
      }
    }
    return violations;
  }

  private get traceEnabled(): boolean {
    return this.options.traceEnabled ?? true;
  }

  private emit(line: string): void {
    if (this.options.traceSink === undefined) this.traceLines.push(line);
    else this.options.traceSink(line);
  }

  private buildNode(nodeId: NodeId, records: readonly PersistRecord[] | null): PaxosNode {
    const config: PaxosNodeConfig = {
      ...this.options.node,
      nodeId,
      configuration: this.configuration,
      random: this.prng.fork(),
    };
    const node = (this.options.createNode ?? defaultFactory)(config, records);
    assert(node.nodeId === nodeId, 'the factory builds the requested node');
    return node;
  }

  private deliverDue(): void {
    const due = this.queue.filter((entry) => entry.deliverAtTick <= this.nowTicks);
    if (due.length === 0) return;
    this.queue = this.queue.filter((entry) => entry.deliverAtTick > this.nowTicks);
    due.sort((a, b) => a.deliverAtTick - b.deliverAtTick || a.sequence - b.sequence);
    for (const entry of due) this.deliverOne(entry.message);
  }

  private deliverOne(message: Message): void {
    const node = this.node(message.to);
    node.step(message);
    const notes: string[] = [];
    const sent = this.drain(message.to, notes);
    if (this.traceEnabled) {
      this.emit(`${this.describe(message)}${this.outcomeOf(message, sent)}`);
      for (const line of notes) this.emit(line);
    }
  }

  /** For a request: ` rejected: promised X` when the acceptor refused it. */
  private outcomeOf(message: Message, sent: readonly Message[]): string {
    if (message.type !== 'prepare' && message.type !== 'accept') return '';
    const refusal = sent.find(
      (reply) =>
        reply.type === 'nack' &&
        reply.to === message.from &&
        reply.variable === message.variable &&
        reply.ballot === message.ballot,
    );
    return refusal?.type === 'nack' ? ` rejected: promised ${formatBallot(refusal.promised)}` : '';
  }

  private describe(message: Message): string {
    const variable = this.options.showVariables === true ? `${message.variable}: ` : '';
    return `${this.name(message.from)} -> ${this.name(message.to)}: ${variable}${formatMessage(message)}`;
  }

  /**
   * Runs one node's Ready: persist (to its disk, feeding the oracle), then send, then results.
   * Returns the messages sent; trace notes (losses, results) go to `notes`.
   */
  private drain(nodeId: NodeId, notes: string[]): readonly Message[] {
    const ready = this.node(nodeId).ready();
    for (const record of ready.persist) this.persist(nodeId, record);
    for (const message of ready.send) {
      assert(message.from === nodeId, 'a node sends only as itself');
      this.assertDurable(nodeId, message);
      this.enqueue(message, notes);
    }
    const incarnation = this.incarnations.get(nodeId) ?? 0;
    for (const result of ready.results) {
      const request = this.requests.find(
        (candidate) =>
          candidate.nodeId === nodeId && candidate.incarnation === incarnation && candidate.requestId === result.requestId,
      );
      assert(request !== undefined, 'a result answers a pending request');
      assert(request.result === null, 'a request is answered once');
      assert(request.variable === result.variable, 'a result names its request variable');
      request.result = result.result;
      request.resultTick = this.nowTicks;
      if (this.traceEnabled) notes.push(`${this.name(nodeId)}: request ${result.requestId} -> ${formatOutcome(result.result)}`);
    }
    return ready.send;
  }

  /** Runs one node's Ready outside a delivery (after propose or tick) and traces its notes. */
  private drainAndTrace(nodeId: NodeId): void {
    const notes: string[] = [];
    this.drain(nodeId, notes);
    for (const line of notes) this.emit(line);
  }

  private persist(nodeId: NodeId, record: PersistRecord): void {
    const disk = this.disks.get(nodeId);
    assert(disk !== undefined, `unknown node ${nodeId}`);
    if (record.type === 'acceptor') {
      const previous = disk.get(`acceptor:${record.variable}`);
      assert(previous?.type !== 'acceptor' || previous.promised <= record.promised, 'a durable promise never decreases');
      disk.set(`acceptor:${record.variable}`, record);
      if (record.accepted !== null) this.oracle.observeAccept(nodeId, record.variable, record.accepted, this.nowTicks);
    } else {
      const previous = disk.get('proposer');
      assert(previous?.type !== 'proposer' || previous.ballotUsedMax < record.ballotUsedMax, 'a durable ballot only grows');
      disk.set('proposer', record);
    }
  }

  /** Persist-before-send: what a message reveals is already on its sender's disk. */
  private assertDurable(nodeId: NodeId, message: Message): void {
    const disk = this.disks.get(nodeId);
    assert(disk !== undefined, `unknown node ${nodeId}`);
    const proposer = disk.get('proposer');
    const acceptor = disk.get(`acceptor:${message.variable}`);
    switch (message.type) {
      case 'prepare':
      case 'accept':
        assert(proposer?.type === 'proposer' && proposer.ballotUsedMax >= message.ballot, 'ballot durable before use');
        return;
      case 'promise':
        assert(acceptor?.type === 'acceptor' && acceptor.promised >= message.ballot, 'promise durable before sent');
        return;
      case 'accepted':
        assert(this.oracle.hasAccepted(nodeId, message.variable, message.ballot), 'acceptance durable before sent');
        return;
      case 'nack':
        return; // A refusal changes no state.
    }
  }

  private enqueue(message: Message, notes: string[]): void {
    assert(this.nodes.has(message.to), `message to unknown node ${message.to}`);
    const network = this.options.network;
    if (network === undefined) {
      this.push(message, this.nowTicks);
      return;
    }
    if (this.networkPrng.chance(network.lossProbability)) {
      if (this.traceEnabled) notes.push(`lost ${this.describe(message)}`);
      return;
    }
    const copies = this.networkPrng.chance(network.duplicateProbability) ? 2 : 1;
    for (let copy = 0; copy < copies; copy += 1) {
      this.push(message, this.nowTicks + this.networkPrng.int(network.delayTicksMin, network.delayTicksMax + 1));
    }
  }

  private push(message: Message, deliverAtTick: number): void {
    assert(this.queue.length < (this.options.queueMessagesMax ?? 100_000), 'messages in flight stay bounded');
    this.queue.push({ message, deliverAtTick, sequence: this.sequenceNext });
    this.sequenceNext += 1;
  }
}

/** A propose outcome in the seed's notation: `<ok, "V1">` or `<error timeout>`. */
export function formatOutcome(outcome: ProposeOutcome): string {
  return outcome.ok ? `<ok, ${JSON.stringify(outcome.chosen)}>` : `<error ${outcome.error}>`;
}

/** One seeded random run: several proposers race for one variable over a faulty network. */
export interface RandomTrialOptions {
  readonly seed: number;
  /** How many members propose (each its own value, `v<id>`), at most `memberCount`. */
  readonly proposerCount: number;
  /** Cluster size (default: 3 for up to 3 proposers, else 5). */
  readonly memberCount?: number;
  readonly network: RandomNetwork;
  readonly node?: HarnessNodeOptions;
  readonly createNode?: NodeFactory;
  /** Proposers start at a random tick below this (default 4), so they overlap. */
  readonly startTicksMax?: number;
  /** Per tick, the probability that one random member crashes and restarts from its disk. */
  readonly restartProbability?: number;
  /** The run stops here even if some proposer has not finished. */
  readonly ticksMax: number;
}

/** What a random run did. */
export interface RandomTrialReport {
  readonly seed: number;
  readonly proposerCount: number;
  readonly memberCount: number;
  /** The value a majority accepted first, or null if none was chosen. */
  readonly chosen: Value | null;
  /** When it was chosen (virtual ticks), or null. */
  readonly chosenTick: number | null;
  /** When the run stopped: every proposer finished, or `ticksMax`. */
  readonly ticks: number;
  /** Each proposer's last request outcome (null: unanswered). */
  readonly outcomes: readonly (ProposeOutcome | null)[];
  /** Agreement violations (empty in a correct run). */
  readonly violations: readonly string[];
  readonly restarts: number;
}

/** The variable random trials race for. */
export const TRIAL_VARIABLE = 'x';

/**
 * Runs one seeded race of `proposerCount` proposers over a random network and checks agreement.
 * A proposer whose node restarts resubmits (as its client would, after losing the connection).
 */
export function runRandomTrial(options: RandomTrialOptions): RandomTrialReport {
  const memberCount = options.memberCount ?? (options.proposerCount <= 3 ? 3 : 5);
  assert(options.proposerCount >= 1 && options.proposerCount <= memberCount, 'proposers are members');
  const members = Array.from({ length: memberCount }, (_, index) => index + 1);
  const proposers = members.slice(0, options.proposerCount);
  const harness = new BasicHarness({
    members,
    seed: options.seed,
    network: options.network,
    traceEnabled: false,
    ...(options.node === undefined ? {} : { node: options.node }),
    ...(options.createNode === undefined ? {} : { createNode: options.createNode }),
  });
  const schedule = new Prng(options.seed).fork();
  const startTicksMax = options.startTicksMax ?? 4;
  const startTicks = proposers.map(() => schedule.int(0, startTicksMax));
  const latest = new Map<NodeId, HarnessRequest>();
  const submit = (nodeId: NodeId): void => {
    latest.set(nodeId, harness.submit(nodeId, TRIAL_VARIABLE, `v${nodeId}`));
  };
  const finished = (): boolean => proposers.every((nodeId) => (latest.get(nodeId)?.result ?? null) !== null);
  let restarts = 0;
  while (harness.now < options.ticksMax) {
    proposers.forEach((nodeId, index) => {
      if (startTicks[index] === harness.now) submit(nodeId);
    });
    if (schedule.chance(options.restartProbability ?? 0)) {
      const victim = members[schedule.int(0, members.length)] ?? 1;
      harness.restart(victim);
      restarts += 1;
      if (latest.get(victim)?.result === null) submit(victim);
    }
    if (latest.size === proposers.length && finished()) break;
    harness.tick();
  }
  const chosen = harness.oracle.chosen(TRIAL_VARIABLE);
  return {
    seed: options.seed,
    proposerCount: options.proposerCount,
    memberCount,
    chosen: chosen?.value ?? null,
    chosenTick: chosen?.tick ?? null,
    ticks: harness.now,
    outcomes: proposers.map((nodeId) => latest.get(nodeId)?.result ?? null),
    violations: harness.agreementViolations(),
    restarts,
  };
}

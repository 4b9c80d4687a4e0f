/**
 * A Synod node: the Multi-Paxos replica on a real disk (FileStorage), real sockets (TcpTransport)
 * and a real clock (NodeDriver), applying the chosen log to the key-value state machine and
 * serving client requests as a `KvService`.
 *
 * Writes (and reads in `log` mode) become commands identified by (clientId, seq); the node that
 * took the request answers when it applies that command, with the state machine's result (a retry
 * of an applied command gets the stored result: exactly-once). Reads in `index` mode ask the
 * replica for a read index, wait until it is confirmed and applied here, then read locally.
 *
 * Every request has a deadline (`requestTimeoutMs`): all share one duration, so arrival order is
 * deadline order and one FIFO swept by a timer expires them without a timer per request.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { destination, pino, type DestinationStream, type Logger } from 'pino';
import { assert } from '../core/assert.js';
import { formatBallot, type NodeId } from '../core/ballot.js';
import type { Command } from '../core/command.js';
import { Prng } from '../core/prng.js';
import { Configuration, StaticConfiguration } from '../core/quorum/majority.js';
import { DEFAULT_REPLICA_OPTIONS, Replica } from '../core/multipaxos/replica.js';
import type { CommittedEntry, ProposeResult, ReadIndexResult } from '../core/multipaxos/types.js';
import { isReadOperation, validateOperation, type KvOperation, type KvReadOperation, type KvResult } from '../kv/ops.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { NodeDriver } from '../node/driver.js';
import { StorageCorruptionError } from '../storage/errors.js';
import type { LogStorage } from '../storage/adapter.js';
import { FileStorage } from '../storage/file.js';
import { TcpTransport } from '../transport/tcp.js';
import { ConfigError, formatHostPort, type NodeConfig } from './config.js';
import { DataDirLock } from './lock.js';
import { NodeMetrics } from './metrics.js';
import { DataCorruptionError, WAL_DIRECTORY, beginRejoin, endRejoin, rejoinPending } from './rejoin.js';
import type { ClientApi, ClientRefusal } from './access.js';
import { loadTlsMaterial, type TlsMaterial } from './tls-files.js';
import type {
  KvService,
  NodeEndpoint,
  NodeStatusReport,
  PeerStatus,
  RequestId,
  ServiceFailure,
  ServiceResult,
  SubmitOptions,
} from './service.js';

export interface SynodNodeOptions {
  /** Where the node's pino logs (JSON lines) go; default stdout. Level: `config.logLevel`. */
  readonly logStream?: DestinationStream;
  /** Called once if the node fails (storage error) and stops serving; the process should exit. */
  readonly onFatal?: (error: unknown) => void;
  /** Register Node.js process metrics (default true; off when several nodes share a process). */
  readonly processMetrics?: boolean;
  /**
   * Rebuild this node from its peers (`synod start --rejoin`): move the log aside and start in
   * rejoin mode (see `rejoin.ts`). Needs every other member running to finish.
   */
  readonly rejoin?: boolean;
  /** Tests only: sees the storage once opened (disk-fault tests read its durable end). */
  readonly onStorageOpened?: (storage: FileStorage) => void;
  /** The TLS files of `config`, already read (default: read them here; null: TLS off). */
  readonly tlsMaterial?: TlsMaterial | null;
  /**
   * Fault testing only (`synod torture`, see src/torture/fault-control.ts): wraps the log storage,
   * e.g. to slow its fsyncs. Absent in production, where the node uses the file storage directly.
   */
  readonly wrapStorage?: (storage: LogStorage) => LogStorage;
}

/** What the node keeps of its disk and replica to finish a rejoin (null when not rejoining). */
interface RejoinInProgress {
  readonly replica: Replica;
  readonly storage: LogStorage;
  finishing: boolean;
}

/** A request waiting for its answer. `done` is set once answered (by result, error or deadline). */
interface Waiter {
  readonly op: KvOperation['type'];
  readonly started: number;
  readonly deadline: number;
  readonly resolve: (result: ServiceResult) => void;
  done: boolean;
  /** Where the waiter is filed, so an expired one is removed without scanning: a write's command id, a read's id. */
  clientId?: string;
  seq?: number;
  readId?: number;
}

/**
 * Writes waiting for their command to apply, by client id then sequence number: the lookup for
 * every applied command builds no key (a string per command was ~4.5% of a leader's busy time).
 */
class WriteWaiters {
  private readonly byClient = new Map<string, Map<number, Waiter[]>>();
  private count = 0;

  /** Commands with a waiter. */
  get size(): number {
    return this.count;
  }

  file(clientId: string, seq: number, waiter: Waiter): void {
    waiter.clientId = clientId;
    waiter.seq = seq;
    let bySeq = this.byClient.get(clientId);
    if (bySeq === undefined) this.byClient.set(clientId, (bySeq = new Map()));
    const waiting = bySeq.get(seq);
    if (waiting === undefined) {
      bySeq.set(seq, [waiter]);
      this.count += 1;
    } else {
      waiting.push(waiter); // a retry arriving while the first attempt still waits
    }
  }

  /** Removes and returns the waiters of command (clientId, seq). */
  take(clientId: string, seq: number): Waiter[] | undefined {
    const bySeq = this.byClient.get(clientId);
    const waiting = bySeq?.get(seq);
    if (bySeq === undefined || waiting === undefined) return undefined;
    this.remove(clientId, bySeq, seq);
    return waiting;
  }

  /** Drops the answered waiters of `waiter`'s command, keeping any still open. */
  unfile(waiter: Waiter): void {
    if (waiter.clientId === undefined || waiter.seq === undefined) return;
    const bySeq = this.byClient.get(waiter.clientId);
    const waiting = bySeq?.get(waiter.seq);
    if (bySeq === undefined || waiting === undefined) return;
    const open = waiting.filter((other) => !other.done);
    if (open.length > 0) bySeq.set(waiter.seq, open);
    else this.remove(waiter.clientId, bySeq, waiter.seq);
  }

  clear(): void {
    this.byClient.clear();
    this.count = 0;
  }

  private remove(clientId: string, bySeq: Map<number, Waiter[]>, seq: number): void {
    bySeq.delete(seq);
    this.count -= 1;
    if (bySeq.size === 0) this.byClient.delete(clientId);
  }
}

interface ReadWaiter extends Waiter {
  readonly read: KvReadOperation;
  /** Set once the leader confirmed the read. */
  index: number;
}

/** How often expired requests are swept and leadership changes noticed. */
const SWEEP_MS = 25;

export class SynodNode implements KvService {
  readonly metricsContentType: string;
  readonly logger: Logger;
  private readonly kv = new KvStateMachine();
  private readonly metricsRegistry: NodeMetrics;
  private readonly writes = new WriteWaiters();
  private readonly readsAsked = new Map<number, ReadWaiter>();
  private readsConfirmed: ReadWaiter[] = [];
  /** Every waiter in arrival (= deadline) order, for the sweep. */
  private deadlines: Waiter[] = [];
  private deadlinesHead = 0;
  private pendingCount = 0;
  private readIds = 0;
  private anonymousSeq = 0;
  private readonly anonymousClientId: string;
  private appliedIndex = 0;
  private lastLeader: NodeId | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private stopping = false;
  private rejoining: RejoinInProgress | null = null;
  /** Monotonic: a wall-clock jump back must not make the uptime negative (the status encoder refuses that). */
  private readonly startedAt = performance.now();

  private constructor(
    readonly config: NodeConfig,
    private readonly driver: NodeDriver,
    private readonly transport: TcpTransport,
    private readonly lock: DataDirLock,
    logger: Logger,
    options: SynodNodeOptions,
  ) {
    this.logger = logger;
    this.anonymousClientId = `~node${config.id}.${randomBytes(6).toString('hex')}`;
    this.metricsRegistry = new NodeMetrics(config.id, this.metricsSource(), { processMetrics: options.processMetrics ?? true });
    this.metricsContentType = this.metricsRegistry.registry.contentType;
  }

  /** Opens the data directory (recovering the log), connects to the peers and starts the replica. */
  static async start(config: NodeConfig, options: SynodNodeOptions = {}): Promise<SynodNode> {
    let ballot = '0.0';
    const logger = pino(
      { level: config.logLevel, base: { pid: process.pid, node: config.id }, mixin: () => ({ ballot }) },
      options.logStream ?? destination(1),
    );
    const tlsMaterial = options.tlsMaterial === undefined ? loadTlsMaterial(config) : options.tlsMaterial;
    const lock = await DataDirLock.acquire(config.dataDir);
    try {
      const rejoining = await SynodNode.prepareRejoin(config, options, logger);
      const fileStorage = await SynodNode.openStorage(config, logger);
      options.onStorageOpened?.(fileStorage);
      const storage = options.wrapStorage === undefined ? fileStorage : options.wrapStorage(fileStorage);
      const state = storage.state();
      const replica = new Replica(
        {
          ...DEFAULT_REPLICA_OPTIONS,
          nodeId: config.id,
          configuration: new StaticConfiguration(new Configuration(config.members.map((member) => member.id))),
          random: new Prng(randomInt(1, 2 ** 31)),
          electionTicksMin: config.electionTicksMin,
          electionTicksMax: config.electionTicksMax,
          heartbeatTicks: config.heartbeatTicks,
          pipelineDepthMax: config.pipelineDepthMax,
          rejoin: rejoining,
          // Applied entries leave memory once durable (but for a tail); older ones come off the disk.
          readDurableEntry: (slot) => storage.entry(slot),
        },
        state,
      );
      if (rejoining) replica.observer = { trace: (line) => logger.info({ component: 'rejoin' }, line) };
      const self = config.members.find((member) => member.id === config.id);
      assert(self !== undefined, 'config validated: this node is a member');
      const transport = new TcpTransport({
        nodeId: config.id,
        clusterId: config.clusterId,
        secret: config.secret,
        listen: self.peer,
        peers: new Map(config.members.filter((member) => member.id !== config.id).map((member) => [member.id, member.peer])),
        logger: logger.child({ component: 'transport' }),
        ...(tlsMaterial === null ? {} : { tls: { ...tlsMaterial, mutual: config.tlsPeerMutual } }),
      });
      let node: SynodNode | null = null;
      const driver = new NodeDriver({
        replica,
        storage,
        transport,
        tickMs: config.tickMs,
        onApply: (entry) => node?.onApply(entry),
        onReads: (reads) => node?.onReads(reads),
        onPersist: (records, durationMs) => node?.onPersist(records, durationMs),
        onFatal: (error) => node?.onFatal(error, options.onFatal),
        logger,
      });
      node = new SynodNode(config, driver, transport, lock, logger, options);
      const created = node;
      if (rejoining) created.rejoining = { replica, storage, finishing: false };
      // Every log line carries the promised ballot (refreshed by the sweep).
      const status = (): string => formatBallot(driver.status().promised);
      ballot = status();
      await driver.start();
      created.sweeper = setInterval(() => {
        ballot = status();
        created.sweep();
      }, SWEEP_MS);
      logger.info(
        { members: config.members.length, peer: formatHostPort(self.peer), peerTls: transport.tls, readMode: config.readMode, recoveredMaxSlot: driver.status().maxSlot },
        'node started',
      );
      return created;
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  /**
   * With `options.rejoin`, begins a rejoin; returns whether this start is a rejoin (one begun now
   * or earlier and not finished: the marker is durable until the node has rejoined).
   */
  private static async prepareRejoin(config: NodeConfig, options: SynodNodeOptions, logger: Logger): Promise<boolean> {
    if (options.rejoin === true) {
      if (config.members.length < 2) throw new ConfigError('--rejoin needs peers to rebuild from: this cluster has one member');
      const aside = await beginRejoin(config.dataDir, new Date());
      logger.warn({ movedTo: aside }, aside === null ? 'rejoin: no log to move aside' : `rejoin: the old log was moved to ${aside}`);
    }
    const rejoining = await rejoinPending(config.dataDir);
    if (rejoining) {
      if (config.members.length < 2) throw new ConfigError('a rejoin is pending but this cluster has one member: no peer to rebuild from');
      logger.warn({}, 'rejoining: this node does not vote until it has relearned its state from its peers (every other member must be running)');
    }
    return rejoining;
  }

  /** Opens the log; damage a crash cannot explain is a `DataCorruptionError`, logged as fatal. */
  private static async openStorage(config: NodeConfig, logger: Logger): Promise<FileStorage> {
    try {
      return await FileStorage.open(join(config.dataDir, WAL_DIRECTORY), {
        logger: { warn: (message: string) => logger.warn({ component: 'storage' }, message) },
      });
    } catch (error) {
      if (!(error instanceof StorageCorruptionError)) throw error;
      const refused = new DataCorruptionError(config.id, config.dataDir, error);
      logger.fatal({ file: refused.file, offset: refused.offset, remedy: refused.remedy }, `data directory damaged, refusing to start: ${error.message}`);
      throw refused;
    }
  }

  /** True until a rejoin begun with `options.rejoin` (or resumed) is finished and its marker removed. */
  isRejoining(): boolean {
    return this.rejoining !== null;
  }

  /** Stops serving: pending requests are answered `unavailable`, then the replica, sockets and disk close. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.failAll('unavailable', 'the node is stopping');
    await this.driver.stop();
    await this.lock.release();
    this.logger.info({}, 'node stopped');
  }

  /** The peer address actually bound (port 0 in tests resolves here). */
  peerAddress(): { host: string; port: number } | null {
    return this.transport.address();
  }

  // ---------------------------------------------------------------- KvService

  submit(operation: KvOperation, id?: RequestId, options?: SubmitOptions): Promise<ServiceResult> {
    const invalid = validateOperation(operation);
    if (invalid !== null) return Promise.resolve(this.answered(operation.type, performance.now(), invalid));
    if (this.stopping || this.driver.hasFailed) {
      return Promise.resolve(this.failed(operation.type, 'unavailable', 'the node is not serving (stopping or failed)'));
    }
    if (this.pendingCount >= this.config.pendingRequestsMax) {
      return Promise.resolve(this.failed(operation.type, 'overloaded', `${this.pendingCount} requests pending at this node`));
    }
    const timeoutMs = Math.min(options?.timeoutMs ?? this.config.requestTimeoutMs, this.config.requestTimeoutMs);
    if (isReadOperation(operation) && this.config.readMode === 'index') return this.read(operation, timeoutMs);
    return this.write(operation, id, timeoutMs);
  }

  status(): NodeStatusReport {
    const status = this.driver.status();
    const leaderId = status.leaderHint;
    return {
      id: this.config.id,
      role: status.role,
      serving: status.serving,
      leader: leaderId === null ? null : this.endpointOf(leaderId),
      ballot: formatBallot(status.promised),
      firstUnchosen: status.firstUnchosen,
      appliedIndex: this.appliedIndex,
      maxSlot: status.maxSlot,
      revision: this.kv.revision,
      keys: this.kv.stateMachineSize().keys,
      peers: this.peerStatuses(),
      readMode: this.config.readMode,
      uptimeMs: Math.round(performance.now() - this.startedAt),
    };
  }

  metrics(): Promise<string> {
    return this.metricsRegistry.registry.metrics();
  }

  /** Counts a client connection a front end refused (`synod_client_connections_refused_total`). */
  countRefusedConnection(api: 'client' | 'http', reason: 'connections' | 'per-address'): void {
    this.metricsRegistry.connectionsRefused.inc({ api, reason });
  }

  /** Where a member serves clients. */
  endpointOf(id: NodeId): NodeEndpoint {
    const member = this.config.members.find((candidate) => candidate.id === id);
    return {
      id,
      clientAddress: member?.client ? formatHostPort(member.client) : null,
      httpAddress: member?.http ? formatHostPort(member.http) : null,
    };
  }

  /** The state machine's digest (tests compare replicas). */
  digest(): string {
    return this.kv.digest();
  }

  // ---------------------------------------------------------------- requests

  private write(operation: KvOperation, id: RequestId | undefined, timeoutMs: number): Promise<ServiceResult> {
    const started = performance.now();
    const requestId = id ?? { clientId: this.anonymousClientId, seq: (this.anonymousSeq += 1) };
    const command: Command = { clientId: requestId.clientId, seq: requestId.seq, payload: this.kv.encodePayload(operation) };
    return new Promise((resolve) => {
      // Filed before proposing: nothing the driver does synchronously can then miss the waiter.
      const waiter = this.track(operation.type, started, timeoutMs, resolve);
      this.writes.file(command.clientId, command.seq, waiter);
      const proposed = this.driver.propose(command);
      this.metricsRegistry.countProposal(proposed.ok ? 'ok' : proposed.error);
      if (!proposed.ok) {
        this.finish(waiter, this.refusal(proposed));
        this.unfile(waiter);
      }
    });
  }

  private read(operation: KvReadOperation, timeoutMs: number): Promise<ServiceResult> {
    const started = performance.now();
    const id = (this.readIds += 1);
    return new Promise((resolve) => {
      // Filed before asking: a single-member leader confirms the read inside `readIndex`.
      const waiter = this.track(operation.type, started, timeoutMs, resolve) as ReadWaiter;
      Object.assign(waiter, { read: operation, index: 0, readId: id });
      this.readsAsked.set(id, waiter);
      const asked = this.driver.readIndex(id);
      if (!asked.ok) {
        this.metricsRegistry.readIndexRequests.inc({ result: 'refused' });
        this.finish(waiter, this.refusal(asked));
        this.unfile(waiter);
      }
    });
  }

  private track(op: KvOperation['type'], started: number, timeoutMs: number, resolve: (result: ServiceResult) => void): Waiter {
    const waiter: Waiter = { op, started, deadline: started + timeoutMs, resolve, done: false };
    // The FIFO sweep needs deadlines in arrival order, true for the common timeout; a request
    // asking for a shorter one gets a timer of its own (and stays in the FIFO, harmlessly).
    this.deadlines.push(waiter);
    if (timeoutMs < this.config.requestTimeoutMs) setTimeout(() => this.expire(waiter), timeoutMs).unref();
    this.pendingCount += 1;
    return waiter;
  }

  private expire(waiter: Waiter): void {
    if (waiter.done) return;
    this.finish(waiter, { ok: false, error: 'timeout', message: 'no answer in time; a write may still take effect (retry with the same request id)' });
    this.unfile(waiter);
  }

  private finish(waiter: Waiter, result: ServiceResult): void {
    if (waiter.done) return;
    waiter.done = true;
    this.pendingCount -= 1;
    waiter.resolve(this.answered(waiter.op, waiter.started, result));
  }

  private answered(op: KvOperation['type'], started: number, result: ServiceResult | KvResult): ServiceResult {
    this.metricsRegistry.requests.answered(op, result.ok ? 'ok' : result.error, (performance.now() - started) / 1000);
    return result as ServiceResult;
  }

  private failed(op: KvOperation['type'], error: ServiceFailure['error'], message: string): ServiceResult {
    return this.answered(op, performance.now(), { ok: false, error, message });
  }

  private refusal(refusal: Extract<ProposeResult, { ok: false }>): ServiceFailure {
    if (refusal.error === 'not_leader') return this.notLeader(refusal.leaderHint);
    if (refusal.error === 'overloaded') return { ok: false, error: 'overloaded', message: 'the leader\'s queue is full' };
    return { ok: false, error: 'too_large', message: 'the command exceeds the largest batch' };
  }

  private notLeader(hint: NodeId | null): ServiceFailure {
    const leader = hint !== null && hint !== this.config.id ? this.endpointOf(hint) : undefined;
    return leader === undefined
      ? { ok: false, error: 'not_leader', message: `node ${this.config.id} does not lead and knows no leader yet` }
      : { ok: false, error: 'not_leader', message: `node ${this.config.id} does not lead; node ${leader.id} does`, leader };
  }

  // ---------------------------------------------------------------- the log

  private onApply(entry: CommittedEntry): void {
    this.appliedIndex = entry.slot;
    const value = entry.value;
    if (value.type !== 'commands' || entry.skipped) {
      this.kv.applyNoop(entry.slot);
      this.metricsRegistry.entriesApplied.inc({ type: entry.skipped ? 'skipped' : value.type });
    } else {
      this.metricsRegistry.entriesApplied.inc({ type: 'commands' });
      this.metricsRegistry.batchCommands.observe(value.commands.length);
      this.metricsRegistry.commandsApplied.inc(value.commands.length);
      for (const command of value.commands) {
        const result = this.kv.apply(command, entry.slot);
        if (this.writes.size === 0) continue;
        const waiting = this.writes.take(command.clientId, command.seq);
        if (waiting === undefined) continue;
        for (const waiter of waiting) this.finish(waiter, result as ServiceResult);
      }
    }
    if (this.readsConfirmed.length > 0) this.serveReads();
  }

  private onReads(reads: readonly ReadIndexResult[]): void {
    for (const answer of reads) {
      const waiter = this.readsAsked.get(answer.id);
      if (waiter === undefined) continue;
      this.readsAsked.delete(answer.id);
      if (!answer.ok) {
        this.metricsRegistry.readIndexRequests.inc({ result: 'lost_leadership' });
        this.finish(waiter, this.notLeader(this.driver.status().leaderHint));
        continue;
      }
      this.metricsRegistry.readIndexRequests.inc({ result: 'confirmed' });
      waiter.index = answer.index;
      this.readsConfirmed.push(waiter);
    }
    this.serveReads();
  }

  /** Answers the confirmed reads whose index has been applied here. */
  private serveReads(): void {
    const remaining: ReadWaiter[] = [];
    for (const waiter of this.readsConfirmed) {
      if (waiter.done) continue;
      if (waiter.index > this.appliedIndex) remaining.push(waiter);
      else this.finish(waiter, this.kv.read(waiter.read) as ServiceResult);
    }
    this.readsConfirmed = remaining;
  }

  private onPersist(records: number, durationMs: number): void {
    this.metricsRegistry.fsyncSeconds.observe(durationMs / 1000);
    this.metricsRegistry.fsyncRecords.observe(records);
  }

  private onFatal(error: unknown, notify: ((error: unknown) => void) | undefined): void {
    this.logger.fatal({ err: error }, 'storage failed: the node stops serving');
    this.failAll('unavailable', 'the node failed and stopped serving');
    notify?.(error);
  }

  // ---------------------------------------------------------------- housekeeping

  /** Expires requests past their deadline and notices leader changes. */
  private sweep(): void {
    const now = performance.now();
    while (this.deadlinesHead < this.deadlines.length) {
      const waiter = this.deadlines[this.deadlinesHead] as Waiter;
      if (!waiter.done && waiter.deadline > now) break;
      this.deadlinesHead += 1;
      this.expire(waiter);
    }
    if (this.deadlinesHead > 1024 && this.deadlinesHead * 2 > this.deadlines.length) {
      this.deadlines = this.deadlines.slice(this.deadlinesHead);
      this.deadlinesHead = 0;
    }
    if (this.rejoining !== null) this.finishRejoin(this.rejoining);
    const leader = this.driver.status().leaderHint;
    if (leader !== this.lastLeader) {
      this.lastLeader = leader;
      if (leader !== null) {
        this.metricsRegistry.leaderChanges.inc();
        this.logger.info({ leader }, leader === this.config.id ? 'this node leads' : 'following a new leader');
      }
    }
  }

  /**
   * Once the replica has rejoined, removes the marker — but only after its finishing promise (and
   * every chosen entry it learned) is durable: with no Ready pending, every record has been handed
   * to the storage, and an empty append resolves once all of them are fsync'd.
   */
  private finishRejoin(rejoin: RejoinInProgress): void {
    if (rejoin.finishing || rejoin.replica.isRejoining() || rejoin.replica.hasReady() || this.driver.hasFailed) return;
    rejoin.finishing = true;
    rejoin.storage
      .append([])
      .then(() => endRejoin(this.config.dataDir))
      .then(
        () => {
          this.rejoining = null;
          rejoin.replica.observer = null;
          const status = this.driver.status();
          this.logger.info({ appliedIndex: this.appliedIndex, promised: formatBallot(status.promised) }, 'rejoined: this node votes again');
        },
        (error: unknown) => {
          rejoin.finishing = false; // retried on the next sweep; until then a restart simply rejoins again
          if (!this.stopping) this.logger.error({ err: error }, 'rejoin: could not remove the marker yet');
        },
      );
  }

  /** Removes an answered waiter from the map it was filed in (a confirmed read is dropped by `serveReads`). */
  private unfile(waiter: Waiter): void {
    if (waiter.readId !== undefined) this.readsAsked.delete(waiter.readId);
    this.writes.unfile(waiter);
  }

  private failAll(error: ServiceFailure['error'], message: string): void {
    for (const waiter of this.deadlines.slice(this.deadlinesHead)) this.finish(waiter, { ok: false, error, message });
    this.deadlines = [];
    this.deadlinesHead = 0;
    this.writes.clear();
    this.readsAsked.clear();
    this.readsConfirmed = [];
  }

  private peerStatuses(): PeerStatus[] {
    const status = this.driver.status();
    const transport = this.transport.stats().peers;
    const rtt = this.driver.peerRttMs();
    const leading = status.role === 'leader';
    return this.config.members
      .filter((member) => member.id !== this.config.id)
      .map((member) => {
        const progress = status.peers.find((peer) => peer.nodeId === member.id);
        return {
          id: member.id,
          connected: transport.get(member.id)?.state === 'connected',
          lag: leading && progress !== undefined && progress.firstUnchosen > 0 ? Math.max(0, status.firstUnchosen - progress.firstUnchosen) : null,
          rttMs: leading ? (rtt.get(member.id) ?? null) : null,
        };
      });
  }

  /** Counts a refused client in the node's metrics (the front ends decide; the node keeps the count). */
  countClientRefusal(api: ClientApi, reason: ClientRefusal): void {
    this.metricsRegistry.clientAuthFailures.inc({ api, reason });
  }

  private metricsSource() {
    return {
      transport: () => this.transport.stats(),
      isLeader: () => this.driver.status().role === 'leader',
      firstUnchosen: () => this.driver.status().firstUnchosen,
      appliedIndex: () => this.appliedIndex,
      pendingRequests: () => this.pendingCount,
      keys: () => this.kv.stateMachineSize().keys,
      peers: () =>
        this.peerStatuses().map((peer) => ({
          id: peer.id,
          lagSlots: peer.lag,
          rttSeconds: peer.rttMs === null ? null : peer.rttMs / 1000,
          connected: peer.connected,
        })),
    };
  }
}

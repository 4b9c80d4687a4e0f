/**
 * A node's Prometheus metrics (prom-client), in a registry of its own so several nodes can live in
 * one process (tests). Counters are bumped on the paths that do the work; gauges that mirror state
 * (roles, slots, lag, round trips) are read from the node when scraped.
 */
import { Counter, Gauge, Histogram, type Metric, Registry, collectDefaultMetrics } from 'prom-client';
import type { TransportStats } from '../transport/transport.js';

/** What the gauges read at scrape time. */
export interface MetricsSource {
  isLeader(): boolean;
  firstUnchosen(): number;
  appliedIndex(): number;
  pendingRequests(): number;
  keys(): number;
  /** Per peer: lag in slots (leader only) and last heartbeat round trip in seconds. */
  peers(): readonly { id: number; lagSlots: number | null; rttSeconds: number | null; connected: boolean }[];
  /** The transport's counters: refused handshakes and dropped messages. */
  transport(): TransportStats;
}

export class NodeMetrics {
  readonly registry = new Registry();
  readonly proposals: Counter<'result'>;
  /** Answered requests: counted and timed on every request, so kept off prom-client's label hashing. */
  readonly requests: RequestMetrics;
  readonly entriesApplied: Counter<'type'>;
  readonly commandsApplied: Counter;
  readonly batchCommands: Histogram;
  readonly fsyncSeconds: Histogram;
  readonly fsyncRecords: Histogram;
  readonly leaderChanges: Counter;
  readonly readIndexRequests: Counter<'result'>;
  readonly clientAuthFailures: Counter<'api' | 'reason'>;
  readonly connectionsRefused: Counter<'api' | 'reason'>;
  /** Proposals by outcome, read into `proposals` when scraped. */
  private readonly proposalCounts = new Map<string, { value: number }>();

  constructor(nodeId: number, source: MetricsSource, options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: String(nodeId) });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'synod_' });
    const proposalCounts = this.proposalCounts;
    this.proposals = new Counter({
      name: 'synod_proposals_total',
      help: 'Client commands offered to the replica, by outcome (ok, not_leader, overloaded, too_large).',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        for (const [result, count] of proposalCounts) this.inc({ result }, count.value);
      },
    });
    this.requests = new RequestMetrics();
    this.registry.registerMetric(this.requests.counter as unknown as Metric);
    this.registry.registerMetric(this.requests.histogram as unknown as Metric);
    this.entriesApplied = new Counter({
      name: 'synod_entries_applied_total',
      help: 'Chosen log entries applied, by type (commands, noop, start-working, skipped).',
      labelNames: ['type'],
      registers,
    });
    this.commandsApplied = new Counter({ name: 'synod_commands_applied_total', help: 'Client commands applied (commits).', registers });
    this.batchCommands = new Histogram({
      name: 'synod_batch_commands',
      help: 'Commands per applied log entry (batching).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.fsyncSeconds = new Histogram({
      name: 'synod_fsync_seconds',
      help: 'Latency of one durable append (write + fdatasync) of a Ready batch.',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers,
    });
    this.fsyncRecords = new Histogram({
      name: 'synod_fsync_records',
      help: 'Records made durable by one fdatasync (group commit).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024],
      registers,
    });
    this.leaderChanges = new Counter({ name: 'synod_leader_changes_total', help: 'Changes of the leader this node follows or is.', registers });
    this.readIndexRequests = new Counter({
      name: 'synod_read_index_total',
      help: 'Read-index requests, by outcome (confirmed, lost_leadership, refused).',
      labelNames: ['result'],
      registers,
    });
    this.clientAuthFailures = new Counter({
      name: 'synod_client_auth_failures_total',
      help: 'Clients refused, by API (binary, http) and reason (missing-token, bad-token, tls-handshake).',
      labelNames: ['api', 'reason'],
      registers,
    });
    this.connectionsRefused = new Counter({
      name: 'synod_client_connections_refused_total',
      help: 'Client connections refused, by front end (client, http) and reason (connections: the node\'s cap; per-address: one address\'s cap).',
      labelNames: ['api', 'reason'],
      registers,
    });
    this.stateGauges(source, registers);
    this.peerSecurityCounters(source, registers);
  }

  /** Counts a proposal by outcome (cached per outcome: this runs for every write). */
  countProposal(result: string): void {
    let count = this.proposalCounts.get(result);
    if (count === undefined) this.proposalCounts.set(result, (count = { value: 0 }));
    count.value += 1;
  }

  /** The transport counts refusals and drops itself; these counters mirror it at scrape time. */
  private peerSecurityCounters(source: MetricsSource, registers: Registry[]): void {
    new Counter({
      name: 'synod_peer_auth_failures_total',
      help: 'Peer connections refused at the handshake, by reason (bad-proof, unknown-node, wrong-cluster, tls, ...), either direction.',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, count] of Object.entries(source.transport().authFailuresByReason)) this.inc({ reason }, count);
      },
    });
    new Counter({
      name: 'synod_peer_dropped_messages_total',
      help: 'Messages to or from a peer dropped, by reason (wrong-sender and wrong-recipient: forged on an authenticated link; malformed; queue-full; ...).',
      labelNames: ['peer', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const [peer, stats] of source.transport().peers) {
          for (const [reason, count] of Object.entries(stats.droppedByReason)) this.inc({ peer: String(peer), reason }, count);
        }
      },
    });
  }

  private stateGauges(source: MetricsSource, registers: Registry[]): void {
    new Gauge({ name: 'synod_is_leader', help: '1 if this node is the leader.', registers, collect() {
      this.set(source.isLeader() ? 1 : 0);
    } });
    new Gauge({ name: 'synod_first_unchosen_slot', help: 'The first slot not known chosen here.', registers, collect() {
      this.set(source.firstUnchosen());
    } });
    new Gauge({ name: 'synod_applied_index', help: 'The last slot applied to the state machine.', registers, collect() {
      this.set(source.appliedIndex());
    } });
    new Gauge({ name: 'synod_pending_requests', help: 'Client requests waiting for an answer.', registers, collect() {
      this.set(source.pendingRequests());
    } });
    new Gauge({ name: 'synod_keys', help: 'Keys in the store.', registers, collect() {
      this.set(source.keys());
    } });
    new Gauge({
      name: 'synod_peer_lag_slots',
      help: 'How many slots a peer\'s chosen prefix trails the leader\'s (leader only).',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const peer of source.peers()) if (peer.lagSlots !== null) this.set({ peer: String(peer.id) }, peer.lagSlots);
      },
    });
    new Gauge({
      name: 'synod_peer_rtt_seconds',
      help: 'Last heartbeat round trip to a peer (measured while leading).',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const peer of source.peers()) if (peer.rttSeconds !== null) this.set({ peer: String(peer.id) }, peer.rttSeconds);
      },
    });
    new Gauge({
      name: 'synod_peer_connected',
      help: '1 if the outbound connection to a peer is up.',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const peer of source.peers()) this.set({ peer: String(peer.id) }, peer.connected ? 1 : 0);
      },
    });
  }
}

const REQUEST_SECONDS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** One operation's latency histogram: a count per bucket (the last is +Inf), a sum and a count. */
interface OpLatency {
  readonly buckets: number[];
  sum: number;
  count: number;
  /** Answers by result (ok or the error code). */
  readonly results: Map<string, number>;
}

/** A metric for prom-client's registry, which formats what `get` returns. */
interface ExportedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }>;
  reset(): void;
}

interface ExportedValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName?: string;
}

/**
 * `synod_requests_total{op,result}` and `synod_request_seconds{op}` from plain tallies. prom-client
 * hashes and validates label objects on every `inc` and `observe` (about 4% of a leader's busy
 * time at 64 clients, three calls per request); here a request costs one Map lookup and a bucket
 * scan, and the registry reads the tallies when scraped, in the same exposition format.
 */
export class RequestMetrics {
  private readonly ops = new Map<string, OpLatency>();
  readonly counter: ExportedMetric;
  readonly histogram: ExportedMetric;

  constructor() {
    const ops = this.ops;
    const help = {
      counter: 'Client requests answered, by operation and result (ok or the error code).',
      histogram: 'Time from a client request reaching this node to its answer.',
    };
    this.counter = {
      name: 'synod_requests_total', help: help.counter, type: 'counter', aggregator: 'sum',
      get: () => Promise.resolve({
        name: 'synod_requests_total', help: help.counter, type: 'counter', aggregator: 'sum',
        values: [...ops].flatMap(([op, tally]) => [...tally.results].map(([result, value]) => ({ value, labels: { op, result } }))),
      }),
      reset: () => ops.clear(),
    };
    this.histogram = {
      name: 'synod_request_seconds', help: help.histogram, type: 'histogram', aggregator: 'sum',
      get: () => Promise.resolve({
        name: 'synod_request_seconds', help: help.histogram, type: 'histogram', aggregator: 'sum',
        values: [...ops].flatMap(([op, tally]) => histogramValues(op, tally)),
      }),
      reset: () => ops.clear(),
    };
  }

  /** Counts one answered request and its latency. */
  answered(op: string, result: string, seconds: number): void {
    let tally = this.ops.get(op);
    if (tally === undefined) {
      tally = { buckets: new Array<number>(REQUEST_SECONDS_BUCKETS.length + 1).fill(0), sum: 0, count: 0, results: new Map() };
      this.ops.set(op, tally);
    }
    let bucket = 0;
    while (bucket < REQUEST_SECONDS_BUCKETS.length && seconds > (REQUEST_SECONDS_BUCKETS[bucket] as number)) bucket += 1;
    tally.buckets[bucket] = (tally.buckets[bucket] as number) + 1;
    tally.sum += seconds;
    tally.count += 1;
    tally.results.set(result, (tally.results.get(result) ?? 0) + 1);
  }
}

function histogramValues(op: string, tally: OpLatency): ExportedValue[] {
  const values: ExportedValue[] = [];
  let cumulative = 0;
  REQUEST_SECONDS_BUCKETS.forEach((le, index) => {
    cumulative += tally.buckets[index] as number;
    values.push({ value: cumulative, labels: { le, op }, metricName: 'synod_request_seconds_bucket' });
  });
  values.push({ value: tally.count, labels: { le: '+Inf', op }, metricName: 'synod_request_seconds_bucket' });
  values.push({ value: tally.sum, labels: { op }, metricName: 'synod_request_seconds_sum' });
  values.push({ value: tally.count, labels: { op }, metricName: 'synod_request_seconds_count' });
  return values;
}

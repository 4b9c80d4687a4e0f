/**
 * `SynodClient`: the TypeScript client of a Synod cluster over the binary protocol.
 *
 * Each operation is validated locally, takes a lane (see `lanes.ts`: the exactly-once identity
 * `(lane id, seq)` it keeps through every retry), and is sent to the node believed to lead. The
 * client follows `not_leader` redirects, moves to the next endpoint when a connection fails or an
 * attempt times out, and backs off (jittered, growing, capped) on `overloaded` and `unavailable`,
 * all within one overall deadline; past it the operation fails with `timeout`. Failures that no
 * retry can fix (`cas_failed`, `too_large`, `bad_request`) are thrown at once.
 *
 * One TCP connection per endpoint carries every request to that node, pipelined.
 */
import { randomUUID } from 'node:crypto';
import type tls from 'node:tls';
import { assert, assertNever } from '../core/assert.js';
import { isWellFormed, utf8ByteLength } from '../kv/codec.js';
import {
  validateOperation,
  type KvCasOperation,
  type KvCasResult,
  type KvDeleteResult,
  type KvGetResult,
  type KvListResult,
  type KvOperation,
  type KvPutResult,
  type KvSuccess,
} from '../kv/ops.js';
import { CLIENT_ID_BYTES_MAX } from '../kv/state-machine.js';
import type { NodeEndpoint, NodeStatusReport, ServiceFailure } from '../server/service.js';
import { EndpointConnection, type AttemptOutcome } from './connection.js';
import { parseEndpoint } from './endpoint.js';
import { SynodClientError } from './errors.js';
import { LanePool } from './lanes.js';

export interface SynodClientOptions {
  /** `host:port` of nodes' client listeners; more are learned from redirects. */
  readonly endpoints: readonly string[];
  /**
   * This client's identity for exactly-once (default: random). It must not be shared by two live
   * clients, nor reused by a restarted one within the servers' session memory: sequence numbers
   * restart at 1 and would be refused as stale.
   */
  readonly clientId?: string;
  /** Overall deadline of one operation, retries included (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Deadline of one attempt on one node (default 1000 ms). */
  readonly attemptTimeoutMs?: number;
  /** Most operations in flight at once (default 256); more wait in line. */
  readonly lanes?: number;
  /** The client token, for nodes that require one (sent in the hello of every connection). */
  readonly token?: string;
  /**
   * TLS to the nodes' client ports: `true` verifies their certificates against Node's default
   * roots; an object passes `ca` (the cluster CA, PEM) and any other node:tls connect options.
   * Default: plain TCP.
   */
  readonly tls?: boolean | SynodClientTlsOptions;
  /** First backoff delay after `overloaded`/`unavailable` (default 10 ms); doubles per retry. */
  readonly backoffMsMin?: number;
  /** Largest backoff delay (default 1000 ms). */
  readonly backoffMsMax?: number;
}

/** The node:tls options a client may set; host and port come from the endpoint. */
export type SynodClientTlsOptions = Omit<tls.ConnectionOptions, 'host' | 'port' | 'socket' | 'path'>;

/** One endpoint's answer in `statusAll`. */
export type EndpointStatus =
  | { readonly endpoint: string; readonly status: NodeStatusReport }
  | { readonly endpoint: string; readonly error: SynodClientError };

export const TIMEOUT_MS_DEFAULT = 5000;
export const ATTEMPT_TIMEOUT_MS_DEFAULT = 1000;
export const LANES_DEFAULT = 256;
export const BACKOFF_MS_MIN_DEFAULT = 10;
export const BACKOFF_MS_MAX_DEFAULT = 1000;
/** Most lanes a client may have: lane ids must fit the servers' client id limit. */
export const LANES_MAX = 65_536;
/** Most endpoints a client keeps (given plus learned from redirects): a bound on connections. */
export const ENDPOINTS_MAX = 64;
/** Keys a `list` returns when no limit is given; `more` says whether there are others. */
export const LIST_LIMIT_DEFAULT = 100;

/** Failures that a retry cannot turn into a success. */
const TERMINAL_CODES: ReadonlySet<string> = new Set(['cas_failed', 'too_large', 'bad_request', 'unauthorized']);

/** Where the next attempt of one operation goes, and what happened so far. */
interface Route {
  endpoint: string;
  /** Endpoints that failed in a row (connection lost, attempt timeout, no leader known). */
  misses: number;
  redirects: number;
  backoffs: number;
  lastProblem: string;
  lastLeader?: NodeEndpoint;
}

/** A client of a Synod cluster. Create one per process and share it; `close` it when done. */
export class SynodClient {
  readonly clientId: string;
  private readonly endpoints: string[];
  private readonly connections = new Map<string, EndpointConnection>();
  private readonly lanes: LanePool;
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly backoffMsMin: number;
  private readonly backoffMsMax: number;
  private readonly token: string | null;
  private readonly tls: tls.ConnectionOptions | null;
  /** Where new operations start: the last node that answered or was named leader. */
  private preferred: string;
  private leaderEndpoint: string | null = null;
  private readonly sleeps = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  private closed = false;

  constructor(options: SynodClientOptions) {
    this.endpoints = checkEndpoints(options.endpoints);
    const lanes = options.lanes ?? LANES_DEFAULT;
    if (!Number.isSafeInteger(lanes) || lanes < 1 || lanes > LANES_MAX) throw configError(`lanes must be an integer in [1, ${LANES_MAX}]`);
    this.clientId = checkClientId(options.clientId ?? randomUUID(), lanes);
    this.timeoutMs = checkDuration(options.timeoutMs ?? TIMEOUT_MS_DEFAULT, 'timeoutMs');
    this.attemptTimeoutMs = checkDuration(options.attemptTimeoutMs ?? ATTEMPT_TIMEOUT_MS_DEFAULT, 'attemptTimeoutMs');
    this.backoffMsMin = checkDuration(options.backoffMsMin ?? BACKOFF_MS_MIN_DEFAULT, 'backoffMsMin');
    this.backoffMsMax = checkDuration(options.backoffMsMax ?? BACKOFF_MS_MAX_DEFAULT, 'backoffMsMax');
    if (this.backoffMsMax < this.backoffMsMin) throw configError('backoffMsMax must be at least backoffMsMin');
    this.token = options.token ?? null;
    this.tls = options.tls === undefined || options.tls === false ? null : options.tls === true ? {} : { ...options.tls };
    this.lanes = new LanePool(this.clientId, lanes);
    const first = this.endpoints[0];
    assert(first !== undefined, 'at least one endpoint');
    this.preferred = first;
  }

  /** Sets `key` to `value`. */
  put(key: string, value: string): Promise<KvPutResult> {
    return this.execute({ type: 'put', key, value });
  }

  /** Reads `key` (linearizably); `value` is null when absent. */
  get(key: string): Promise<KvGetResult> {
    return this.execute({ type: 'get', key });
  }

  /** Removes `key`; removing an absent key succeeds with `previous: null`. */
  delete(key: string): Promise<KvDeleteResult> {
    return this.execute({ type: 'delete', key });
  }

  /**
   * Sets `key` to `value` if every given expectation holds (`expectedValue: null` or
   * `expectedVersion: 0`: the key is absent); else throws `cas_failed` with `current`.
   */
  cas(key: string, value: string, expected: { readonly expectedValue?: string | null; readonly expectedVersion?: number }): Promise<KvCasResult> {
    const operation: { -readonly [K in keyof KvCasOperation]: KvCasOperation[K] } = { type: 'cas', key, value };
    if (expected.expectedValue !== undefined) operation.expectedValue = expected.expectedValue;
    if (expected.expectedVersion !== undefined) operation.expectedVersion = expected.expectedVersion;
    return this.execute(operation);
  }

  /** Lists up to `limit` (default `LIST_LIMIT_DEFAULT`) keys starting with `prefix`, in UTF-8 byte order. */
  list(prefix: string, options: { readonly limit?: number } = {}): Promise<KvListResult> {
    return this.execute({ type: 'list', prefix, limit: options.limit ?? LIST_LIMIT_DEFAULT });
  }

  /** The endpoint last known to lead (it answered, or a node named it); null when unknown. */
  leader(): string | null {
    return this.leaderEndpoint;
  }

  /** One node's status (default: the known leader, else the first endpoint); one attempt. */
  async status(endpoint?: string): Promise<NodeStatusReport> {
    this.checkOpen();
    const target = endpoint ?? this.leaderEndpoint ?? this.preferred;
    const connection = this.connection(target);
    const outcome = await connection.attempt({ type: 'status-request' }, Math.min(this.attemptTimeoutMs, this.timeoutMs));
    if (outcome.kind === 'status') return outcome.status;
    if (outcome.kind === 'failure') throw SynodClientError.fromFailure(outcome.failure);
    if (outcome.kind === 'timeout') throw new SynodClientError('timeout', `${target} did not answer in time`);
    if (outcome.kind === 'lost') throw this.lostError(target, outcome.reason, outcome.failure);
    throw new SynodClientError('unavailable', `${target} answered a status request with a ${outcome.kind}`);
  }

  /** Every known endpoint's status, or why it could not be had; never throws for one node. */
  async statusAll(): Promise<EndpointStatus[]> {
    return Promise.all([...this.endpoints].map(async (endpoint): Promise<EndpointStatus> => {
      try {
        return { endpoint, status: await this.status(endpoint) };
      } catch (error) {
        if (!(error instanceof SynodClientError)) throw error;
        return { endpoint, error };
      }
    }));
  }

  /**
   * Closes every connection. Operations in flight fail with `unavailable` (a write already sent
   * may still take effect, exactly once). Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.lanes.rejectAll(closedError());
    for (const sleep of this.sleeps) {
      clearTimeout(sleep.timer);
      sleep.wake();
    }
    this.sleeps.clear();
    await Promise.all([...this.connections.values()].map((connection) => connection.close()));
  }

  /**
   * Takes a lane, then attempts the request until it succeeds, fails terminally, or the deadline
   * passes. One async function, and no promise for a lane that is free: the client's CPU per
   * operation competes with the servers' on a small machine (README "Benchmarks").
   */
  private async execute<T extends KvSuccess>(operation: KvOperation): Promise<T> {
    this.checkOpen();
    const invalid = validateOperation(operation);
    if (invalid !== null) throw SynodClientError.fromFailure(invalid);
    const deadline = Date.now() + this.timeoutMs;
    const lane = this.lanes.tryAcquire()
      ?? await this.lanes.acquire(this.timeoutMs, () => new SynodClientError('timeout', `no free lane within ${this.timeoutMs} ms (nothing was sent)`));
    try {
      const body = { type: 'request', clientId: lane.id, seq: lane.nextSeq(), operation } as const;
      const route: Route = { endpoint: this.preferred, misses: 0, redirects: 0, backoffs: 0, lastProblem: 'no attempt finished' };
      // Bounded by the deadline: every iteration waits for an attempt or a backoff, both of which
      // end by the deadline, and the check below then stops the loop.
      while (true) {
        this.checkOpen();
        const remainingMs = deadline - Date.now();
        if (remainingMs <= 0) throw this.timeoutError(route);
        const outcome = await this.connection(route.endpoint).attempt(body, Math.min(this.attemptTimeoutMs, remainingMs));
        this.checkOpen();
        if (outcome.kind === 'result') {
          this.onAnswered(route.endpoint);
          const result = outcome.result;
          if (result.type !== operation.type) {
            throw new SynodClientError('unavailable', `node answered a ${operation.type} with a ${result.type} result`);
          }
          return result as T;
        }
        const delayMs = this.reroute(route, outcome);
        if (delayMs > 0) await this.sleep(Math.min(delayMs, deadline - Date.now()));
      }
    } finally {
      if (!this.closed) this.lanes.release(lane);
    }
  }

  /** Decides where the next attempt goes after `outcome`; returns how long to wait first. */
  private reroute(route: Route, outcome: Exclude<AttemptOutcome, { kind: 'result' }>): number {
    switch (outcome.kind) {
      case 'failure':
        return this.onFailure(route, outcome.failure);
      case 'lost':
        // A node that refuses our token refuses it on every connection.
        if (outcome.failure?.error === 'unauthorized') throw SynodClientError.fromFailure(outcome.failure);
        route.lastProblem = `${route.endpoint}: ${outcome.reason}`;
        if (outcome.failure !== undefined && outcome.failure.error === 'overloaded') return this.backoff(route);
        return this.moveOn(route);
      case 'timeout':
        route.lastProblem = `${route.endpoint}: no answer within ${this.attemptTimeoutMs} ms`;
        return this.moveOn(route);
      case 'status':
        route.lastProblem = `${route.endpoint}: answered a request with a status`;
        return this.moveOn(route);
      default:
        return assertNever(outcome, 'attempt outcome');
    }
  }

  private onFailure(route: Route, failure: ServiceFailure): number {
    if (TERMINAL_CODES.has(failure.error)) throw SynodClientError.fromFailure(failure);
    route.lastProblem = `${route.endpoint}: ${failure.error}: ${failure.message}`;
    if (failure.error === 'not_leader') return this.onNotLeader(route, failure.leader);
    if (failure.error === 'unavailable') {
      // This node cannot serve now (no quorum, stopping); another may lead soon.
      const delayMs = this.backoff(route);
      this.advance(route);
      return delayMs;
    }
    // overloaded, or the node timed out (the write may be pending): same node, later.
    return this.backoff(route);
  }

  /** Follows a redirect to a named leader; without one, tries the next endpoint. */
  private onNotLeader(route: Route, leader: NodeEndpoint | undefined): number {
    if (leader !== undefined) route.lastLeader = leader;
    const hint = leader?.clientAddress ?? null;
    if (hint === null || hint === route.endpoint || !this.learn(hint)) return this.moveOn(route);
    this.leaderEndpoint = hint;
    this.preferred = hint;
    route.endpoint = hint;
    route.redirects += 1;
    // Nodes pointing at each other (a stale view during an election) must not spin.
    return route.redirects > this.endpoints.length ? this.backoff(route) : 0;
  }

  /** Adds a redirect target to the endpoints; false when it is junk or there are too many. */
  private learn(endpoint: string): boolean {
    if (this.endpoints.includes(endpoint)) return true;
    if (parseEndpoint(endpoint) === null || this.endpoints.length >= ENDPOINTS_MAX) return false;
    this.endpoints.push(endpoint);
    return true;
  }

  /** After a failure on this node: the next endpoint, with a backoff once all have failed in a row. */
  private moveOn(route: Route): number {
    if (this.leaderEndpoint === route.endpoint) this.leaderEndpoint = null;
    this.advance(route);
    route.misses += 1;
    if (route.misses < this.endpoints.length) return 0;
    route.misses = 0;
    return this.backoff(route);
  }

  private advance(route: Route): void {
    const index = this.endpoints.indexOf(route.endpoint);
    const next = this.endpoints[(index + 1) % this.endpoints.length];
    assert(next !== undefined, 'endpoints are never empty');
    route.endpoint = next;
    this.preferred = next;
  }

  /** Jittered exponential backoff: drawn from [base/2, base), base doubling per backoff, capped. */
  private backoff(route: Route): number {
    const baseMs = Math.min(this.backoffMsMax, this.backoffMsMin * 2 ** Math.min(route.backoffs, 30));
    route.backoffs += 1;
    return baseMs / 2 + (Math.random() * baseMs) / 2;
  }

  private onAnswered(endpoint: string): void {
    this.leaderEndpoint = endpoint;
    this.preferred = endpoint;
  }

  private connection(endpoint: string): EndpointConnection {
    let connection = this.connections.get(endpoint);
    if (connection === undefined) {
      const address = parseEndpoint(endpoint);
      if (address === null) throw configError(`endpoint ${JSON.stringify(endpoint)} is not host:port`);
      connection = new EndpointConnection(endpoint, address, { token: this.token, connectTimeoutMs: this.attemptTimeoutMs, tls: this.tls });
      this.connections.set(endpoint, connection);
    }
    return connection;
  }

  /** Waits `delayMs`; `close` ends the wait early. */
  private sleep(delayMs: number): Promise<void> {
    if (delayMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const sleep = {
        timer: setTimeout(() => {
          this.sleeps.delete(sleep);
          resolve();
        }, delayMs),
        wake: resolve,
      };
      this.sleeps.add(sleep);
    });
  }

  private checkOpen(): void {
    if (this.closed) throw closedError();
  }

  private timeoutError(route: Route): SynodClientError {
    const message = `no answer within ${this.timeoutMs} ms; the outcome is unknown (last: ${route.lastProblem})`;
    return new SynodClientError('timeout', message, { leader: route.lastLeader });
  }

  private lostError(endpoint: string, reason: string, failure: ServiceFailure | undefined): SynodClientError {
    if (failure !== undefined) return SynodClientError.fromFailure(failure);
    return new SynodClientError('unavailable', `${endpoint}: ${reason}`);
  }
}

function closedError(): SynodClientError {
  return new SynodClientError('unavailable', 'the client is closed');
}

function configError(message: string): SynodClientError {
  return new SynodClientError('bad_request', message);
}

function checkEndpoints(endpoints: readonly string[]): string[] {
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw configError('endpoints must list at least one host:port');
  if (endpoints.length > ENDPOINTS_MAX) throw configError(`endpoints must list at most ${ENDPOINTS_MAX}`);
  for (const endpoint of endpoints) {
    if (parseEndpoint(endpoint) === null) throw configError(`endpoint ${JSON.stringify(endpoint)} is not host:port`);
  }
  return [...new Set(endpoints)];
}

/** A client id leaves room for the lane suffix within the servers' client id limit. */
function checkClientId(clientId: string, lanes: number): string {
  if (typeof clientId !== 'string' || clientId.length === 0 || !isWellFormed(clientId)) {
    throw configError('clientId must be a non-empty, well-formed string');
  }
  const bytesMax = CLIENT_ID_BYTES_MAX - `.${lanes - 1}`.length;
  if (utf8ByteLength(clientId) > bytesMax) throw configError(`clientId must be at most ${bytesMax} bytes`);
  return clientId;
}

function checkDuration(durationMs: number, name: string): number {
  if (typeof durationMs !== 'number' || !Number.isFinite(durationMs) || durationMs <= 0) throw configError(`${name} must be a positive number of ms`);
  return durationMs;
}

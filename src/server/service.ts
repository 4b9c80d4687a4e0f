/**
 * The contract between a node's key-value service and its client front ends (HTTP/JSON and the
 * binary protocol). A front end decodes a request, calls `KvService.submit`, and encodes the
 * answer; it never touches the replica. Tests drive the front ends with a fake service.
 */
import type { KvCurrent, KvOperation, KvSuccess } from '../kv/ops.js';

/**
 * Every error a client can see, typed. The first three come from the state machine (nothing
 * changed); the others from the service:
 * - `not_leader`: this node does not lead; `leader` says where to go, when known. Nothing changed.
 * - `timeout`: no answer in time. The outcome is unknown: a write may still take effect, exactly
 *   once (retrying with the same (clientId, seq) returns its result).
 * - `unavailable`: the node cannot serve now (no quorum, stopping, failed storage). Nothing changed
 *   by this attempt unless it was a write already proposed; then as `timeout`.
 * - `overloaded`: a bounded queue is full; retry later. Nothing changed.
 * - `unauthorized`: the node requires a client token and none, or a wrong one, was presented.
 *   Nothing changed; retrying with the same credentials will not help.
 */
export type ServiceErrorCode =
  | 'cas_failed'
  | 'too_large'
  | 'bad_request'
  | 'not_leader'
  | 'timeout'
  | 'unavailable'
  | 'overloaded'
  | 'unauthorized';

export const SERVICE_ERROR_CODES: readonly ServiceErrorCode[] = [
  'cas_failed',
  'too_large',
  'bad_request',
  'not_leader',
  'timeout',
  'unavailable',
  'overloaded',
  'unauthorized',
];

/** Where a node can be reached by clients. Addresses are `host:port`; null when not served. */
export interface NodeEndpoint {
  readonly id: number;
  /** The binary client protocol. */
  readonly clientAddress: string | null;
  /** The HTTP/JSON API. */
  readonly httpAddress: string | null;
}

/** A failed request. `current` is set for `cas_failed`; `leader` may be set for `not_leader`. */
export interface ServiceFailure {
  readonly ok: false;
  readonly error: ServiceErrorCode;
  readonly message: string;
  readonly current?: KvCurrent;
  readonly leader?: NodeEndpoint;
}

export type ServiceResult = KvSuccess | ServiceFailure;

/**
 * Identifies a request for exactly-once: a client numbers its requests 1, 2, 3, ... within its
 * `clientId` and retries a request with the same `seq` until it hears back. A client has at most
 * one write outstanding per seq; a new seq means every earlier one was answered or abandoned.
 */
export interface RequestId {
  readonly clientId: string;
  readonly seq: number;
}

export interface SubmitOptions {
  /** Give up after this long with `timeout` (the service has a default). */
  readonly timeoutMs?: number;
}

/** One node's view of itself, for `synod status` and `/v1/status`. */
export interface NodeStatusReport {
  readonly id: number;
  readonly role: 'follower' | 'candidate' | 'leader';
  /** True when this node leads and serves (its StartWorking entry is chosen). */
  readonly serving: boolean;
  readonly leader: NodeEndpoint | null;
  /** Promised ballot as "round.node" (the epoch a leader works in). */
  readonly ballot: string;
  readonly firstUnchosen: number;
  readonly appliedIndex: number;
  readonly maxSlot: number;
  /** Store revision and size. */
  readonly revision: number;
  readonly keys: number;
  /** Per peer as seen by a leader: how far behind its log is (slots), and the last round trip (ms). */
  readonly peers: readonly PeerStatus[];
  readonly readMode: ReadMode;
  readonly uptimeMs: number;
}

export interface PeerStatus {
  readonly id: number;
  readonly connected: boolean;
  /** Slots the peer's firstUnchosen trails this node's; null when unknown (not leader). */
  readonly lag: number | null;
  readonly rttMs: number | null;
}

/**
 * How linearizable reads are served:
 * - `index`: read index. The leader notes its last assigned slot, confirms with a quorum that it
 *   still leads (one heartbeat round shared by all reads waiting), waits until it has applied
 *   that slot, then answers locally. No log write, no clock assumption.
 * - `log`: reads go through the log like writes (slower; the reference behaviour).
 */
export type ReadMode = 'index' | 'log';

/** What a node offers its client front ends. */
export interface KvService {
  /**
   * Executes one operation linearizably. `id` makes a write exactly-once across retries; without
   * it the service assigns a fresh one (at-most-once per call). Never rejects: every failure is a
   * typed `ServiceFailure`.
   */
  submit(operation: KvOperation, id?: RequestId, options?: SubmitOptions): Promise<ServiceResult>;
  status(): NodeStatusReport;
  /** Prometheus text exposition of this node's metrics. */
  metrics(): Promise<string>;
  /** Content type to send with `metrics()`. */
  readonly metricsContentType: string;
}

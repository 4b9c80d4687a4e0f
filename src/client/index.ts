/**
 * The TypeScript client library of Synod: `SynodClient` speaks the binary client protocol to a
 * cluster's nodes, with pipelining, leader discovery, retries and exactly-once writes.
 */
export {
  ATTEMPT_TIMEOUT_MS_DEFAULT,
  BACKOFF_MS_MAX_DEFAULT,
  BACKOFF_MS_MIN_DEFAULT,
  ENDPOINTS_MAX,
  LANES_DEFAULT,
  LIST_LIMIT_DEFAULT,
  LANES_MAX,
  SynodClient,
  TIMEOUT_MS_DEFAULT,
} from './client.js';
export type { EndpointStatus, SynodClientOptions, SynodClientTlsOptions } from './client.js';
export { SynodClientError } from './errors.js';
export type { SynodClientErrorDetails } from './errors.js';
export { parseEndpoint } from './endpoint.js';
export type { EndpointAddress } from './endpoint.js';
export type {
  KvCasResult,
  KvCurrent,
  KvDeleteResult,
  KvGetResult,
  KvListEntry,
  KvListResult,
  KvPutResult,
} from '../kv/ops.js';
export type { NodeEndpoint, NodeStatusReport, ServiceErrorCode } from '../server/service.js';

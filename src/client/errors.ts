/**
 * The one error type `SynodClient` throws. Its `code` is the service's (`ServiceErrorCode`), so a
 * caller handles a failure the same way whether the node or the client library detected it.
 */
import type { KvCurrent, KvFailure } from '../kv/ops.js';
import type { NodeEndpoint, ServiceErrorCode, ServiceFailure } from '../server/service.js';

/** Extra facts some failures carry. */
export interface SynodClientErrorDetails {
  /** The key's value and version, for `cas_failed`. */
  readonly current?: KvCurrent;
  /** The leader last named by a node, for `not_leader` and a `timeout` that followed one. */
  readonly leader?: NodeEndpoint;
  readonly cause?: unknown;
}

/**
 * A failed operation. What `code` means for the outcome:
 * - `cas_failed`, `too_large`, `bad_request`: nothing changed; retrying will not help.
 * - `unauthorized`: the node requires a client token (`token`) and did not get the right one;
 *   nothing was executed.
 * - `timeout`: no answer before the deadline; a write may or may not have taken effect (exactly
 *   once if it did).
 * - `unavailable`: the client was closed or a node cannot serve; as `timeout` for a write that
 *   was already sent.
 * - `not_leader`, `overloaded`: only from `status` (operations retry them until the deadline).
 */
export class SynodClientError extends Error {
  override readonly name = 'SynodClientError';
  readonly current?: KvCurrent;
  readonly leader?: NodeEndpoint;

  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    details: SynodClientErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    if (details.current !== undefined) this.current = details.current;
    if (details.leader !== undefined) this.leader = details.leader;
  }

  /** The error for a failure a node answered (or client-side validation found). */
  static fromFailure(failure: ServiceFailure | KvFailure): SynodClientError {
    const leader = 'leader' in failure ? failure.leader : undefined;
    return new SynodClientError(failure.error, failure.message, { current: failure.current, leader });
  }
}

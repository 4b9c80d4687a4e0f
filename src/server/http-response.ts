/**
 * Encoding of answers for the HTTP/JSON client API (`http.ts`). Each builder returns a `Reply`, a
 * plain value (status, headers, body) that `http.ts` writes; so the mapping from results and
 * errors to HTTP is pure and has one place:
 *
 *   bad_request 400   too_large 413   cas_failed 409   overloaded 429 (Retry-After: 1)
 *   not_leader  307 to the leader's HTTP address, or 503 when it is unknown
 *   unavailable 503 (Retry-After: 1)   timeout 504   not_found 404   method_not_allowed 405
 *   unauthorized 401 (WWW-Authenticate: Bearer)   internal 500
 *
 * Every error body is `{"error": code, "message": ...}` (plus `current` for cas_failed, `leader`
 * for not_leader) and every error carries `Synod-Error: <code>`, so a client can branch on the
 * code without parsing the body.
 */
import { assert, assertNever } from '../core/assert.js';
import type { KvOperation, KvSuccess } from '../kv/ops.js';
import type { HttpErrorCode } from './http-request.js';
import type { KvService, ServiceFailure } from './service.js';

/** One HTTP answer, before it is written. Header names are lower-case. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export const ERROR_HEADER = 'synod-error';
export const LEADER_HEADER = 'synod-leader';

/** RFC 6750's challenge for a 401: the scheme, and `invalid_token` when a token came and is wrong. */
export function bearerChallenge(invalidToken: boolean): string {
  return invalidToken ? 'Bearer realm="synod", error="invalid_token"' : 'Bearer realm="synod"';
}

const ERROR_STATUS: Readonly<Record<HttpErrorCode, number>> = {
  bad_request: 400,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  cas_failed: 409,
  too_large: 413,
  overloaded: 429,
  internal: 500,
  not_leader: 503,
  unavailable: 503,
  timeout: 504,
};

/** The status an error code maps to (`not_leader` only when no redirect is possible). */
export function errorStatus(code: HttpErrorCode): number {
  return ERROR_STATUS[code];
}

/** `value` as JSON with a trailing newline (so curl leaves the prompt on its own line). */
export function jsonReply(status: number, value: unknown, headers: Readonly<Record<string, string>> = {}): Reply {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: `${JSON.stringify(value)}\n`,
  };
}

/** Plain text, for `/healthz` and `/metrics`. */
export function textReply(status: number, body: string, contentType = 'text/plain; charset=utf-8'): Reply {
  return { status, headers: { 'content-type': contentType, 'cache-control': 'no-store' }, body };
}

/** An error answer: the code's status, `Synod-Error`, and `extra` fields beside error and message. */
export function errorReply(
  code: HttpErrorCode,
  message: string,
  extra: Readonly<Record<string, unknown>> = {},
  headers: Readonly<Record<string, string>> = {},
  status = errorStatus(code),
): Reply {
  const errorHeaders: Record<string, string> = { [ERROR_HEADER]: code };
  if (status === 429 || status === 503) errorHeaders['retry-after'] = '1';
  if (status === 401) errorHeaders['www-authenticate'] = bearerChallenge(false);
  return jsonReply(status, { error: code, message, ...extra }, { ...errorHeaders, ...headers });
}

/**
 * The answer to a failed submit. `pathAndQuery` is the request's origin-form target: a
 * `not_leader` with a known leader HTTP address becomes a 307 to the same target there (over
 * `scheme`: every node of a cluster serves HTTPS or none does), which keeps the method and body
 * (`curl -L` re-sends a PUT's body on 307, unlike on 301/302).
 */
export function failureReply(failure: ServiceFailure, pathAndQuery: string, scheme: 'http' | 'https' = 'http'): Reply {
  switch (failure.error) {
    case 'cas_failed':
      return errorReply(failure.error, failure.message, failure.current === undefined ? {} : { current: failure.current });
    case 'not_leader':
      return notLeaderReply(failure, pathAndQuery, scheme);
    case 'too_large':
    case 'bad_request':
    case 'timeout':
    case 'unavailable':
    case 'overloaded':
    case 'unauthorized':
      return errorReply(failure.error, failure.message);
    default:
      return assertNever(failure.error, 'service error code');
  }
}

function notLeaderReply(failure: ServiceFailure, pathAndQuery: string, scheme: 'http' | 'https'): Reply {
  const leader = failure.leader;
  if (leader === undefined) return errorReply('not_leader', failure.message);
  const leaderHeader = { [LEADER_HEADER]: String(leader.id) };
  const authority = leader.httpAddress === null ? null : httpAuthority(leader.httpAddress);
  if (authority === null) return errorReply('not_leader', failure.message, { leader }, leaderHeader);
  const location = `${scheme}://${authority}${pathAndQuery}`;
  return errorReply('not_leader', failure.message, { leader }, { ...leaderHeader, location }, 307);
}

const HOST_PORT = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})$/;
const BARE_IPV6_PORT = /^([0-9A-Fa-f:.]+):([0-9]{1,5})$/;

/**
 * `host:port` as a URL authority: a bare IPv6 host is bracketed; anything else that is not a
 * plain host and port is refused (null), since it would end up in a `Location` header.
 */
export function httpAuthority(address: string): string | null {
  if (HOST_PORT.test(address)) return address;
  const ipv6 = BARE_IPV6_PORT.exec(address);
  if (ipv6 !== null && ipv6[1]?.includes(':') === true) return `[${ipv6[1]}]:${ipv6[2]}`;
  return null;
}

/**
 * The answer to a successful submit of `operation` on `key`. A get of an absent key is a 404 with
 * the same shape (`value: null, version: 0`), so scripts can test the status alone.
 */
export function successReply(operation: KvOperation, result: KvSuccess): Reply {
  assert(result.type === operation.type, `service answered ${result.type} to ${operation.type}`);
  switch (result.type) {
    case 'put':
    case 'cas':
      return jsonReply(200, { key: keyOf(operation), version: result.version, revision: result.revision, previous: result.previous });
    case 'get':
      return jsonReply(result.value === null ? 404 : 200, {
        key: keyOf(operation),
        value: result.value,
        version: result.version,
        revision: result.revision,
      });
    case 'delete':
      return jsonReply(200, { key: keyOf(operation), previous: result.previous, revision: result.revision });
    case 'list':
      return jsonReply(200, {
        entries: result.entries.map((entry) => ({ key: entry.key, value: entry.value, version: entry.version })),
        more: result.more,
        revision: result.revision,
      });
    default:
      return assertNever(result, 'kv result');
  }
}

function keyOf(operation: KvOperation): string {
  assert(operation.type !== 'list', 'a list has no key');
  return operation.key;
}

/** `GET /v1/status`. */
export function statusReply(service: KvService): Reply {
  return jsonReply(200, service.status());
}

/** `GET /metrics`, in the service's exposition format. */
export async function metricsReply(service: KvService): Promise<Reply> {
  return textReply(200, await service.metrics(), service.metricsContentType);
}

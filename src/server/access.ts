/**
 * Who may use a node's client APIs. With a client token configured, every binary connection must
 * present it in its hello and every HTTP request (but `/healthz`) as `Authorization: Bearer`;
 * otherwise the APIs are open to whoever can reach their address (which is loopback unless the
 * operator binds them elsewhere).
 *
 * Tokens are compared in constant time: both sides are hashed with SHA-256 first, so neither the
 * position of the first wrong byte nor the token's length shows in the timing. A refusal is
 * counted (`onRefused`, the node's metrics) and logged with the remote address, never with the
 * token, and the log is rate-limited so that a client hammering with bad tokens cannot flood it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { assertNever } from '../core/assert.js';
import { TOKEN_BYTES_MAX } from '../protocol/wire.js';
import { LimitedLogger, type LimitableLogger } from '../transport/log-limit.js';

/** The client front ends. */
export type ClientApi = 'binary' | 'http';

/**
 * Why a client was refused: no token where one is required, a token that does not match, or a
 * TLS handshake that failed (a plaintext client on a TLS port, a client that does not trust us).
 */
export type ClientRefusal = 'missing-token' | 'bad-token' | 'tls-handshake';

/** The shortest client token accepted, in characters (like the cluster secret). */
export const CLIENT_TOKEN_CHARS_MIN = 16;

/** Visible ASCII only: a token travels in an HTTP header and must survive copy and paste. */
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;

/** Why `token` cannot be a client token, or null if it can. */
export function clientTokenProblem(token: string): string | null {
  if (token.length < CLIENT_TOKEN_CHARS_MIN) return `the client token must be at least ${CLIENT_TOKEN_CHARS_MIN} characters`;
  if (Buffer.byteLength(token, 'utf8') > TOKEN_BYTES_MAX) return `the client token must be at most ${TOKEN_BYTES_MAX} bytes`;
  if (!TOKEN_PATTERN.test(token)) return 'the client token must be visible ASCII characters (no spaces)';
  return null;
}

/** The token of an `Authorization: Bearer <token>` header; null when absent or another scheme. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
  return match === null ? null : (match[1] as string);
}

export interface ClientAccessOptions {
  /** The token clients must present; null: no token required. */
  readonly token: string | null;
  readonly logger?: LimitableLogger;
  /** Hears every refusal, for metrics. */
  readonly onRefused?: (api: ClientApi, reason: ClientRefusal) => void;
}

/** Decides whether a client may proceed, and counts and logs those refused. */
export class ClientAccess {
  private readonly digest: Buffer | null;
  private readonly logger: LimitableLogger | null;
  private readonly onRefused: (api: ClientApi, reason: ClientRefusal) => void;
  private readonly refusals = new Map<string, number>();

  constructor(options: ClientAccessOptions) {
    if (options.token !== null) {
      const problem = clientTokenProblem(options.token);
      if (problem !== null) throw new RangeError(problem);
    }
    this.digest = options.token === null ? null : sha256(options.token);
    this.logger = options.logger === undefined ? null : new LimitedLogger(options.logger);
    this.onRefused = options.onRefused ?? (() => {});
  }

  /** Whether clients must present a token. */
  get tokenRequired(): boolean {
    return this.digest !== null;
  }

  /** Null when `presented` lets the client in; else why not (already counted and logged). */
  admit(api: ClientApi, presented: string | null, remote: string): ClientRefusal | null {
    if (this.digest === null) return null;
    if (presented === null || presented.length === 0) return this.refuse(api, 'missing-token', remote);
    return timingSafeEqual(sha256(presented), this.digest) ? null : this.refuse(api, 'bad-token', remote);
  }

  /** Records a failed TLS handshake on a client listener (Node has already closed the socket). */
  tlsFailed(api: ClientApi, error: Error, remote: string): void {
    this.refuse(api, 'tls-handshake', remote, error.message);
  }

  /** Refusals so far, by `api/reason` (for tests and status pages). */
  stats(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.refusals);
  }

  private refuse(api: ClientApi, reason: ClientRefusal, remote: string, detail?: string): ClientRefusal {
    const key = `${api}/${reason}`;
    this.refusals.set(key, (this.refusals.get(key) ?? 0) + 1);
    this.onRefused(api, reason);
    this.logger?.warn({ api, reason, remote, ...(detail === undefined ? {} : { error: detail }) }, 'client refused');
    return reason;
  }
}

/** What a refused client is told: whether a token was missing or wrong, nothing about the right one. */
export function refusalMessage(reason: ClientRefusal): string {
  switch (reason) {
    case 'missing-token':
      return 'this node requires a client token';
    case 'bad-token':
      return 'the client token is not valid';
    case 'tls-handshake':
      return 'the TLS handshake failed';
    default:
      return assertNever(reason, 'client refusal');
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

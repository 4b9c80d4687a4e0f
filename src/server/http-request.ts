/**
 * Decoding of requests for the HTTP/JSON client API (`http.ts`): the request target, strict query
 * strings, the exactly-once headers, and bodies read under a byte limit. Every malformed input
 * becomes an `HttpApiError` carrying the error code the client will see; nothing here calls the
 * service.
 *
 * Parsing is strict on purpose. A misspelt `ifVersion` that were ignored would turn a
 * compare-and-set into an unconditional put, so unknown or repeated query parameters are refused,
 * as are malformed percent-escapes (never silently replaced by U+FFFD).
 */
import type { IncomingMessage } from 'node:http';
import type { KvCasOperation, KvListOperation, KvOperation, KvPutOperation } from '../kv/ops.js';
import { LIST_LIMIT_MAX } from '../kv/ops.js';
import { CLIENT_ID_BYTES_MAX } from '../kv/state-machine.js';
import type { RequestId, ServiceErrorCode } from './service.js';

/**
 * Every error code the HTTP API answers with: the service's, plus `not_found` (no such route),
 * `method_not_allowed` (the route exists, the method does not) and `internal` (a bug: logged).
 */
export type HttpErrorCode = ServiceErrorCode | 'not_found' | 'method_not_allowed' | 'internal';

/** A request the API refuses; `code` picks the status (see `http-response.ts`). */
export class HttpApiError extends Error {
  override readonly name = 'HttpApiError';

  constructor(
    readonly code: HttpErrorCode,
    message: string,
    /** For `method_not_allowed`: the methods the route accepts (the `Allow` header). */
    readonly allow: readonly string[] = [],
  ) {
    super(message);
  }
}

/** The client went away before its request was complete: there is no one to answer. */
export class RequestAbortedError extends Error {
  override readonly name = 'RequestAbortedError';
}

function badRequest(message: string): HttpApiError {
  return new HttpApiError('bad_request', message);
}

// The request target.

/** A request target split into its raw (still percent-encoded) path and its decoded query. */
export interface RequestTarget {
  /** Origin-form path, as sent: `Location` headers reuse it byte for byte. */
  readonly path: string;
  /** The raw query without `?` ('' when none). */
  readonly rawQuery: string;
  readonly query: ReadonlyMap<string, string>;
}

/** A scheme and authority, as in an absolute-form target (`GET http://host/path HTTP/1.1`). */
const ABSOLUTE_FORM_PREFIX = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * Splits `url` (`IncomingMessage.url`) without normalising it: a key may contain `//` or `..`
 * segments, which `new URL` would rewrite.
 */
export function parseTarget(url: string): RequestTarget {
  let originForm = url;
  if (!url.startsWith('/')) {
    const prefix = ABSOLUTE_FORM_PREFIX.exec(url);
    if (prefix === null) throw badRequest('request target must be a path');
    originForm = url.slice(prefix[0].length);
    if (!originForm.startsWith('/')) originForm = `/${originForm}`;
  }
  const hash = originForm.indexOf('#');
  if (hash >= 0) originForm = originForm.slice(0, hash);
  const question = originForm.indexOf('?');
  const path = question < 0 ? originForm : originForm.slice(0, question);
  const rawQuery = question < 0 ? '' : originForm.slice(question + 1);
  return { path, rawQuery, query: parseQuery(rawQuery) };
}

/** Decodes `a=1&b=x%20y` as a form does (`+` is a space); repeats and bad escapes are errors. */
function parseQuery(rawQuery: string): Map<string, string> {
  const query = new Map<string, string>();
  for (const part of rawQuery.split('&')) {
    if (part.length === 0) continue;
    const equals = part.indexOf('=');
    const name = decodeQueryComponent(equals < 0 ? part : part.slice(0, equals), 'a query parameter name');
    const value = equals < 0 ? '' : decodeQueryComponent(part.slice(equals + 1), `query parameter ${name}`);
    if (query.has(name)) throw badRequest(`query parameter ${name} is given more than once`);
    query.set(name, value);
  }
  return query;
}

function decodeQueryComponent(raw: string, what: string): string {
  return decodeComponent(raw.replaceAll('+', ' '), what);
}

/** Percent-decodes UTF-8; a bad escape or invalid UTF-8 is a `bad_request` naming `what`. */
export function decodeComponent(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badRequest(`${what} has a malformed percent-escape or is not UTF-8`);
  }
}

/** Refuses query parameters the route does not take (a typo must not weaken a request). */
export function checkQueryNames(target: RequestTarget, allowed: readonly string[]): void {
  for (const name of target.query.keys()) {
    if (allowed.includes(name)) continue;
    const takes = allowed.length === 0 ? 'no query parameters' : allowed.join(', ');
    throw badRequest(`unknown query parameter ${JSON.stringify(name)} (this route takes ${takes})`);
  }
}

/** An HTTP/1.1 request must name its host (RFC 9112 §3.2); we do not use it, but refuse without. */
export function checkHost(request: IncomingMessage): void {
  if (request.httpVersion === '1.1' && request.headers.host === undefined) throw badRequest('an HTTP/1.1 request needs a Host header');
}

// Routes.

/** What a path names. `key` is null for the collection `/v1/kv`, '' for `/v1/kv/`. */
export type Route =
  | { readonly kind: 'kv'; readonly key: string | null }
  | { readonly kind: 'status' }
  | { readonly kind: 'metrics' }
  | { readonly kind: 'health' };

const KV_PREFIX = '/v1/kv/';
const FIXED_ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ['/v1/kv', { kind: 'kv', key: null }],
  ['/v1/status', { kind: 'status' }],
  ['/metrics', { kind: 'metrics' }],
  ['/healthz', { kind: 'health' }],
]);

/** Maps a raw path to its route; the key is percent-decoded (it may contain `/`). */
export function matchRoute(path: string): Route {
  if (path.startsWith(KV_PREFIX)) return { kind: 'kv', key: decodeComponent(path.slice(KV_PREFIX.length), 'the key') };
  const route = FIXED_ROUTES.get(path);
  if (route === undefined) throw new HttpApiError('not_found', `no route for ${path}`);
  return route;
}

const READ_METHODS: readonly string[] = ['GET', 'HEAD'];
const KEY_METHODS: readonly string[] = ['GET', 'HEAD', 'PUT', 'DELETE'];

/** The methods a route accepts, for the check and for `Allow`. */
export function allowedMethods(route: Route): readonly string[] {
  return route.kind === 'kv' && route.key !== null ? KEY_METHODS : READ_METHODS;
}

/** Refuses a method the route does not accept, with `method_not_allowed` and its `Allow` list. */
export function checkMethod(route: Route, method: string): void {
  const allowed = allowedMethods(route);
  if (!allowed.includes(method)) throw new HttpApiError('method_not_allowed', `${method} is not allowed here`, allowed);
}

// Exactly-once headers.

/** Header names are lower-case in node:http. */
export const CLIENT_ID_HEADER = 'synod-client-id';
export const SEQ_HEADER = 'synod-seq';

/** Visible ASCII only: header values are Latin-1 on the wire, and a client id is an opaque token. */
const CLIENT_ID_PATTERN = /^[\x21-\x7e]+$/;
const SEQ_PATTERN = /^[1-9][0-9]*$/;

/**
 * The `RequestId` from `Synod-Client-Id` and `Synod-Seq`, or undefined when neither is given.
 * Giving one without the other, repeating one, or a malformed value is a `bad_request`: a client
 * that believes it has exactly-once must not silently lose it.
 */
export function requestIdFrom(request: IncomingMessage): RequestId | undefined {
  const clientIds = request.headersDistinct[CLIENT_ID_HEADER];
  const seqs = request.headersDistinct[SEQ_HEADER];
  if (clientIds === undefined && seqs === undefined) return undefined;
  if (clientIds === undefined || seqs === undefined) throw badRequest('Synod-Client-Id and Synod-Seq must be given together');
  const [clientId] = clientIds;
  const [seqText] = seqs;
  if (clientIds.length !== 1 || seqs.length !== 1 || clientId === undefined || seqText === undefined) {
    throw badRequest('Synod-Client-Id and Synod-Seq must each be given once');
  }
  if (clientId.length > CLIENT_ID_BYTES_MAX || !CLIENT_ID_PATTERN.test(clientId)) {
    throw badRequest(`Synod-Client-Id must be 1 to ${CLIENT_ID_BYTES_MAX} visible ASCII characters`);
  }
  const seq = Number(seqText);
  if (!SEQ_PATTERN.test(seqText) || !Number.isSafeInteger(seq)) throw badRequest('Synod-Seq must be a positive safe integer');
  return { clientId, seq };
}

// Bodies.

/** The `Content-Length` the client declared, or null (chunked, or no body). */
export function declaredBodyBytes(request: IncomingMessage): number | null {
  const header = request.headers['content-length'];
  if (header === undefined) return null;
  const bytes = Number(header);
  return Number.isSafeInteger(bytes) && bytes >= 0 ? bytes : null;
}

function tooLarge(bytesMax: number): HttpApiError {
  return new HttpApiError('too_large', `request body is over ${bytesMax} bytes`);
}

/**
 * Reads the whole body, holding at most `bytesMax` bytes. A declared length over the limit fails
 * before anything is read; a body that grows past it fails on the chunk that crosses it, and the
 * chunks held so far are dropped. Rejects with `HttpApiError('too_large')` or, when the client
 * disconnects first, `RequestAbortedError`. The caller answers while the rest of the body may
 * still be arriving.
 */
export function readBody(request: IncomingMessage, bytesMax: number): Promise<Buffer> {
  const declared = declaredBodyBytes(request);
  if (declared !== null && declared > bytesMax) return Promise.reject(tooLarge(bytesMax));
  return new Promise<Buffer>((resolve, reject) => {
    let chunks: Buffer[] = [];
    let bytes = 0;
    const cleanup = (): void => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onAbort);
      request.off('close', onAbort);
    };
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes <= bytesMax) {
        chunks.push(chunk);
        return;
      }
      cleanup();
      chunks = [];
      reject(tooLarge(bytesMax));
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, bytes));
    };
    const onAbort = (): void => {
      cleanup();
      reject(new RequestAbortedError('client closed the connection before sending the whole request'));
    };
    request.on('data', onData);
    request.once('end', onEnd);
    request.once('error', onAbort);
    request.once('close', onAbort);
  });
}

/** Fatal: an invalid sequence throws. `ignoreBOM`: a leading U+FEFF is part of the value. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes a body as UTF-8 (the store keeps strings); invalid UTF-8 is a `bad_request`. */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw badRequest(`${what} must be valid UTF-8`);
  }
}

// Operations.

/**
 * The operation a request on `/v1/kv[/<key>]` asks for (the method is already checked against the
 * route): GET/HEAD on the collection or on `/v1/kv/` lists, on a key reads; PUT writes the body;
 * DELETE removes. Each refuses query parameters it does not take.
 */
export function kvOperation(method: string, key: string | null, target: RequestTarget, body: Uint8Array): KvOperation {
  if (method === 'GET' || method === 'HEAD') {
    if (key === null || key.length === 0) {
      checkQueryNames(target, LIST_QUERY);
      return listOperation(target.query);
    }
    checkQueryNames(target, []);
    return { type: 'get', key };
  }
  if (key === null || key.length === 0) throw badRequest('the key must not be empty');
  if (method === 'PUT') {
    checkQueryNames(target, WRITE_QUERY);
    return writeOperation(key, decodeUtf8(body, 'the value (request body)'), target.query);
  }
  if (method === 'DELETE') {
    checkQueryNames(target, []);
    return { type: 'delete', key };
  }
  throw new HttpApiError('method_not_allowed', `${method} is not allowed here`, KEY_METHODS);
}

/** Query parameters of `PUT /v1/kv/<key>`: any of them makes the put a compare-and-set. */
export const WRITE_QUERY = ['ifVersion', 'ifValue', 'ifAbsent'] as const;
/** Query parameters of `GET /v1/kv`. */
export const LIST_QUERY = ['prefix', 'limit'] as const;
/** The list limit when none is given. */
export const LIST_LIMIT_DEFAULT = 1000;

const DECIMAL = /^[0-9]+$/;

/** A put, or a cas when the query carries expectations (`ifAbsent=true`: expectedValue null). */
export function writeOperation(key: string, value: string, query: ReadonlyMap<string, string>): KvPutOperation | KvCasOperation {
  const ifVersion = query.get('ifVersion');
  const ifValue = query.get('ifValue');
  const ifAbsent = query.get('ifAbsent');
  if (ifVersion === undefined && ifValue === undefined && ifAbsent === undefined) return { type: 'put', key, value };
  if (ifAbsent !== undefined && ifAbsent !== 'true') throw badRequest('ifAbsent must be true when given');
  if (ifAbsent !== undefined && ifValue !== undefined) throw badRequest('ifAbsent and ifValue contradict each other');
  const operation: { -readonly [K in keyof KvCasOperation]: KvCasOperation[K] } = { type: 'cas', key, value };
  if (ifVersion !== undefined) operation.expectedVersion = parseDecimal(ifVersion, 'ifVersion', 'a non-negative integer');
  if (ifValue !== undefined) operation.expectedValue = ifValue;
  if (ifAbsent !== undefined) operation.expectedValue = null;
  return operation;
}

/** A list from `prefix` (default: every key) and `limit` (default 1000, 1..LIST_LIMIT_MAX). */
export function listOperation(query: ReadonlyMap<string, string>): KvListOperation {
  const limitText = query.get('limit');
  const limit = limitText === undefined ? LIST_LIMIT_DEFAULT : parseDecimal(limitText, 'limit', `an integer from 1 to ${LIST_LIMIT_MAX}`);
  if (limit < 1 || limit > LIST_LIMIT_MAX) throw badRequest(`limit must be an integer from 1 to ${LIST_LIMIT_MAX}`);
  return { type: 'list', prefix: query.get('prefix') ?? '', limit };
}

function parseDecimal(text: string, name: string, expected: string): number {
  const value = Number(text);
  if (!DECIMAL.test(text) || !Number.isSafeInteger(value)) throw badRequest(`${name} must be ${expected}`);
  return value;
}

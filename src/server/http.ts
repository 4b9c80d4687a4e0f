/**
 * The HTTP/JSON client API of a node: curl-friendly access to the replicated store, in the manner
 * of etcd's JSON gateway. It decodes a request, calls `KvService.submit`, and encodes the answer;
 * it never touches the replica.
 *
 *   PUT    /v1/kv/<key>[?ifVersion=N][&ifValue=V | &ifAbsent=true]   body = the value (UTF-8)
 *   GET    /v1/kv/<key>                     200, or 404 with value null, version 0
 *   DELETE /v1/kv/<key>
 *   GET    /v1/kv?prefix=P&limit=N          (also /v1/kv/)
 *   GET    /v1/status    GET /metrics    GET /healthz
 *
 * Keys are the percent-decoded path after `/v1/kv/` and may contain `/`. Headers
 * `Synod-Client-Id` and `Synod-Seq` make a request exactly-once across retries. A follower answers
 * 307 to the leader's HTTP address (`curl -L` follows it and re-sends the body). Errors are JSON
 * `{"error", "message"}` with `Synod-Error: <code>`; the status mapping is in `http-response.ts`,
 * request decoding in `http-request.ts`.
 *
 * Every resource is bounded: the body (read in chunks and refused with 413 the moment it crosses
 * the limit, never buffered past it), headers (bytes, count, time), the whole request's arrival
 * time, idle keep-alive time, connections (in all and per client address), and pipelined requests
 * in flight per connection.
 *
 * Access (`access`): with a client token configured, every request but `GET /healthz` must carry
 * `Authorization: Bearer <token>`, checked before the body is read; others get 401 with
 * `WWW-Authenticate`. With `tls` the API is HTTPS (node:https) and redirects say `https://`.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { assert, assertNever } from '../core/assert.js';
import { VALUE_BYTES_MAX, validateOperation, type KvOperation } from '../kv/ops.js';
import {
  HttpApiError,
  RequestAbortedError,
  checkHost,
  checkMethod,
  declaredBodyBytes,
  kvOperation,
  matchRoute,
  parseTarget,
  readBody,
  requestIdFrom,
  type RequestTarget,
} from './http-request.js';
import { bearerChallenge, errorReply, failureReply, metricsReply, statusReply, successReply, textReply, type Reply } from './http-response.js';
import { ClientAccess, bearerToken, refusalMessage } from './access.js';
import { remoteOf } from '../transport/tls.js';
import { CONNECTIONS_PER_ADDRESS_MAX_DEFAULT, ConnectionsPerAddress, addressKey } from './address-limit.js';
import type { ConnectionRefusal } from './client-listener.js';
import type { KvService } from './service.js';

/** Structured logging, pino-compatible (fields first, then the message). */
export interface HttpApiLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const silentLogger: HttpApiLogger = { info: () => {}, warn: () => {}, error: () => {} };

/** Where the API listens. */
export interface HttpAddress {
  readonly host: string;
  readonly port: number;
}

/** Options of an `HttpApi`. Limits have defaults suited to a node serving a few hundred clients. */
export interface HttpApiOptions {
  readonly service: KvService;
  readonly host: string;
  /** 0 picks an ephemeral port (see `start`'s result). */
  readonly port: number;
  readonly logger?: HttpApiLogger;
  /** The largest request body accepted (default `BODY_BYTES_MAX_DEFAULT`). */
  readonly bodyBytesMax?: number;
  /** How long a client may take to send one whole request, headers and body (default 30 s). */
  readonly requestTimeoutMs?: number;
  /** Open client connections beyond this are refused at accept (default 1024). */
  readonly connectionsMax?: number;
  /** The largest request line plus headers (default 64 KiB: a 4 KiB key percent-encodes to 12 KiB). */
  readonly headerBytesMax?: number;
  /** Who may use the API (default: everyone who can connect). */
  readonly access?: ClientAccess;
  /** Serve HTTPS with these options (certificate and key); default plain HTTP. */
  readonly tls?: tls.TlsOptions;
  /** Open connections from one client address; beyond it a connection gets a 429 and is closed (default 256). */
  readonly connectionsPerAddressMax?: number;
  /**
   * Requests of one connection in progress at once (HTTP/1.1 pipelining); beyond it a request is
   * answered 429 without reaching the service, and the connection is not read until one finishes
   * (default 64).
   */
  readonly inFlightMaxPerConnection?: number;
  /** Called for each refused connection, with why (for metrics). */
  readonly onRefused?: (reason: ConnectionRefusal) => void;
}

/** Counters for a status page and tests. */
export interface HttpApiStats {
  /** Connections refused over `connectionsMax` (closed unanswered by node:http) or `connectionsPerAddressMax`. */
  readonly connectionsRefused: number;
  /** Of those, refused for being over `connectionsPerAddressMax`. */
  readonly connectionsRefusedPerAddress: number;
  /** Requests answered 429 for being over `inFlightMaxPerConnection`. */
  readonly requestsRefusedInFlight: number;
}

/**
 * The default body limit: the largest value, plus slack so that a value just over its limit is
 * refused by `validateOperation` with a message that names the value.
 */
export const BODY_BYTES_MAX_DEFAULT = VALUE_BYTES_MAX + 4096;
const REQUEST_TIMEOUT_MS_DEFAULT = 30_000;
/** Headers must arrive within this (or the request timeout, if shorter): slowloris protection. */
const HEADERS_TIMEOUT_MS_MAX = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const CONNECTIONS_MAX_DEFAULT = 1024;
const IN_FLIGHT_MAX_PER_CONNECTION_DEFAULT = 64;
const HEADER_BYTES_MAX_DEFAULT = 64 * 1024;
const HEADERS_COUNT_MAX = 64;
/** How often node:http checks the header and request timeouts. */
const TIMEOUT_CHECK_INTERVAL_MS_MAX = 1_000;
/** How long `stop` lets requests in progress finish before it closes their connections. */
const STOP_GRACE_MS = 5_000;
/** How long a refused connection is read (and discarded) after its answer, before it is closed. */
const LINGER_MS = 1_000;
/** How much of a refused body is read and discarded, in multiples of `bodyBytesMax` (and at most LINGER_MS). */
const DRAIN_BYTES_FACTOR = 16;

/** Serves the client API over node:http. One instance per listen address. */
export class HttpApi {
  private readonly service: KvService;
  private readonly logger: HttpApiLogger;
  private readonly bodyBytesMax: number;
  private readonly requestTimeoutMs: number;
  private readonly connectionsMax: number;
  private readonly headerBytesMax: number;
  private readonly access: ClientAccess;
  private readonly scheme: 'http' | 'https';
  /** Responses in progress per socket: a client error must not write into one already begun. */
  private readonly responsesInProgress = new WeakMap<Duplex, Set<http.ServerResponse>>();
  private readonly perAddress: ConnectionsPerAddress;
  private readonly inFlightMax: number;
  /** Sockets over their address's cap: answered 429 at accept; whatever they send is ignored. */
  private readonly refusedSockets = new WeakSet<Duplex>();
  /** Sockets not read until a request in progress on them finishes (`inFlightMaxPerConnection`). */
  private readonly pausedSockets = new WeakSet<Duplex>();
  private readonly counters = { connectionsRefused: 0, connectionsRefusedPerAddress: 0, requestsRefusedInFlight: 0 };
  private server: http.Server | null = null;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped: Promise<void> | null = null;

  constructor(private readonly options: HttpApiOptions) {
    validateOptions(options);
    this.service = options.service;
    this.logger = options.logger ?? silentLogger;
    this.bodyBytesMax = options.bodyBytesMax ?? BODY_BYTES_MAX_DEFAULT;
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
    this.connectionsMax = options.connectionsMax ?? CONNECTIONS_MAX_DEFAULT;
    this.headerBytesMax = options.headerBytesMax ?? HEADER_BYTES_MAX_DEFAULT;
    this.access = options.access ?? new ClientAccess({ token: null, logger: this.logger });
    this.scheme = options.tls === undefined ? 'http' : 'https';
    this.perAddress = new ConnectionsPerAddress(options.connectionsPerAddressMax ?? CONNECTIONS_PER_ADDRESS_MAX_DEFAULT);
    this.inFlightMax = options.inFlightMaxPerConnection ?? IN_FLIGHT_MAX_PER_CONNECTION_DEFAULT;
  }

  /** A snapshot of the counters. */
  stats(): HttpApiStats {
    return { ...this.counters };
  }

  /** Listens; resolves with the bound address, rejects if it is unavailable. */
  async start(): Promise<HttpAddress> {
    assert(this.state === 'new', 'HttpApi.start called twice or after stop');
    const server = this.createServer();
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.logger.warn({ err: error }, 'http server error'));
    this.state = 'running';
    const address = this.address();
    this.logger.info({ address }, 'http api listening');
    return address;
  }

  /** The bound address (useful with port 0). */
  address(): HttpAddress {
    const address = this.server?.address();
    assert(address !== null && address !== undefined && typeof address === 'object', 'http api is not listening');
    return { host: (address as AddressInfo).address, port: (address as AddressInfo).port };
  }

  /**
   * Stops accepting, closes idle keep-alive connections at once, lets requests in progress answer
   * (with `Connection: close`) for up to 5 s, then closes whatever is left. Idempotent.
   */
  stop(): Promise<void> {
    if (this.stopped === null) this.stopped = this.close();
    return this.stopped;
  }

  private async close(): Promise<void> {
    const server = this.server;
    this.state = 'stopping';
    if (server !== null) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), STOP_GRACE_MS);
      try {
        await closed;
      } finally {
        clearTimeout(grace);
      }
      this.logger.info({}, 'http api stopped');
    }
    this.server = null;
    this.state = 'stopped';
  }

  private createServer(): http.Server {
    const options: http.ServerOptions = {
      requestTimeout: this.requestTimeoutMs,
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS_MAX, this.requestTimeoutMs),
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_INTERVAL_MS_MAX, this.requestTimeoutMs),
      maxHeaderSize: this.headerBytesMax,
      noDelay: true,
      // node would answer a missing Host with a bare 400; `route` refuses it with a typed one.
      requireHostHeader: false,
    };
    const handler = (request: http.IncomingMessage, response: http.ServerResponse): void => this.handle(request, response);
    let server: http.Server;
    if (this.options.tls === undefined) {
      server = http.createServer(options, handler);
    } else {
      const secure = https.createServer({ handshakeTimeout: HEADERS_TIMEOUT_MS_MAX, ...this.options.tls, ...options }, handler);
      // A plaintext client, or one that does not trust our certificate: Node closes the socket.
      secure.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => this.access.tlsFailed('http', error, remoteOf(socket)));
      server = secure;
    }
    server.maxHeadersCount = HEADERS_COUNT_MAX;
    server.maxConnections = this.connectionsMax;
    server.on('checkContinue', (request, response) => this.handleExpectContinue(request, response));
    server.on('checkExpectation', (request, response) => this.handleUnknownExpectation(request, response));
    server.on('connect', (_request: http.IncomingMessage, socket: Duplex) => this.handleConnect(socket));
    server.on('connection', (socket: net.Socket) => this.admitConnection(socket));
    server.on('drop', () => this.refused('connections'));
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => this.handleClientError(error, socket));
    return server;
  }

  /** `Expect` other than 100-continue: a typed 417 (node's own answer carries no error code). */
  private handleUnknownExpectation(request: http.IncomingMessage, response: http.ServerResponse): void {
    this.trackResponse(request.socket, response);
    this.respond(request, response, errorReply('bad_request', 'only Expect: 100-continue is supported', {}, {}, 417));
  }

  /** CONNECT (a tunnel request): node hands over the socket unanswered; refuse it typed, and close. */
  private handleConnect(socket: Duplex): void {
    socket.on('error', () => socket.destroy());
    const reply = errorReply('method_not_allowed', 'CONNECT is not allowed here', {}, { allow: 'GET, HEAD, PUT, DELETE' });
    socket.end(rawResponse(reply));
    this.lingerThenDestroy(socket);
  }

  // Connections.

  /** Counts a connection against its address; one over the cap gets a 429 and is closed. */
  private admitConnection(socket: net.Socket): void {
    const address = addressKey(socket.remoteAddress);
    if (this.perAddress.tryAcquire(address)) {
      socket.once('close', () => this.perAddress.release(address));
      return;
    }
    this.refusedSockets.add(socket);
    this.refused('per-address');
    this.logger.warn({ remote: address }, 'http connection refused: too many connections from its address');
    const message = `${this.perAddress.max} connections from ${address} are open`;
    socket.end(rawResponse(errorReply('overloaded', message)));
    this.lingerThenDestroy(socket);
  }

  private refused(reason: ConnectionRefusal): void {
    this.counters.connectionsRefused += 1;
    if (reason === 'per-address') this.counters.connectionsRefusedPerAddress += 1;
    this.options.onRefused?.(reason);
  }

  // Requests.

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const socket = request.socket;
    if (this.refusedSockets.has(socket)) {
      response.destroy();
      return;
    }
    const inProgress = this.responsesInProgress.get(socket)?.size ?? 0;
    this.trackResponse(socket, response);
    if (inProgress >= this.inFlightMax) {
      this.refuseInFlight(socket, request, response);
      return;
    }
    void this.answer(request).then((reply) => this.respond(request, response, reply));
  }

  /**
   * A pipelined request beyond `inFlightMaxPerConnection`: answered 429 without reaching the
   * service, and the socket is not read until a request in progress finishes. (node:http parses
   * every request in a chunk at once, so pausing alone cannot stop the ones already read.) Every
   * request before this one has its whole body parsed already, so pausing cannot stall them; this
   * one's body arrives once they finish.
   */
  private refuseInFlight(socket: Duplex, request: http.IncomingMessage, response: http.ServerResponse): void {
    this.counters.requestsRefusedInFlight += 1;
    if (!this.pausedSockets.has(socket)) {
      this.pausedSockets.add(socket);
      socket.pause();
    }
    // Its body is read (and dropped) first, so the 429 keeps the connection usable.
    const refusal = errorReply('overloaded', `the connection has ${this.inFlightMax} requests in progress`);
    void readBody(request, this.bodyBytesMax)
      .then(() => refusal, (error: unknown) => this.replyToError(error, request))
      .then((reply) => this.respond(request, response, reply));
  }

  /** Sends `reply`; if that throws (say, a header value the service made up), a 500 instead. */
  private respond(request: http.IncomingMessage, response: http.ServerResponse, reply: Reply | null): void {
    try {
      this.send(request, response, reply);
    } catch (error) {
      this.logger.error({ err: error, method: request.method, url: request.url }, 'http response could not be written');
      if (response.headersSent) response.destroy();
      else this.send(request, response, errorReply('internal', 'internal error'));
    }
  }

  /**
   * `Expect: 100-continue` (curl sends it with large bodies): a declared body over the limit is
   * refused before the client sends it; otherwise the client is told to go on.
   */
  private handleExpectContinue(request: http.IncomingMessage, response: http.ServerResponse): void {
    const declared = declaredBodyBytes(request);
    // Neither an unauthorized client nor an oversized body is invited to send the body.
    const refused = this.refusal(request) ?? (declared !== null && declared > this.bodyBytesMax ? errorReply('too_large', `request body is over ${this.bodyBytesMax} bytes`) : null);
    if (refused === null) {
      response.writeContinue();
      this.handle(request, response);
      return;
    }
    this.trackResponse(request.socket, response);
    writeHead(response, refused, true);
    response.end(refused.body);
  }

  /**
   * The 401 for a request that needs a token and lacks the right one; null when it may proceed.
   * `/healthz` is open: it says only that the process answers, and probes rarely hold secrets.
   */
  private refusal(request: http.IncomingMessage): Reply | null {
    if (!this.access.tokenRequired || isHealthCheck(request.url)) return null;
    const reason = this.access.admit('http', bearerToken(request.headers.authorization), remoteOf(request.socket));
    if (reason === null) return null;
    return errorReply('unauthorized', refusalMessage(reason), {}, { 'www-authenticate': bearerChallenge(reason === 'bad-token') });
  }

  /** The reply to `request`, or null when the client is gone. Never rejects. */
  private async answer(request: http.IncomingMessage): Promise<Reply | null> {
    try {
      // Before the body: an unauthorized client does not get to make us read a megabyte.
      const refused = this.refusal(request);
      if (refused !== null) return refused;
      const body = await readBody(request, this.bodyBytesMax);
      return await this.route(request, body);
    } catch (error) {
      return this.replyToError(error, request);
    }
  }

  private async route(request: http.IncomingMessage, body: Buffer): Promise<Reply> {
    checkHost(request);
    const target = parseTarget(request.url ?? '/');
    const route = matchRoute(target.path);
    const method = request.method ?? '';
    checkMethod(route, method);
    switch (route.kind) {
      case 'kv':
        return this.submit(kvOperation(method, route.key, target, body), request, target);
      case 'status':
        return statusReply(this.service);
      case 'metrics':
        return metricsReply(this.service);
      case 'health':
        return textReply(200, 'ok\n');
      default:
        return assertNever(route, 'route');
    }
  }

  /** Validates first (a bad request never reaches the log), then submits and encodes the result. */
  private async submit(operation: KvOperation, request: http.IncomingMessage, target: RequestTarget): Promise<Reply> {
    const id = requestIdFrom(request);
    const pathAndQuery = target.rawQuery.length === 0 ? target.path : `${target.path}?${target.rawQuery}`;
    const invalid = validateOperation(operation);
    if (invalid !== null) return failureReply(invalid, pathAndQuery, this.scheme);
    const result = await this.service.submit(operation, id);
    if (!result.ok) return failureReply(result, pathAndQuery, this.scheme);
    if (result.type !== operation.type && id !== undefined) {
      // The id named an earlier request of another kind: the state machine answered that one's
      // result again and did not apply this one (found by fuzzing: it was a 500).
      const message = `Synod-Client-Id ${id.clientId} with Synod-Seq ${id.seq} already named a ${result.type}; this ${operation.type} was not applied (use a new Synod-Seq)`;
      return errorReply('bad_request', message);
    }
    return successReply(operation, result);
  }

  private replyToError(error: unknown, request: http.IncomingMessage): Reply | null {
    if (error instanceof RequestAbortedError) return null;
    if (error instanceof HttpApiError) {
      const headers: Record<string, string> = error.allow.length === 0 ? {} : { allow: error.allow.join(', ') };
      return errorReply(error.code, error.message, {}, headers);
    }
    this.logger.error({ err: error, method: request.method, url: request.url }, 'http request failed unexpectedly');
    return errorReply('internal', 'internal error');
  }

  // Responses.

  /**
   * Writes `reply`. When the request body was not read to its end (413), the answer goes out at
   * once with `Connection: close`, but the connection is closed only after the rest of the body
   * has been drained (see `drainThenEnd`).
   */
  private send(request: http.IncomingMessage, response: http.ServerResponse, reply: Reply | null): void {
    if (reply === null || response.destroyed || response.writableEnded) return;
    if (response.headersSent) {
      response.destroy();
      return;
    }
    const bodyPending = !request.readableEnded;
    writeHead(response, reply, bodyPending || this.state !== 'running');
    if (!bodyPending) {
      response.end(reply.body);
      return;
    }
    response.write(reply.body);
    this.drainThenEnd(request, response);
  }

  /**
   * Reads and discards what is left of a refused body, for at most `LINGER_MS` and at most
   * `DRAIN_BYTES_FACTOR` x `bodyBytesMax` bytes, then ends the response (which closes the
   * connection). Closing while request bytes sit unread makes the kernel reset the connection, and a
   * reset can destroy the answer before the client reads it (found by fuzzing: a declared body of
   * 7 x bodyBytesMax, drained only up to bodyBytesMax, lost its 413).
   */
  private drainThenEnd(request: http.IncomingMessage, response: http.ServerResponse): void {
    let discardedBytes = 0;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      request.off('data', onData);
      request.off('end', finish);
      request.off('close', finish);
      response.end();
    };
    const onData = (chunk: Buffer): void => {
      discardedBytes += chunk.length;
      if (discardedBytes > DRAIN_BYTES_FACTOR * this.bodyBytesMax) finish();
    };
    const timer = setTimeout(finish, LINGER_MS);
    request.on('data', onData);
    request.once('end', finish);
    request.once('close', finish);
    request.resume();
  }

  private trackResponse(socket: Duplex, response: http.ServerResponse): void {
    let responses = this.responsesInProgress.get(socket);
    if (responses === undefined) {
      responses = new Set();
      this.responsesInProgress.set(socket, responses);
    }
    responses.add(response);
    response.once('close', () => {
      responses.delete(response);
      if (responses.size < this.inFlightMax && this.pausedSockets.delete(socket)) socket.resume();
    });
  }

  /** Whether an answer has begun on `socket`: writing another one there would corrupt the stream. */
  private answerStarted(socket: Duplex): boolean {
    for (const response of this.responsesInProgress.get(socket) ?? []) {
      if (response.headersSent) return true;
    }
    return false;
  }

  /**
   * A request node:http could not parse, or one too slow (headers or whole request past their
   * timeouts): answered with a JSON error, unless an answer has already begun on the socket, and
   * the connection closed.
   */
  private handleClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    if (error.code === 'ECONNRESET' || !socket.writable || this.answerStarted(socket)) {
      socket.destroy();
      return;
    }
    const [code, status] = clientErrorStatus(error.code);
    this.logger.warn({ code: error.code, reason: error.message }, 'refused a malformed or slow http request');
    socket.end(rawResponse(errorReply(code, clientErrorMessage(status), {}, {}, status)));
    this.lingerThenDestroy(socket);
  }

  /**
   * After refusing a request node:http could not parse, reads and discards what the client still
   * sends (at most `bodyBytesMax` bytes, for at most `LINGER_MS`), then closes. Closing with unread
   * bytes makes the kernel reset the connection, and a reset can destroy the answer before the
   * client reads it (found by fuzzing: a malformed request with a body got a reset, not its 400).
   */
  private lingerThenDestroy(socket: Duplex): void {
    let discardedBytes = 0;
    const destroy = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(destroy, LINGER_MS);
    // node's parser has failed on this socket: what follows is no longer HTTP to it.
    socket.removeAllListeners('data');
    socket.on('data', (chunk: Buffer) => {
      discardedBytes += chunk.length;
      if (discardedBytes > this.bodyBytesMax) destroy();
    });
    socket.once('end', destroy);
    socket.resume();
  }
}

/** Whether a request target is the health check (parsed the way routing parses it). */
function isHealthCheck(url: string | undefined): boolean {
  try {
    return matchRoute(parseTarget(url ?? '/').path).kind === 'health';
  } catch {
    return false;
  }
}

function writeHead(response: http.ServerResponse, reply: Reply, close: boolean): void {
  const headers: Record<string, string> = { ...reply.headers, 'content-length': String(Buffer.byteLength(reply.body)) };
  if (close) headers.connection = 'close';
  response.writeHead(reply.status, headers);
}

function clientErrorStatus(errorCode: string | undefined): ['bad_request' | 'too_large' | 'timeout', number] {
  if (errorCode === 'HPE_HEADER_OVERFLOW') return ['too_large', 431];
  if (errorCode === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') return ['too_large', 413];
  if (errorCode === 'ERR_HTTP_REQUEST_TIMEOUT') return ['timeout', 408];
  return ['bad_request', 400];
}

function clientErrorMessage(status: number): string {
  if (status === 431) return 'request headers are too large';
  if (status === 413) return 'request is too large';
  if (status === 408) return 'request took too long to arrive';
  return 'malformed HTTP request (non-ASCII characters in the URL must be percent-encoded)';
}

/** A whole HTTP/1.1 response as text, for sockets node:http has given up on. */
function rawResponse(reply: Reply): string {
  const headers = { ...reply.headers, 'content-length': String(Buffer.byteLength(reply.body)), connection: 'close' };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `HTTP/1.1 ${reply.status} ${http.STATUS_CODES[reply.status] ?? ''}\r\n${lines.join('')}\r\n${reply.body}`;
}

function validateOptions(options: HttpApiOptions): void {
  const positive = (value: number | undefined, name: string): void => {
    if (value !== undefined && (!Number.isSafeInteger(value) || value <= 0)) {
      throw new RangeError(`HttpApi: ${name} must be a positive integer`);
    }
  };
  positive(options.bodyBytesMax, 'bodyBytesMax');
  positive(options.requestTimeoutMs, 'requestTimeoutMs');
  positive(options.connectionsMax, 'connectionsMax');
  positive(options.headerBytesMax, 'headerBytesMax');
  positive(options.connectionsPerAddressMax, 'connectionsPerAddressMax');
  positive(options.inFlightMaxPerConnection, 'inFlightMaxPerConnection');
  if (!Number.isSafeInteger(options.port) || options.port < 0 || options.port > 65_535) {
    throw new RangeError('HttpApi: port must be an integer from 0 to 65535');
  }
}

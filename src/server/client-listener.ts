/**
 * The server side of the binary client protocol (`src/protocol/wire.ts`): a TCP listener that
 * decodes pipelined requests, hands each to `KvService.submit`, and writes the answers back in
 * whatever order they complete.
 *
 * It protects the node from its clients: every limit is named and checked (connections, requests
 * in flight per connection, frame bytes before and after the hello, response bytes), a socket
 * whose write buffer is full stops being read until it drains, and bad input closes only the
 * connection that sent it, after one typed error frame. Nothing a client sends can throw out of a
 * socket handler.
 *
 * With `access` requiring a token, a hello without the right one is answered `unauthorized` (a
 * failure with reqId 0) and the connection closes; nothing sent after it is executed. With `tls` the
 * listener speaks TLS (node:tls); a client that fails the TLS handshake is counted and dropped.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { assert } from '../core/assert.js';
import { validateOperation } from '../kv/ops.js';
import {
  HELLO_FRAME_BYTES_MAX,
  PROTOCOL_VERSION,
  REQUEST_FRAME_BYTES_MAX_DEFAULT,
  RESPONSE_FRAME_BYTES_MAX,
  decodeClientMessage,
  encodeServerFrame,
  type ClientMessage,
  type HelloMessage,
  type RequestMessage,
  type ServerMessage,
} from '../protocol/wire.js';
import { ProtocolDecodeError } from '../protocol/reader.js';
import { FRAME_HEADER_BYTES, FrameDecoder } from '../transport/framing.js';
import { createStreamServer } from '../transport/tls.js';
import { FrameTooLargeError } from '../transport/transport.js';
import { ClientAccess, refusalMessage } from './access.js';
import { CONNECTIONS_PER_ADDRESS_MAX_DEFAULT, ConnectionsPerAddress, addressKey } from './address-limit.js';
import type { KvService, ServiceErrorCode, ServiceFailure, ServiceResult } from './service.js';

/** The logging surface the listener needs: a subset of pino's, so a pino logger fits as is. */
export interface ClientListenerLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface ClientListenerOptions {
  readonly service: KvService;
  readonly host: string;
  /** 0 picks an ephemeral port; `start` resolves with the one bound. */
  readonly port: number;
  readonly logger?: ClientListenerLogger;
  /** Largest request frame payload (default: the largest valid operation plus overhead). */
  readonly frameBytesMax?: number;
  /** Requests of one connection waiting for the service; beyond it requests get `overloaded`. */
  readonly inFlightMaxPerConnection?: number;
  /** Open connections; beyond it a new connection gets `overloaded` and is closed. */
  readonly connectionsMax?: number;
  /** Open connections from one client address; beyond it, as for `connectionsMax` (default 256). */
  readonly connectionsPerAddressMax?: number;
  /** How long a frame may take to arrive once its first byte has (default 30 s): slowloris protection. */
  readonly frameTimeoutMs?: number;
  /**
   * Bytes of incomplete frames all connections together may hold (default 128 MiB); the connection
   * whose bytes cross it gets `overloaded` and is closed. Bounds what half-sent frames can pin.
   */
  readonly pendingFrameBytesMax?: number;
  /** Called for each refused connection, with why (for metrics). */
  readonly onRefused?: (reason: ConnectionRefusal) => void;
  /** Passed to `KvService.submit` as `timeoutMs` (absent: the service's default). */
  readonly requestTimeoutMs?: number;
  /** How long a new connection may take to send its hello (default 10 s). */
  readonly helloTimeoutMs?: number;
  /** Who may connect (default: everyone who can reach the address). */
  readonly access?: ClientAccess;
  /** Speak TLS with these options (certificate and key); default plain TCP. */
  readonly tls?: tls.TlsOptions;
}

/** Why a connection was refused: the node's cap, or its address's. */
export type ConnectionRefusal = 'connections' | 'per-address';

/** Counters for a status page and tests. */
export interface ClientListenerStats {
  /** Connections accepted (under `connectionsMax`), since start. */
  readonly connectionsAccepted: number;
  /** Connections refused for being over `connectionsMax` or `connectionsPerAddressMax`. */
  readonly connectionsRefused: number;
  /** Of those, refused for being over `connectionsPerAddressMax`. */
  readonly connectionsRefusedPerAddress: number;
  /** Bytes of incomplete frames held right now, all connections together. */
  readonly pendingFrameBytes: number;
  readonly connectionsOpen: number;
  /** Requests and status requests received. */
  readonly requests: number;
  /** Response frames written (results, failures, status, welcomes). */
  readonly responses: number;
  /** Socket writes: many responses completed in the same tick share one. */
  readonly writes: number;
  /** Times a connection stopped being read because its answers were not being read (backpressure). */
  readonly readPauses: number;
  /** Failure responses, by code. */
  readonly errors: Readonly<Partial<Record<ServiceErrorCode, number>>>;
  /** Connections closed for a malformed or oversized frame or a protocol violation. */
  readonly protocolErrors: number;
}

export const IN_FLIGHT_MAX_PER_CONNECTION_DEFAULT = 1024;
export const CONNECTIONS_MAX_DEFAULT = 1024;
export const HELLO_TIMEOUT_MS_DEFAULT = 10_000;
export const FRAME_TIMEOUT_MS_DEFAULT = 30_000;
export const PENDING_FRAME_BYTES_MAX_DEFAULT = 128 * 1024 * 1024;
/** After a fatal error frame, how long the client gets to read it and close before we reset. */
const LINGER_MS = 1000;

const silentLogger: ClientListenerLogger = { info: () => {}, warn: () => {}, error: () => {} };

/** Mutable counters behind `ClientListenerStats`. */
class ListenerCounters {
  connectionsAccepted = 0;
  connectionsRefused = 0;
  connectionsRefusedPerAddress = 0;
  pendingFrameBytes = 0;
  requests = 0;
  responses = 0;
  writes = 0;
  readPauses = 0;
  protocolErrors = 0;
  readonly errors: Partial<Record<ServiceErrorCode, number>> = {};

  countFailure(code: ServiceErrorCode): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }
}

/** What a connection needs from its listener (resolved options and shared counters). */
interface ConnectionContext {
  readonly service: KvService;
  readonly logger: ClientListenerLogger;
  readonly frameBytesMax: number;
  readonly inFlightMax: number;
  readonly requestTimeoutMs: number | undefined;
  readonly helloTimeoutMs: number;
  readonly frameTimeoutMs: number;
  readonly pendingFrameBytesMax: number;
  readonly counters: ListenerCounters;
  readonly access: ClientAccess;
  closed(connection: ClientConnection): void;
}

/** Serves the binary client protocol for one `KvService` on one TCP address. */
export class ClientListener {
  private readonly context: ConnectionContext;
  private readonly connectionsMax: number;
  private readonly perAddress: ConnectionsPerAddress;
  private readonly connections = new Set<ClientConnection>();
  /** Connections in `connections` that were accepted (not refused). */
  private connectionsOpen = 0;
  private readonly counters = new ListenerCounters();
  private server: net.Server | null = null;
  private state: 'new' | 'running' | 'stopped' = 'new';

  constructor(private readonly options: ClientListenerOptions) {
    const frameBytesMax = options.frameBytesMax ?? REQUEST_FRAME_BYTES_MAX_DEFAULT;
    const inFlightMax = options.inFlightMaxPerConnection ?? IN_FLIGHT_MAX_PER_CONNECTION_DEFAULT;
    this.connectionsMax = options.connectionsMax ?? CONNECTIONS_MAX_DEFAULT;
    this.perAddress = new ConnectionsPerAddress(options.connectionsPerAddressMax ?? CONNECTIONS_PER_ADDRESS_MAX_DEFAULT);
    assert(Number.isSafeInteger(frameBytesMax) && frameBytesMax >= HELLO_FRAME_BYTES_MAX, 'frameBytesMax must be an integer of at least HELLO_FRAME_BYTES_MAX');
    assert(frameBytesMax <= 0xffff_ffff, 'frameBytesMax exceeds the u32 length prefix');
    assert(Number.isSafeInteger(inFlightMax) && inFlightMax >= 1, 'inFlightMaxPerConnection must be a positive integer');
    assert(Number.isSafeInteger(this.connectionsMax) && this.connectionsMax >= 1, 'connectionsMax must be a positive integer');
    assert(options.requestTimeoutMs === undefined || options.requestTimeoutMs > 0, 'requestTimeoutMs must be positive');
    const logger = options.logger ?? silentLogger;
    assert(options.frameTimeoutMs === undefined || options.frameTimeoutMs > 0, 'frameTimeoutMs must be positive');
    assert(options.pendingFrameBytesMax === undefined || options.pendingFrameBytesMax > 0, 'pendingFrameBytesMax must be positive');
    this.context = {
      service: options.service,
      logger,
      access: options.access ?? new ClientAccess({ token: null, logger }),
      frameBytesMax,
      inFlightMax,
      requestTimeoutMs: options.requestTimeoutMs,
      helloTimeoutMs: options.helloTimeoutMs ?? HELLO_TIMEOUT_MS_DEFAULT,
      frameTimeoutMs: options.frameTimeoutMs ?? FRAME_TIMEOUT_MS_DEFAULT,
      pendingFrameBytesMax: options.pendingFrameBytesMax ?? PENDING_FRAME_BYTES_MAX_DEFAULT,
      counters: this.counters,
      closed: (connection) => this.onClosed(connection),
    };
  }

  /** Listens; resolves with the bound address. Rejects if the address is unavailable. */
  async start(): Promise<{ host: string; port: number }> {
    assert(this.state === 'new', 'ClientListener.start called twice or after stop');
    const server = createStreamServer(this.options.tls ?? null, (socket) => this.onConnection(socket), (error, remote) => {
      this.context.access.tlsFailed('binary', error, remote);
    });
    // A backstop for sockets beyond those we answer with `overloaded` (they are closed unanswered).
    server.maxConnections = 2 * this.connectionsMax + 16;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.context.logger.error({ error: error.message }, 'client listener error'));
    this.server = server;
    this.state = 'running';
    const address = this.address();
    this.context.logger.info({ address }, 'client listener started');
    return address;
  }

  /** The bound address (useful with port 0). */
  address(): { host: string; port: number } {
    const address = this.server?.address();
    assert(address !== null && address !== undefined && typeof address === 'object', 'client listener is not listening');
    return { host: address.address, port: address.port };
  }

  /** Stops listening and closes every connection; requests in flight are abandoned. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    for (const connection of [...this.connections]) connection.close();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.context.logger.info({}, 'client listener stopped');
  }

  /** A snapshot of the counters. */
  stats(): ClientListenerStats {
    const connectionsOpen = this.connectionsOpen;
    const { connectionsAccepted, connectionsRefused, connectionsRefusedPerAddress, pendingFrameBytes } = this.counters;
    const { requests, responses, writes, readPauses, protocolErrors } = this.counters;
    return {
      connectionsAccepted, connectionsRefused, connectionsRefusedPerAddress, pendingFrameBytes, connectionsOpen,
      requests, responses, writes, readPauses, protocolErrors, errors: { ...this.counters.errors },
    };
  }

  private onConnection(socket: net.Socket): void {
    if (this.state !== 'running') {
      socket.destroy();
      return;
    }
    const address = addressKey(socket.remoteAddress);
    const refusal: ConnectionRefusal | null =
      this.connectionsOpen >= this.connectionsMax ? 'connections' : this.perAddress.tryAcquire(address) ? null : 'per-address';
    const connection = new ClientConnection(this.context, socket, refusal !== null, address);
    this.connections.add(connection);
    if (refusal === null) {
      this.connectionsOpen += 1;
      this.counters.connectionsAccepted += 1;
      return;
    }
    this.counters.connectionsRefused += 1;
    if (refusal === 'per-address') this.counters.connectionsRefusedPerAddress += 1;
    this.options.onRefused?.(refusal);
    const message = refusal === 'connections'
      ? `the node has ${this.connectionsMax} client connections`
      : `${this.perAddress.max} client connections from ${address} are open`;
    this.context.logger.warn({ remote: connection.remoteAddress, reason: refusal }, 'client connection refused: too many connections');
    connection.fail({ ok: false, error: 'overloaded', message }, false);
  }

  private onClosed(connection: ClientConnection): void {
    assert(this.connections.delete(connection), 'a connection closes once');
    if (!connection.refused) {
      this.connectionsOpen -= 1;
      this.perAddress.release(connection.address);
    }
    assert(this.connectionsOpen >= 0, 'open connections never go negative');
  }
}

/** One client's connection: hello, then requests in, responses out. */
class ClientConnection {
  readonly remoteAddress: string;
  private readonly decoder = new FrameDecoder(HELLO_FRAME_BYTES_MAX);
  private state: 'awaiting-hello' | 'open' | 'closing' | 'closed' = 'awaiting-hello';
  /** reqIds submitted to the service and not yet answered. */
  private readonly inFlight = new Set<number>();
  /** Encoded response frames waiting for the next flush. */
  private outgoing: Buffer[] = [];
  private flushScheduled = false;
  private readingPaused = false;
  private timer: NodeJS.Timeout | null;
  /** Armed while a frame is incomplete: it must finish within `frameTimeoutMs`. */
  private frameTimer: NodeJS.Timeout | null = null;
  /** This connection's share of `counters.pendingFrameBytes`. */
  private pendingFrameBytes = 0;

  constructor(
    private readonly context: ConnectionContext,
    private readonly socket: net.Socket,
    readonly refused: boolean,
    /** The address it counts against (`addressKey`). */
    readonly address: string,
  ) {
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    this.timer = setTimeout(() => this.fail({ ok: false, error: 'timeout', message: 'no hello in time' }, true), context.helloTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => context.logger.info({ remote: this.remoteAddress, error: error.message }, 'client connection error'));
    socket.on('close', () => this.close());
  }

  /** Read through a method so the compiler does not narrow `state` across calls that change it. */
  private isActive(): boolean {
    return this.state === 'awaiting-hello' || this.state === 'open';
  }

  /** Closes the socket at once (idempotent); answers still pending are dropped. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.notePendingFrameBytes(0);
    this.inFlight.clear();
    this.outgoing = [];
    this.socket.destroy();
    this.context.closed(this);
  }

  /**
   * Sends `failure` with reqId 0 after any responses already queued, then ends the connection.
   * Input is read and discarded meanwhile (an unread receive buffer would turn our close into a
   * reset that could destroy the error frame); the client gets `LINGER_MS` to close its side.
   */
  fail(failure: ServiceFailure, protocolError: boolean): void {
    if (!this.isActive()) return;
    if (protocolError) {
      this.context.counters.protocolErrors += 1;
      this.context.logger.warn({ remote: this.remoteAddress, code: failure.error, reason: failure.message }, 'client connection closed: protocol error');
    }
    this.queue({ type: 'failure', reqId: 0, failure });
    this.state = 'closing';
    this.notePendingFrameBytes(0);
    this.inFlight.clear();
    this.flush();
    this.socket.end();
    if (this.readingPaused) this.socket.resume();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.close(), LINGER_MS);
  }

  private onData(chunk: Buffer): void {
    if (!this.isActive()) return;
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      if (!(error instanceof FrameTooLargeError)) throw error;
      this.fail({ ok: false, error: 'too_large', message: error.message }, true);
      return;
    }
    for (const payload of frames) {
      // A frame may end the connection; nothing after it is looked at.
      if (!this.isActive()) return;
      this.onFrame(payload);
    }
    if (this.isActive()) this.notePendingFrameBytes(this.decoder.bufferedBytes);
  }

  /**
   * Accounts for the bytes of an incomplete frame this connection holds: each frame must finish
   * within `frameTimeoutMs` of its first byte, and all connections together may hold at most
   * `pendingFrameBytesMax` (the one that crosses it is closed). So half-sent frames, however many
   * connections send them, pin bounded memory for a bounded time.
   */
  private notePendingFrameBytes(bytes: number): void {
    const counters = this.context.counters;
    counters.pendingFrameBytes += bytes - this.pendingFrameBytes;
    this.pendingFrameBytes = bytes;
    assert(counters.pendingFrameBytes >= 0, 'pending frame bytes never go negative');
    if (bytes === 0) {
      if (this.frameTimer !== null) clearTimeout(this.frameTimer);
      this.frameTimer = null;
      return;
    }
    if (counters.pendingFrameBytes > this.context.pendingFrameBytesMax) {
      const message = `the node holds ${this.context.pendingFrameBytesMax} bytes of incomplete frames`;
      this.fail({ ok: false, error: 'overloaded', message }, false);
      return;
    }
    this.frameTimer ??= setTimeout(() => {
      this.frameTimer = null;
      this.fail({ ok: false, error: 'timeout', message: `a frame took longer than ${this.context.frameTimeoutMs} ms to arrive` }, true);
    }, this.context.frameTimeoutMs);
  }

  private onFrame(payload: Uint8Array): void {
    let message: ClientMessage;
    try {
      message = decodeClientMessage(payload);
    } catch (error) {
      if (!(error instanceof ProtocolDecodeError)) throw error;
      this.onMalformed(error);
      return;
    }
    if (message.type === 'hello') {
      this.onHello(message);
      return;
    }
    if (this.state !== 'open') {
      this.fail({ ok: false, error: 'bad_request', message: 'request before hello' }, true);
      return;
    }
    if (this.inFlight.has(message.reqId)) {
      this.fail({ ok: false, error: 'bad_request', message: `reqId ${message.reqId} is already in flight` }, true);
      return;
    }
    this.context.counters.requests += 1;
    if (message.type === 'status-request') this.onStatusRequest(message.reqId);
    else this.onRequest(message);
  }

  /** A request whose body is malformed is answered alone; anything else ends the connection. */
  private onMalformed(error: ProtocolDecodeError): void {
    const reqId = error.reqId;
    if (reqId !== null && this.state === 'open' && !this.inFlight.has(reqId)) {
      this.context.counters.requests += 1;
      this.queue({ type: 'failure', reqId, failure: { ok: false, error: 'bad_request', message: error.message } });
      return;
    }
    this.fail({ ok: false, error: 'bad_request', message: error.message }, true);
  }

  private onHello({ version, token }: HelloMessage): void {
    if (this.state !== 'awaiting-hello') {
      this.fail({ ok: false, error: 'bad_request', message: 'second hello' }, true);
      return;
    }
    const refused = this.context.access.admit('binary', token, this.remoteAddress);
    if (refused !== null) {
      this.fail({ ok: false, error: 'unauthorized', message: refusalMessage(refused) }, false);
      return;
    }
    let nodeId: number;
    try {
      nodeId = this.context.service.status().id;
    } catch (error) {
      this.context.logger.error({ error: String(error) }, 'service status failed');
      this.fail({ ok: false, error: 'unavailable', message: 'the node cannot report its id' }, false);
      return;
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.state = 'open';
    this.decoder.frameBytesMax = this.context.frameBytesMax;
    const requestFrameBytesMax = this.context.frameBytesMax;
    this.queue({ type: 'welcome', version: Math.min(version, PROTOCOL_VERSION), nodeId, requestFrameBytesMax });
  }

  private onStatusRequest(reqId: number): void {
    let message: ServerMessage;
    try {
      message = { type: 'status', reqId, status: this.context.service.status() };
    } catch (error) {
      this.context.logger.error({ error: String(error) }, 'service status failed');
      message = { type: 'failure', reqId, failure: { ok: false, error: 'unavailable', message: 'the node cannot report its status' } };
    }
    this.queue(message);
  }

  private onRequest(request: RequestMessage): void {
    const { reqId, operation } = request;
    const invalid = validateOperation(operation);
    if (invalid !== null) {
      this.queue({ type: 'failure', reqId, failure: invalid });
      return;
    }
    if (this.inFlight.size >= this.context.inFlightMax) {
      const message = `connection has ${this.context.inFlightMax} requests in flight`;
      this.queue({ type: 'failure', reqId, failure: { ok: false, error: 'overloaded', message } });
      return;
    }
    this.inFlight.add(reqId);
    const timeoutMs = this.context.requestTimeoutMs;
    let answer: Promise<ServiceResult>;
    try {
      answer = this.context.service.submit(operation, { clientId: request.clientId, seq: request.seq }, timeoutMs === undefined ? undefined : { timeoutMs });
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (result) => this.complete(reqId, result),
      (error: unknown) => {
        // The contract says submit never rejects; a rejection is a service bug, answered as such.
        this.context.logger.error({ error: String(error) }, 'service submit rejected');
        this.complete(reqId, { ok: false, error: 'unavailable', message: 'internal error' });
      },
    );
  }

  private complete(reqId: number, result: ServiceResult): void {
    if (!this.isActive() || !this.inFlight.delete(reqId)) return;
    this.queue(result.ok ? { type: 'result', reqId, result } : { type: 'failure', reqId, failure: result });
  }

  /** Encodes and queues a response. */
  private queue(message: ServerMessage): void {
    this.queueEncoded(this.encode(message));
  }

  /**
   * Encodes a response; one that cannot be encoded (a bug in the service's answer) or is too
   * large for a client to accept becomes a failure for the same reqId. Counts failures sent.
   */
  private encode(message: ServerMessage): Buffer {
    let frame: Buffer;
    try {
      frame = encodeServerFrame(message);
    } catch (error) {
      this.context.logger.error({ error: String(error), type: message.type }, 'response could not be encoded');
      return this.encode(failureFor(message, 'unavailable', 'internal error: the response could not be encoded'));
    }
    if (frame.byteLength - FRAME_HEADER_BYTES > RESPONSE_FRAME_BYTES_MAX) {
      return this.encode(failureFor(message, 'too_large', `the response is over ${RESPONSE_FRAME_BYTES_MAX} bytes; ask for less`));
    }
    if (message.type === 'failure') this.context.counters.countFailure(message.failure.error);
    return frame;
  }

  /**
   * Everything queued in one turn (the answers of one applied slot, of one socket read) leaves in
   * one write once the turn's microtasks are done: before the loop handles the next socket's data,
   * not after the whole poll phase as with setImmediate.
   */
  private queueEncoded(frame: Buffer): void {
    if (!this.isActive()) return;
    this.outgoing.push(frame);
    this.context.counters.responses += 1;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outgoing.length === 0 || this.state === 'closed') return;
    const frames = this.outgoing;
    this.outgoing = [];
    const writable = this.socket.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));
    this.context.counters.writes += 1;
    if (!writable) this.pauseReading();
  }

  /** Backpressure: a client that does not read its answers stops being read until they drain. */
  private pauseReading(): void {
    if (this.readingPaused || this.state !== 'open') return;
    this.readingPaused = true;
    this.context.counters.readPauses += 1;
    this.socket.pause();
    this.socket.once('drain', () => {
      this.readingPaused = false;
      if (this.isActive() || this.state === 'closing') this.socket.resume();
    });
  }
}

/** A failure answering the same request as `message` (reqId 0 for a welcome). */
function failureFor(message: ServerMessage, error: ServiceErrorCode, text: string): ServerMessage {
  const reqId = message.type === 'welcome' ? 0 : message.reqId;
  return { type: 'failure', reqId, failure: { ok: false, error, message: text } };
}

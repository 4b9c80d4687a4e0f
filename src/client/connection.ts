/**
 * One client connection to one node: dial lazily, hello, then pipeline any number of requests,
 * each matched to its response by a connection-local reqId. Every attempt ends in exactly one
 * `AttemptOutcome` (never a rejection): an answer, the loss of the connection, or its own
 * timeout. Deciding what to do next (retry, redirect, back off) is the client's job.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { assert } from '../core/assert.js';
import type { KvOperation, KvSuccess } from '../kv/ops.js';
import {
  PROTOCOL_VERSION,
  RESPONSE_FRAME_BYTES_MAX,
  decodeServerMessage,
  encodeClientFrame,
  encodeRequestFrame,
  type ServerMessage,
} from '../protocol/wire.js';
import { ProtocolDecodeError } from '../protocol/reader.js';
import type { NodeStatusReport, ServiceFailure } from '../server/service.js';
import { FRAME_HEADER_BYTES, FrameDecoder } from '../transport/framing.js';
import { dialStream } from '../transport/tls.js';
import { FrameTooLargeError } from '../transport/transport.js';
import type { EndpointAddress } from './endpoint.js';

/** What one attempt asks. */
export type AttemptBody =
  | { readonly type: 'request'; readonly clientId: string; readonly seq: number; readonly operation: KvOperation }
  | { readonly type: 'status-request' };

/** How one attempt ended. */
export type AttemptOutcome =
  | { readonly kind: 'result'; readonly result: KvSuccess }
  | { readonly kind: 'status'; readonly status: NodeStatusReport }
  /** The node answered this request with a failure. */
  | { readonly kind: 'failure'; readonly failure: ServiceFailure }
  /**
   * The connection failed or closed before an answer. `failure` is the node's reason when it gave
   * one (reqId 0: for example `overloaded` when it refused the connection).
   */
  | { readonly kind: 'lost'; readonly reason: string; readonly failure?: ServiceFailure }
  /** No answer within the attempt's time. */
  | { readonly kind: 'timeout' };

export interface ConnectionOptions {
  readonly token: string | null;
  /** How long dialing plus the hello may take before the connection is given up. */
  readonly connectTimeoutMs: number;
  /** Dial with TLS using these options; null for plain TCP. */
  readonly tls: tls.ConnectionOptions | null;
}

interface PendingAttempt {
  readonly body: AttemptBody;
  readonly resolve: (outcome: AttemptOutcome) => void;
  /** When it times out (`performance.now()` ms). */
  readonly deadline: number;
  /** Whether its frame was handed to the socket (else it waits for the welcome). */
  sent: boolean;
}

/** The client's link to one endpoint. Reconnects on the next attempt after a failure. */
export class EndpointConnection {
  private socket: net.Socket | null = null;
  private decoder = new FrameDecoder(RESPONSE_FRAME_BYTES_MAX);
  private state: 'idle' | 'connecting' | 'ready' | 'closed' = 'idle';
  private requestFrameBytesMax = 0;
  private reqIdLast = 0;
  private readonly pending = new Map<number, PendingAttempt>();
  private outgoing: Buffer[] = [];
  private flushScheduled = false;
  private waitingForDrain = false;
  private connectTimer: NodeJS.Timeout | null = null;
  /**
   * One timer for every attempt's timeout, armed for the earliest deadline: a timer per attempt
   * (created, then cleared by nearly every answer) was a visible share of the client's CPU.
   */
  private timeoutTimer: NodeJS.Timeout | null = null;
  private timeoutTimerAt = Infinity;
  private readonly socketsClosing = new Set<Promise<void>>();

  constructor(
    readonly endpoint: string,
    private readonly address: EndpointAddress,
    private readonly options: ConnectionOptions,
  ) {}

  /** Attempts in flight (sent or waiting for the connection). */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Sends one attempt; resolves with its outcome after at most `timeoutMs`. Never rejects. */
  attempt(body: AttemptBody, timeoutMs: number): Promise<AttemptOutcome> {
    if (this.state === 'closed') return Promise.resolve({ kind: 'lost', reason: 'client closed' });
    return new Promise<AttemptOutcome>((resolve) => {
      this.reqIdLast += 1;
      const reqId = this.reqIdLast;
      const deadline = performance.now() + Math.max(1, timeoutMs);
      this.pending.set(reqId, { body, resolve, deadline, sent: false });
      if (deadline < this.timeoutTimerAt) this.armTimeouts(deadline);
      if (this.state === 'idle') this.connect();
      else if (this.state === 'ready') this.send(reqId);
    });
  }

  /** (Re)arms the timeout timer for `at`, the earliest deadline of the attempts in flight. */
  private armTimeouts(at: number): void {
    if (this.timeoutTimer !== null) clearTimeout(this.timeoutTimer);
    this.timeoutTimerAt = at;
    this.timeoutTimer = setTimeout(() => this.expireAttempts(), Math.max(1, Math.ceil(at - performance.now())));
  }

  /** Ends every attempt past its deadline as `timeout`, then arms the timer for the next deadline. */
  private expireAttempts(): void {
    this.timeoutTimer = null;
    this.timeoutTimerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [reqId, attempt] of this.pending) {
      if (attempt.deadline <= now) this.settle(reqId, { kind: 'timeout' });
      else next = Math.min(next, attempt.deadline);
    }
    if (next !== Infinity) this.armTimeouts(next);
  }

  /** Closes the connection for good: attempts in flight end as `lost`. Resolves once the socket is closed. */
  async close(): Promise<void> {
    this.state = 'closed';
    this.drop('client closed');
    await Promise.all(this.socketsClosing);
  }

  private connect(): void {
    assert(this.socket === null, 'connect with a socket already open');
    this.state = 'connecting';
    this.decoder = new FrameDecoder(RESPONSE_FRAME_BYTES_MAX);
    const { socket, readyEvent } = dialStream(this.address, this.options.tls);
    this.socket = socket;
    this.track(socket);
    socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => this.drop('connect timeout'), this.options.connectTimeoutMs);
    socket.on(readyEvent, () => {
      socket.write(encodeClientFrame({ type: 'hello', version: PROTOCOL_VERSION, token: this.options.token }));
    });
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    // 'close' follows every 'error'; the reason is the error's.
    let reason = 'connection closed';
    socket.on('error', (error) => (reason = error.message));
    socket.on('close', () => {
      if (socket !== this.socket) return;
      // Closed without a word before the welcome: typically plaintext to a TLS port.
      const silent = this.state === 'connecting' && reason === 'connection closed';
      this.drop(silent ? 'connection closed before the welcome (does the node require TLS?)' : reason);
    });
  }

  /** Remembers a promise of the socket's close, so `close()` can wait for every handle. */
  private track(socket: net.Socket): void {
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    this.socketsClosing.add(closed);
    void closed.then(() => this.socketsClosing.delete(closed));
  }

  private onData(socket: net.Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    try {
      for (const payload of this.decoder.push(chunk)) {
        if (socket !== this.socket) return;
        this.onMessage(decodeServerMessage(payload));
      }
    } catch (error) {
      if (!(error instanceof ProtocolDecodeError) && !(error instanceof FrameTooLargeError)) throw error;
      this.drop(`malformed response: ${error.message}`);
    }
  }

  private onMessage(message: ServerMessage): void {
    if (message.type === 'welcome') {
      this.onWelcome(message.version, message.requestFrameBytesMax);
      return;
    }
    if (this.state !== 'ready' && !(message.type === 'failure' && message.reqId === 0)) {
      throw new ProtocolDecodeError(`${message.type} before welcome`);
    }
    if (message.type === 'failure' && message.reqId === 0) {
      // The node gives up on this connection (refusal, or an error of ours); it closes next.
      this.drop(`node closed the connection: ${message.failure.message}`, message.failure);
    } else if (message.type === 'result') {
      this.settle(message.reqId, { kind: 'result', result: message.result });
    } else if (message.type === 'status') {
      this.settle(message.reqId, { kind: 'status', status: message.status });
    } else {
      this.settle(message.reqId, { kind: 'failure', failure: message.failure });
    }
  }

  private onWelcome(version: number, requestFrameBytesMax: number): void {
    if (this.state !== 'connecting') throw new ProtocolDecodeError('second welcome');
    if (version !== PROTOCOL_VERSION) throw new ProtocolDecodeError(`node speaks protocol version ${version}`);
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.state = 'ready';
    this.requestFrameBytesMax = requestFrameBytesMax;
    for (const [reqId, attempt] of this.pending) if (!attempt.sent) this.send(reqId);
  }

  /** Encodes an attempt and queues its frame; one over the node's limit fails as `too_large`. */
  private send(reqId: number): void {
    const attempt = this.pending.get(reqId);
    assert(attempt !== undefined && !attempt.sent, 'send an attempt once');
    const { body } = attempt;
    const frame =
      body.type === 'request'
        ? encodeRequestFrame(reqId, body.clientId, body.seq, body.operation)
        : encodeClientFrame({ type: 'status-request', reqId });
    const payloadBytes = frame.byteLength - FRAME_HEADER_BYTES;
    if (payloadBytes > this.requestFrameBytesMax) {
      const message = `request of ${payloadBytes} bytes is over the node's limit of ${this.requestFrameBytesMax}`;
      this.settle(reqId, { kind: 'failure', failure: { ok: false, error: 'too_large', message } });
      return;
    }
    attempt.sent = true;
    this.outgoing.push(frame);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After the microtasks of this turn: every request that the answers of one socket read set
    // off (a caller's continuation sends the next) leaves in the same write, and before the next
    // socket's data is handled, not after the whole poll phase as with setImmediate.
    process.nextTick(() => this.flush());
  }

  /** Writes everything queued in this turn in one write, unless the socket asked us to wait. */
  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (socket === null || this.state !== 'ready' || this.waitingForDrain || this.outgoing.length === 0) return;
    const frames = this.outgoing;
    this.outgoing = [];
    const writable = socket.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));
    if (writable) return;
    this.waitingForDrain = true;
    socket.once('drain', () => {
      this.waitingForDrain = false;
      if (socket === this.socket) this.flush();
    });
  }

  private settle(reqId: number, outcome: AttemptOutcome): void {
    const attempt = this.pending.get(reqId);
    // A late answer to an attempt that already timed out: nobody waits for it.
    if (attempt === undefined) return;
    this.pending.delete(reqId);
    if (this.pending.size === 0 && this.timeoutTimer !== null) {
      // Nothing left to time out: an idle client holds no timer (nor keeps its process alive).
      clearTimeout(this.timeoutTimer);
      this.timeoutTimer = null;
      this.timeoutTimerAt = Infinity;
    }
    attempt.resolve(outcome);
  }

  /** Destroys the socket and ends every attempt in flight as `lost`; the next attempt redials. */
  private drop(reason: string, failure?: ServiceFailure): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    const socket = this.socket;
    this.socket = null;
    this.outgoing = [];
    this.waitingForDrain = false;
    if (this.state !== 'closed') this.state = 'idle';
    socket?.destroy();
    const outcome: AttemptOutcome = failure === undefined ? { kind: 'lost', reason } : { kind: 'lost', reason, failure };
    for (const reqId of [...this.pending.keys()]) this.settle(reqId, outcome);
  }
}

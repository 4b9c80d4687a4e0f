/**
 * The two ends of a `TcpTransport` connection: `OutboundLink` dials a peer, authenticates, and
 * writes the peer's queued frames in batches; `InboundConnection` authenticates a dialer and hands
 * its frames to the transport. Both close on any protocol violation and never throw from a socket
 * event handler (untrusted input is a counted, logged event, not an exception).
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { assert } from '../core/assert.js';
import type { NodeId } from '../core/ballot.js';
import { FrameDecoder, encodeFrame } from './framing.js';
import {
  HANDSHAKE_FRAME_BYTES_MAX,
  decodeChallenge,
  decodeHello,
  decodeProof,
  decodeWelcome,
  encodeChallenge,
  encodeHello,
  encodeProof,
  encodeWelcome,
  handshakeProof,
  makeNonce,
  proofMatches,
} from './handshake.js';
import { dialStream, isTlsError } from './tls.js';
import {
  FrameTooLargeError,
  HandshakeError,
  type NodeCounters,
  type PeerCounters,
  type TransportLogger,
} from './transport.js';

/** The configuration and shared counters both ends need (resolved defaults). */
export interface LinkContext {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  readonly secret: Uint8Array;
  readonly peers: ReadonlyMap<NodeId, { readonly host: string; readonly port: number }>;
  readonly frameBytesMax: number;
  readonly peerQueueBytesMax: number;
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  readonly handshakeTimeoutMs: number;
  readonly logger: TransportLogger;
  readonly random: () => number;
  readonly nodeCounters: NodeCounters;
  /** TLS options for dialing peers; null for plain TCP. */
  readonly dialTls: tls.ConnectionOptions | null;
}

/** Bytes of queued frames written per `socket.write`: big enough to amortise, small enough to interleave. */
const BATCH_BYTES_MAX = 1024 * 1024;

/** Records a failed handshake: counted, logged with its reason. */
function authFailure(context: LinkContext, error: HandshakeError, fields: object): void {
  context.nodeCounters.authFailure(error.reason);
  context.logger.warn({ nodeId: context.nodeId, ...fields, reason: error.reason, error: error.message }, 'peer refused: handshake failed');
}

/** The sending side of one peer: dial, authenticate, drain the queue; redial with backoff. */
export class OutboundLink {
  private socket: net.Socket | null = null;
  private decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
  private dialerNonce: Uint8Array = new Uint8Array(0);
  /** Which listener record comes next while `counters.state` is 'handshaking'. */
  private handshakeStage: 'awaiting-challenge' | 'awaiting-welcome' = 'awaiting-challenge';
  private readonly queue: Buffer[] = [];
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private flushScheduled = false;
  private waitingForDrain = false;
  private closed = false;

  constructor(
    private readonly context: LinkContext,
    private readonly peerId: NodeId,
    private readonly address: { readonly host: string; readonly port: number },
    private readonly counters: PeerCounters,
  ) {}

  /** Queues one encoded message; drops it (counted) if it or the queue would exceed a limit. */
  enqueue(payload: Uint8Array): void {
    if (this.closed) {
      this.counters.drop('stopped');
      return;
    }
    if (payload.byteLength > this.context.frameBytesMax) {
      this.counters.drop('too-large');
      return;
    }
    const frame = encodeFrame(payload);
    if (this.counters.queueBytes + frame.byteLength > this.context.peerQueueBytesMax) {
      this.counters.drop('queue-full');
      return;
    }
    this.queue.push(frame);
    this.counters.queueBytes += frame.byteLength;
    // Everything enqueued in this synchronous run goes out together in one write.
    if (!this.flushScheduled && this.counters.state === 'connected') {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Dials the peer and starts the handshake. */
  connect(): void {
    assert(this.socket === null, 'connect with a socket already open');
    if (this.closed) return;
    this.reconnectTimer = null;
    this.counters.state = 'connecting';
    this.decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
    const { socket, readyEvent } = dialStream(this.address, this.context.dialTls);
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on(readyEvent, () => this.sendHello(socket));
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (error) => {
      // A TLS failure (the peer's certificate does not verify) is a refusal; 'close' follows.
      if (isTlsError(error)) {
        authFailure(this.context, new HandshakeError('tls', `TLS with the peer failed: ${error.message}`), { peerId: this.peerId });
        return;
      }
      // Refused or reset connections are routine while a peer restarts; 'close' follows.
      this.context.logger.info({ nodeId: this.context.nodeId, peerId: this.peerId, error: error.message }, 'connection to peer failed');
    });
    socket.on('close', () => this.onClose(socket));
  }

  /** Closes the connection and cancels timers; queued messages are discarded. */
  close(): void {
    this.closed = true;
    this.counters.state = 'stopped';
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.queue.length = 0;
    this.counters.queueBytes = 0;
    this.dropSocket();
  }

  private sendHello(socket: net.Socket): void {
    this.counters.state = 'handshaking';
    this.handshakeStage = 'awaiting-challenge';
    this.dialerNonce = makeNonce();
    this.handshakeTimer = setTimeout(() => {
      authFailure(this.context, new HandshakeError('handshake-timeout', 'peer did not complete the handshake'), { peerId: this.peerId });
      this.dropSocket();
    }, this.context.handshakeTimeoutMs);
    const hello = { clusterId: this.context.clusterId, from: this.context.nodeId, to: this.peerId, nonce: this.dialerNonce };
    socket.write(encodeFrame(encodeHello(hello)));
  }

  private onData(socket: net.Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    try {
      for (const payload of this.decoder.push(chunk)) {
        if (socket !== this.socket) return;
        this.onHandshakeFrame(socket, payload);
      }
    } catch (error) {
      if (error instanceof HandshakeError) {
        authFailure(this.context, error, { peerId: this.peerId });
      } else if (error instanceof FrameTooLargeError) {
        authFailure(this.context, new HandshakeError('malformed-handshake', error.message), { peerId: this.peerId });
      } else {
        throw error;
      }
      this.dropSocket();
    }
  }

  /** The listener only ever sends the challenge and the welcome; anything else is a violation. */
  private onHandshakeFrame(socket: net.Socket, payload: Uint8Array): void {
    if (this.counters.state === 'handshaking' && this.handshakeStage === 'awaiting-challenge') {
      const challenge = decodeChallenge(payload);
      const context = {
        clusterId: this.context.clusterId, dialerId: this.context.nodeId, listenerId: this.peerId,
        dialerNonce: this.dialerNonce, listenerNonce: challenge.nonce,
      };
      if (!proofMatches(challenge.proof, handshakeProof(this.context.secret, 'listener', context))) {
        throw new HandshakeError('bad-proof', 'peer does not hold the cluster secret');
      }
      this.handshakeStage = 'awaiting-welcome';
      socket.write(encodeFrame(encodeProof(handshakeProof(this.context.secret, 'dialer', context))));
      return;
    }
    if (this.counters.state === 'handshaking') {
      decodeWelcome(payload);
      this.onAuthenticated();
      return;
    }
    throw new HandshakeError('duplicate-handshake', 'peer sent data on a sending-only connection');
  }

  private onAuthenticated(): void {
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.attempts = 0;
    this.counters.state = 'connected';
    this.counters.connections += 1;
    this.context.logger.info({ nodeId: this.context.nodeId, peerId: this.peerId }, 'connected to peer');
    this.flush();
  }

  /** Writes queued frames in batches until the queue is empty or the socket asks us to wait. */
  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (socket === null || this.counters.state !== 'connected' || this.waitingForDrain) return;
    while (this.queue.length > 0) {
      let batchBytes = 0;
      let batchCount = 0;
      while (batchCount < this.queue.length && batchBytes < BATCH_BYTES_MAX) {
        batchBytes += this.queue[batchCount]?.byteLength ?? 0;
        batchCount += 1;
      }
      const batch = this.queue.splice(0, batchCount);
      const data = batch.length === 1 ? batch[0] : Buffer.concat(batch, batchBytes);
      assert(data !== undefined, 'a batch holds at least one frame');
      this.counters.queueBytes -= batchBytes;
      this.counters.sent += batchCount;
      if (!socket.write(data)) {
        this.waitingForDrain = true;
        socket.once('drain', () => {
          this.waitingForDrain = false;
          if (socket === this.socket) this.flush();
        });
        return;
      }
    }
  }

  private dropSocket(): void {
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    const socket = this.socket;
    this.socket = null;
    this.waitingForDrain = false;
    socket?.destroy();
    if (socket !== null) this.scheduleReconnect();
  }

  private onClose(socket: net.Socket): void {
    if (socket !== this.socket) return;
    this.context.logger.info({ nodeId: this.context.nodeId, peerId: this.peerId }, 'connection to peer closed');
    this.dropSocket();
  }

  /** Exponential backoff with jitter: the delay doubles per failure, drawn from [base/2, base). */
  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer !== null) return;
    this.counters.state = 'backoff';
    const base = Math.min(this.context.reconnectDelayMsMax, this.context.reconnectDelayMsMin * 2 ** Math.min(this.attempts, 30));
    const delayMs = Math.round(base / 2 + (this.context.random() * base) / 2);
    this.attempts += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
  }
}

/** What an inbound connection reports to its transport. */
export interface InboundEvents {
  authenticated(peerId: NodeId): void;
  /** One frame from the authenticated peer. */
  frame(peerId: NodeId, payload: Uint8Array): void;
  /** The authenticated peer announced a frame above `frameBytesMax`; the connection closes. */
  frameTooLarge(peerId: NodeId): void;
  closed(peerId: NodeId | null): void;
}

/** The receiving side of a connection a peer dialed: authenticate it, then pass its frames on. */
export class InboundConnection {
  private readonly decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
  private state: 'awaiting-hello' | 'awaiting-proof' | 'authenticated' | 'closed' = 'awaiting-hello';
  private peerId: NodeId | null = null;
  private dialerNonce: Uint8Array = new Uint8Array(0);
  private listenerNonce: Uint8Array = new Uint8Array(0);
  private readonly handshakeTimer: NodeJS.Timeout;
  /** The dialer's `host:port`, for logs. */
  readonly remoteAddress: string;

  constructor(
    private readonly context: LinkContext,
    private readonly socket: net.Socket,
    private readonly events: InboundEvents,
  ) {
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    this.handshakeTimer = setTimeout(() => {
      this.refuse(new HandshakeError('handshake-timeout', 'dialer did not complete the handshake'));
    }, context.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => {
      context.logger.info({ nodeId: context.nodeId, peerId: this.peerId, remote: this.remoteAddress, error: error.message }, 'inbound connection error');
    });
    socket.on('close', () => {
      // A dialer that hangs up after our challenge could not verify our proof: it holds another
      // secret (or is probing). Refused like any failed handshake, so it is counted and logged.
      if (this.state === 'awaiting-proof') {
        this.refuse(new HandshakeError('handshake-abandoned', `node ${this.peerId ?? '?'} hung up after the challenge (a different secret?)`));
      } else this.close();
    });
  }

  /** Read through a method so the compiler does not narrow it across callbacks that change it. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Closes the socket (idempotent) and reports it once. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    this.socket.destroy();
    this.events.closed(this.peerId);
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      if (!(error instanceof FrameTooLargeError)) throw error;
      this.onFrameTooLarge(error);
      return;
    }
    for (const payload of frames) {
      // A frame may close the connection; nothing after it in the same chunk is looked at.
      if (this.isClosed()) return;
      if (this.state === 'authenticated' && this.peerId !== null) {
        this.events.frame(this.peerId, payload);
        continue;
      }
      try {
        this.onHandshakeFrame(payload);
      } catch (error) {
        if (!(error instanceof HandshakeError)) throw error;
        this.refuse(error);
      }
    }
  }

  /** Before authentication an oversized frame is a failed handshake; after, a counted drop. */
  private onFrameTooLarge(error: FrameTooLargeError): void {
    if (this.state === 'authenticated' && this.peerId !== null) {
      this.context.logger.warn({ nodeId: this.context.nodeId, peerId: this.peerId, error: error.message }, 'frame too large; closing connection');
      this.events.frameTooLarge(this.peerId);
      this.close();
      return;
    }
    this.refuse(new HandshakeError('malformed-handshake', error.message));
  }

  private onHandshakeFrame(payload: Uint8Array): void {
    if (this.state === 'awaiting-hello') {
      const hello = decodeHello(payload);
      if (hello.clusterId !== this.context.clusterId) throw new HandshakeError('wrong-cluster', `dialer is in cluster ${JSON.stringify(hello.clusterId)}`);
      if (hello.to !== this.context.nodeId) throw new HandshakeError('wrong-node', `dialer expected node ${hello.to}`);
      if (!this.context.peers.has(hello.from)) throw new HandshakeError('unknown-node', `node ${hello.from} is not a configured peer`);
      this.peerId = hello.from;
      this.dialerNonce = hello.nonce;
      this.listenerNonce = makeNonce();
      this.state = 'awaiting-proof';
      this.socket.write(encodeFrame(encodeChallenge(this.listenerNonce, handshakeProof(this.context.secret, 'listener', this.handshakeContext(hello.from)))));
      return;
    }
    assert(this.state === 'awaiting-proof' && this.peerId !== null, 'handshake frame in an unexpected state');
    const proof = decodeProof(payload);
    if (!proofMatches(proof, handshakeProof(this.context.secret, 'dialer', this.handshakeContext(this.peerId)))) {
      throw new HandshakeError('bad-proof', `node ${this.peerId} does not hold the cluster secret`);
    }
    clearTimeout(this.handshakeTimer);
    this.state = 'authenticated';
    this.decoder.frameBytesMax = this.context.frameBytesMax;
    this.socket.write(encodeFrame(encodeWelcome()));
    this.context.logger.info({ nodeId: this.context.nodeId, peerId: this.peerId, remote: this.remoteAddress }, 'peer authenticated');
    this.events.authenticated(this.peerId);
  }

  private handshakeContext(dialerId: NodeId): Parameters<typeof handshakeProof>[2] {
    return {
      clusterId: this.context.clusterId, dialerId, listenerId: this.context.nodeId,
      dialerNonce: this.dialerNonce, listenerNonce: this.listenerNonce,
    };
  }

  private refuse(error: HandshakeError): void {
    if (this.state === 'closed') return;
    authFailure(this.context, error, { claimedPeerId: this.peerId, remote: this.remoteAddress });
    this.close();
  }
}

/**
 * Authenticated TCP between replicas. Each node dials one outbound connection per peer and sends
 * only on it; it receives only on connections peers dialed to it. So each direction of a pair has
 * exactly one connection and one owner, and a reconnect never races a second sender.
 *
 * Every connection starts with the mutual handshake of `handshake.ts`; until it completes, frames
 * are capped at `HANDSHAKE_FRAME_BYTES_MAX` and nothing is delivered. Afterwards each frame holds one
 * message, which must decode (`decodeMessage`), come from the authenticated peer and be addressed to
 * us. Malformed input closes the connection (the peer redials); it never throws out of a socket
 * handler. Outgoing messages wait in a per-peer queue bounded by `peerQueueBytesMax`; when it is
 * full the new message is dropped and counted, because Paxos recovers from loss but no process
 * recovers from unbounded memory.
 *
 * With `tls` set, every connection is TLS (node:tls) under the same handshake: each side verifies
 * the other's certificate against the cluster CA (the dialer always; the listener too when
 * `mutual`), so frames are private and tamper-evident on the wire, and a dialer without a
 * certificate from the CA does not even reach the HMAC exchange under mutual TLS.
 *
 * Refusals and forged frames are counted (`stats()`) and logged with the remote address; the
 * logger is rate-limited per message (`LimitedLogger`) so that nobody can flood the log.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { assert } from '../core/assert.js';
import { isValidNodeId, type NodeId } from '../core/ballot.js';
import type { Message } from '../core/multipaxos/types.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { FRAME_BYTES_MAX_DEFAULT } from './framing.js';
import { CLUSTER_ID_BYTES_MAX, SECRET_BYTES_MIN } from './handshake.js';
import { LimitedLogger } from './log-limit.js';
import { InboundConnection, OutboundLink, type LinkContext } from './tcp-connection.js';
import { createStreamServer } from './tls.js';
import {
  NodeCounters,
  PeerCounters,
  TransportConfigError,
  WireDecodeError,
  silentLogger,
  type MessageHandler,
  type Transport,
  type TransportLogger,
  type TransportStats,
} from './transport.js';

/** Where a node listens or can be dialed. */
export interface TcpAddress {
  readonly host: string;
  readonly port: number;
}

/** TLS for peer links. PEM strings or buffers, as node:tls takes them. */
export interface PeerTlsOptions {
  /** This node's certificate (chain): presented when listening, and when dialing under mutual TLS. */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The CA bundle peers' certificates must chain to. A peer's certificate must name its host. */
  readonly ca: string | Buffer;
  /** Whether a listener also requires and verifies the dialer's certificate (default false). */
  readonly mutual?: boolean;
}

/** Options of a `TcpTransport`. Limits have defaults suited to a small cluster on a LAN. */
export interface TcpTransportOptions {
  readonly nodeId: NodeId;
  /** Peers with another cluster id are refused (catches two clusters sharing hosts). */
  readonly clusterId: string;
  /** The shared secret every node of the cluster holds; at least `SECRET_BYTES_MIN` bytes. */
  readonly secret: Uint8Array | string;
  readonly listen: TcpAddress;
  /** Every other node of the cluster. Connections claiming any other id are refused. */
  readonly peers: ReadonlyMap<NodeId, TcpAddress>;
  /** The largest frame payload sent or accepted (default 16 MiB). */
  readonly frameBytesMax?: number;
  /** The most encoded bytes waiting for one peer (default 8 MiB). */
  readonly peerQueueBytesMax?: number;
  /** The first reconnect delay; it doubles per failed attempt up to the maximum (default 50 ms). */
  readonly reconnectDelayMsMin?: number;
  /** The cap on the reconnect delay (default 5 s). */
  readonly reconnectDelayMsMax?: number;
  /** How long a connection may take to authenticate before it is closed (default 5 s). */
  readonly handshakeTimeoutMs?: number;
  readonly logger?: TransportLogger;
  /** TLS on every peer connection (default: plain TCP). The HMAC handshake runs inside it. */
  readonly tls?: PeerTlsOptions;
  /** The source of reconnect jitter in [0, 1) (default `Math.random`); injectable for tests. */
  readonly random?: () => number;
}

/** The `Transport` over authenticated TCP. */
export class TcpTransport implements Transport {
  readonly nodeId: NodeId;
  private readonly context: LinkContext;
  private readonly listenAddress: TcpAddress;
  private readonly listenTls: tls.TlsOptions | null;
  private readonly handlers: MessageHandler[] = [];
  private readonly counters = new Map<NodeId, PeerCounters>();
  private readonly nodeCounters = new NodeCounters();
  private readonly links = new Map<NodeId, OutboundLink>();
  private readonly inbound = new Set<InboundConnection>();
  private readonly inboundByPeer = new Map<NodeId, InboundConnection>();
  private server: net.Server | null = null;
  private state: 'new' | 'running' | 'stopped' = 'new';

  constructor(options: TcpTransportOptions) {
    validateOptions(options);
    this.nodeId = options.nodeId;
    this.listenAddress = options.listen;
    for (const peerId of options.peers.keys()) this.counters.set(peerId, new PeerCounters());
    this.context = {
      nodeId: options.nodeId,
      clusterId: options.clusterId,
      secret: typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : Buffer.from(options.secret),
      peers: options.peers,
      frameBytesMax: options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT,
      peerQueueBytesMax: options.peerQueueBytesMax ?? 8 * 1024 * 1024,
      reconnectDelayMsMin: options.reconnectDelayMsMin ?? 50,
      reconnectDelayMsMax: options.reconnectDelayMsMax ?? 5_000,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5_000,
      logger: new LimitedLogger(options.logger ?? silentLogger),
      random: options.random ?? Math.random,
      nodeCounters: this.nodeCounters,
      dialTls: options.tls === undefined ? null : { ca: options.tls.ca, cert: options.tls.cert, key: options.tls.key },
    };
    const mutual = options.tls?.mutual === true;
    this.listenTls = options.tls === undefined ? null : {
      cert: options.tls.cert, key: options.tls.key, ca: options.tls.ca,
      requestCert: mutual, rejectUnauthorized: mutual,
      handshakeTimeout: this.context.handshakeTimeoutMs,
    };
  }

  /** Whether peer links use TLS. */
  get tls(): boolean {
    return this.listenTls !== null;
  }

  /** Listens, then dials every peer. Rejects if the listen address is unavailable. */
  async start(): Promise<void> {
    assert(this.state === 'new', 'TcpTransport.start called twice or after stop');
    const server = createStreamServer(this.listenTls, (socket) => this.accept(socket), (error, remote) => {
      this.nodeCounters.authFailure('tls');
      this.context.logger.warn({ nodeId: this.nodeId, remote, reason: 'tls', error: error.message }, 'peer refused: handshake failed');
    });
    // Bounds sockets held by unauthenticated clients: two per peer (one lingering) plus slack.
    server.maxConnections = 2 * this.context.peers.size + 16;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenAddress.port, this.listenAddress.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.context.logger.warn({ nodeId: this.nodeId, error: error.message }, 'transport server error'));
    this.state = 'running';
    for (const [peerId, address] of this.context.peers) {
      const link = new OutboundLink(this.context, peerId, address, this.peerCounters(peerId));
      this.links.set(peerId, link);
      link.connect();
    }
    this.context.logger.info({ nodeId: this.nodeId, address: this.address() }, 'transport listening');
  }

  /** The bound listen address (useful with port 0). */
  address(): TcpAddress {
    const address = this.server?.address();
    assert(address !== null && address !== undefined && typeof address === 'object', 'transport is not listening');
    return { host: address.address, port: address.port };
  }

  /** Queues `message` for its peer; drops and counts when the queue is full or the node stopped. */
  send(message: Message): void {
    assert(message.from === this.nodeId, 'send: message.from must be this node');
    const counters = this.counters.get(message.to);
    if (counters === undefined) {
      this.nodeCounters.droppedUnknownPeer += 1;
      return;
    }
    const link = this.links.get(message.to);
    if (this.state !== 'running' || link === undefined) {
      counters.drop('stopped');
      return;
    }
    link.enqueue(encodeMessage(message));
  }

  /** Registers a handler for delivered messages. */
  onMessage(handler: MessageHandler): void {
    this.handlers.push(handler);
  }

  /** Closes the server, every connection and every timer. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    for (const link of this.links.values()) link.close();
    for (const connection of this.inbound) connection.close();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.context.logger.info({ nodeId: this.nodeId }, 'transport stopped');
  }

  /** Counters per peer plus handshake failures. */
  stats(): TransportStats {
    return this.nodeCounters.snapshot(this.nodeId, this.counters);
  }

  private peerCounters(peerId: NodeId): PeerCounters {
    const counters = this.counters.get(peerId);
    assert(counters !== undefined, 'counters exist for every configured peer');
    return counters;
  }

  private accept(socket: net.Socket): void {
    if (this.state !== 'running') {
      socket.destroy();
      return;
    }
    const connection = new InboundConnection(this.context, socket, {
      authenticated: (peerId) => {
        // A peer that redials leaves its old connection half-open at worst; keep only the newest.
        this.inboundByPeer.get(peerId)?.close();
        this.inboundByPeer.set(peerId, connection);
      },
      frame: (peerId, payload) => this.receive(connection, peerId, payload),
      frameTooLarge: (peerId) => this.peerCounters(peerId).drop('frame-too-large'),
      closed: (peerId) => {
        this.inbound.delete(connection);
        if (peerId !== null && this.inboundByPeer.get(peerId) === connection) this.inboundByPeer.delete(peerId);
      },
    });
    this.inbound.add(connection);
  }

  /** Decodes and checks one frame from an authenticated peer, then delivers it. */
  private receive(connection: InboundConnection, peerId: NodeId, payload: Uint8Array): void {
    const counters = this.peerCounters(peerId);
    let message: Message;
    try {
      message = decodeMessage(payload);
    } catch (error) {
      if (!(error instanceof WireDecodeError)) throw error;
      counters.drop('malformed');
      this.context.logger.warn({ nodeId: this.nodeId, peerId, remote: connection.remoteAddress, error: error.message }, 'malformed message from peer; closing connection');
      connection.close();
      return;
    }
    if (message.from !== peerId) {
      counters.drop('wrong-sender');
      this.context.logger.warn({ nodeId: this.nodeId, peerId, remote: connection.remoteAddress, claimed: message.from, type: message.type }, 'message claims another sender; dropped');
      return;
    }
    if (message.to !== this.nodeId) {
      counters.drop('wrong-recipient');
      this.context.logger.warn({ nodeId: this.nodeId, peerId, remote: connection.remoteAddress, to: message.to, type: message.type }, 'message addressed to another node; dropped');
      return;
    }
    counters.received += 1;
    for (const handler of this.handlers) handler(message);
  }
}

function validateOptions(options: TcpTransportOptions): void {
  const fail = (message: string): never => {
    throw new TransportConfigError(message);
  };
  if (!isValidNodeId(options.nodeId)) fail('nodeId is not a valid node id');
  if (typeof options.clusterId !== 'string' || options.clusterId.length === 0) fail('clusterId must be a non-empty string');
  if (Buffer.byteLength(options.clusterId, 'utf8') > CLUSTER_ID_BYTES_MAX) fail('clusterId is too long');
  const secretBytes = typeof options.secret === 'string' ? Buffer.byteLength(options.secret, 'utf8') : options.secret.byteLength;
  if (secretBytes < SECRET_BYTES_MIN) fail(`secret must be at least ${SECRET_BYTES_MIN} bytes`);
  for (const peerId of options.peers.keys()) {
    if (!isValidNodeId(peerId) || peerId === options.nodeId) fail(`peer id ${peerId} is invalid or this node`);
  }
  const positive = (value: number | undefined, name: string): void => {
    if (value !== undefined && (!Number.isSafeInteger(value) || value <= 0)) fail(`${name} must be a positive integer`);
  };
  positive(options.frameBytesMax, 'frameBytesMax');
  positive(options.peerQueueBytesMax, 'peerQueueBytesMax');
  positive(options.reconnectDelayMsMin, 'reconnectDelayMsMin');
  positive(options.reconnectDelayMsMax, 'reconnectDelayMsMax');
  positive(options.handshakeTimeoutMs, 'handshakeTimeoutMs');
  if ((options.reconnectDelayMsMin ?? 50) > (options.reconnectDelayMsMax ?? 5_000)) fail('reconnectDelayMsMin exceeds reconnectDelayMsMax');
  if ((options.frameBytesMax ?? 0) > 0xffff_ffff) fail('frameBytesMax exceeds the u32 length prefix');
  if (options.tls !== undefined) {
    for (const field of ['cert', 'key', 'ca'] as const) {
      const value = options.tls[field];
      if ((typeof value !== 'string' && !Buffer.isBuffer(value)) || value.length === 0) fail(`tls.${field} must be a non-empty PEM string or buffer`);
    }
  }
}

/**
 * The node-to-node transport: how replicas hand each other `Message`s. The pure core returns what
 * to send (`Ready.send`); a driver passes each message to `Transport.send` and feeds whatever
 * `onMessage` delivers back into the core. Paxos tolerates loss, duplication and reordering, so a
 * transport may drop (and count) instead of blocking or growing memory without bound.
 *
 * Two implementations share one conformance suite: `TcpTransport` (authenticated TCP between
 * processes) and `MemoryTransport` (in-process, for tests).
 */
import type { NodeId } from '../core/ballot.js';
import type { Message } from '../core/multipaxos/types.js';

/** Receives every message the transport accepted from an authenticated peer, addressed to us. */
export type MessageHandler = (message: Message) => void;

/** A replica's link to its peers. */
export interface Transport {
  /** Starts listening and connecting. Resolves once the node accepts connections. */
  start(): Promise<void>;
  /**
   * Queues `message` for `message.to`. Never blocks and never throws for network reasons: when the
   * peer's queue is full, the peer is unknown, or the transport is stopped, the message is dropped
   * and the drop is counted under its reason in `stats()`.
   */
  send(message: Message): void;
  /** Registers a handler; every delivered message goes to every handler, in registration order. */
  onMessage(handler: MessageHandler): void;
  /** Closes every connection and timer. Idempotent; `send` after `stop` drops. */
  stop(): Promise<void>;
  /** A snapshot of counters, for status pages and tests. */
  stats(): TransportStats;
}

/** Why an outgoing message was not sent. */
export type SendDropReason = 'queue-full' | 'too-large' | 'unknown-peer' | 'stopped';

/** Why an incoming frame or message was not delivered. */
export type ReceiveDropReason = 'malformed' | 'frame-too-large' | 'wrong-sender' | 'wrong-recipient';

/** Why a connection attempt failed authentication (either direction). */
export type AuthFailureReason =
  | 'wrong-cluster'
  | 'unknown-node'
  | 'wrong-node'
  | 'bad-proof'
  | 'malformed-handshake'
  | 'handshake-timeout'
  | 'handshake-abandoned'
  | 'duplicate-handshake'
  /** The TLS handshake failed: a plaintext dialer, an untrusted certificate, a timeout. */
  | 'tls';

/** The state of the outbound (sending) connection to one peer. */
export type ConnectionState = 'idle' | 'connecting' | 'handshaking' | 'connected' | 'backoff' | 'stopped';

/** Counters for one peer. `dropped` is the sum of `droppedByReason`. */
export interface PeerStats {
  readonly state: ConnectionState;
  /** Messages handed to the network (written to the socket, or queued for in-process delivery). */
  readonly sent: number;
  /** Messages delivered to the handlers. */
  readonly received: number;
  readonly dropped: number;
  readonly droppedByReason: Readonly<Partial<Record<SendDropReason | ReceiveDropReason, number>>>;
  /** Bytes of encoded frames waiting in the send queue. */
  readonly queueBytes: number;
  /** Successful outbound handshakes, including the first. */
  readonly connections: number;
}

/** A snapshot of a transport's counters. */
export interface TransportStats {
  readonly nodeId: NodeId;
  readonly peers: ReadonlyMap<NodeId, PeerStats>;
  /** Handshakes that failed authentication, in either direction. */
  readonly authFailures: number;
  readonly authFailuresByReason: Readonly<Partial<Record<AuthFailureReason, number>>>;
  /** Messages sent to a node that is not a configured peer. */
  readonly droppedUnknownPeer: number;
}

/**
 * The logging surface the transport needs: a subset of pino's, so a pino logger can be passed as
 * is. The first argument carries structured fields, the second a fixed human-readable message.
 */
export interface TransportLogger {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

/** A logger that discards everything: the default, so a library never writes to stdout unasked. */
export const silentLogger: TransportLogger = {
  warn: () => {},
  info: () => {},
};

/** The base of every typed transport error. */
export class TransportError extends Error {
  override readonly name: string = 'TransportError';
}

/** Bytes from the network do not decode to a well-formed value (untrusted input, not a bug). */
export class WireDecodeError extends TransportError {
  override readonly name: string = 'WireDecodeError';
}

/** A frame's length prefix exceeds the configured maximum; the connection must be closed. */
export class FrameTooLargeError extends TransportError {
  override readonly name: string = 'FrameTooLargeError';
  constructor(
    readonly frameBytes: number,
    readonly frameBytesMax: number,
  ) {
    super(`frame of ${frameBytes} bytes exceeds the maximum of ${frameBytesMax}`);
  }
}

/** A peer failed the handshake; `reason` says which check it failed. */
export class HandshakeError extends TransportError {
  override readonly name: string = 'HandshakeError';
  constructor(
    readonly reason: AuthFailureReason,
    message: string,
  ) {
    super(message);
  }
}

/** The transport's options are unusable (a configuration mistake, reported at construction). */
export class TransportConfigError extends TransportError {
  override readonly name: string = 'TransportConfigError';
}

/** Mutable per-peer counters behind `PeerStats`; shared by the implementations. */
export class PeerCounters {
  state: ConnectionState = 'idle';
  sent = 0;
  received = 0;
  queueBytes = 0;
  connections = 0;
  private readonly droppedByReason: Partial<Record<SendDropReason | ReceiveDropReason, number>> = {};

  /** Counts one dropped message under `reason`. */
  drop(reason: SendDropReason | ReceiveDropReason): void {
    this.droppedByReason[reason] = (this.droppedByReason[reason] ?? 0) + 1;
  }

  /** A frozen copy, so callers cannot mutate the live counters. */
  snapshot(): PeerStats {
    const droppedByReason = { ...this.droppedByReason };
    let dropped = 0;
    for (const count of Object.values(droppedByReason)) dropped += count;
    return {
      state: this.state,
      sent: this.sent,
      received: this.received,
      dropped,
      droppedByReason,
      queueBytes: this.queueBytes,
      connections: this.connections,
    };
  }
}

/** Mutable node-wide counters behind `TransportStats`. */
export class NodeCounters {
  authFailures = 0;
  droppedUnknownPeer = 0;
  private readonly authFailuresByReason: Partial<Record<AuthFailureReason, number>> = {};

  /** Counts one failed handshake under `reason`. */
  authFailure(reason: AuthFailureReason): void {
    this.authFailures += 1;
    this.authFailuresByReason[reason] = (this.authFailuresByReason[reason] ?? 0) + 1;
  }

  /** Builds a `TransportStats` from these counters and the peers'. */
  snapshot(nodeId: NodeId, peers: ReadonlyMap<NodeId, PeerCounters>): TransportStats {
    const peerStats = new Map<NodeId, PeerStats>();
    for (const [peerId, counters] of peers) peerStats.set(peerId, counters.snapshot());
    return {
      nodeId,
      peers: peerStats,
      authFailures: this.authFailures,
      authFailuresByReason: { ...this.authFailuresByReason },
      droppedUnknownPeer: this.droppedUnknownPeer,
    };
  }
}

/**
 * A hand-driven peer for security tests: it speaks the transport handshake itself (with whatever
 * cluster id, node ids and secret the test chooses, over TCP or TLS) and then writes any message
 * it likes, so a test can check from outside what a node accepts. Import-safe.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { NodeId } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import { encodeMessage } from '../../src/transport/codec.js';
import { FrameDecoder, encodeFrame } from '../../src/transport/framing.js';
import { decodeChallenge, encodeHello, encodeProof, handshakeProof, makeNonce } from '../../src/transport/handshake.js';

export interface RawPeerOptions {
  readonly host: string;
  readonly port: number;
  readonly clusterId: string;
  /** The node id this peer claims. */
  readonly from: NodeId;
  /** The node id it believes it dials. */
  readonly to: NodeId;
  /** The secret it proves (right or wrong). */
  readonly secret: string;
  /** Dial with TLS using these options (default plain TCP). */
  readonly tls?: tls.ConnectionOptions;
  /** How long to wait for each handshake step (default 5 s). */
  readonly stepTimeoutMs?: number;
}

/** How the handshake ended: welcomed, or closed by the node after the hello or after the proof. */
export type RawHandshakeOutcome = 'welcome' | 'closed-after-hello' | 'closed-after-proof';

export class RawPeer {
  private readonly frames: Uint8Array[] = [];
  private readonly waiters: (() => void)[] = [];
  private isClosed = false;
  /** `host:port` of our end, as the node sees it in its logs (noted once connected). */
  localAddress = '?:?';
  /** Resolves when the node (or we) closed the connection. */
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    const decoder = new FrameDecoder(1024 * 1024);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      this.frames.push(...decoder.push(chunk));
      this.wake();
    });
    this.closed = new Promise((resolve) => socket.on('close', () => {
      this.isClosed = true;
      this.wake();
      resolve();
    }));
  }

  /** Connects and runs the handshake; never throws for a refusal (see `outcome`). */
  static async handshake(options: RawPeerOptions): Promise<{ peer: RawPeer; outcome: RawHandshakeOutcome }> {
    const socket = options.tls === undefined
      ? net.connect(options.port, options.host)
      : tls.connect({ ...options.tls, host: options.host, port: options.port });
    const peer = new RawPeer(socket);
    const ready = options.tls === undefined ? 'connect' : 'secureConnect';
    await new Promise<void>((resolve, reject) => {
      socket.once(ready, () => resolve());
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed before connecting')));
    });
    peer.localAddress = `${socket.localAddress ?? '?'}:${socket.localPort ?? '?'}`;
    const stepMs = options.stepTimeoutMs ?? 5_000;
    const dialerNonce = makeNonce();
    socket.write(encodeFrame(encodeHello({ clusterId: options.clusterId, from: options.from, to: options.to, nonce: dialerNonce })));
    const challengeFrame = await peer.nextFrame(stepMs);
    if (challengeFrame === null) return { peer, outcome: 'closed-after-hello' };
    const challenge = decodeChallenge(challengeFrame);
    const context = { clusterId: options.clusterId, dialerId: options.from, listenerId: options.to, dialerNonce, listenerNonce: challenge.nonce };
    socket.write(encodeFrame(encodeProof(handshakeProof(Buffer.from(options.secret, 'utf8'), 'dialer', context))));
    const welcome = await peer.nextFrame(stepMs);
    return { peer, outcome: welcome === null ? 'closed-after-proof' : 'welcome' };
  }

  /** Writes messages as frames, in one write. */
  send(...messages: Message[]): void {
    this.socket.write(Buffer.concat(messages.map((message) => encodeFrame(encodeMessage(message)))));
  }

  close(): void {
    this.socket.destroy();
  }

  /** The next frame, or null when the connection closed first; throws after `timeoutMs`. */
  private async nextFrame(timeoutMs: number): Promise<Uint8Array | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.isClosed) return null;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error('raw peer: no answer from the node in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames.shift() ?? null;
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

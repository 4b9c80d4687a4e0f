/**
 * A fault-injecting TCP proxy for one directed peer link i→j.
 *
 * A Synod node dials one outbound connection per peer and sends its messages to that peer only on
 * it (the peer answers on the connection it dialed itself). So when node i is configured with the
 * proxy's port as peer j's address, every message i sends to j crosses this proxy, and nothing j
 * sends to i does: a proxy per directed link makes one-way partitions possible, and the nemesis
 * composes partitions of any shape out of link modes.
 *
 * Modes, switchable at any time:
 * - `pass`: bytes flow both ways as they arrive.
 * - `delay`: each chunk is held `delayMs` ± `jitterMs` (never reordered: TCP keeps order).
 * - `stall`: nothing is read or delivered, connections stay open, bytes wait in socket buffers
 *   (a network that drops every packet while TCP keeps retransmitting); leaving the mode
 *   delivers them late, as TCP would after the outage.
 * - `blackhole`: bytes are read and thrown away; new connections are accepted and never reach
 *   the target. The byte stream is then broken, so leaving the mode resets those connections (as
 *   the endpoints of a real blackhole eventually time out).
 * - `cut`: existing connections are reset, new ones are reset as soon as accepted.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { assert, assertNever } from '../core/assert.js';
import type { Random } from '../core/prng.js';

export type LinkMode =
  | { readonly kind: 'pass' }
  | { readonly kind: 'delay'; readonly delayMs: number; readonly jitterMs: number }
  | { readonly kind: 'stall' }
  | { readonly kind: 'blackhole' }
  | { readonly kind: 'cut' };

export const PASS: LinkMode = { kind: 'pass' };

export interface LinkProxyOptions {
  /** Where connections are forwarded (node j's real peer listener). */
  readonly targetHost: string;
  readonly targetPort: number;
  /** Where the proxy listens (default 127.0.0.1, an ephemeral port). */
  readonly listenHost?: string;
  /** Jitter of the delay mode. */
  readonly random: Random;
}

export interface LinkProxyStats {
  readonly connectionsAccepted: number;
  readonly connectionsOpen: number;
  /** Bytes delivered from the dialer to the target, and back. */
  readonly bytesForward: number;
  readonly bytesBackward: number;
  /** Bytes thrown away by the blackhole mode. */
  readonly bytesDiscarded: number;
  /** Connections reset by the proxy (cut, or the end of a blackhole). */
  readonly resets: number;
}

/** Most bytes one direction of one connection may hold in its delay queue before it stops reading. */
const QUEUE_BYTES_MAX = 4 * 1024 * 1024;

/** One direction of one proxied connection: reads `source`, writes `sink` (once connected). */
class Flow {
  private readonly queue: { chunk: Buffer; at: number }[] = [];
  private queueBytes = 0;
  private lastAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private sinkBlocked = false;
  private ended = false;
  bytes = 0;

  constructor(
    private readonly pipe: Pipe,
    readonly source: Socket,
    private readonly forward: boolean,
  ) {}

  get sink(): Socket | null {
    return this.forward ? this.pipe.outbound : this.pipe.inbound;
  }

  /** A chunk arrived from `source`. */
  receive(chunk: Buffer): void {
    const mode = this.pipe.proxy.currentMode;
    if (mode.kind === 'blackhole' || mode.kind === 'cut') {
      this.pipe.discard(chunk.length);
      return;
    }
    const now = performance.now();
    let at = now;
    if (mode.kind === 'delay') at = now + Math.max(0, mode.delayMs + (this.pipe.proxy.random.next() * 2 - 1) * mode.jitterMs);
    // TCP order: a chunk never overtakes the one before it.
    at = Math.max(at, this.lastAt);
    this.lastAt = at;
    this.queue.push({ chunk, at });
    this.queueBytes += chunk.length;
    this.pump();
  }

  sourceEnded(): void {
    this.ended = true;
    this.pump();
  }

  /** Delivers every queued chunk that is due, unless the link stalls or the sink cannot take more. */
  pump(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const sink = this.sink;
    const mode = this.pipe.proxy.currentMode;
    if (sink === null || this.pipe.closed || mode.kind === 'stall') return this.updateReading();
    const now = performance.now();
    // Bounded by the queue, which only this loop shrinks.
    while (this.queue.length > 0 && !this.sinkBlocked) {
      const head = this.queue[0] as { chunk: Buffer; at: number };
      if (head.at > now) {
        this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(head.at - now)));
        break;
      }
      this.queue.shift();
      this.queueBytes -= head.chunk.length;
      this.bytes += head.chunk.length;
      if (!sink.write(head.chunk)) {
        this.sinkBlocked = true;
        sink.once('drain', () => {
          this.sinkBlocked = false;
          this.pump();
        });
      }
    }
    if (this.queue.length === 0 && this.ended && !sink.writableEnded) sink.end();
    this.updateReading();
  }

  /** Reads from the source only when the bytes can go somewhere. */
  updateReading(): void {
    if (this.pipe.closed) return;
    const mode = this.pipe.proxy.currentMode;
    const discarding = mode.kind === 'blackhole';
    const reading = discarding || (mode.kind !== 'stall' && !this.sinkBlocked && this.queueBytes < QUEUE_BYTES_MAX && this.sink !== null);
    if (reading && this.source.isPaused()) this.source.resume();
    if (!reading && !this.source.isPaused()) this.source.pause();
  }

  /** Throws the queued bytes away (entering a blackhole: they were in flight). */
  drop(): number {
    const dropped = this.queueBytes;
    this.queue.length = 0;
    this.queueBytes = 0;
    return dropped;
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** One proxied connection: the dialer's socket, the socket to the target, and both flows. */
class Pipe {
  outbound: Socket | null = null;
  closed = false;
  /** Bytes were thrown away: the stream is broken and must be reset when the link heals. */
  broken = false;
  readonly forward: Flow;
  private backwardFlow: Flow | null = null;

  constructor(
    readonly proxy: LinkProxy,
    readonly inbound: Socket,
  ) {
    this.forward = new Flow(this, inbound, true);
    inbound.on('data', (chunk: Buffer) => this.forward.receive(chunk));
    inbound.on('end', () => this.forward.sourceEnded());
    inbound.on('error', () => this.destroy(false));
    inbound.on('close', () => this.destroy(false));
    this.forward.updateReading();
  }

  /** Dials the target; until it answers, the dialer's bytes queue. */
  connectUpstream(): void {
    if (this.outbound !== null || this.closed) return;
    const outbound = connect({ host: this.proxy.options.targetHost, port: this.proxy.options.targetPort });
    outbound.setNoDelay(true);
    this.outbound = outbound;
    const backward = new Flow(this, outbound, false);
    this.backwardFlow = backward;
    outbound.on('connect', () => {
      this.forward.pump();
      backward.pump();
    });
    outbound.on('data', (chunk: Buffer) => backward.receive(chunk));
    outbound.on('end', () => backward.sourceEnded());
    outbound.on('error', () => this.destroy(false));
    outbound.on('close', () => this.destroy(false));
    backward.updateReading();
  }

  discard(bytes: number): void {
    this.broken = true;
    this.proxy.countDiscarded(bytes);
  }

  /** The proxy's mode changed: apply it to this connection. */
  modeChanged(previous: LinkMode): void {
    const mode = this.proxy.currentMode;
    if (mode.kind === 'cut' || (this.broken && mode.kind !== 'blackhole')) {
      this.destroy(true);
      return;
    }
    if (mode.kind === 'blackhole') {
      const dropped = this.forward.drop() + (this.backwardFlow?.drop() ?? 0);
      if (dropped > 0 || previous.kind !== 'blackhole') this.discard(dropped);
    }
    if (mode.kind === 'pass' || mode.kind === 'delay') this.connectUpstream();
    this.forward.pump();
    this.backwardFlow?.pump();
  }

  /** Closes both sockets; `reset` sends an RST (the proxy cut the link) instead of a close. */
  destroy(reset: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.forward.close();
    this.backwardFlow?.close();
    for (const socket of [this.inbound, this.outbound]) {
      if (socket === null || socket.destroyed) continue;
      if (reset) socket.resetAndDestroy();
      else socket.destroy();
    }
    this.proxy.pipeClosed(this, reset);
  }

  bytes(): { forward: number; backward: number } {
    return { forward: this.forward.bytes, backward: this.backwardFlow?.bytes ?? 0 };
  }
}

export class LinkProxy {
  private server: Server | null = null;
  private readonly pipes = new Set<Pipe>();
  private mode: LinkMode = PASS;
  private counters = { connectionsAccepted: 0, bytesForward: 0, bytesBackward: 0, bytesDiscarded: 0, resets: 0 };
  private listenPort = 0;
  private closing = false;

  constructor(readonly options: LinkProxyOptions) {
    assert(Number.isInteger(options.targetPort) && options.targetPort > 0, 'proxy target port');
  }

  get random(): Random {
    return this.options.random;
  }

  get currentMode(): LinkMode {
    return this.mode;
  }

  /** The port the proxy listens on (after `start`). */
  get port(): number {
    assert(this.listenPort > 0, 'the proxy is started');
    return this.listenPort;
  }

  async start(): Promise<number> {
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.options.listenHost ?? '127.0.0.1', port: 0 }, () => resolve());
    });
    const address = server.address();
    assert(address !== null && typeof address === 'object', 'a TCP server has an address');
    this.listenPort = address.port;
    this.server = server;
    return this.listenPort;
  }

  setMode(mode: LinkMode): void {
    checkMode(mode);
    const previous = this.mode;
    this.mode = mode;
    for (const pipe of [...this.pipes]) pipe.modeChanged(previous);
  }

  stats(): LinkProxyStats {
    let forward = this.counters.bytesForward;
    let backward = this.counters.bytesBackward;
    for (const pipe of this.pipes) {
      const bytes = pipe.bytes();
      forward += bytes.forward;
      backward += bytes.backward;
    }
    return { ...this.counters, bytesForward: forward, bytesBackward: backward, connectionsOpen: this.pipes.size };
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.closing = true;
    for (const pipe of [...this.pipes]) pipe.destroy(false);
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** @internal */
  countDiscarded(bytes: number): void {
    this.counters.bytesDiscarded += bytes;
  }

  /** @internal */
  pipeClosed(pipe: Pipe, reset: boolean): void {
    if (!this.pipes.delete(pipe)) return;
    const bytes = pipe.bytes();
    this.counters.bytesForward += bytes.forward;
    this.counters.bytesBackward += bytes.backward;
    if (reset) this.counters.resets += 1;
  }

  private accept(socket: Socket): void {
    this.counters.connectionsAccepted += 1;
    socket.on('error', () => {});
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.mode.kind === 'cut') {
      this.counters.resets += 1;
      socket.resetAndDestroy();
      return;
    }
    const pipe = new Pipe(this, socket);
    this.pipes.add(pipe);
    switch (this.mode.kind) {
      case 'pass':
      case 'delay':
        pipe.connectUpstream();
        break;
      case 'blackhole':
        // Accepted, and never reaches the target: the dialer's bytes vanish.
        pipe.discard(0);
        break;
      case 'stall':
        // The target is dialed when the stall ends (the SYN is "lost" until then).
        break;
      default:
        assertNever(this.mode, 'link mode');
    }
  }
}

function checkMode(mode: LinkMode): void {
  switch (mode.kind) {
    case 'pass':
    case 'stall':
    case 'blackhole':
    case 'cut':
      return;
    case 'delay':
      assert(Number.isFinite(mode.delayMs) && mode.delayMs >= 0, 'delay must be a non-negative number of ms');
      assert(Number.isFinite(mode.jitterMs) && mode.jitterMs >= 0 && mode.jitterMs <= mode.delayMs, 'jitter must be in [0, delay]');
      return;
    default:
      assertNever(mode, 'link mode');
  }
}

/** A short text for logs: `pass`, `delay 20±5ms`, ... */
export function describeMode(mode: LinkMode): string {
  return mode.kind === 'delay' ? `delay ${mode.delayMs}±${mode.jitterMs}ms` : mode.kind;
}

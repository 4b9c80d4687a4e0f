/**
 * Helpers for the client protocol tests: listeners on ephemeral ports over fake services, a raw
 * protocol socket for sending hand-made frames, and services that stall, fail, or reorder.
 * Import-safe (no tests here).
 */
import net from 'node:net';
import type { KvOperation } from '../../src/kv/index.js';
import { decodeServerMessage, encodeClientMessage, PROTOCOL_VERSION, type ClientMessage, type ServerMessage } from '../../src/protocol/index.js';
import { ClientListener, type ClientListenerOptions } from '../../src/server/client-listener.js';
import type { KvService, RequestId, ServiceResult, SubmitOptions } from '../../src/server/service.js';
import { FrameDecoder, encodeFrame } from '../../src/transport/framing.js';
import { FakeKvService } from '../helpers/fake-service.js';

export const HOST = '127.0.0.1';

/** A started listener and its `host:port`. */
export interface RunningListener {
  readonly listener: ClientListener;
  readonly endpoint: string;
  readonly port: number;
}

/** Starts a listener for `service` on an ephemeral port. */
export async function startListener(service: KvService, options: Partial<ClientListenerOptions> = {}): Promise<RunningListener> {
  const listener = new ClientListener({ service, host: HOST, port: 0, ...options });
  const { port } = await listener.start();
  return { listener, endpoint: `${HOST}:${port}`, port };
}

/** Polls `condition` every few ms until it holds (fails the test after `timeoutMs`). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A port nothing listens on (bound, noted, closed). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A protocol connection driven by hand: write any bytes, read decoded server messages in order,
 * and see when the server closes.
 */
export class RawClient {
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private readonly messages: ServerMessage[] = [];
  private readonly waiters: (() => void)[] = [];
  readonly closed: Promise<void>;
  private socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const payload of this.decoder.push(chunk)) this.messages.push(decodeServerMessage(payload));
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.once('close', () => {
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Connects; with `hello`, also says hello and waits for the welcome. */
  static async connect(port: number, hello = true): Promise<RawClient> {
    const socket = net.connect({ host: HOST, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    if (hello) {
      client.send({ type: 'hello', version: PROTOCOL_VERSION, token: null });
      const welcome = await client.next();
      if (welcome.type !== 'welcome') throw new Error(`expected a welcome, got ${JSON.stringify(welcome)}`);
    }
    return client;
  }

  send(message: ClientMessage): void {
    this.socket.write(encodeFrame(encodeClientMessage(message)));
  }

  /** Sends several messages in one write, so that they arrive together. */
  sendAll(messages: readonly ClientMessage[]): void {
    this.socket.write(Buffer.concat(messages.map((message) => encodeFrame(encodeClientMessage(message)))));
  }

  /** Writes raw bytes (a hand-made frame, or garbage). */
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** The next server message; throws if the server closes first. */
  async next(): Promise<ServerMessage> {
    while (this.messages.length === 0) {
      if (this.socket.destroyed || this.socket.readableEnded) throw new Error('server closed the connection');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const message = this.messages.shift();
    if (message === undefined) throw new Error('no message');
    return message;
  }

  /** Reads `count` messages. */
  async take(count: number): Promise<ServerMessage[]> {
    const messages: ServerMessage[] = [];
    for (let index = 0; index < count; index += 1) messages.push(await this.next());
    return messages;
  }

  /** Stops reading from the socket (the server's answers pile up in its buffers). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A request message for `operation` with the given ids. */
export function request(reqId: number, operation: KvOperation, clientId = 'raw', seq = reqId): ClientMessage {
  return { type: 'request', reqId, clientId, seq, operation };
}

/**
 * A service in front of a `FakeKvService` that lets a test intercept each call: `hook` may return
 * a result (or a promise that never settles) instead of passing the call on.
 */
export class HookedService implements KvService {
  readonly metricsContentType: string;
  hook: ((operation: KvOperation, id: RequestId | undefined, call: number) => Promise<ServiceResult> | null) | null = null;
  private calls = 0;

  constructor(readonly fake: FakeKvService = new FakeKvService()) {
    this.metricsContentType = fake.metricsContentType;
  }

  submit(operation: KvOperation, id?: RequestId, options?: SubmitOptions): Promise<ServiceResult> {
    this.calls += 1;
    const hooked = this.hook?.(operation, id, this.calls) ?? null;
    if (hooked === null) return this.fake.submit(operation, id, options);
    this.fake.submitted.push({ operation, id });
    return hooked;
  }

  status(): ReturnType<KvService['status']> {
    return this.fake.status();
  }

  metrics(): Promise<string> {
    return this.fake.metrics();
  }
}

/** A promise that never settles: a node that took a request and went silent. */
export function never<T>(): Promise<T> {
  return new Promise<T>(() => {});
}

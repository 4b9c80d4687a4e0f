/**
 * Apache ZooKeeper as a benchmark peer: a 3-member ensemble from Debian's zookeeper package
 * (`bench/peers/zookeeper.sh`), driven through `node-zookeeper-client`, the faster of the two
 * Node clients, imported only when needed.
 *
 * Operations, on znodes `/key-0` … (the bench key with a leading slash):
 * - put: setData with version -1 (unconditional);
 * - get: sync, then getData, pipelined on the session. ZooKeeper answers a session's requests in
 *   order and holds its reads behind its pending sync, so the read reflects every write the
 *   leader had committed when the sync reached it (ZooKeeper's recipe for an up-to-date read);
 * - cas: the same read for the znode's version, then setData with that version; BadVersion means
 *   another client won, which resolves `false`.
 */
import { connect } from 'node:net';
import type { Client, QueuedRequest, Stat, ZookeeperException } from 'node-zookeeper-client';
import { benchKey, type BenchSession, type BenchSystem } from '../system.js';
import { PeerError, ScriptCluster, retryUntil, type PeerClusterOptions } from './script-cluster.js';

/** Options of the ZooKeeper peer beyond where it runs. */
export interface ZookeeperPeerOptions extends PeerClusterOptions {
  /**
   * At most this many ZooKeeper sessions (one TCP connection each) for the bench clients (default
   * 32); beyond it, clients share sessions round-robin and pipeline on them. See
   * bench/peers/README.md for how the default was chosen.
   */
  readonly sessionsMax?: number;
  /**
   * `leader` (default) connects every session to the member that leads when the sessions open,
   * so neither writes nor syncs are forwarded; `spread` connects sessions to the members
   * round-robin, as a client given all three servers would on average.
   */
  readonly placement?: 'spread' | 'leader';
  /** Time to wait for a session and a successful create after the quorum has formed. */
  readonly readyTimeoutMs?: number;
}

type ZookeeperModule = typeof import('node-zookeeper-client');

/** zookeeper.sh uses ports base+1 … base+23 (clients +1..+3, quorum +11..+13, election +21..+23). */
const ZOOKEEPER_PORT_SPAN = 23;
const DEFAULT_SESSIONS_MAX = 32;
const PREPARE_CONCURRENCY = 64;
const READY_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 15_000;
const CLOSE_TIMEOUT_MS = 2_000;
const SESSION_TIMEOUT_MS = 30_000;
const READY_PATH = '/synod-bench-ready';

/** ZooKeeper's op codes (`ZooDefs.OpCode`) used by the sync shim. */
const OP_SYNC = 9;
const OP_DELETE = 2;
/** ZooKeeper's error codes (`KeeperException.Code`) as the client reports them in `error.code`. */
const ERROR_BAD_VERSION = -103;
const ERROR_NODE_EXISTS = -110;

/** The znode that holds bench key `key`. */
export function znodePath(key: string): string {
  return `/${key}`;
}

/**
 * The bytes of a SYNC request (`RequestHeader{xid, type=9}` + `SyncRequest{path}`), length-prefixed
 * as on the wire.
 */
export function encodeSyncRequest(xid: number, path: string): Buffer {
  const pathBytes = Buffer.from(path, 'utf8');
  const buffer = Buffer.alloc(16 + pathBytes.length);
  buffer.writeInt32BE(buffer.length - 4, 0);
  buffer.writeInt32BE(xid, 4);
  buffer.writeInt32BE(OP_SYNC, 8);
  buffer.writeInt32BE(pathBytes.length, 12);
  pathBytes.copy(buffer, 16);
  return buffer;
}

/**
 * A SYNC request for node-zookeeper-client 1.1, which has no `sync()`. The connection manager
 * assigns `header.xid` just before it calls `toBuffer()`, and parses the reply by `header.type`;
 * it knows no SYNC reply (it would drop the connection), so the header says DELETE, whose reply
 * has no body. The reply's real body (the path) is skipped by the length framing. Errors (e.g.
 * connection loss) come back as for any request.
 */
export function syncRequest(path: string): QueuedRequest {
  const header = { type: OP_DELETE, xid: 0 };
  return { header, payload: null, toBuffer: () => encodeSyncRequest(header.xid, path) };
}

export class ZookeeperPeer implements BenchSystem {
  readonly name = 'zookeeper';
  readonly warmupMs = 20_000;
  private readonly cluster: ScriptCluster;
  private module: ZookeeperModule | null = null;
  private admin: Client | null = null;
  private clients: Client[] = [];

  constructor(private readonly options: ZookeeperPeerOptions = {}) {
    const sessionsMax = options.sessionsMax ?? DEFAULT_SESSIONS_MAX;
    if (!Number.isSafeInteger(sessionsMax) || sessionsMax < 1) {
      throw new PeerError(`zookeeper: sessionsMax must be a positive integer, got ${sessionsMax}`);
    }
    this.cluster = new ScriptCluster('zookeeper', ZOOKEEPER_PORT_SPAN, options);
  }

  async start(): Promise<void> {
    await this.cluster.start();
    try {
      const ports = this.cluster.clientPorts();
      this.admin = await retryUntil('a ZooKeeper session', this.options.readyTimeoutMs ?? READY_TIMEOUT_MS, () =>
        this.connect(ports.map((port) => `127.0.0.1:${port}`).join(',')));
      const admin = this.admin;
      await retryUntil('ZooKeeper to accept a create', this.options.readyTimeoutMs ?? READY_TIMEOUT_MS, async () => {
        await createOrSet(admin, READY_PATH, Buffer.from('1'));
      });
      await callback<void>((done) => admin.remove(READY_PATH, -1, (error) => done(error, undefined)));
    } catch (error) {
      await this.stop().catch(() => {});
      throw wrap('start', error);
    }
  }

  async prepare(keys: number, value: Uint8Array): Promise<void> {
    const admin = this.requireAdmin();
    const data = Buffer.from(value);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < keys) {
        const path = znodePath(benchKey(next));
        next += 1;
        await createOrSet(admin, path, data);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(PREPARE_CONCURRENCY, keys) }, worker));
    } catch (error) {
      throw wrap('prepare', error);
    }
  }

  async sessions(clients: number): Promise<BenchSession[]> {
    if (!Number.isSafeInteger(clients) || clients < 1) {
      throw new PeerError(`zookeeper: clients must be a positive integer, got ${clients}`);
    }
    this.requireAdmin();
    await this.closeSessions();
    const ports = this.options.placement === 'spread' ? this.cluster.clientPorts() : [await this.leaderPort()];
    const count = Math.min(clients, this.options.sessionsMax ?? DEFAULT_SESSIONS_MAX);
    try {
      // Each session talks to one member: the leader, or round-robin over all three (the client's
      // own choice among several servers would be a random shuffle).
      for (let index = 0; index < count; index += 1) {
        this.clients.push(await this.connect(`127.0.0.1:${ports[index % ports.length]}`));
      }
    } catch (error) {
      await this.closeSessions();
      throw wrap('opening sessions', error);
    }
    return Array.from({ length: clients }, (_, index) => new ZookeeperSession(this.clients[index % count] as Client));
  }

  async closeSessions(): Promise<void> {
    const clients = this.clients;
    this.clients = [];
    await Promise.all(clients.map(closeClient));
  }

  serverPids(): number[] {
    return this.cluster.serverPids();
  }

  /** Client ports of members 1..3 on 127.0.0.1, while started. */
  clientPorts(): number[] {
    return this.cluster.clientPorts();
  }

  async stop(): Promise<void> {
    await this.closeSessions();
    if (this.admin !== null) await closeClient(this.admin);
    this.admin = null;
    await this.cluster.stop();
  }

  /** The client port of the member whose `srvr` says `Mode: leader`. */
  private async leaderPort(): Promise<number> {
    for (const port of this.cluster.clientPorts()) {
      if (/^Mode: leader$/m.test(await fourLetterWord(port, 'srvr'))) return port;
    }
    throw new PeerError('zookeeper: no member reports Mode: leader');
  }

  /** A connected session to `servers` (a ZooKeeper connection string). */
  private async connect(servers: string): Promise<Client> {
    this.module ??= await import('node-zookeeper-client');
    const client = this.module.createClient(servers, { sessionTimeout: SESSION_TIMEOUT_MS, spinDelay: 100, retries: 0 });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.close();
        reject(new PeerError(`zookeeper: no session with ${servers} within ${CONNECT_TIMEOUT_MS} ms`));
      }, CONNECT_TIMEOUT_MS);
      client.once('connected', () => {
        clearTimeout(timer);
        resolve(client);
      });
      client.connect();
    });
  }

  private requireAdmin(): Client {
    if (this.admin === null) throw new PeerError('zookeeper: not started');
    return this.admin;
  }
}

/**
 * One closed-loop client's view of a (possibly shared) session. Failures reject with a
 * `PeerError` naming the operation and znode; the client's exception is its `cause`.
 */
class ZookeeperSession implements BenchSession {
  constructor(private readonly client: Client) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    const path = znodePath(key);
    const data = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    try {
      await callback<Stat>((done) => this.client.setData(path, data, -1, done));
    } catch (error) {
      throw operationError('setData', path, error);
    }
  }

  async get(key: string): Promise<void> {
    await this.read(znodePath(key));
  }

  async cas(key: string, value: Uint8Array): Promise<boolean> {
    const path = znodePath(key);
    const stat = await this.read(path);
    const data = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    try {
      await callback<Stat>((done) => this.client.setData(path, data, stat.version, done));
      return true;
    } catch (error) {
      if ((error as Partial<ZookeeperException>).code === ERROR_BAD_VERSION) return false;
      throw operationError(`setData(version ${stat.version})`, path, error);
    }
  }

  /** sync + getData, sent back to back; resolves with the znode's stat. */
  private async read(path: string): Promise<Stat> {
    const synced = callback<void>((done) =>
      this.client.connectionManager.queue(syncRequest(path), (error) => done(error, undefined)));
    const read = callback<Stat>((done) => this.client.getData(path, (error, _data, stat) => done(error, stat)));
    try {
      const [, stat] = await Promise.all([synced, read]);
      return stat;
    } catch (error) {
      throw operationError('sync+getData', path, error);
    }
  }
}

/** `zookeeper: setData /key-1 failed: Exception: NO_NODE[-101]@/key-1`, with the cause kept. */
function operationError(operation: string, path: string, error: unknown): PeerError {
  const message = error instanceof Error ? error.message : String(error);
  return new PeerError(`zookeeper: ${operation} ${path} failed: ${message}`, { cause: error });
}

/** Adapts a node-style callback API to a promise. */
function callback<T>(start: (done: (error: Error | null, result: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    start((error, result) => (error === null || error === undefined ? resolve(result) : reject(error)));
  });
}

/** Creates `path` holding `data`, or overwrites it if it exists (so `prepare` can run twice). */
async function createOrSet(client: Client, path: string, data: Buffer): Promise<void> {
  try {
    await callback<string>((done) => client.create(path, data, done));
  } catch (error) {
    if ((error as Partial<ZookeeperException>).code !== ERROR_NODE_EXISTS) throw error;
    await callback<Stat>((done) => client.setData(path, data, -1, done));
  }
}

/** Sends a four-letter command to the member on `port` and returns its whole answer. */
function fourLetterWord(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.end(command));
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy(new PeerError(`zookeeper: ${command} on port ${port} timed out`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** Closes the session (CLOSE_SESSION) and waits for the socket to go, at most 2 s. */
function closeClient(client: Client): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
    client.once('disconnected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.close();
  });
}

/** A `PeerError` saying which step failed, keeping the client's message. */
function wrap(step: string, error: unknown): PeerError {
  if (error instanceof PeerError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new PeerError(`zookeeper: ${step} failed: ${message}`);
}

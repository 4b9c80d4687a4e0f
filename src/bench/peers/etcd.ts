/**
 * etcd as a benchmark peer: a 3-member cluster from Debian's etcd-server (`bench/peers/etcd.sh`),
 * driven through the standard Node client, `etcd3` (gRPC), which is imported only when a session
 * or the readiness probe needs it, so the rest of the CLI never loads gRPC.
 *
 * Bench sessions talk to the leader (see `targetLeader`). Operations: put is a KV put; get is etcd's default range, which is linearizable (a read index
 * through the leader); cas reads the key's mod_revision (linearizably) and commits a transaction
 * that writes only if mod_revision is unchanged.
 */
import type { Etcd3, IOptions } from 'etcd3';
import { benchKey, type BenchSession, type BenchSystem } from '../system.js';
import { PeerError, ScriptCluster, retryUntil, type PeerClusterOptions } from './script-cluster.js';

/** Options of the etcd peer beyond where it runs. */
export interface EtcdPeerOptions extends PeerClusterOptions {
  /**
   * How many `Etcd3` clients (each with its own gRPC channel, i.e. one HTTP/2 connection per
   * member) the bench sessions share, round-robin. Default 1: one channel multiplexes every
   * in-flight call as an HTTP/2 stream, and more channels only add per-connection overhead in
   * this single-threaded process (see bench/peers/README.md for the measurements).
   */
  readonly channels?: number;
  /**
   * Send every bench call to the member that leads when the sessions open, as etcd's own
   * `benchmark --target-leader` does (default true); false spreads calls over all members, where
   * a follower forwards each put to the leader: one more hop and more CPU per put.
   */
  readonly targetLeader?: boolean;
  /** Time to wait for the cluster to accept a put after the script reports it healthy. */
  readonly readyTimeoutMs?: number;
}

/** etcd.sh uses ports base+1 … base+13 (clients +1..+3, peers +11..+13). */
const ETCD_PORT_SPAN = 13;
const PREPARE_CONCURRENCY = 64;
const READY_TIMEOUT_MS = 30_000;
/** A bench call that takes longer than this is a failure, not a data point. */
const CALL_DEADLINE_MS = 30_000;

type Etcd3Module = typeof import('etcd3');

export class EtcdPeer implements BenchSystem {
  readonly name = 'etcd';
  readonly warmupMs = 3_000;
  private readonly cluster: ScriptCluster;
  private module: Etcd3Module | null = null;
  private admin: Etcd3 | null = null;
  private clients: Etcd3[] = [];

  constructor(private readonly options: EtcdPeerOptions = {}) {
    const channels = options.channels ?? 1;
    if (!Number.isSafeInteger(channels) || channels < 1) {
      throw new PeerError(`etcd: channels must be a positive integer, got ${channels}`);
    }
    this.cluster = new ScriptCluster('etcd', ETCD_PORT_SPAN, options);
  }

  async start(): Promise<void> {
    await this.cluster.start();
    try {
      this.admin = await this.newClient();
      const admin = this.admin;
      await retryUntil('etcd to accept a put', this.options.readyTimeoutMs ?? READY_TIMEOUT_MS, async () => {
        await admin.put('synod-bench-ready').value('1').exec();
      });
      await admin.delete().key('synod-bench-ready').exec();
    } catch (error) {
      await this.stop().catch(() => {});
      throw wrap('start', error);
    }
  }

  async prepare(keys: number, value: Uint8Array): Promise<void> {
    const admin = this.requireAdmin();
    const buffer = Buffer.from(value);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < keys) {
        const key = benchKey(next);
        next += 1;
        await admin.put(key).value(buffer).exec();
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
      throw new PeerError(`etcd: clients must be a positive integer, got ${clients}`);
    }
    this.requireAdmin();
    await this.closeSessions();
    const channels = Math.min(this.options.channels ?? 1, clients);
    const hosts = this.options.targetLeader === false ? this.hosts() : [await this.leaderHost()];
    for (let index = 0; index < channels; index += 1) this.clients.push(await this.newClient(hosts));
    return Array.from({ length: clients }, (_, index) => new EtcdSession(this.clients[index % channels] as Etcd3));
  }

  async closeSessions(): Promise<void> {
    for (const client of this.clients) client.close();
    this.clients = [];
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
    this.admin?.close();
    this.admin = null;
    await this.cluster.stop();
  }

  /** The client URL of every member. */
  private hosts(): string[] {
    return this.cluster.clientPorts().map((port) => `http://127.0.0.1:${port}`);
  }

  /** The client URL of the member that says it is the leader. */
  private async leaderHost(): Promise<string> {
    for (const host of this.hosts()) {
      const client = await this.newClient([host]);
      try {
        const status = await client.maintenance.status();
        if (status.leader === status.header.member_id) return host;
      } finally {
        client.close();
      }
    }
    throw new PeerError('etcd: no member reports itself leader');
  }

  /** An `Etcd3` client over `hosts` (default: every member, as an application would configure it). */
  private async newClient(hosts: string[] = this.hosts()): Promise<Etcd3> {
    this.module ??= await import('etcd3');
    const options: IOptions = {
      hosts,
      dialTimeout: 10_000,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
    };
    return new this.module.Etcd3(options);
  }

  private requireAdmin(): Etcd3 {
    if (this.admin === null) throw new PeerError('etcd: not started');
    return this.admin;
  }
}

/**
 * One closed-loop client's view: it keeps at most one call in flight on a shared client. Failures
 * reject with a `PeerError` naming the operation and key; the client's error is its `cause`.
 */
class EtcdSession implements BenchSession {
  constructor(private readonly client: Etcd3) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    try {
      await this.client.put(key).value(Buffer.from(value.buffer, value.byteOffset, value.byteLength)).exec();
    } catch (error) {
      throw operationError('put', key, error);
    }
  }

  async get(key: string): Promise<void> {
    try {
      await this.client.get(key).exec();
    } catch (error) {
      throw operationError('get', key, error);
    }
  }

  async cas(key: string, value: Uint8Array): Promise<boolean> {
    let revision: string;
    try {
      const current = await this.client.get(key).exec();
      const entry = current.kvs[0];
      if (entry === undefined) throw new PeerError(`etcd: cas on missing key ${key} (run prepare first)`);
      revision = entry.mod_revision;
    } catch (error) {
      throw operationError('cas read of', key, error);
    }
    try {
      const result = await this.client
        .if(key, 'Mod', '==', revision)
        .then(this.client.put(key).value(Buffer.from(value.buffer, value.byteOffset, value.byteLength)))
        .commit();
      return result.succeeded;
    } catch (error) {
      throw operationError(`cas txn (mod_revision ${revision}) on`, key, error);
    }
  }
}

/** `etcd: put key-1 failed: …`, with the client's error kept as the cause. */
function operationError(operation: string, key: string, error: unknown): PeerError {
  if (error instanceof PeerError) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new PeerError(`etcd: ${operation} ${key} failed: ${message}`, { cause: error });
}

/** A `PeerError` saying which step failed, keeping the client's message. */
function wrap(step: string, error: unknown): PeerError {
  if (error instanceof PeerError) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new PeerError(`etcd: ${step} failed: ${message}`);
}

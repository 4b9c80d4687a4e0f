/**
 * What `synod bench` needs from a system under test: Synod itself, or a peer (etcd, ZooKeeper)
 * run the same way for a side-by-side comparison.
 *
 * A system is started once per measurement series (a 3-member cluster on loopback with default
 * durability and fresh data directories), warmed up, driven by `C` closed-loop clients through
 * sessions it hands out, and stopped. The load generator owns timing, histograms and CPU
 * accounting; a system only performs operations.
 */

/** The operations a bench client issues; every one must be linearizable in the system's terms. */
export interface BenchSession {
  /** Write `value` under `key` (the key exists after `prepare`). */
  put(key: string, value: Uint8Array): Promise<void>;
  /** A linearizable read (Synod: read index; etcd: default serializable=false; ZK: sync+getData). */
  get(key: string): Promise<void>;
  /**
   * Compare-and-set: read the key's current version, then write `value` only if it is unchanged.
   * Resolves `true` if the write took effect, `false` if another client won the race.
   */
  cas(key: string, value: Uint8Array): Promise<boolean>;
}

export interface BenchSystem {
  /** `synod`, `etcd`, `zookeeper`, or `synod-1node` for the unreplicated ceiling. */
  readonly name: string;
  /** Load to run before measuring, so JIT and caches are warm (ZooKeeper's JVM needs ~20 s). */
  readonly warmupMs: number;
  /** Start the cluster (installing nothing: see `bench/peers/`), and wait until it serves. */
  start(): Promise<void>;
  /** Create `keys` keys (`key-0` … `key-{keys-1}`) holding `value`; run once after `start`. */
  prepare(keys: number, value: Uint8Array): Promise<void>;
  /**
   * Sessions for `clients` concurrent closed-loop clients. A system may share connections among
   * them (each keeps at most one operation in flight), as its standard client does best.
   */
  sessions(clients: number): Promise<BenchSession[]>;
  /** Close what `sessions` opened. */
  closeSessions(): Promise<void>;
  /** Process ids of the server processes, for CPU accounting (Linux /proc). */
  serverPids(): number[];
  /** Stop every process and remove the data directories. */
  stop(): Promise<void>;
}

/** Key name used by every system, so workloads are byte-for-byte alike. */
export function benchKey(index: number): string {
  return `key-${index}`;
}

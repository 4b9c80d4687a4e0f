/**
 * A peer cluster (etcd, ZooKeeper) driven through its script in `bench/peers/`: the script starts
 * three members on loopback in a data directory and stops them; this class picks the directory
 * and the ports, runs the script, and remembers the server pids for CPU accounting.
 *
 * The scripts install nothing on `start`: `bench/peers/etcd.sh install` and
 * `bench/peers/zookeeper.sh install` do that, once, as root.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Every failure of a peer system (script, start-up, client) is a `PeerError` naming the system. */
export class PeerError extends Error {
  override readonly name = 'PeerError';
}

/** Where and how a peer cluster runs; every field has a default. */
export interface PeerClusterOptions {
  /** Parent of the cluster's fresh data directory (default: the OS temp dir; must be a disk). */
  readonly baseDir?: string;
  /** First port of the cluster's block; by default a free block in 20000–31999 is picked. */
  readonly portBase?: number;
  /** Directory holding `etcd.sh` and `zookeeper.sh` (default: `bench/peers` of this checkout). */
  readonly scriptsDir?: string;
  /** Keep the data directory (logs included) after `stop`, for post-mortems. */
  readonly keepData?: boolean;
}

const SCRIPT_TIMEOUT_MS = 150_000;
const PORT_BASE_MIN = 20_000;
/** Below Linux's ephemeral range (32768+), so client sockets never land inside a block. */
const PORT_BASE_MAX = 31_900;
const PORT_BASE_ATTEMPTS = 32;

/** `bench/peers` of the checkout this module belongs to, found from `src/` or `dist/src/`. */
export function defaultScriptsDir(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth += 1) {
    const candidate = join(directory, 'bench', 'peers');
    if (existsSync(join(candidate, 'common.sh')) && existsSync(join(directory, 'package.json'))) {
      return candidate;
    }
    directory = dirname(directory);
  }
  throw new PeerError('cannot find bench/peers/ (with common.sh) above this module; pass scriptsDir');
}

/** Result of one script run. */
interface ScriptResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `script args…`; rejects with a `PeerError` carrying the script's own message on failure. */
export function runScript(script: string, args: readonly string[], timeoutMs = SCRIPT_TIMEOUT_MS): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    execFile('bash', [script, ...args], { timeout: timeoutMs, maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
      if (error === null) {
        resolve({ stdout, stderr });
        return;
      }
      const how = error.killed ? `timed out after ${timeoutMs} ms` : `exited with ${error.code ?? error.signal}`;
      const detail = stderr.trim() === '' ? stdout.trim() : stderr.trim();
      reject(new PeerError(`${script} ${args.join(' ')} ${how}${detail === '' ? '' : `:\n${detail}`}`));
    });
  });
}

/** True if nothing accepts or holds `port` on 127.0.0.1 (checked by binding it). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A base `B` whose ports `B+1 … B+span` are all free right now (the script checks again before it
 * starts anything). Random, so concurrent benchmarks on one machine rarely pick the same block.
 */
export async function pickPortBase(span: number): Promise<number> {
  for (let attempt = 0; attempt < PORT_BASE_ATTEMPTS; attempt += 1) {
    const base = PORT_BASE_MIN + Math.floor(Math.random() * (PORT_BASE_MAX - span - PORT_BASE_MIN));
    let free = true;
    for (let offset = 1; offset <= span && free; offset += 1) free = await portFree(base + offset);
    if (free) return base;
  }
  throw new PeerError(`no free block of ${span} ports in ${PORT_BASE_MIN}–${PORT_BASE_MAX} after ${PORT_BASE_ATTEMPTS} tries`);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Calls `attempt` until it resolves, at most until `timeoutMs` has passed; then rejects with a
 * `PeerError` that says what was awaited and the last error seen.
 */
export async function retryUntil<T>(what: string, timeoutMs: number, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  while (Date.now() < deadline) {
    try {
      return await attempt();
    } catch (error) {
      lastError = error;
      await sleep(200);
    }
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  throw new PeerError(`timed out after ${timeoutMs} ms waiting for ${what}: ${reason}`);
}

/** The life cycle every scripted peer shares: directory, ports, start, pids, stop. */
export class ScriptCluster {
  private dir: string | null = null;
  private pids: number[] = [];
  private base = 0;
  private readonly script: string;
  /** The start in progress, so a concurrent `stop` (Ctrl-C) waits for it instead of racing it. */
  private starting: Promise<void> | null = null;

  /**
   * @param system  `etcd` or `zookeeper`: the script is `<scriptsDir>/<system>.sh`.
   * @param span    how many ports above the base the script uses (its highest offset).
   */
  constructor(
    readonly system: string,
    private readonly span: number,
    private readonly options: PeerClusterOptions,
  ) {
    this.script = join(options.scriptsDir ?? defaultScriptsDir(), `${system}.sh`);
    if (!existsSync(this.script)) throw new PeerError(`${system}: script ${this.script} not found`);
  }

  /** The port base of the running cluster (member i's client port is base + i). */
  get portBase(): number {
    if (this.dir === null) throw new PeerError(`${this.system}: not started`);
    return this.base;
  }

  /** Client ports of members 1..3. */
  clientPorts(): number[] {
    const base = this.portBase;
    return [base + 1, base + 2, base + 3];
  }

  /** The data directory (null before `start` and after `stop`). */
  get dataDir(): string | null {
    return this.dir;
  }

  /** Runs `<system>.sh start DIR BASE`; on failure stops whatever did start and rethrows. */
  async start(): Promise<void> {
    if (this.dir !== null || this.starting !== null) throw new PeerError(`${this.system}: already started`);
    this.starting = this.startOnce();
    try {
      await this.starting;
    } finally {
      this.starting = null;
    }
  }

  private async startOnce(): Promise<void> {
    this.base = this.options.portBase ?? await pickPortBase(this.span);
    this.dir = await mkdtemp(join(this.options.baseDir ?? tmpdir(), `synod-bench-${this.system}-`));
    try {
      await runScript(this.script, ['start', this.dir, String(this.base)]);
      const { stdout } = await runScript(this.script, ['pids', this.dir]);
      this.pids = stdout.split('\n').filter((line) => line.trim() !== '').map((line) => Number.parseInt(line, 10));
      if (this.pids.length !== 3 || this.pids.some((pid) => !Number.isSafeInteger(pid))) {
        throw new PeerError(`${this.system}: expected 3 running members, the script reported ${JSON.stringify(stdout)}`);
      }
    } catch (error) {
      await this.stopNow().catch(() => {});
      throw error;
    }
  }

  serverPids(): number[] {
    return [...this.pids];
  }

  /**
   * Stops the members (the script waits for them to exit) and removes the data directory. A start
   * still in progress is allowed to finish (or fail) first, so no member it launches is missed.
   */
  async stop(): Promise<void> {
    await this.starting?.catch(() => {});
    await this.stopNow();
  }

  private async stopNow(): Promise<void> {
    const dir = this.dir;
    if (dir === null) return;
    await runScript(this.script, ['stop', dir]);
    this.dir = null;
    this.pids = [];
    if (this.options.keepData !== true) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Synod as a bench system: a cluster of `synod start` node processes on loopback (or an existing
 * cluster given by its endpoints), driven through `SynodClient` over the binary protocol.
 *
 * With one node this is also the unreplicated ceiling: a single member commits an entry with its
 * own group-commit fsync and nothing else.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SynodClient } from '../client/client.js';
import { SynodClientError } from '../client/errors.js';
import { formatMembers, type MemberConfig } from '../server/config.js';
import { freePorts } from './ports.js';
import { benchKey, type BenchSession, type BenchSystem } from './system.js';

/** Closed-loop clients that share one `SynodClient` (one pipelined connection per node). */
const CLIENTS_PER_CONNECTION = 64;
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface SynodSystemOptions {
  /** Members to start (ignored with `endpoints`). */
  readonly nodes: number;
  /** Bench an already running cluster instead of starting one. */
  readonly endpoints?: readonly string[];
  /** Where node data directories go (default: a fresh temporary directory, removed at stop). */
  readonly dataDir?: string;
  /** `synod start` log level for the nodes (default warn: logging is not what we measure). */
  readonly logLevel?: string;
  /** Name in reports (default `synod`, or `synod-1node` for one member). */
  readonly name?: string;
  /** Extra Node.js flags for the node processes (e.g. `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
  /** Extra `synod start` flags (e.g. `--pipeline-depth 4`). */
  readonly nodeFlags?: readonly string[];
}

export class SynodSystem implements BenchSystem {
  readonly name: string;
  readonly warmupMs = 2_000;
  private readonly children = new Map<number, ChildProcess>();
  private readonly clients: SynodClient[] = [];
  private endpoints: string[];
  private dataDir: string | null = null;
  private ownsDataDir = false;

  constructor(private readonly options: SynodSystemOptions) {
    this.name = options.name ?? (options.nodes === 1 ? 'synod-1node' : 'synod');
    this.endpoints = options.endpoints === undefined ? [] : [...options.endpoints];
  }

  async start(): Promise<void> {
    if (this.options.endpoints !== undefined) {
      await this.waitForLeader();
      return;
    }
    const count = this.options.nodes;
    if (this.options.dataDir === undefined) {
      this.dataDir = mkdtempSync(join(tmpdir(), 'synod-bench-'));
      this.ownsDataDir = true;
    } else {
      this.dataDir = this.options.dataDir;
      mkdirSync(this.dataDir, { recursive: true });
    }
    const ports = await freePorts(count * 2);
    const members: MemberConfig[] = Array.from({ length: count }, (_, index) => ({
      id: index + 1,
      peer: { host: '127.0.0.1', port: ports[index * 2] as number },
      client: { host: '127.0.0.1', port: ports[index * 2 + 1] as number },
      http: null,
    }));
    this.endpoints = members.map((member) => `127.0.0.1:${member.client?.port ?? 0}`);
    const secretFile = join(this.dataDir, 'secret');
    writeFileSync(secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const spec = formatMembers(members);
    for (const member of members) {
      const dir = join(this.dataDir, `node-${member.id}`);
      mkdirSync(dir, { recursive: true });
      const log = openSync(join(dir, 'node.log'), 'a');
      const child = spawn(process.execPath, [
        ...(this.options.nodeArgs ?? []),
        MAIN, 'start', '--id', String(member.id), '--peers', spec, '--data', dir,
        '--secret-file', secretFile, '--log-level', this.options.logLevel ?? 'warn',
        ...(this.options.nodeFlags ?? []),
      ], { stdio: ['ignore', log, log] });
      closeSync(log);
      this.children.set(member.id, child);
      child.on('exit', () => this.children.delete(member.id));
    }
    await this.waitForLeader();
  }

  async prepare(keys: number, value: Uint8Array): Promise<void> {
    const client = this.newClient();
    const text = Buffer.from(value).toString('latin1');
    try {
      const batch = 256;
      for (let start = 0; start < keys; start += batch) {
        const puts: Promise<unknown>[] = [];
        for (let index = start; index < Math.min(keys, start + batch); index++) puts.push(client.put(benchKey(index), text));
        await Promise.all(puts);
      }
    } finally {
      await client.close();
    }
  }

  async sessions(clients: number): Promise<BenchSession[]> {
    const sessions: BenchSession[] = [];
    let client: SynodClient | null = null;
    for (let index = 0; index < clients; index++) {
      if (index % CLIENTS_PER_CONNECTION === 0) {
        client = this.newClient(Math.min(CLIENTS_PER_CONNECTION, clients - index));
        this.clients.push(client);
      }
      sessions.push(new SynodSession(client as SynodClient));
    }
    return sessions;
  }

  async closeSessions(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.close()));
  }

  serverPids(): number[] {
    return [...this.children.values()].map((child) => child.pid).filter((pid): pid is number => pid !== undefined);
  }

  async stop(): Promise<void> {
    await this.closeSessions();
    const exits = [...this.children.values()].map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    }));
    await Promise.all(exits);
    if (this.ownsDataDir && this.dataDir !== null) rmSync(this.dataDir, { recursive: true, force: true });
  }

  private newClient(lanes = CLIENTS_PER_CONNECTION): SynodClient {
    return new SynodClient({ endpoints: this.endpoints, lanes, timeoutMs: 10_000 });
  }

  private async waitForLeader(): Promise<void> {
    const client = this.newClient(1);
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      for (;;) {
        for (const child of this.children.values()) {
          if (child.exitCode !== null) throw new Error(`a synod node exited during start (code ${child.exitCode}); see its node.log under ${this.dataDir ?? '?'}`);
        }
        try {
          await client.put('bench-probe', 'x');
          return;
        } catch (error) {
          if (!(error instanceof SynodClientError)) throw error;
          if (Date.now() > deadline) throw new Error(`synod cluster did not serve within ${START_TIMEOUT_MS} ms: ${error.message}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await client.close();
    }
  }
}

class SynodSession implements BenchSession {
  private lastBytes: Uint8Array | null = null;
  private lastText = '';

  constructor(private readonly client: SynodClient) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.client.put(key, this.text(value));
  }

  async get(key: string): Promise<void> {
    await this.client.get(key);
  }

  async cas(key: string, value: Uint8Array): Promise<boolean> {
    const current = await this.client.get(key);
    try {
      await this.client.cas(key, this.text(value), { expectedVersion: current.version });
      return true;
    } catch (error) {
      if (error instanceof SynodClientError && error.code === 'cas_failed') return false;
      throw error;
    }
  }

  /** Values are bytes in the bench; Synod's are strings: latin1 maps each byte to one char. */
  private text(value: Uint8Array): string {
    if (value !== this.lastBytes) {
      this.lastBytes = value;
      this.lastText = Buffer.from(value).toString('latin1');
    }
    return this.lastText;
  }
}

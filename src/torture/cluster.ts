/**
 * A real cluster for fault testing: n `synod start` processes on loopback, each with its own
 * fresh data directory and log file, peers talking through a `PeerNetwork` of proxies, and a
 * fault-control IPC channel (see fault-control.ts). It can SIGKILL a node and restart it on the
 * same data directory and ports, SIGSTOP/SIGCONT it, slow its disk, shift its clock, find the
 * leader through the nodes' status, and probe applied index and state digest for convergence.
 *
 * Every exit the harness did not cause is recorded: a node that dies on its own (a failed
 * assertion, a storage error, a corrupt log at restart) is a finding.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SynodClient } from '../client/index.js';
import { assert } from '../core/assert.js';
import type { NodeStatusReport } from '../server/service.js';
import { FAULT_CONTROL_ENV, type ControlCommand, type ControlReply, type ControlRequest, type ProbeReport } from './control.js';
import { PeerNetwork } from './network.js';
import { reservePorts } from './ports.js';

export type NodeState = 'down' | 'starting' | 'running' | 'paused';

export interface UnexpectedExit {
  readonly id: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** While starting (e.g. it could not recover its log) or while serving. */
  readonly during: 'start' | 'run';
  readonly log: string;
}

export interface TortureClusterOptions {
  readonly nodes: number;
  /** A fresh directory: the secret, and one subdirectory per node (data and node.log). */
  readonly dir: string;
  readonly seed: number;
  /** How to run `synod`: the executable and the arguments before the subcommand. */
  readonly command: { readonly executable: string; readonly args: readonly string[] };
  readonly logLevel?: 'debug' | 'info' | 'warn';
  /** How long a starting node may take to serve (default 60 s: tsx compiles on a loaded machine). */
  readonly startTimeoutMs?: number;
}

/** How long the harness waits for a control reply (a paused node answers after SIGCONT). */
const CONTROL_TIMEOUT_MS = 2_000;
/** Attempts to start a node whose port was taken meanwhile. */
const START_ATTEMPTS_MAX = 5;

interface Slot {
  readonly id: number;
  readonly dataDir: string;
  readonly log: string;
  readonly peerSpec: string;
  state: NodeState;
  child: ChildProcess | null;
  /** Bumped per process started: a reply or exit of an older process is ignored. */
  generation: number;
  /** The exit of the current process was caused by the harness. */
  exitExpected: boolean;
  exited: Promise<void>;
}

export class TortureCluster {
  readonly unexpectedExits: UnexpectedExit[] = [];
  private readonly slots: Slot[];
  private readonly pending = new Map<number, { resolve: (reply: ControlReply | null) => void; timer: NodeJS.Timeout }>();
  private requestIds = 0;
  private readonly statusClient: SynodClient;
  private closed = false;

  private constructor(
    readonly options: TortureClusterOptions,
    readonly network: PeerNetwork,
    readonly clientEndpoints: readonly string[],
    private readonly secretFile: string,
    peerPorts: readonly number[],
  ) {
    this.slots = Array.from({ length: options.nodes }, (_, index) => {
      const id = index + 1;
      const dataDir = join(options.dir, `node-${id}`);
      mkdirSync(dataDir, { recursive: true });
      return {
        id,
        dataDir,
        log: join(dataDir, 'node.log'),
        peerSpec: memberSpec(index, peerPorts, clientEndpoints, network),
        state: 'down' as NodeState,
        child: null,
        generation: 0,
        exitExpected: false,
        exited: Promise.resolve(),
      };
    });
    this.statusClient = new SynodClient({ endpoints: [...clientEndpoints], timeoutMs: 1_000, attemptTimeoutMs: 400 });
  }

  /** Reserves ports, starts the proxies and writes the secret; no node runs yet. */
  static async create(options: TortureClusterOptions): Promise<TortureCluster> {
    assert(Number.isInteger(options.nodes) && options.nodes >= 1, 'node count');
    mkdirSync(options.dir, { recursive: true });
    const ports = await reservePorts(options.nodes * 2);
    const peerPorts = ports.slice(0, options.nodes);
    const clientEndpoints = ports.slice(options.nodes).map((port) => `127.0.0.1:${port}`);
    const network = await PeerNetwork.create(peerPorts, options.seed);
    const secretFile = join(options.dir, 'secret');
    writeFileSync(secretFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
    return new TortureCluster(options, network, clientEndpoints, secretFile, peerPorts);
  }

  get size(): number {
    return this.slots.length;
  }

  state(index: number): NodeState {
    return this.slot(index).state;
  }

  logPath(index: number): string {
    return this.slot(index).log;
  }

  /** Starts every node and waits until each serves its listeners. */
  async startAll(): Promise<void> {
    await Promise.all(this.slots.map((_, index) => this.start(index)));
  }

  /** Starts a node that is down, on its data directory; resolves once it listens. */
  async start(index: number): Promise<void> {
    const slot = this.slot(index);
    if (slot.state !== 'down') return;
    for (let attempt = 1; ; attempt += 1) {
      const outcome = await this.spawnOnce(slot);
      if (outcome === 'ready') return;
      if (slot.exitExpected || this.closed) return; // the harness stopped it while it started
      // Only a port taken by someone else is retried; any other failure to start is a finding.
      const portTaken = /EADDRINUSE/.test(tail(slot.log, 4_000));
      if (!portTaken || attempt >= START_ATTEMPTS_MAX || this.closed) {
        this.unexpectedExits.push({ id: slot.id, code: outcome.code, signal: outcome.signal, during: 'start', log: slot.log });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }

  /** SIGKILL: the process dies at once, whatever it was doing (a paused one too). */
  async kill(index: number): Promise<boolean> {
    const slot = this.slot(index);
    if (slot.child === null || slot.state === 'down') return false;
    slot.exitExpected = true;
    slot.child.kill('SIGKILL');
    await slot.exited;
    return true;
  }

  /** SIGSTOP: the process stops running (timers, sockets, disk) until `resume`. */
  pause(index: number): boolean {
    const slot = this.slot(index);
    if (slot.child === null || slot.state !== 'running') return false;
    slot.child.kill('SIGSTOP');
    slot.state = 'paused';
    return true;
  }

  resume(index: number): boolean {
    const slot = this.slot(index);
    if (slot.child === null || slot.state !== 'paused') return false;
    slot.child.kill('SIGCONT');
    slot.state = 'running';
    return true;
  }

  /** Sends a control request; null when the node is not running or did not answer in time. */
  control(index: number, request: ControlCommand, timeoutMs = CONTROL_TIMEOUT_MS): Promise<ControlReply | null> {
    const slot = this.slot(index);
    const child = slot.child;
    if (child === null || !child.connected || (slot.state !== 'running' && slot.state !== 'paused')) return Promise.resolve(null);
    const id = (this.requestIds += 1);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, timeoutMs);
      this.pending.set(id, { resolve, timer });
      try {
        child.send({ ...request, id } as ControlRequest);
      } catch {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(null);
      }
    });
  }

  /** The applied index and digest of a running node, or null. */
  async probe(index: number): Promise<ProbeReport | null> {
    const reply = await this.control(index, { type: 'probe' });
    return reply !== null && reply.type === 'probe' ? reply.report : null;
  }

  /** Every node's status over the client protocol (null for a node that did not answer). */
  async statuses(): Promise<(NodeStatusReport | null)[]> {
    const all = await this.statusClient.statusAll();
    return this.clientEndpoints.map((endpoint) => {
      const entry = all.find((candidate) => candidate.endpoint === endpoint);
      return entry !== undefined && 'status' in entry ? entry.status : null;
    });
  }

  /** The slot of the node that serves as leader (the highest ballot if several think they do), or null. */
  async leader(): Promise<number | null> {
    let best: { index: number; ballot: [number, number] } | null = null;
    for (const [index, status] of (await this.statuses()).entries()) {
      if (status === null || !status.serving) continue;
      const ballot = parseBallot(status.ballot);
      if (best === null || compareBallots(ballot, best.ballot) > 0) best = { index, ballot };
    }
    return best?.index ?? null;
  }

  /**
   * SIGKILLs every node at once, synchronously (for a harness that is itself exiting: a paused
   * node would never notice the IPC channel close and would stay stopped forever).
   */
  killAllNow(): void {
    this.closed = true;
    for (const slot of this.slots) {
      if (slot.child === null) continue;
      slot.exitExpected = true;
      slot.child.kill('SIGKILL');
    }
  }

  /** Stops every node (SIGKILL; a paused one too) and the proxies. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((_, index) => this.kill(index)));
    await this.statusClient.close();
    await this.network.close();
    for (const { timer, resolve } of this.pending.values()) {
      clearTimeout(timer);
      resolve(null);
    }
    this.pending.clear();
  }

  private spawnOnce(slot: Slot): Promise<'ready' | { code: number | null; signal: NodeJS.Signals | null }> {
    const args = [
      ...this.options.command.args,
      'start',
      '--id', String(slot.id),
      '--peers', slot.peerSpec,
      '--data', slot.dataDir,
      '--secret-file', this.secretFile,
      '--log-level', this.options.logLevel ?? 'info',
    ];
    const log = openSync(slot.log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.options.command.executable, args, {
        stdio: ['ignore', log, log, 'ipc'],
        env: { ...process.env, [FAULT_CONTROL_ENV]: '1' },
        serialization: 'json',
      });
    } finally {
      closeSync(log);
    }
    slot.generation += 1;
    const generation = slot.generation;
    slot.child = child;
    slot.state = 'starting';
    slot.exitExpected = false;
    return new Promise((resolve) => {
      let ready = false;
      const startTimer = setTimeout(() => {
        // A node that never serves is killed and counted as a failure to start.
        if (!ready) child.kill('SIGKILL');
      }, this.options.startTimeoutMs ?? 60_000);
      child.on('message', (message: unknown) => {
        if (generation !== slot.generation) return;
        const type = (message as { type?: unknown }).type;
        if (type === 'ready' && !ready) {
          ready = true;
          clearTimeout(startTimer);
          slot.state = 'running';
          resolve('ready');
          return;
        }
        this.onReply(message as ControlReply);
      });
      child.on('error', () => {}); // reported through 'exit'
      slot.exited = new Promise<void>((resolveExit) => {
        child.once('exit', (code, signal) => {
          clearTimeout(startTimer);
          if (generation === slot.generation) {
            slot.state = 'down';
            slot.child = null;
          }
          if (!ready) resolve({ code, signal });
          else if (!slot.exitExpected && !this.closed) {
            this.unexpectedExits.push({ id: slot.id, code, signal, during: 'run', log: slot.log });
          }
          resolveExit();
        });
      });
    });
  }

  private onReply(reply: ControlReply): void {
    const waiting = this.pending.get(reply.id);
    if (waiting === undefined) return;
    this.pending.delete(reply.id);
    clearTimeout(waiting.timer);
    waiting.resolve(reply);
  }

  private slot(index: number): Slot {
    const slot = this.slots[index];
    assert(slot !== undefined, `no node in slot ${index}`);
    return slot;
  }
}

/**
 * Node `index`'s view of the members: itself at its real peer port, every other node j at the
 * proxy (index→j), and everyone's real client port (it is what redirects name).
 */
function memberSpec(index: number, peerPorts: readonly number[], clientEndpoints: readonly string[], network: PeerNetwork): string {
  return peerPorts
    .map((peerPort, other) => {
      const port = other === index ? peerPort : network.port(index, other);
      const clientPort = (clientEndpoints[other] as string).split(':')[1];
      return `${other + 1}=127.0.0.1:${port}:${clientPort}`;
    })
    .join(',');
}

/** "round.node" as numbers. */
export function parseBallot(text: string): [number, number] {
  const [round, node] = text.split('.').map(Number);
  return [round ?? 0, node ?? 0];
}

export function compareBallots(a: readonly [number, number], b: readonly [number, number]): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

/** The last `bytes` of a file, or '' if it cannot be read. */
export function tail(path: string, bytes: number): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(Math.max(0, text.length - bytes));
  } catch {
    return '';
  }
}

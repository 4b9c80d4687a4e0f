/**
 * One torture run, start to verdict:
 *
 *   start n node processes (fresh data directories, peers through fault-injecting proxies)
 *   -> wait for a leader -> clients and nemesis run for the duration
 *   -> stop the nemesis, heal everything (links pass, paused nodes continue, dead nodes restart,
 *      disks and clocks normal) -> let in-flight operations finish -> wait for a leader
 *   -> final read of every key (part of the history) -> wait until every replica reports the same
 *      applied index and state digest -> stop the cluster
 *   -> check the history: linearizable, no lost acknowledged write; and converged.
 *
 * Any failure (including a node process that died on its own, or no leader after healing) fails
 * the run; the data directory with the node logs, the nemesis log and the history are kept.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatHistory } from '../check/history.js';
import { checkHistory, type HistoryVerdict } from './checks.js';
import { TortureCluster } from './cluster.js';
import { FAULT_KINDS, Nemesis, describeSpec, planFaults, type FaultEpisode, type FaultKind } from './nemesis.js';
import { Workload } from './workload.js';

export interface TortureOptions {
  readonly nodes: number;
  readonly durationS: number;
  readonly seed: number;
  readonly faults: readonly FaultKind[];
  /** Where to write the history (JSON lines); on failure it is written to the run directory anyway. */
  readonly historyPath?: string;
  readonly clients?: number;
  readonly keys?: number;
  /** Mean pause between one client's operations (ms). */
  readonly thinkMs?: number;
  /** The run directory (default: a new one under the system temp directory). */
  readonly dir?: string;
  /** Keep the run directory even when the run passes. */
  readonly keep?: boolean;
  /** How to run `synod` for the nodes (default: this Node.js running this package's CLI). */
  readonly command?: { readonly executable: string; readonly args: readonly string[] };
  /** Progress and fault lines. */
  readonly log?: (line: string) => void;
}

/** The last line of `synod torture`. */
export interface TortureSummary {
  readonly nodes: number;
  readonly seed: number;
  readonly ops: number;
  readonly faults: number;
  readonly unknown: number;
  readonly linearizable: boolean | 'unknown';
  readonly lostAcknowledgedWrites: number;
  readonly converged: boolean;
}

export interface TortureReport {
  readonly summary: TortureSummary;
  readonly passed: boolean;
  readonly failures: readonly string[];
  readonly faultsByKind: Readonly<Record<FaultKind, number>>;
  readonly verdict: HistoryVerdict;
  readonly historyPath: string | null;
  readonly dir: string;
  readonly kept: boolean;
}

export const CLIENTS_DEFAULT = 12;
export const KEYS_DEFAULT = 32;
export const THINK_MS_DEFAULT = 10;
/** After healing: time for a leader to serve, and for the replicas to converge. */
const LEADER_TIMEOUT_MS = 60_000;
const CONVERGENCE_TIMEOUT_MS = 60_000;
const PROGRESS_EVERY_MS = 10_000;

/** Runs `synod start` through the same Node.js and loader as this process (tsx in tests, dist otherwise). */
export function defaultCommand(): { executable: string; args: string[] } {
  const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const cli = fileURLToPath(new URL(`../cli/main${extension}`, import.meta.url));
  return { executable: process.execPath, args: [...process.execArgv, cli] };
}

export async function runTorture(options: TortureOptions): Promise<TortureReport> {
  const log = options.log ?? (() => {});
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), `synod-torture-${options.seed}-`));
  const failures: string[] = [];
  const nemesisLines: string[] = [];
  const cluster = await TortureCluster.create({ nodes: options.nodes, dir, seed: options.seed, command: options.command ?? defaultCommand() });
  const killOnSignal = (signal: NodeJS.Signals): void => {
    cluster.killAllNow();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const killOnExit = (): void => cluster.killAllNow();
  process.once('SIGINT', killOnSignal);
  process.once('SIGTERM', killOnSignal);
  process.once('exit', killOnExit);
  const workload = new Workload({
    endpoints: cluster.clientEndpoints,
    clients: options.clients ?? CLIENTS_DEFAULT,
    keys: options.keys ?? KEYS_DEFAULT,
    seed: options.seed,
    thinkMs: options.thinkMs ?? THINK_MS_DEFAULT,
  });
  const plan = planFaults({ seed: options.seed, nodes: options.nodes, durationMs: options.durationS * 1000, kinds: options.faults });
  const nemesis = new Nemesis(cluster, plan, (line) => {
    nemesisLines.push(line);
    log(line);
  });
  let converged = false;
  try {
    log(`torture: ${options.nodes} nodes, seed ${options.seed}, ${options.durationS} s, faults ${options.faults.join(',') || 'none'}, ${plan.length} fault episodes planned; run directory ${dir}`);
    await cluster.startAll();
    if ((await waitForLeader(cluster, LEADER_TIMEOUT_MS)) === null) failures.push(`no leader within ${LEADER_TIMEOUT_MS / 1000} s of starting the cluster`);
    else {
      await exercise(options, cluster, workload, nemesis, log);
      converged = await settle(cluster, workload, log, failures);
    }
  } finally {
    await cluster.close();
    process.removeListener('SIGINT', killOnSignal);
    process.removeListener('SIGTERM', killOnSignal);
    process.removeListener('exit', killOnExit);
  }
  const verdict = judge(workload, cluster, converged, failures, log);
  const passed = failures.length === 0;
  const { historyPath, kept } = saveArtifacts(options, dir, passed, workload, plan, nemesisLines);

  const faultsByKind = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, nemesis.started.get(kind) ?? 0])) as Record<FaultKind, number>;
  return {
    summary: {
      nodes: options.nodes,
      seed: options.seed,
      ops: verdict.ops,
      faults: nemesis.faults,
      unknown: verdict.unknown,
      linearizable: verdict.linearizable,
      lostAcknowledgedWrites: verdict.lostAcknowledgedWrites,
      converged,
    },
    passed,
    failures,
    faultsByKind,
    verdict,
    historyPath,
    dir,
    kept,
  };
}

/** Checks the history and collects every reason the run failed. */
function judge(workload: Workload, cluster: TortureCluster, converged: boolean, failures: string[], log: (line: string) => void): HistoryVerdict {
  for (const exit of cluster.unexpectedExits) {
    failures.push(`node ${exit.id} exited on its own while ${exit.during === 'start' ? 'starting' : 'running'} (${exit.signal ?? `code ${exit.code}`}); log: ${exit.log}`);
  }
  log(`checking ${workload.history.length} operations...`);
  const verdict = checkHistory(workload.history);
  log(`checked in ${verdict.checkMs} ms: linearizable ${verdict.linearizable}, lost acknowledged writes ${verdict.lostAcknowledgedWrites}`);
  if (verdict.linearizable !== true) failures.push(`history not linearizable (${verdict.linearizable}): ${verdict.explanation ?? ''}`);
  for (const lost of verdict.lost.slice(0, 10)) {
    failures.push(`lost acknowledged write: ${JSON.stringify(lost.write)} — final read ${JSON.stringify(lost.read)}`);
  }
  if (!converged) failures.push('replicas did not converge after healing');
  return verdict;
}

/**
 * Writes the history (where asked, and into the run directory on failure) and the nemesis log;
 * removes the run directory of a passing run unless asked to keep it.
 */
function saveArtifacts(
  options: TortureOptions,
  dir: string,
  passed: boolean,
  workload: Workload,
  plan: readonly FaultEpisode[],
  nemesisLines: readonly string[],
): { historyPath: string | null; kept: boolean } {
  let historyPath = options.historyPath ?? null;
  if (historyPath === null && !passed) historyPath = join(dir, 'history.jsonl');
  if (historyPath !== null) writeFileSync(historyPath, formatHistory(workload.history));
  const kept = !passed || options.keep === true;
  if (!kept) {
    rmSync(dir, { recursive: true, force: true });
    return { historyPath, kept };
  }
  const planLines = plan.map((episode) => `plan ${episode.startMs} ms +${episode.durationMs} ms: ${describeSpec(episode.spec)}`);
  writeFileSync(join(dir, 'nemesis.log'), `${[...planLines, ...nemesisLines].join('\n')}\n`);
  return { historyPath, kept };
}

/** The fault phase: clients and nemesis for the duration, with a progress line now and then. */
async function exercise(options: TortureOptions, cluster: TortureCluster, workload: Workload, nemesis: Nemesis, log: (line: string) => void): Promise<void> {
  const started = performance.now();
  workload.start();
  const nemesisDone = nemesis.run();
  const progress = setInterval(() => {
    const history = workload.history;
    const unknown = history.filter((op) => op.ok === null).length;
    log(`progress: ${Math.round((performance.now() - started) / 1000)} s, ${history.length} ops (${unknown} unknown), ${nemesis.faults} faults`);
  }, PROGRESS_EVERY_MS);
  try {
    await new Promise((resolve) => setTimeout(resolve, options.durationS * 1000));
  } finally {
    clearInterval(progress);
  }
  nemesis.stop();
  await nemesisDone;
  log('healing: every link passes, every node runs, disks and clocks normal');
  await nemesis.healAll();
  await workload.stop();
  log(`fault phase over: ${workload.history.length} ops, ${nemesis.faults} faults`);
}

/** After healing: a leader serves, every key is read once more, and every replica converges. */
async function settle(cluster: TortureCluster, workload: Workload, log: (line: string) => void, failures: string[]): Promise<boolean> {
  const leader = await waitForLeader(cluster, LEADER_TIMEOUT_MS);
  if (leader === null) {
    failures.push(`no leader within ${LEADER_TIMEOUT_MS / 1000} s of healing`);
    return false;
  }
  log(`after healing node ${leader + 1} leads; final reads`);
  const unreadable = await workload.finalReads();
  if (unreadable.length > 0) failures.push(`final reads failed after healing for ${unreadable.length} keys (${unreadable.slice(0, 5).join(', ')})`);
  const convergence = await awaitConvergence(cluster, CONVERGENCE_TIMEOUT_MS);
  log(convergence.detail);
  return convergence.converged;
}

async function waitForLeader(cluster: TortureCluster, timeoutMs: number): Promise<number | null> {
  const deadline = performance.now() + timeoutMs;
  // Bounded by the deadline; each probe waits at most the status attempt timeout.
  while (performance.now() < deadline) {
    const leader = await cluster.leader();
    if (leader !== null) return leader;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return null;
}

/**
 * Polls every node until all report the same applied index and the same state digest. Equal
 * applied indexes with different digests is a divergence, reported at once.
 */
async function awaitConvergence(cluster: TortureCluster, timeoutMs: number): Promise<{ converged: boolean; detail: string }> {
  const deadline = performance.now() + timeoutMs;
  let last = 'no probe answered';
  // Bounded by the deadline.
  while (performance.now() < deadline) {
    const probes = await Promise.all(Array.from({ length: cluster.size }, (_, index) => cluster.probe(index)));
    last = probes.map((probe, index) => `node ${index + 1}: ${probe === null ? 'no answer' : `applied ${probe.appliedIndex} digest ${probe.digest.slice(0, 12)}`}`).join('; ');
    const answered = probes.filter((probe) => probe !== null);
    if (answered.length === probes.length) {
      const indexes = new Set(answered.map((probe) => probe.appliedIndex));
      const digests = new Set(answered.map((probe) => probe.digest));
      if (indexes.size === 1 && digests.size === 1) return { converged: true, detail: `converged: ${last}` };
      if (indexes.size === 1) return { converged: false, detail: `DIVERGED at the same applied index: ${last}` };
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { converged: false, detail: `not converged after ${timeoutMs / 1000} s: ${last}` };
}

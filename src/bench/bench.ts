/**
 * One `synod bench` invocation: start every system under test, measure the ceilings, run the
 * workload at each client count with the systems taking turns (the order rotates per client count,
 * so drift in the machine's state hits every system alike), stop everything, and report.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureFsync, type FsyncCeiling } from './ceilings.js';
import { ceilingLines, cpuTable, markdownTable, runLines, svgChart } from './report.js';
import { runWorkload, type BenchOp, type BenchResult, type Progress, type Workload } from './runner.js';
import { defaultScriptsDir, runScript } from './peers/script-cluster.js';
import { SynodSystem } from './synod-system.js';
import type { BenchSystem } from './system.js';

export const PEERS = ['etcd', 'zookeeper'] as const;
export type PeerName = (typeof PEERS)[number];

export interface BenchPlan {
  readonly op: BenchOp;
  readonly clientCounts: readonly number[];
  readonly valueSize: number;
  readonly keys: number;
  readonly durationMs: number;
  /** Warm-up before each measurement after the first (the first uses the system's own). */
  readonly warmupMs: number;
  readonly mix?: Workload['mix'];
  /** Synod members to start (ignored with `endpoints`). */
  readonly nodes: number;
  readonly endpoints?: readonly string[];
  readonly compare: readonly PeerName[];
  /** Measure the fsync rate and a single unreplicated Synod node too. */
  readonly ceilings: boolean;
  /** Write a V8 CPU profile of every Synod node process into this directory. */
  readonly profileDir?: string;
  /** Extra `synod start` flags for the Synod nodes (both the cluster and the single node). */
  readonly nodeFlags?: readonly string[];
  /**
   * Runs per system and client count (default 1), the systems taking turns in each repetition;
   * the reported result is each system's median run (see `medianRun`).
   */
  readonly repeat?: number;
}

export interface BenchOutcome {
  readonly results: BenchResult[];
  readonly fsync: FsyncCeiling | null;
}

export interface BenchEvents {
  readonly log: (line: string) => void;
  readonly progress?: (system: string, clients: number) => Progress;
}

/**
 * A peer's system, its Node client loaded only when asked for. `bench/peers/<name>.sh install`
 * runs first: it apt-get installs the Debian package if the binary is missing (root), else does
 * nothing.
 */
async function peerSystem(name: PeerName, log: (line: string) => void): Promise<BenchSystem> {
  const script = join(defaultScriptsDir(), `${name}.sh`);
  log(`checking ${name} is installed (${script} install)...`);
  await runScript(script, ['install'], 15 * 60_000);
  if (name === 'etcd') {
    const { EtcdPeer } = await import('./peers/etcd.js');
    return new EtcdPeer();
  }
  const { ZookeeperPeer } = await import('./peers/zookeeper.js');
  return new ZookeeperPeer();
}

export async function runBench(plan: BenchPlan, events: BenchEvents): Promise<BenchOutcome> {
  const nodeArgs = plan.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${plan.profileDir}`];
  const nodeFlags = plan.nodeFlags ?? [];
  const systems: BenchSystem[] = [new SynodSystem({ nodes: plan.nodes, nodeArgs, nodeFlags, ...(plan.endpoints === undefined ? {} : { endpoints: plan.endpoints }) })];
  if (plan.ceilings) systems.push(new SynodSystem({ nodes: 1, nodeFlags }));
  for (const peer of plan.compare) systems.push(await peerSystem(peer, events.log));
  const started: BenchSystem[] = [];
  const results: BenchResult[] = [];
  let fsync: FsyncCeiling | null = null;
  const value = new Uint8Array(plan.valueSize).fill(0x61);
  const warmed = new Set<BenchSystem>();
  const runOnce = async (system: BenchSystem, clients: number): Promise<BenchResult> => {
    const workload: Workload = {
      op: plan.op,
      clients,
      valueSize: plan.valueSize,
      keys: plan.keys,
      durationMs: plan.durationMs,
      warmupMs: warmed.has(system) ? plan.warmupMs : Math.max(plan.warmupMs, system.warmupMs),
      ...(plan.mix === undefined ? {} : { mix: plan.mix }),
    };
    warmed.add(system);
    const sessions = await system.sessions(clients);
    try {
      const result = await runWorkload(system, sessions, workload, events.progress?.(system.name, clients));
      events.log(summaryLine(result));
      return result;
    } finally {
      await system.closeSessions();
    }
  };
  try {
    for (const system of systems) {
      events.log(`starting ${system.name}...`);
      started.push(system);
      await system.start();
      await system.prepare(plan.keys, value);
    }
    if (plan.ceilings) {
      fsync = measureFsync(tmpdir(), 2_000);
      events.log(`disk: ${fsync.fsyncsPerSec} append+fdatasync/s (${fsync.fsyncMeanMs} ms each)`);
    }
    const repeat = plan.repeat ?? 1;
    let round = 0;
    for (const clients of plan.clientCounts) {
      const runs = new Map<BenchSystem, BenchResult[]>(systems.map((system) => [system, []]));
      for (let repetition = 0; repetition < repeat; repetition += 1, round += 1) {
        const order = systems.map((_, index) => systems[(index + round) % systems.length] as BenchSystem);
        for (const system of order) runs.get(system)?.push(await runOnce(system, clients));
      }
      for (const system of systems) {
        const median = medianRun(runs.get(system) ?? []);
        results.push(median);
        if (repeat > 1) events.log(`${system.name} c=${clients}: median of ${repeat} runs ${median.opsPerSec} ops/s (runs: ${(median.opsPerSecRuns ?? []).join(', ')})`);
      }
    }
  } finally {
    for (const system of started.reverse()) {
      try {
        await system.stop();
      } catch (error) {
        events.log(`stopping ${system.name} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
  return { results, fsync };
}

/**
 * The run with the median throughput (the lower middle of an even count), whole: its latencies
 * and CPU figures belong to the same run as its ops/s. It carries every run's ops/s.
 */
export function medianRun(runs: readonly BenchResult[]): BenchResult {
  const sorted = [...runs].sort((left, right) => left.opsPerSec - right.opsPerSec);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  if (median === undefined) throw new Error('no runs to take the median of');
  return runs.length === 1 ? median : { ...median, opsPerSecRuns: runs.map((run) => run.opsPerSec) };
}

export function summaryLine(result: BenchResult): string {
  const servers = result.serverCpuPct.map((value) => (value === null ? '?' : `${value.toFixed(0)}%`)).join('/');
  return `${result.system.padEnd(11)} ${result.op} c=${String(result.clients).padEnd(4)} ${String(result.opsPerSec).padStart(7)} ops/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms  p999 ${result.p999Ms.toFixed(2)} ms  errors ${result.errors}  CPU µs/op: client ${result.clientCpuUsPerOp ?? '?'}, servers ${result.serverCpuUsPerOp ?? '?'} (${servers})  steal ${result.stealPct ?? '?'}%`;
}

/** Writes `<name>.md` and `<name>.svg` under `dir`; returns their paths. */
export function writeReports(dir: string, name: string, outcome: BenchOutcome, context: string): { markdown: string; svg: string } {
  mkdirSync(dir, { recursive: true });
  const markdown = join(dir, `${name}.md`);
  const svg = join(dir, `${name}.svg`);
  const op = outcome.results[0]?.op ?? 'put';
  const body = [
    `# synod bench: ${op}`,
    '',
    context,
    '',
    markdownTable(outcome.results),
    '',
    ...(outcome.fsync !== null || outcome.results.some((result) => result.system === 'synod-1node') ? ['Ceilings:', '', ...ceilingLines(outcome.fsync, outcome.results), ''] : []),
    ...(runLines(outcome.results).length > 0 ? ['Runs (each row above is the median run of these):', '', ...runLines(outcome.results), ''] : []),
    'CPU (of the reported runs):',
    '',
    cpuTable(outcome.results),
    '',
    `![chart](${name}.svg)`,
    '',
  ];
  writeFileSync(markdown, body.join('\n'));
  writeFileSync(svg, svgChart(outcome.results, `${op}, ${outcome.results[0]?.valueSize ?? 0}-byte values — ${context}`));
  return { markdown, svg };
}

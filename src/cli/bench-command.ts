/**
 * `synod bench`: closed-loop throughput and latency of a Synod cluster, optionally side by side
 * with etcd and ZooKeeper (`--compare`), over several client counts (`--sweep`), with the disk and
 * single-node ceilings. The last line of stdout is one JSON object.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { PEERS, runBench, writeReports, type BenchPlan, type PeerName } from '../bench/bench.js';
import { ceilingLines, markdownTable } from '../bench/report.js';
import { BENCH_OPS, type BenchOp, type BenchResult, type Progress } from '../bench/runner.js';
import { errorMessage, fail, integer } from './options.js';

const SWEEP_CLIENTS = [1, 16, 64, 256];

interface BenchOptions {
  clients: number;
  valueSize: number;
  keys: number;
  duration: number;
  warmup: number;
  repeat: number;
  op: BenchOp;
  mix?: string;
  nodes: number;
  endpoints?: string;
  compare?: string;
  sweep?: boolean;
  sweepClients?: string;
  ceilings?: boolean;
  json?: string;
  profile?: string;
  pipelineDepth?: number;
  out: string;
  progress: boolean;
}

function parseMix(text: string): { get: number; put: number; cas: number } {
  const parts = text.split(':').map(Number);
  if (parts.length !== 3 || parts.some((part) => !Number.isSafeInteger(part) || part < 0) || parts.reduce((a, b) => a + b, 0) === 0) {
    throw new InvalidArgumentError('--mix is GET:PUT:CAS weights, e.g. 50:40:10');
  }
  const [get, put, cas] = parts as [number, number, number];
  return { get, put, cas };
}

function parseCompare(text: string): PeerName[] {
  const names = text.split(',').map((name) => name.trim()).filter((name) => name !== '');
  for (const name of names) {
    if (!(PEERS as readonly string[]).includes(name)) throw new InvalidArgumentError(`--compare takes ${PEERS.join(', ')}; not ${name}`);
  }
  return names as PeerName[];
}

function parseCounts(text: string): number[] {
  const counts = text.split(',').map(Number);
  if (counts.length === 0 || counts.some((count) => !Number.isSafeInteger(count) || count < 1)) throw new InvalidArgumentError('--sweep-clients is a comma-separated list of positive integers');
  return counts;
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('closed-loop throughput/latency of a local Synod cluster (optionally against etcd and ZooKeeper)')
    .option('--clients <n>', 'concurrent closed-loop clients', integer('--clients', 1), 64)
    .option('--value-size <bytes>', 'value size', integer('--value-size', 0), 100)
    .option('--keys <n>', 'distinct keys', integer('--keys', 1), 1000)
    .option('--duration <s>', 'measured seconds per run', integer('--duration', 1), 10)
    .option('--repeat <n>', 'runs per system and client count, taking turns; each reports its median run', integer('--repeat', 1), 1)
    .option('--warmup <s>', 'warm-up seconds before each run (at least the system\'s own the first time)', integer('--warmup', 0), 1)
    .addOption(new Option('--op <op>', 'operation').choices([...BENCH_OPS]).default('put'))
    .option('--mix <g:p:c>', 'weights of get:put:cas for --op mix (default 50:40:10)')
    .option('--nodes <n>', 'members of the Synod cluster to start', integer('--nodes', 1), 3)
    .option('--endpoints <list>', 'bench a running Synod cluster at these host:port instead of starting one')
    .option('--compare <peers>', `also run ${PEERS.join(',')} (installed with apt-get by bench/peers/ if missing)`)
    .option('--sweep', `run at ${SWEEP_CLIENTS.join(', ')} clients and write Markdown + SVG reports`)
    .option('--sweep-clients <list>', 'client counts for --sweep')
    .option('--ceilings', 'also measure the disk\'s fdatasync rate and an unreplicated single node (on by default with --sweep or --compare)')
    .option('--json <file>', 'write every result as JSON to this file')
    .option('--pipeline-depth <slots>', 'pass --pipeline-depth to the Synod nodes (default: theirs)', integer('--pipeline-depth', 1))
    .option('--profile <dir>', 'write a V8 CPU profile of each Synod node process into this directory (see bench/profile.mjs)')
    .option('--out <dir>', 'where --sweep writes its reports', 'bench/results')
    .option('--no-progress', 'no progress bar')
    .action((options: BenchOptions) => runBenchCommand(options).catch((error: unknown) => fail(errorMessage(error))));
}

async function runBenchCommand(options: BenchOptions): Promise<void> {
  const sweep = options.sweep === true;
  const compare = options.compare === undefined ? [] : parseCompare(options.compare);
  const plan: BenchPlan = {
    op: options.op,
    clientCounts: sweep ? (options.sweepClients === undefined ? SWEEP_CLIENTS : parseCounts(options.sweepClients)) : [options.clients],
    valueSize: options.valueSize,
    keys: options.keys,
    durationMs: options.duration * 1000,
    warmupMs: options.warmup * 1000,
    repeat: options.repeat,
    ...(options.mix === undefined ? {} : { mix: parseMix(options.mix) }),
    nodes: options.nodes,
    ...(options.endpoints === undefined ? {} : { endpoints: options.endpoints.split(',').map((endpoint) => endpoint.trim()) }),
    compare,
    ...(options.profile === undefined ? {} : { profileDir: resolve(options.profile) }),
    ...(options.pipelineDepth === undefined ? {} : { nodeFlags: ['--pipeline-depth', String(options.pipelineDepth)] }),
    ceilings: options.ceilings === true || (options.endpoints === undefined && (sweep || compare.length > 0)),
  };
  const showBar = options.progress && process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | null = null;
  const progress = (system: string, clients: number): Progress => {
    let shownPhase: string | null = null;
    return (phase, elapsedMs, totalMs, ops) => {
      if (!showBar) return;
      if (shownPhase !== phase) {
        bar?.stop();
        bar = new cliProgress.SingleBar({
          format: `${system} c=${clients} ${phase.padEnd(7)} [{bar}] {percentage}% | {rate} ops/s`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
        }, cliProgress.Presets.shades_classic);
        bar.start(totalMs, 0, { rate: 0 });
        shownPhase = phase;
      }
      bar?.update(Math.min(totalMs, elapsedMs), { rate: elapsedMs > 0 ? Math.round((ops / elapsedMs) * 1000) : 0 });
      if (elapsedMs >= totalMs && phase === 'measure') {
        bar?.stop();
        bar = null;
      }
    };
  };
  const log = (line: string): void => {
    bar?.stop();
    bar = null;
    console.error(line);
  };
  const outcome = await runBench(plan, { log, progress });
  const { results } = outcome;
  if (options.json !== undefined) {
    mkdirSync(dirname(resolve(options.json)), { recursive: true });
    writeFileSync(options.json, `${JSON.stringify({ plan, fsync: outcome.fsync, results }, null, 2)}\n`);
  }
  if (results.length > 1) {
    console.log(markdownTable(results));
    for (const line of ceilingLines(outcome.fsync, results)) console.log(line);
  }
  if (sweep) {
    const context = `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, 3 members on loopback, fsync on`;
    const paths = writeReports(resolve(options.out), `sweep-${options.op}`, outcome, context);
    console.log(`reports: ${paths.markdown} ${paths.svg}`);
  }
  const errors = results.reduce((sum, result) => sum + result.errors, 0);
  // The replicated cluster's last run; with --nodes 1 the only Synod system is the single node.
  const replicated = results.filter((result) => result.system === 'synod');
  const synod = replicated.length > 0 ? replicated : results.filter((result) => result.system.startsWith('synod'));
  const last = synod[synod.length - 1];
  if (last === undefined) throw new Error('no Synod result');
  console.log(JSON.stringify(results.length === 1 ? jsonLine(last) : { ...jsonLine(last), runs: results.map(jsonLine), ...(outcome.fsync === null ? {} : { fsyncsPerSec: outcome.fsync.fsyncsPerSec }) }));
  if (errors > 0) process.exitCode = 1;
}

function jsonLine(result: BenchResult): Record<string, unknown> {
  return {
    system: result.system,
    op: result.op,
    clients: result.clients,
    opsPerSec: result.opsPerSec,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    p999Ms: result.p999Ms,
    errors: result.errors,
  };
}

/**
 * Manual smoke run of a benchmark peer (needs `bench/peers/<system>.sh install` first; not part of
 * `npm test`):
 *
 *   node --import tsx bench/peers/smoke.ts etcd|zookeeper [--op put|get|cas] [--clients 64,1]
 *     [--seconds 5,3] [--warmup-ms N] [--keys 1000] [--value-bytes 100] [--sessions-max N]
 *     [--channels N] [--placement leader|spread] [--keep-data]
 *
 * Starts the cluster, creates the keys, warms up with 64 put clients, then runs each closed-loop
 * series (by default 64 clients for 5 s, then 1 client for 3 s) and prints ops/s, p50/p99 latency
 * (sorted-array percentiles; `synod bench` uses HDR histograms) and the CPU the servers and this
 * client process used. Stops the cluster at the end, also after a failure or Ctrl-C.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EtcdPeer } from '../../src/bench/peers/etcd.js';
import { ZookeeperPeer } from '../../src/bench/peers/zookeeper.js';
import { benchKey, type BenchSession, type BenchSystem } from '../../src/bench/system.js';

type Operation = 'put' | 'get' | 'cas';

interface Series {
  readonly clients: number;
  readonly seconds: number;
}

interface SeriesResult {
  readonly operations: number;
  readonly casFailures: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly latenciesMs: Float64Array;
  readonly elapsedMs: number;
}

const WARMUP_CLIENTS = 64;
/** Set on Ctrl-C: clients stop issuing operations while the cluster is being stopped. */
let interrupted = false;
const CLOCK_TICKS_PER_SECOND = 100;

function usage(message: string): never {
  console.error(`smoke: ${message}`);
  console.error('usage: node --import tsx bench/peers/smoke.ts etcd|zookeeper [--op put|get|cas] [--clients 64,1] [--seconds 5,3]');
  console.error('       [--warmup-ms N] [--keys N] [--value-bytes N] [--sessions-max N] [--channels N]');
  console.error('       [--placement leader|spread] [--keep-data]');
  process.exit(2);
}

function positiveIntegers(text: string, flag: string): number[] {
  const values = text.split(',').map((part) => Number(part));
  if (values.some((value) => !Number.isSafeInteger(value) || value < 1)) usage(`${flag} takes positive integers, got ${text}`);
  return values;
}

function parse(): { system: BenchSystem; operation: Operation; series: Series[]; warmupMs: number; keys: number; valueBytes: number } {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      op: { type: 'string', default: 'put' },
      clients: { type: 'string', default: '64,1' },
      seconds: { type: 'string', default: '5,3' },
      'warmup-ms': { type: 'string' },
      keys: { type: 'string', default: '1000' },
      'value-bytes': { type: 'string', default: '100' },
      'sessions-max': { type: 'string' },
      channels: { type: 'string' },
      placement: { type: 'string', default: 'leader' },
      'keep-data': { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1) usage('name one system');
  const operation = values.op;
  if (operation !== 'put' && operation !== 'get' && operation !== 'cas') usage(`--op must be put, get or cas, got ${operation}`);
  const clients = positiveIntegers(values.clients, '--clients');
  const seconds = positiveIntegers(values.seconds, '--seconds');
  if (clients.length !== seconds.length) usage('--clients and --seconds need the same number of entries');
  const common = { keepData: values['keep-data'] };
  const placement = values.placement;
  if (placement !== 'spread' && placement !== 'leader') usage(`--placement must be leader or spread, got ${placement}`);
  let system: BenchSystem;
  if (positionals[0] === 'etcd') {
    const channels = values.channels === undefined ? undefined : positiveIntegers(values.channels, '--channels')[0];
    system = new EtcdPeer({ ...common, channels, targetLeader: placement === 'leader' });
  } else if (positionals[0] === 'zookeeper') {
    const sessionsMax = values['sessions-max'] === undefined ? undefined : positiveIntegers(values['sessions-max'], '--sessions-max')[0];
    system = new ZookeeperPeer({ ...common, sessionsMax, placement });
  } else {
    usage(`unknown system ${positionals[0]}`);
  }
  const warmupMs = values['warmup-ms'] === undefined ? system.warmupMs : Number(values['warmup-ms']);
  if (!Number.isSafeInteger(warmupMs) || warmupMs < 0) usage('--warmup-ms takes a non-negative integer');
  return {
    system,
    operation,
    series: clients.map((count, index) => ({ clients: count, seconds: seconds[index] as number })),
    warmupMs,
    keys: positiveIntegers(values.keys, '--keys')[0] as number,
    valueBytes: positiveIntegers(values['value-bytes'], '--value-bytes')[0] as number,
  };
}

/** utime + stime of a process, in clock ticks (Linux /proc); 0 if it is gone. */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Runs `clients` closed-loop clients for `durationMs`; every client keeps one operation in flight. */
async function run(sessions: BenchSession[], operation: Operation, keys: number, value: Uint8Array, durationMs: number): Promise<SeriesResult> {
  const latencies: number[] = [];
  let casFailures = 0;
  let errors = 0;
  let firstError: string | null = null;
  const started = performance.now();
  const deadline = started + durationMs;
  const client = async (session: BenchSession): Promise<void> => {
    while (performance.now() < deadline && !interrupted) {
      const key = benchKey(Math.floor(Math.random() * keys));
      const begin = performance.now();
      try {
        if (operation === 'put') await session.put(key, value);
        else if (operation === 'get') await session.get(key);
        else if (!(await session.cas(key, value))) casFailures += 1;
        latencies.push(performance.now() - begin);
      } catch (error) {
        errors += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(sessions.map(client));
  const elapsedMs = performance.now() - started;
  const sorted = Float64Array.from(latencies).sort();
  return { operations: latencies.length, casFailures, errors, firstError, latenciesMs: sorted, elapsedMs };
}

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  const { system, operation, series, warmupMs, keys, valueBytes } = parse();
  const value = new Uint8Array(valueBytes).fill(0x61);
  // One stop for Ctrl-C and the normal end alike: whoever comes second waits for the first.
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopped ??= system.stop());
  process.once('SIGINT', () => {
    interrupted = true;
    console.error('smoke: interrupted; stopping the cluster');
    stop().finally(() => process.exit(130));
  });
  try {
    let phase = performance.now();
    await system.start();
    console.log(`${system.name}: started in ${Math.round(performance.now() - phase)} ms; server pids ${system.serverPids().join(', ')}`);
    phase = performance.now();
    await system.prepare(keys, value);
    console.log(`${system.name}: prepared ${keys} keys of ${valueBytes} bytes in ${Math.round(performance.now() - phase)} ms`);
    if (warmupMs > 0 && !interrupted) {
      const warm = await run(await system.sessions(WARMUP_CLIENTS), 'put', keys, value, warmupMs);
      console.log(`${system.name}: warm-up ${warmupMs} ms with ${WARMUP_CLIENTS} put clients: ${Math.round(warm.operations / (warm.elapsedMs / 1000))} ops/s, ${warm.errors} errors`);
      await system.closeSessions();
    }
    for (const { clients, seconds } of series) {
      if (interrupted) break;
      const sessions = await system.sessions(clients);
      const pids = system.serverPids();
      const serverBefore = pids.map(cpuTicks).reduce((sum, ticks) => sum + ticks, 0);
      const clientBefore = process.cpuUsage();
      const result = await run(sessions, operation, keys, value, seconds * 1000);
      const serverCpuSeconds = (pids.map(cpuTicks).reduce((sum, ticks) => sum + ticks, 0) - serverBefore) / CLOCK_TICKS_PER_SECOND;
      const clientCpu = process.cpuUsage(clientBefore);
      const clientCpuSeconds = (clientCpu.user + clientCpu.system) / 1e6;
      const elapsedSeconds = result.elapsedMs / 1000;
      const line = [
        `${system.name} ${operation} clients=${clients}:`,
        `${Math.round(result.operations / elapsedSeconds)} ops/s`,
        `p50 ${percentile(result.latenciesMs, 0.5).toFixed(2)} ms`,
        `p99 ${percentile(result.latenciesMs, 0.99).toFixed(2)} ms`,
        `(${result.operations} ops in ${elapsedSeconds.toFixed(1)} s;`,
        `server CPU ${(serverCpuSeconds / elapsedSeconds * 100).toFixed(0)}%, client CPU ${(clientCpuSeconds / elapsedSeconds * 100).toFixed(0)}% of one core`,
        operation === 'cas' ? `; cas lost ${result.casFailures})` : ')',
      ].join(' ');
      console.log(line);
      if (result.errors > 0) console.log(`  ${result.errors} errors, first: ${result.firstError}`);
      await system.closeSessions();
    }
  } finally {
    await stop();
    console.log(`${system.name}: stopped`);
  }
}

main().catch((error: unknown) => {
  if (interrupted) process.exit(130); // the cluster was stopped under the running series
  console.error(`smoke: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});

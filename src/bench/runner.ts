/**
 * The closed-loop load generator: C clients, each with one operation in flight, issue operations
 * on random keys for a warm-up and then for the measured duration. Latencies go into an HDR
 * histogram (microsecond resolution, 3 significant digits); only operations that start and end
 * inside the measured window count, so the warm-up's tail and the drain do not skew results.
 */
import * as hdr from 'hdr-histogram-js';
import { cpuPercent, machineTicks, ownCpuMs, processCpuMs, stealPercent } from './cpu.js';
import { benchKey, type BenchSession, type BenchSystem } from './system.js';

export const BENCH_OPS = ['put', 'get', 'cas', 'mix'] as const;
export type BenchOp = (typeof BENCH_OPS)[number];

export interface Workload {
  readonly op: BenchOp;
  readonly clients: number;
  readonly valueSize: number;
  readonly keys: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** For `mix`: relative weights of get, put and cas. */
  readonly mix?: { readonly get: number; readonly put: number; readonly cas: number };
}

export const MIX_DEFAULT = { get: 50, put: 40, cas: 10 } as const;

export interface BenchResult {
  readonly system: string;
  readonly op: BenchOp;
  readonly clients: number;
  readonly valueSize: number;
  readonly keys: number;
  readonly durationMs: number;
  readonly ops: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly errors: number;
  /** CAS attempts that lost a race (not errors: the compare failed as designed). */
  readonly casConflicts: number;
  /** The load generator's CPU over the window, % of one core, and per operation. */
  readonly clientCpuPct: number | null;
  readonly clientCpuUsPerOp: number | null;
  /** Each server process's CPU over the window, % of one core. */
  readonly serverCpuPct: readonly (number | null)[];
  /** CPU of all server processes together per operation (µs): the cost of one op to the cluster. */
  readonly serverCpuUsPerOp: number | null;
  /** The machine's CPU time stolen by the hypervisor over the window, % of all (null: unknown). */
  readonly stealPct: number | null;
  /** With `--repeat`: ops/s of every run, in run order (this result is the median run). */
  readonly opsPerSecRuns?: readonly number[];
  readonly firstError?: string;
}

/** Total CPU µs per operation over processes sampled before and after, or null if any is unknown. */
function cpuPerOp(before: readonly (number | null)[], after: readonly (number | null)[], ops: number): number | null {
  if (ops === 0 || before.length === 0) return null;
  let totalMs = 0;
  for (const [index, start] of before.entries()) {
    const end = after[index];
    if (start === null || end === null || end === undefined) return null;
    totalMs += end - start;
  }
  return Math.round((totalMs * 1000 * 10) / ops) / 10;
}

/** Progress callback: called about four times a second with operations so far in this phase. */
export type Progress = (phase: 'warmup' | 'measure', elapsedMs: number, totalMs: number, ops: number) => void;

/** A small fast generator per client (xorshift32): key choice must not cost more than the op. */
function keyPicker(seed: number, keys: number): () => number {
  let state = (seed * 2654435761) >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % keys;
  };
}

type Phase = 'warmup' | 'measure' | 'done';

/** Runs `workload` on `sessions` (one per client) and measures it. */
export async function runWorkload(system: BenchSystem, sessions: readonly BenchSession[], workload: Workload, progress?: Progress): Promise<BenchResult> {
  if (sessions.length !== workload.clients) throw new Error(`expected ${workload.clients} sessions, got ${sessions.length}`);
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  const value = new Uint8Array(workload.valueSize).fill(0x61);
  const mix = workload.mix ?? MIX_DEFAULT;
  const mixTotal = mix.get + mix.put + mix.cas;
  let phase: Phase = workload.warmupMs > 0 ? 'warmup' : 'measure';
  let phaseOps = 0;
  let errors = 0;
  let casConflicts = 0;
  let firstError: string | undefined;

  const loop = async (session: BenchSession, index: number): Promise<void> => {
    const pick = keyPicker(index + 1, workload.keys);
    const pickOp = keyPicker(index + 7919, mixTotal);
    while (phase !== 'done') {
      const key = benchKey(pick());
      const startPhase = phase;
      const start = process.hrtime.bigint();
      let failed = false;
      try {
        let op = workload.op;
        if (op === 'mix') {
          const roll = pickOp();
          op = roll < mix.get ? 'get' : roll < mix.get + mix.put ? 'put' : 'cas';
        }
        if (op === 'put') await session.put(key, value);
        else if (op === 'get') await session.get(key);
        else if (!(await session.cas(key, value)) && startPhase === 'measure') casConflicts++;
      } catch (error) {
        failed = true;
        if (startPhase === 'measure' && phase === 'measure') {
          errors++;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
      }
      if (startPhase !== phase) continue;
      phaseOps++;
      if (phase === 'measure' && !failed) histogram.recordValue(Math.max(1, Number((process.hrtime.bigint() - start) / 1000n)));
    }
  };

  const tick = (total: number, began: number): NodeJS.Timeout => setInterval(() => {
    progress?.(phase === 'warmup' ? 'warmup' : 'measure', Date.now() - began, total, phaseOps);
  }, 250);

  const loops = sessions.map((session, index) => loop(session, index));
  if (phase === 'warmup') {
    const ticker = tick(workload.warmupMs, Date.now());
    await new Promise((resolve) => setTimeout(resolve, workload.warmupMs));
    clearInterval(ticker);
  }
  const pids = system.serverPids();
  const serverBefore = pids.map(processCpuMs);
  const clientBefore = ownCpuMs();
  const machineBefore = machineTicks();
  const began = process.hrtime.bigint();
  phase = 'measure';
  phaseOps = 0;
  const ticker = tick(workload.durationMs, Date.now());
  await new Promise((resolve) => setTimeout(resolve, workload.durationMs));
  clearInterval(ticker);
  const elapsedMs = Number(process.hrtime.bigint() - began) / 1e6;
  const clientAfter = ownCpuMs();
  const machineAfter = machineTicks();
  const serverAfter = pids.map(processCpuMs);
  const measured = histogram.totalCount;
  phase = 'done';
  progress?.('measure', elapsedMs, workload.durationMs, phaseOps);
  await Promise.all(loops);

  const ms = (us: number): number => Math.round(us) / 1000;
  const clientCpuMs = clientAfter - clientBefore;
  return {
    system: system.name,
    op: workload.op,
    clients: workload.clients,
    valueSize: workload.valueSize,
    keys: workload.keys,
    durationMs: Math.round(elapsedMs),
    ops: measured,
    opsPerSec: Math.round((measured / elapsedMs) * 1000),
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    p999Ms: ms(histogram.getValueAtPercentile(99.9)),
    maxMs: ms(histogram.maxValue),
    meanMs: ms(histogram.mean),
    errors,
    casConflicts,
    clientCpuPct: cpuPercent(clientBefore, clientAfter, elapsedMs),
    clientCpuUsPerOp: measured === 0 ? null : Math.round((clientCpuMs * 1000 * 10) / measured) / 10,
    serverCpuPct: pids.map((_, index) => cpuPercent(serverBefore[index] ?? null, serverAfter[index] ?? null, elapsedMs)),
    serverCpuUsPerOp: cpuPerOp(serverBefore, serverAfter, measured),
    stealPct: stealPercent(machineBefore, machineAfter),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

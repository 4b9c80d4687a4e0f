/**
 * `synod bench` runs end to end (a real 3-node cluster, a few seconds) and its last line is the
 * promised JSON object. Throughput is not asserted: benchmarks are not timed unit tests.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { medianRun } from '../../src/bench/bench.js';
import { machineTicks, stealPercent } from '../../src/bench/cpu.js';
import { cpuTable, markdownTable, runLines, svgChart } from '../../src/bench/report.js';
import type { BenchResult } from '../../src/bench/runner.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const runsCompiled = MAIN.includes('/dist/');

function runBenchCommand(args: readonly string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [MAIN, 'bench', ...args], { timeout: 55_000 }, (error, out, err) => {
      if (error) {
        reject(new Error(`${error.message}\n${err}`));
        return;
      }
      const lines = out.trim().split('\n');
      resolve(JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>);
    });
  });
}

test('synod bench runs a short put workload and ends with its JSON line', { skip: !runsCompiled && 'runs against the build (npm test)', timeout: 60_000 }, async () => {
  const last = await runBenchCommand(['--clients', '4', '--duration', '2', '--warmup', '0', '--keys', '50', '--no-progress']);
  assert.deepEqual(Object.keys(last), ['system', 'op', 'clients', 'opsPerSec', 'p50Ms', 'p99Ms', 'p999Ms', 'errors']);
  assert.equal(last.system, 'synod');
  assert.equal(last.op, 'put');
  assert.equal(last.clients, 4);
  assert.equal(last.errors, 0);
  assert.ok(typeof last.opsPerSec === 'number' && last.opsPerSec > 0, 'some puts completed');
  assert.ok(typeof last.p50Ms === 'number' && typeof last.p99Ms === 'number' && last.p50Ms <= last.p99Ms);
});

test('synod bench --nodes 1 benches the single node and ends with its JSON line', { skip: !runsCompiled && 'runs against the build (npm test)', timeout: 60_000 }, async () => {
  const last = await runBenchCommand(['--nodes', '1', '--clients', '2', '--duration', '1', '--warmup', '0', '--keys', '20', '--no-progress']);
  assert.equal(last.system, 'synod-1node');
  assert.equal(last.errors, 0);
  assert.ok(typeof last.opsPerSec === 'number' && last.opsPerSec > 0, 'some puts completed');
});

function result(system: string, clients: number, opsPerSec: number, p99Ms: number): BenchResult {
  return {
    system, op: 'put', clients, valueSize: 100, keys: 10, durationMs: 1000, ops: opsPerSec, opsPerSec, p50Ms: p99Ms / 2, p99Ms,
    p999Ms: p99Ms, maxMs: p99Ms, meanMs: p99Ms / 2, errors: 0, casConflicts: 0, clientCpuPct: 10, clientCpuUsPerOp: 5, serverCpuPct: [50, 20, 20], serverCpuUsPerOp: 30, stealPct: 1.5,
  };
}

test('the comparison table gives Synod\'s ratio to each peer per client count', () => {
  const results = [result('synod', 1, 2000, 1), result('etcd', 1, 1000, 2), result('synod', 64, 30_000, 5), result('etcd', 64, 3000, 40)];
  const table = markdownTable(results).split('\n');
  assert.equal(table.length, 4);
  assert.match(table[0] as string, /synod\/etcd/);
  assert.match(table[2] as string, /\| 2\.00× \|$/);
  assert.match(table[3] as string, /\| 10\.00× \|$/);
});

test('the chart has one line per system in each of its two panels', () => {
  const svg = svgChart([result('synod', 1, 2000, 1), result('zookeeper', 1, 1000, 2), result('synod', 16, 9000, 3), result('zookeeper', 16, 5000, 9)], 'put');
  assert.equal((svg.match(/<polyline/g) ?? []).length, 4);
  assert.match(svg, /^<svg[^>]*>/);
  assert.match(svg, />zookeeper</);
});

test('with --repeat each system reports its median run, whole, carrying every run\'s ops/s', () => {
  const runs = [result('synod', 64, 9000, 9), result('synod', 64, 14_000, 4), result('synod', 64, 12_000, 6)];
  const median = medianRun(runs);
  assert.equal(median.opsPerSec, 12_000);
  assert.equal(median.p99Ms, 6, 'the latencies are the median run\'s own');
  assert.deepEqual(median.opsPerSecRuns, [9000, 14_000, 12_000]);
  assert.equal(medianRun(runs.slice(0, 2)).opsPerSec, 9000, 'the lower middle of an even count');
  assert.equal(medianRun([runs[1] as BenchResult]).opsPerSecRuns, undefined, 'a single run has no list');
  assert.throws(() => medianRun([]));
  assert.deepEqual(runLines([median]), ['- synod put at 64 clients: 9,000 / 14,000 / 12,000 ops/s (median 12,000)']);
  assert.match(cpuTable([median]).split('\n')[2] as string, /\| 1\.5 \| 0 \|$/, 'the steal column');
});

test('steal is the stolen share of all CPU ticks between two /proc/stat samples', () => {
  assert.equal(stealPercent({ total: 1000, steal: 10 }, { total: 1400, steal: 60 }), 12.5);
  assert.equal(stealPercent(null, { total: 1, steal: 0 }), null);
  assert.equal(stealPercent({ total: 5, steal: 0 }, { total: 5, steal: 0 }), null);
  const ticks = machineTicks();
  if (ticks !== null) assert.ok(ticks.total > 0 && ticks.steal >= 0 && ticks.steal <= ticks.total);
});

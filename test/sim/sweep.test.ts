/**
 * The simulator sweep: many seeds with every fault on (loss, duplication, delay and reordering,
 * partitions, crashes and restarts), then a healed liveness phase; each seed must pass the
 * agreement oracle, replica convergence and linearizability of the client history.
 *
 * 300 seeds normally; SYNOD_LONG=1 runs the documented long sweep of 5000 seeds.
 * A failing seed replays exactly with `npx synod sim --seed S --trace`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type SweepSummary, sweep } from '../../src/sim/sweep.js';
import { type SimulationOptions, type SimulationResult, simulate } from '../../src/sim/simulation.js';

const LONG = process.env.SYNOD_LONG !== undefined && process.env.SYNOD_LONG !== '';
const SEEDS = LONG ? 5000 : 300;
/** Seeds of the 5-node sweep. */
const SEEDS_5_NODES = 50;
/** Seeds with gets through the log instead of read index. */
const SEEDS_LOG_READS = 100;

interface Failure {
  readonly seed: number;
  readonly reason: string;
}

function runSweep(
  count: number,
  overrides: Partial<Omit<SimulationOptions, 'seed'>>,
): { summary: SweepSummary; failures: Failure[]; seconds: number } {
  const failures: Failure[] = [];
  const started = performance.now();
  const summary = sweep(1, count, overrides, (result: SimulationResult) => {
    if (result.violations.length === 0 && result.livenessFailure === null) return;
    const reasons = [...result.violations.slice(0, 3), ...(result.livenessFailure === null ? [] : [`liveness: ${result.livenessFailure}`])];
    failures.push({ seed: result.seed, reason: reasons.join('; ') });
  });
  return { summary, failures, seconds: (performance.now() - started) / 1000 };
}

/** The failed seeds, all of them up to a hundred (a long sweep gone wrong could fail thousands). */
function listSeeds(seeds: readonly number[]): string {
  const shown = seeds.slice(0, 100).join(', ');
  return seeds.length > 100 ? `${shown}, … (+${seeds.length - 100} more)` : shown;
}

function failureMessage(summary: SweepSummary, failures: readonly Failure[], nodeFlag: string): string {
  const lines = [
    `${summary.failedSeeds.length} of ${summary.seeds} seeds failed ` +
      `(${summary.violations} violations, ${summary.livenessFailures} liveness failures); failed seeds: ${listSeeds(summary.failedSeeds)}`,
    ...failures.slice(0, 20).map((failure) => `  seed ${failure.seed}: ${failure.reason}`),
  ];
  const first = summary.failedSeeds[0];
  if (first !== undefined) lines.push(`replay with: npx synod sim --seed ${first}${nodeFlag} --trace  (any failed seed S: npx synod sim --seed S${nodeFlag} --trace)`);
  return lines.join('\n');
}

test(`sweep: ${SEEDS} seeds, 3 nodes, all faults on: no violations, no liveness failures`, { timeout: LONG ? 3_600_000 : 120_000 }, (t) => {
  const { summary, failures, seconds } = runSweep(SEEDS, {});
  t.diagnostic(`${SEEDS} seeds in ${seconds.toFixed(1)} s (${summary.ops} client ops, ${summary.logReadsFromDisk} log entries read back from disk)`);
  const message = failureMessage(summary, failures, '');
  assert.equal(summary.seeds, SEEDS);
  assert.equal(summary.violations, 0, message);
  assert.equal(summary.livenessFailures, 0, message);
  assert.deepEqual(summary.failedSeeds, [], message);
  assert.ok(summary.ops > 0, 'the sweep completed no client operations at all');
  // On average at least one completed operation per seed, not just a handful overall.
  assert.ok(summary.ops >= SEEDS, `only ${summary.ops} client ops over ${SEEDS} seeds`);
  // Two of the three nodes compact their logs in memory: catch-up and phase 1 must have read entries back.
  assert.ok(summary.logReadsFromDisk > 0, 'no node ever read a compacted entry back from its disk');
});

test(`sweep: ${SEEDS_5_NODES} seeds, 5 nodes, all faults on: no violations, no liveness failures`, { timeout: 120_000 }, (t) => {
  const { summary, failures, seconds } = runSweep(SEEDS_5_NODES, { nodeCount: 5 });
  t.diagnostic(`${SEEDS_5_NODES} seeds (5 nodes) in ${seconds.toFixed(1)} s (${summary.ops} client ops)`);
  const message = failureMessage(summary, failures, ' --nodes 5');
  assert.equal(summary.violations, 0, message);
  assert.equal(summary.livenessFailures, 0, message);
  assert.deepEqual(summary.failedSeeds, [], message);
  assert.ok(summary.ops > 0, 'the 5-node sweep completed no client operations at all');
});

test(`sweep: ${SEEDS_LOG_READS} seeds, reads through the log (--read-mode log): no violations, no liveness failures`, { timeout: 120_000 }, () => {
  const { summary, failures } = runSweep(SEEDS_LOG_READS, { readMode: 'log' });
  const message = failureMessage(summary, failures, ' --read-mode log');
  assert.equal(summary.violations, 0, message);
  assert.equal(summary.livenessFailures, 0, message);
  assert.ok(summary.ops > 0);
});

test('sweep: 200 seeds with the node\'s window of one slot in flight (--pipeline-depth 1), 3 and 5 nodes', { timeout: 120_000 }, () => {
  for (const nodeCount of [3, 5]) {
    const { summary, failures } = runSweep(nodeCount === 3 ? 150 : 50, { nodeCount, pipelineDepthMax: 1 });
    const message = failureMessage(summary, failures, ` --nodes ${nodeCount} --pipeline-depth 1`);
    assert.equal(summary.violations, 0, message);
    assert.equal(summary.livenessFailures, 0, message);
    assert.ok(summary.ops > 0);
  }
});

test('sweep: 50 seeds, a single node (its own quorum: reads and writes confirm at once)', { timeout: 60_000 }, () => {
  const { summary, failures } = runSweep(50, { nodeCount: 1 });
  const message = failureMessage(summary, failures, ' --nodes 1');
  assert.equal(summary.violations, 0, message);
  assert.equal(summary.livenessFailures, 0, message);
  assert.ok(summary.ops > 0);
});

test('simulate is deterministic: the same seed gives the same run', () => {
  for (const seed of [1, 2, 7, 42, 1234]) {
    const first = simulate(seed);
    const second = simulate(seed);
    assert.ok(first.history.length > 0, `seed ${seed}: empty history`);
    assert.deepEqual(second.history, first.history, `seed ${seed}: histories differ`);
    assert.equal(second.ops, first.ops, `seed ${seed}: ops differ`);
    assert.equal(second.unknownOps, first.unknownOps, `seed ${seed}: unknown ops differ`);
    assert.equal(second.messagesDelivered, first.messagesDelivered, `seed ${seed}: messages delivered differ`);
    assert.equal(second.virtualUs, first.virtualUs, `seed ${seed}: virtual time differs`);
    assert.equal(second.faultsInjected, first.faultsInjected, `seed ${seed}: faults injected differ`);
    assert.deepEqual(second, first, `seed ${seed}: results differ`);
  }
  // And different seeds give different runs (the seed is actually used).
  assert.notDeepEqual(simulate(1).history, simulate(2).history);
});

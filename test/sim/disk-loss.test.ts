/**
 * Disk loss in the simulator: a crashed node sometimes loses its whole durable state.
 * - Scenario D1, step by step: the amnesia of a plain restart chooses a second value for a slot
 *   (the oracle reports it); rejoin does not.
 * - Sweeps with all faults on, where lost disks rejoin: no agreement violation, linearizable
 *   histories, convergence. And the same sweep with amnesia instead must fail: the checkers see it.
 *
 * SYNOD_LONG=1 sweeps 2,000 seeds (3 nodes) and 300 (5 nodes) instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { d1 } from '../../src/sim/scenarios/d1.js';
import { sweep } from '../../src/sim/sweep.js';

const LONG = process.env.SYNOD_LONG !== undefined && process.env.SYNOD_LONG !== '';
const SEEDS_3_NODES = LONG ? 2000 : 30;
const SEEDS_5_NODES = LONG ? 300 : 8;
const SEEDS_AMNESIA = 40;

test('D1: amnesia chooses two values for a slot; rejoin keeps the acknowledged write', () => {
  const result = d1.run();
  const failed = result.checks.filter((check) => !check.passed);
  assert.equal(failed.length, 0, failed.map((check) => `${check.name} (${check.detail ?? ''})`).join('\n'));
  assert.ok(result.passed);
});

for (const [nodeCount, seeds, start] of [[3, SEEDS_3_NODES, 1], [5, SEEDS_5_NODES, 1000]] as const) {
  test(`disk loss sweep: ${seeds} seeds, ${nodeCount} nodes, all faults on, lost disks rejoin: no violations`, { timeout: LONG ? 3_600_000 : 120_000 }, (t) => {
    const failures: string[] = [];
    let losses = 0;
    const summary = sweep(start, seeds, { nodeCount, diskLoss: 'rejoin' }, (result) => {
      losses += result.disksLost;
      if (result.violations.length > 0 || result.livenessFailure !== null) {
        failures.push(`seed ${result.seed}: ${[...result.violations.slice(0, 2), result.livenessFailure ?? ''].join('; ')}`);
      }
    });
    t.diagnostic(`${summary.ops} client ops, ${losses} disks lost`);
    assert.ok(losses > 0, 'the sweep lost some disks');
    assert.deepEqual(failures, [], `replay with: npx synod sim --seed S --nodes ${nodeCount} --disk-loss rejoin --trace`);
  });
}

test(`disk loss sweep with amnesia instead of rejoin: the checkers catch it within ${SEEDS_AMNESIA} seeds`, () => {
  const summary = sweep(1, SEEDS_AMNESIA, { diskLoss: 'amnesia' });
  assert.ok(summary.violations > 0, 'a node that forgets its promises and acceptances must break agreement in some seed');
});

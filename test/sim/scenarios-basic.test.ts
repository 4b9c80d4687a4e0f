// The Basic Paxos scenarios S1-S3 of SCENARIOS.md, and proof that their agreement oracle can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptorPrepare, type AcceptorRules } from '../../src/core/paxos/index.js';
import { runRandomTrial, type RandomNetwork } from '../../src/sim/basic-harness.js';
import { basicScenarios } from '../../src/sim/scenarios/basic-index.js';
import type { ScenarioResult } from '../../src/sim/scenario.js';

function failures(result: ScenarioResult): string {
  return result.checks
    .filter((check) => !check.passed)
    .map((check) => `${check.name}${check.detail === undefined ? '' : ` (${check.detail})`}`)
    .join('; ');
}

for (const scenario of basicScenarios) {
  test(`scenario ${scenario.id}: ${scenario.title}`, (context) => {
    const started = performance.now();
    const result = scenario.run();
    const elapsedMs = performance.now() - started;
    assert.equal(result.id, scenario.id);
    assert.ok(result.checks.length > 0);
    assert.ok(result.passed, `${scenario.id} failed: ${failures(result)}`);
    if (scenario.id === 'S3') {
      const summary = result.trace.find((line) => /^\d+\/\d+ seeds chose a value/.test(line));
      assert.ok(summary !== undefined, 'S3 prints its summary line');
      context.diagnostic(`${summary} (${Math.round(elapsedMs)} ms wall clock)`);
      assert.ok(elapsedMs < 10_000, `S3 took ${Math.round(elapsedMs)} ms`);
    }
  });
}

test('scenario ids are S1, S2, S3', () => {
  assert.deepEqual(
    basicScenarios.map((scenario) => scenario.id),
    ['S1', 'S2', 'S3'],
  );
});

/** Accepts below its promise (keeping the promise, so the node's own invariants still hold). */
const brokenRules: AcceptorRules = {
  prepare: acceptorPrepare,
  accept(state, message) {
    const promised = message.ballot > state.promised ? message.ballot : state.promised;
    const next = { promised, accepted: { ballot: message.ballot, value: message.value } };
    return {
      state: next,
      reply: { type: 'accepted', from: message.to, to: message.from, variable: message.variable, ballot: message.ballot },
      persist: { type: 'acceptor', variable: message.variable, ...next },
    };
  },
};

const NETWORK: RandomNetwork = { delayTicksMin: 1, delayTicksMax: 6, lossProbability: 0.05, duplicateProbability: 0.05 };

test('the agreement oracle catches an acceptor that accepts below its promise', () => {
  const seeds = Array.from({ length: 50 }, (_, index) => index + 1);
  const trial = (seed: number, broken: boolean) =>
    runRandomTrial({
      seed,
      proposerCount: 2 + (seed % 4),
      network: NETWORK,
      ticksMax: 2000,
      ...(broken ? { node: { acceptorRules: brokenRules } } : {}),
    });
  const caught = seeds.filter((seed) => trial(seed, true).violations.length > 0);
  assert.ok(caught.length > 0, 'some seed shows two chosen values');
  const first = trial(caught[0] ?? 0, true);
  assert.ok(first.violations.some((violation) => /two values chosen/.test(violation)), first.violations.join('; '));
  for (const seed of caught) assert.deepEqual(trial(seed, false).violations, [], `seed ${seed} with the correct acceptor`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Replica } from '../../src/core/multipaxos/replica.js';
import type { LogEntry } from '../../src/core/multipaxos/types.js';
import type { Ballot } from '../../src/core/ballot.js';
import { s4 } from '../../src/sim/scenarios/s4.js';
import { s5 } from '../../src/sim/scenarios/s5.js';
import { runS6 } from '../../src/sim/scenarios/s6.js';
import type { ScenarioResult } from '../../src/sim/scenario.js';

function assertPassed(result: ScenarioResult): void {
  const failed = result.checks.filter((check) => !check.passed);
  assert.equal(failed.length, 0, `${result.id} failed checks:\n${failed.map((check) => `${check.name} (${check.detail ?? ''})`).join('\n')}`);
  assert.ok(result.checks.length > 0 && result.passed);
}

test('S4: a new leader recovers a log with holes (both variants)', () => {
  const result = s4.run();
  assertPassed(result);
  assert.ok(result.checks.some((check) => check.name.includes('slot 4 is noop')));
  assert.ok(result.checks.some((check) => check.name.includes('slot 4 is put(D=D)')));
});

test('S5: the ghost appears without StartWorking and never with it (both forms)', () => {
  const result = s5.run();
  assertPassed(result);
  assert.equal(result.checks.filter((check) => check.name.includes('the ghost appears')).length, 2);
  assert.equal(result.checks.filter((check) => check.name.includes('no value the read missed ever becomes visible')).length, 2);
});

test('S6: a follower asks about an accepted-but-unconfirmed slot and applies the chosen value', () => {
  assertPassed(runS6());
});

/** Broken on purpose: a follower that trusts any commit notification for its local entry. */
class FollowerAppliesUnconfirmed extends Replica {
  protected override confirmedByNotification(_entry: LogEntry, _ballot: Ballot): boolean {
    return true;
  }
}

test('S6 catches a follower that applies unconfirmed entries', () => {
  const result = runS6((options, state) => new FollowerAppliesUnconfirmed(options, state));
  assert.equal(result.passed, false);
  const failed = result.checks.filter((check) => !check.passed).map((check) => check.name);
  assert.ok(failed.includes('n3 applied exactly the chosen value at slot 3, not its accepted X'), failed.join('; '));
  assert.ok(failed.includes('the agreement oracle saw no violation'), failed.join('; '));
});

test('scenario traces are readable and deterministic', () => {
  const first = s4.run().trace;
  const second = s4.run().trace;
  assert.deepEqual(first, second);
  assert.ok(first.some((line) => line.includes('deliver n1->n2 prepare(')));
});

/**
 * The checkers can fail: deliberately broken replicas (subclasses that override the core's
 * protected hooks, defined here and nowhere else) must be caught by the simulator within a bounded
 * number of seeds, and the correct replica must pass every seed that caught a broken one (so the
 * failure is the bug's, not the seed's).
 *
 * Each search runs seeds 1..SEEDS_MAX and stops at the first seed the simulator flags. A seed on
 * which the broken core trips one of its own assertions (simulate throws) is not counted as the
 * checkers' catch: it is logged and the search goes on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Ballot } from '../../src/core/ballot.js';
import { Replica, type ReplicaOptions } from '../../src/core/multipaxos/replica.js';
import type { EntryValue, LogEntry, PersistentState, PromiseMessage } from '../../src/core/multipaxos/types.js';
import type { ReplicaFactory } from '../../src/sim/cluster.js';
import { type SimulationResult, simulate } from '../../src/sim/simulation.js';

/** Upper bound on the seeds searched per broken variant. */
const SEEDS_MAX = 200;

// ------------------------------------------------------------------ broken cores

/** (a) An acceptor that accepts below its promise. */
class AcceptsBelowPromise extends Replica {
  protected override acceptorGrantsAccept(_ballot: Ballot): boolean {
    return true;
  }
}

/** (a, stronger) ...and also grants every prepare, whatever it promised. */
class AcceptsBelowPromiseAndGrantsAnyPrepare extends AcceptsBelowPromise {
  protected override acceptorGrantsPrepare(_ballot: Ballot): boolean {
    return true;
  }
}

/** (b) A leader whose recovery ignores the promised values and fills every unchosen slot with a no-op. */
class RecoversWithNoops extends Replica {
  protected override recoveryValues(_promises: readonly PromiseMessage[], maxSlot: number): Map<number, EntryValue> {
    const values = new Map<number, EntryValue>();
    for (let slot = this.firstUnchosen; slot <= maxSlot; slot += 1) {
      if (this.log.get(slot)?.chosen === true) continue;
      values.set(slot, { type: 'noop' });
    }
    return values;
  }
}

/** (c) A leader that skips recovery entirely. */
class SkipsRecovery extends Replica {
  protected override recoveryValues(_promises: readonly PromiseMessage[], _maxSlot: number): Map<number, EntryValue> {
    return new Map();
  }
}

/** (d) A follower that treats every commit notification as confirming whatever it accepted. */
class AppliesUnconfirmed extends Replica {
  protected override confirmedByNotification(_entry: LogEntry, _ballot: Ballot): boolean {
    return true;
  }
}

type BrokenReplica = new (options: ReplicaOptions, state?: PersistentState) => Replica;

function factoryOf(Broken: BrokenReplica): ReplicaFactory {
  return (options, state) => new Broken(options, state);
}

// ------------------------------------------------------------------ search

interface Catch {
  readonly seed: number;
  readonly result: SimulationResult;
  /** Seeds on which the broken core threw (its own assertion) instead of completing. */
  readonly threw: readonly { seed: number; error: string }[];
}

type Verdict = (result: SimulationResult) => boolean;

const hasViolation: Verdict = (result) => result.violations.length > 0;
const hasViolationOrLivenessFailure: Verdict = (result) => result.violations.length > 0 || result.livenessFailure !== null;

/** Runs seeds 1..SEEDS_MAX with the broken core until `caught` holds; null if it never does. */
function firstCaughtSeed(Broken: BrokenReplica, caught: Verdict): { found: Catch | null; searched: number; threw: Catch['threw'] } {
  const threw: { seed: number; error: string }[] = [];
  for (let seed = 1; seed <= SEEDS_MAX; seed += 1) {
    let result: SimulationResult;
    try {
      result = simulate(seed, { replicaFactory: factoryOf(Broken) });
    } catch (error) {
      threw.push({ seed, error: error instanceof Error ? error.message : String(error) });
      continue;
    }
    if (caught(result)) return { found: { seed, result, threw }, searched: seed, threw };
  }
  return { found: null, searched: SEEDS_MAX, threw };
}

function describeCatch(name: string, found: Catch): string {
  const first = found.result.violations[0] ?? `liveness: ${found.result.livenessFailure ?? '?'}`;
  const threw = found.threw.length === 0 ? '' : ` (${found.threw.length} earlier seed(s) tripped a core assertion instead)`;
  return `${name}: first failing seed ${found.seed} of ${SEEDS_MAX}${threw}: ${first}` +
    ` [${found.result.violations.length} violation(s), liveness ${found.result.livenessFailure === null ? 'ok' : 'failed'}]`;
}

function describeMiss(name: string, searched: number, threw: Catch['threw']): string {
  const sample = threw.slice(0, 3).map((entry) => `seed ${entry.seed}: ${entry.error}`).join('; ');
  return `${name}: no seed in 1..${searched} was caught by the checkers` +
    (threw.length === 0 ? '' : ` (${threw.length} seed(s) threw a core assertion instead, e.g. ${sample})`);
}

/** The correct replica must pass the seed that caught the broken one. */
function assertCorrectReplicaPasses(seed: number): void {
  const result = simulate(seed);
  assert.deepEqual(result.violations, [], `the correct replica fails seed ${seed} too: the failure is not the bug's`);
  assert.equal(result.livenessFailure, null, `the correct replica fails liveness on seed ${seed} too`);
}

// ------------------------------------------------------------------ tests

test('broken core (a): an acceptor that accepts below its promise is caught', () => {
  const alone = firstCaughtSeed(AcceptsBelowPromise, hasViolation);
  let found = alone.found;
  let needed = 'accepting below the promise alone was enough';
  if (found === null) {
    console.log(describeMiss('(a) accept below promise', alone.searched, alone.threw));
    const both = firstCaughtSeed(AcceptsBelowPromiseAndGrantsAnyPrepare, hasViolation);
    if (both.found === null) console.log(describeMiss('(a) accept below promise + grant any prepare', both.searched, both.threw));
    found = both.found;
    needed = 'accepting below the promise alone was not enough; granting any prepare as well was needed';
  }
  assert.ok(found !== null, 'no seed caught an acceptor that accepts below its promise');
  console.log(describeCatch('(a) accept below promise', found), `— ${needed}`);
  assertCorrectReplicaPasses(found.seed);
});

test('broken core (b): a leader whose recovery fills every unchosen slot with a no-op is caught', () => {
  const { found, searched, threw } = firstCaughtSeed(RecoversWithNoops, hasViolation);
  assert.ok(found !== null, describeMiss('(b) no-op recovery', searched, threw));
  console.log(describeCatch('(b) no-op recovery', found));
  assertCorrectReplicaPasses(found.seed);
});

test('broken core (c): a leader that skips recovery is caught (violation or liveness failure)', () => {
  const { found, searched, threw } = firstCaughtSeed(SkipsRecovery, hasViolationOrLivenessFailure);
  assert.ok(found !== null, describeMiss('(c) no recovery', searched, threw));
  console.log(describeCatch('(c) no recovery', found));
  assertCorrectReplicaPasses(found.seed);
});

test('broken core (d): a follower that applies unconfirmed entries is caught', () => {
  const { found, searched, threw } = firstCaughtSeed(AppliesUnconfirmed, hasViolation);
  assert.ok(found !== null, describeMiss('(d) apply unconfirmed', searched, threw));
  console.log(describeCatch('(d) apply unconfirmed', found));
  assertCorrectReplicaPasses(found.seed);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertNever } from '../../src/core/assert.js';
import { checkLinearizability } from '../../src/check/linearizability.js';
import {
  formatHistory,
  HistoryFormatError,
  parseHistory,
  type HistoryOp,
  type JsonValue,
} from '../../src/check/history.js';

// Builders: `at(call, return)` keeps the histories below readable as timelines.

type Interval = readonly [call: number, returned: number | null];

function put(
  key: string,
  value: JsonValue,
  [call, returned]: Interval,
  ok: boolean | null = true,
  client = 1,
): HistoryOp {
  return { client, op: 'put', key, value, ok, call, return: returned };
}

function get(key: string, output: JsonValue, [call, returned]: Interval, client = 2): HistoryOp {
  return { client, op: 'get', key, ok: true, output, call, return: returned };
}

function cas(
  key: string,
  expected: JsonValue,
  value: JsonValue,
  [call, returned]: Interval,
  ok: boolean | null,
  error?: string,
): HistoryOp {
  const op: HistoryOp = { client: 3, op: 'cas', key, expected, value, ok, call, return: returned };
  return error === undefined ? op : { ...op, error };
}

function remove(key: string, [call, returned]: Interval, ok: boolean | null = true): HistoryOp {
  return { client: 4, op: 'delete', key, ok, call, return: returned };
}

function append(key: string, suffix: string, [call, returned]: Interval, ok: boolean | null = true): HistoryOp {
  return { client: 5, op: 'append', key, value: suffix, ok, call, return: returned };
}

function isLinearizable(history: readonly HistoryOp[]): boolean | 'unknown' {
  return checkLinearizability(history).linearizable;
}

// ---------------------------------------------------------------------------------------------
// Linearizable histories.

test('a sequential history is linearizable', () => {
  const history = [
    get('x', null, [0, 10]),
    put('x', 'a', [20, 30]),
    get('x', 'a', [40, 50]),
    put('x', 'b', [60, 70]),
    get('x', 'b', [80, 90]),
    remove('x', [100, 110]),
    get('x', null, [120, 130]),
  ];
  assert.deepEqual(checkLinearizability(history), { linearizable: true, ops: 7 });
});

test('the empty history is linearizable', () => {
  assert.deepEqual(checkLinearizability([]), { linearizable: true, ops: 0 });
});

test('concurrent writes and reads may be ordered any way consistent with real time', () => {
  const history = [
    put('x', 'a', [0, 100], true, 1),
    put('x', 'b', [10, 90], true, 2),
    get('x', 'b', [20, 30], 3),
    get('x', 'a', [40, 50], 4), // a after b: put a took effect last
    get('x', 'a', [110, 120], 5),
  ];
  assert.equal(isLinearizable(history), true);
  // The other order is fine too.
  const otherOrder = [
    put('x', 'a', [0, 100], true, 1),
    put('x', 'b', [10, 90], true, 2),
    get('x', 'a', [20, 30], 3),
    get('x', 'b', [40, 50], 4),
    get('x', 'b', [110, 120], 5),
  ];
  assert.equal(isLinearizable(otherOrder), true);
});

test('operations that only touch (return == call) count as concurrent', () => {
  const history = [put('x', 'a', [0, 10]), put('x', 'b', [10, 20]), get('x', 'a', [20, 30])];
  // put b may take effect at 10, before put a at 10, and the read at 20 sees a.
  assert.equal(isLinearizable(history), true);
});

test('an unknown-outcome write may have taken effect', () => {
  const history = [put('x', 'a', [0, 10]), put('x', 'b', [20, null], null), get('x', 'b', [50, 60])];
  assert.equal(isLinearizable(history), true);
});

test('an unknown-outcome write may never have taken effect', () => {
  const history = [
    put('x', 'a', [0, 10]),
    put('x', 'b', [20, null], null),
    get('x', 'a', [50, 60]),
    get('x', 'a', [70, 80]),
  ];
  assert.equal(isLinearizable(history), true);
});

test('an unknown-outcome write may take effect long after its call', () => {
  const history = [
    put('x', 'b', [0, null], null),
    put('x', 'a', [10, 20]),
    get('x', 'a', [30, 40]),
    get('x', 'b', [50, 60]),
  ];
  assert.equal(isLinearizable(history), true);
});

test('ok:null with a return time is still an unknown outcome', () => {
  const history = [put('x', 'a', [0, 10]), put('x', 'b', [20, 30], null), get('x', 'a', [40, 50])];
  assert.equal(isLinearizable(history), true);
});

test('certain failures and unknown reads are ignored', () => {
  const history: HistoryOp[] = [
    put('x', 'a', [0, 10]),
    put('x', 'b', [20, 30], false),
    remove('x', [20, 30], false),
    append('x', 'z', [20, 30], false),
    { client: 9, op: 'get', key: 'x', ok: null, call: 20, return: null },
    { client: 9, op: 'get', key: 'x', ok: false, error: 'no leader', call: 20, return: 25 },
    get('x', 'a', [40, 50]),
  ];
  assert.equal(isLinearizable(history), true);
});

test('keys are independent registers', () => {
  const history = [
    put('x', 'a', [0, 10]),
    put('y', 'b', [0, 10]),
    get('x', 'a', [20, 30]),
    get('y', 'b', [20, 30]),
    get('z', null, [20, 30]),
  ];
  assert.equal(isLinearizable(history), true);
});

test('values compare as canonical JSON', () => {
  const history = [put('x', { a: 1, b: [1, 2] }, [0, 10]), get('x', { b: [1, 2], a: 1 }, [20, 30])];
  assert.equal(isLinearizable(history), true);
  assert.equal(isLinearizable([put('x', 1, [0, 10]), get('x', '1', [20, 30])]), false);
});

test('delete makes the key absent', () => {
  assert.equal(isLinearizable([put('x', 'a', [0, 10]), remove('x', [20, 30]), get('x', null, [40, 50])]), true);
  assert.equal(isLinearizable([put('x', 'a', [0, 10]), remove('x', [20, 30]), get('x', 'a', [40, 50])]), false);
});

test('append concatenates onto the string value (absent = empty)', () => {
  const concurrent = [append('x', 'a', [0, 50]), append('x', 'b', [10, 40])];
  assert.equal(isLinearizable([...concurrent, get('x', 'ba', [60, 70])]), true);
  assert.equal(isLinearizable([...concurrent, get('x', 'ab', [60, 70])]), true);
  assert.equal(isLinearizable([...concurrent, get('x', 'a', [60, 70])]), false);
  assert.equal(isLinearizable([put('x', 'p', [0, 10]), append('x', 'q', [20, 30]), get('x', 'pq', [40, 50])]), true);
  // Appending to a non-string value cannot take effect.
  assert.equal(isLinearizable([put('x', 5, [0, 10]), append('x', 'q', [20, 30])]), false);
});

// ---------------------------------------------------------------------------------------------
// Non-linearizable histories.

test('a stale read after a completed write is rejected', () => {
  const history = [put('x', 'a', [0, 10]), put('x', 'b', [20, 30]), get('x', 'a', [40, 50])];
  const result = checkLinearizability(history);
  assert.equal(result.linearizable, false);
  assert.equal(result.failedKey, 'x');
  assert.equal(result.ops, 3);
  assert.match(result.explanation ?? '', /key "x"/);
  assert.match(result.explanation ?? '', /"output":"a"/);
});

test('a read of a value never written is rejected', () => {
  assert.equal(isLinearizable([put('x', 'a', [0, 10]), get('x', 'ghost', [5, 30])]), false);
  assert.equal(isLinearizable([get('x', 'ghost', [0, 10])]), false);
});

test('a read going back in time is rejected', () => {
  const history = [
    put('x', 'a', [0, 10]),
    put('x', 'b', [20, 100]),
    get('x', 'b', [30, 40]),
    get('x', 'a', [50, 60]), // after a read saw b, and b's writer is still running
  ];
  assert.equal(isLinearizable(history), false);
});

test('a timed-out write seen by a read cannot be undone later', () => {
  const history = [
    put('x', 'a', [0, 10]),
    put('x', 'b', [20, null], null),
    get('x', 'b', [30, 40]),
    get('x', 'a', [50, 60]),
  ];
  assert.equal(isLinearizable(history), false);
});

test('a timed-out write cannot take effect before it was called', () => {
  const history = [put('x', 'a', [0, 10]), get('x', 'b', [20, 30]), put('x', 'b', [40, null], null)];
  assert.equal(isLinearizable(history), false);
});

test('only the key that fails is reported', () => {
  const history = [
    put('a', '1', [0, 10]),
    get('a', '1', [20, 30]),
    put('b', '1', [0, 10]),
    put('b', '2', [20, 30]),
    get('b', '1', [40, 50]),
  ];
  const result = checkLinearizability(history);
  assert.equal(result.linearizable, false);
  assert.equal(result.failedKey, 'b');
});

// ---------------------------------------------------------------------------------------------
// Compare-and-set.

test('a successful cas requires the expected value and sets the new one', () => {
  const casAB = cas('x', 'a', 'b', [20, 30], true);
  assert.equal(isLinearizable([put('x', 'a', [0, 10]), casAB, get('x', 'b', [40, 50])]), true);
  assert.equal(isLinearizable([cas('x', null, 'b', [0, 10], true), get('x', 'b', [20, 30])]), true);
  assert.equal(isLinearizable([put('x', 'c', [0, 10]), cas('x', 'a', 'b', [20, 30], true)]), false);
  assert.equal(isLinearizable([put('x', 'a', [0, 10]), casAB, get('x', 'a', [40, 50])]), false);
});

test('a failed compare is a read of something other than expected', () => {
  const compareFailed = cas('x', 'a', 'b', [20, 30], false);
  assert.equal(isLinearizable([put('x', 'c', [0, 10]), compareFailed, get('x', 'c', [40, 50])]), true);
  // The value was certainly "a" throughout, so the compare could not fail.
  assert.equal(isLinearizable([put('x', 'a', [0, 10]), compareFailed]), false);
  // ... unless a concurrent write changed it for a moment.
  const concurrent = [put('x', 'a', [0, 10]), put('x', 'c', [15, 25]), put('x', 'a', [26, 35]), compareFailed];
  assert.equal(isLinearizable(concurrent), true);
});

test('a cas that failed with an error had no effect', () => {
  const history = [put('x', 'a', [0, 10]), cas('x', 'a', 'b', [20, 30], false, 'not leader'), get('x', 'a', [40, 50])];
  assert.equal(isLinearizable(history), true);
});

test('an unknown-outcome cas may or may not have taken effect, but only if the compare held', () => {
  const applied = [put('x', 'a', [0, 10]), cas('x', 'a', 'b', [20, null], null), get('x', 'b', [40, 50])];
  assert.equal(isLinearizable(applied), true);
  const notApplied = [put('x', 'a', [0, 10]), cas('x', 'a', 'b', [20, null], null), get('x', 'a', [40, 50])];
  assert.equal(isLinearizable(notApplied), true);
  const impossible = [put('x', 'c', [0, 10]), cas('x', 'a', 'b', [20, null], null), get('x', 'b', [40, 50])];
  assert.equal(isLinearizable(impossible), false);
});

// ---------------------------------------------------------------------------------------------
// Budget and performance.

/** `writers` puts of distinct values, all concurrent, then a read of none of them. */
function manyConcurrentWrites(key: string, writers: number): HistoryOp[] {
  const history: HistoryOp[] = [];
  for (let index = 0; index < writers; index += 1) history.push(put(key, `v${index}`, [index, 1000], true, index));
  history.push(get(key, 'never', [2000, 2010]));
  return history;
}

test('an exhausted search budget yields unknown, never a wrong verdict', () => {
  // Every subset of the concurrent writes, with each last writer, is a distinct configuration.
  const history = manyConcurrentWrites('x', 12);
  const result = checkLinearizability(history, { maxStatesPerKey: 1000 });
  assert.equal(result.linearizable, 'unknown');
  assert.equal(result.failedKey, 'x');
  assert.match(result.explanation ?? '', /maxStatesPerKey/);
  // With enough budget the same history is decided.
  assert.equal(checkLinearizability(history).linearizable, false);
});

test('a violation on one key beats an exhausted budget on another', () => {
  const history = [...manyConcurrentWrites('a', 12), put('b', '1', [0, 10]), get('b', '2', [20, 30])];
  const result = checkLinearizability(history, { maxStatesPerKey: 1000 });
  assert.equal(result.linearizable, false);
  assert.equal(result.failedKey, 'b');
});

test('many timed-out writes nobody read stay cheap to check', () => {
  // Any subset of the 200 unknown writes may have happened; the search must not try them all.
  const history: HistoryOp[] = [put('x', 'a', [0, 10])];
  for (let index = 0; index < 200; index += 1) history.push(put('x', `lost${index}`, [20 + index, null], null, index));
  for (let index = 0; index < 200; index += 1) history.push(get('x', 'a', [1000 + 20 * index, 1010 + 20 * index]));
  const linearizable = checkLinearizability(history, { maxStatesPerKey: 100_000 });
  assert.equal(linearizable.linearizable, true);
  history.push(put('x', 'b', [5000, 5010]), get('x', 'a', [5020, 5030]));
  const stale = checkLinearizability(history, { maxStatesPerKey: 100_000 });
  assert.equal(stale.linearizable, false);
});

test('a few thousand concurrent operations over tens of keys check quickly', () => {
  const history = concurrentRegisterHistory({ seed: 7, operations: 4000, keys: 30, clients: 10 });
  const started = performance.now();
  const result = checkLinearizability(history);
  const elapsed = performance.now() - started;
  assert.equal(result.linearizable, true, result.explanation);
  assert.ok(elapsed < 2000, `checking took ${elapsed.toFixed(0)} ms`);
});

/**
 * A linearizable history by construction: clients take turns issuing operations against an
 * in-memory map, each operation's effect happening at its linearization point, with call and
 * return spread around that point so that operations of different clients overlap.
 */
function concurrentRegisterHistory(shape: {
  seed: number;
  operations: number;
  keys: number;
  clients: number;
}): HistoryOp[] {
  let seed = shape.seed;
  const random = (limit: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % limit;
  };
  const store = new Map<string, string>();
  const clientFree = new Array<number>(shape.clients).fill(0);
  const history: HistoryOp[] = [];
  for (let index = 0; index < shape.operations; index += 1) {
    const point = index * 10 + 5;
    const client = index % shape.clients;
    const call = Math.max(clientFree[client] ?? 0, point - random(60));
    const returned = point + random(60);
    clientFree[client] = returned + 1;
    const key = `k${random(shape.keys)}`;
    if (random(2) === 0) {
      const value = `v${index}`;
      store.set(key, value);
      history.push(put(key, value, [call, returned], true, client));
    } else {
      history.push(get(key, store.get(key) ?? null, [call, returned], client));
    }
  }
  return history;
}

// ---------------------------------------------------------------------------------------------
// Properties.

type StepKind = 'get' | 'put' | 'delete' | 'cas' | 'append';
type Outcome = 'ok' | 'failed' | 'unknown-applied' | 'unknown-skipped';

interface Step {
  readonly kind: StepKind;
  readonly key: number;
  readonly value: number;
  readonly outcome: Outcome;
  readonly casMatches: boolean;
  readonly widenBefore: number;
  readonly widenAfter: number;
  readonly client: number;
}

const SLOT = 100;

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom<StepKind>('get', 'get', 'put', 'put', 'delete', 'cas', 'append'),
  key: fc.integer({ min: 0, max: 2 }),
  value: fc.integer({ min: 0, max: 5 }),
  outcome: fc.constantFrom<Outcome>('ok', 'ok', 'ok', 'ok', 'failed', 'unknown-applied', 'unknown-skipped'),
  casMatches: fc.boolean(),
  // Up to 2.5 slots either way: each operation overlaps several neighbours.
  widenBefore: fc.integer({ min: 0, max: (5 * SLOT) / 2 }),
  widenAfter: fc.integer({ min: 0, max: (5 * SLOT) / 2 }),
  client: fc.integer({ min: 0, max: 4 }),
});

/**
 * Runs the steps one after another against a map (step i takes effect at instant SLOT * i), and
 * records each with an interval around that instant. Any intervals containing the points give a
 * linearizable history: the points themselves are a linearization respecting real time.
 */
function sequentialExecution(steps: readonly Step[]): HistoryOp[] {
  const store = new Map<string, string>();
  return steps.map((step, index) => {
    const point = SLOT * (index + 1);
    const key = `k${step.key}`;
    const current = store.get(key) ?? null;
    const effect = recordStep(step, key, current);
    const known = step.outcome === 'ok' || step.outcome === 'failed';
    const applies = step.outcome === 'ok' || step.outcome === 'unknown-applied';
    if (applies && effect.next !== undefined) {
      if (effect.next === null) store.delete(key);
      else store.set(key, effect.next);
    }
    const ok = known ? effect.ok : null;
    return {
      ...effect.op,
      client: step.client,
      key,
      ok,
      call: point - step.widenBefore,
      return: known ? point + step.widenAfter : null,
    };
  });
}

/** The operation a step issues and, if it takes effect, the key's next value (null = absent, undefined = unchanged). */
function recordStep(
  step: Step,
  key: string,
  current: string | null,
): { op: Pick<HistoryOp, 'op' | 'value' | 'expected' | 'output' | 'error'>; ok: boolean; next?: string | null } {
  const failed = step.outcome === 'failed';
  switch (step.kind) {
    case 'get':
      return failed ? { op: { op: 'get' }, ok: false } : { op: { op: 'get', output: current }, ok: true };
    case 'put': {
      const value = `${key}=${step.value}`;
      return { op: { op: 'put', value }, ok: !failed, next: failed ? undefined : value };
    }
    case 'delete':
      return { op: { op: 'delete' }, ok: !failed, next: failed ? undefined : null };
    case 'append': {
      const suffix = String.fromCharCode(97 + step.value);
      return { op: { op: 'append', value: suffix }, ok: !failed, next: failed ? undefined : (current ?? '') + suffix };
    }
    case 'cas': {
      const expected = step.casMatches ? current : `${key}=${step.value}`;
      const value = `${key}=cas${step.value}`;
      if (failed) return { op: { op: 'cas', expected, value, error: 'rejected' }, ok: false };
      // A compare that holds sets the value; one that does not is an ok:false read.
      const matches = expected === current;
      return { op: { op: 'cas', expected, value }, ok: matches, next: matches ? value : undefined };
    }
    default:
      return assertNever(step.kind);
  }
}

test('property: widened sequential executions are linearizable', () => {
  fc.assert(
    fc.property(fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }), (steps) => {
      const history = sequentialExecution(steps);
      const result = checkLinearizability(history);
      assert.equal(result.linearizable, true, `${result.explanation}\n${formatHistory(history)}`);
    }),
    { numRuns: 300 },
  );
});

test('property: a read of a value never written makes a history non-linearizable', () => {
  fc.assert(
    fc.property(fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }), fc.nat(), (steps, pick) => {
      const history = sequentialExecution(steps);
      const isCompletedRead = (op: HistoryOp): boolean => op.op === 'get' && op.ok === true && op.return !== null;
      const reads = history.flatMap((op, index) => (isCompletedRead(op) ? [index] : []));
      fc.pre(reads.length > 0);
      const victim = reads[pick % reads.length];
      assert.ok(victim !== undefined);
      const mutated = history.map((op, index) => (index === victim ? { ...op, output: '#never-written' } : op));
      const result = checkLinearizability(mutated);
      assert.equal(result.linearizable, false, formatHistory(mutated));
      assert.equal(result.failedKey, history[victim]?.key);
    }),
    { numRuns: 300 },
  );
});

/**
 * A deliberately naive reference: tries every subset of the unknown-outcome operations and every
 * order of the chosen operations that respects real time, replaying each against a register.
 */
function bruteForceLinearizable(history: readonly HistoryOp[]): boolean {
  const noEffect = (op: HistoryOp): boolean =>
    op.ok === false && (op.op !== 'cas' || op.error !== undefined || op.return === null);
  const relevant = history.filter((op) => !noEffect(op));
  const isUnknown = (op: HistoryOp): boolean => op.ok === null || op.return === null;
  const required = relevant.filter((op) => !isUnknown(op));
  const optional = relevant.filter((op) => isUnknown(op) && op.op !== 'get' && op.ok !== false);
  for (let mask = 0; mask < 1 << optional.length; mask += 1) {
    const chosen = [...required, ...optional.filter((_, index) => (mask & (1 << index)) !== 0)];
    if (someOrderWorks(chosen, [], null)) return true;
  }
  return false;
}

function someOrderWorks(remaining: readonly HistoryOp[], placed: readonly HistoryOp[], value: string | null): boolean {
  if (remaining.length === 0) return true;
  return remaining.some((candidate, index) => {
    const finishedEarlier = (other: HistoryOp): boolean =>
      !(other.ok === null || other.return === null) && other.return < candidate.call;
    // Every operation placed after the candidate must not have returned before it was called.
    const rest = remaining.filter((_, other) => other !== index);
    if (rest.some(finishedEarlier)) return false;
    const next = referenceStep(candidate, value);
    return next !== undefined && someOrderWorks(rest, [...placed, candidate], next);
  });
}

/** The register value after `op` (JSON text, null = absent), or undefined if it cannot happen now. */
function referenceStep(op: HistoryOp, value: string | null): string | null | undefined {
  const text = (json: JsonValue | undefined): string | null =>
    json === null || json === undefined ? null : JSON.stringify(json);
  switch (op.op) {
    case 'get':
      return text(op.output) === value ? value : undefined;
    case 'put':
      return text(op.value);
    case 'delete':
      return null;
    case 'append':
      return JSON.stringify((value === null ? '' : (JSON.parse(value) as string)) + String(op.value));
    case 'cas':
      if (op.ok === false) return text(op.expected) !== value ? value : undefined;
      return text(op.expected) === value ? text(op.value) : undefined;
    default:
      return assertNever(op.op);
  }
}

const randomOpArbitrary: fc.Arbitrary<HistoryOp> = fc
  .record({
    kind: fc.constantFrom<StepKind>('get', 'get', 'put', 'put', 'delete', 'cas', 'append'),
    value: fc.constantFrom<JsonValue>(null, 'a', 'b'),
    expected: fc.constantFrom<JsonValue>(null, 'a', 'b'),
    ok: fc.constantFrom<boolean | null>(true, true, true, false, null),
    error: fc.boolean(),
    call: fc.integer({ min: 0, max: 10 }),
    length: fc.integer({ min: 0, max: 6 }),
    returned: fc.boolean(),
  })
  .map((raw): HistoryOp => {
    const returned = raw.returned ? raw.call + raw.length : null;
    const base = { client: 0, key: 'x', ok: raw.ok, call: raw.call, return: returned };
    const error = raw.ok === false && raw.error ? { error: 'failed' } : {};
    switch (raw.kind) {
      case 'get':
        return { ...base, op: 'get', output: raw.value, ...error };
      case 'put':
        return { ...base, op: 'put', value: raw.value ?? 'a', ...error };
      case 'delete':
        return { ...base, op: 'delete', ...error };
      case 'append':
        return { ...base, op: 'append', value: raw.value ?? 'a', ...error };
      case 'cas':
        return { ...base, op: 'cas', expected: raw.expected, value: raw.value ?? 'b', ...error };
      default:
        return assertNever(raw.kind);
    }
  });

test('property: the checker agrees with brute force on small random histories', () => {
  let linearizable = 0;
  fc.assert(
    fc.property(fc.array(randomOpArbitrary, { maxLength: 6 }), (history) => {
      const expected = bruteForceLinearizable(history);
      if (expected) linearizable += 1;
      assert.equal(checkLinearizability(history).linearizable, expected, formatHistory(history));
    }),
    { numRuns: 2000 },
  );
  // Both verdicts must be well represented for the comparison to mean anything.
  assert.ok(linearizable > 200 && linearizable < 1800, `${linearizable} of 2000 linearizable`);
});

test('property: parseHistory(formatHistory(h)) round-trips', () => {
  fc.assert(
    fc.property(fc.array(stepArbitrary, { maxLength: 30 }), (steps) => {
      const history = sequentialExecution(steps);
      assert.deepEqual(parseHistory(formatHistory(history)), history);
    }),
  );
});

// ---------------------------------------------------------------------------------------------
// Parsing.

test('parseHistory reads the documented format', () => {
  const text = [
    '{"client":1,"op":"put","key":"x","value":"a","ok":true,"call":100,"return":250}',
    '',
    '{"client":2,"op":"get","key":"x","ok":true,"output":"a","call":300,"return":400}\r',
    '{"client":3,"op":"cas","key":"x","value":"b","expected":"a","ok":null,"error":"timeout","call":500}',
  ].join('\n');
  const history = parseHistory(text);
  assert.deepEqual(history, [
    { client: 1, op: 'put', key: 'x', value: 'a', ok: true, call: 100, return: 250 },
    { client: 2, op: 'get', key: 'x', ok: true, output: 'a', call: 300, return: 400 },
    { client: 3, op: 'cas', key: 'x', value: 'b', expected: 'a', ok: null, error: 'timeout', call: 500, return: null },
  ]);
  assert.equal(checkLinearizability(history).linearizable, true);
});

test('parseHistory rejects a malformed line with HistoryFormatError naming the line', () => {
  const good = '{"client":1,"op":"put","key":"x","value":"a","ok":true,"call":0,"return":1}';
  const cases: [string, RegExp][] = [
    ['{"client":1,"op":"put",', /not valid JSON/],
    ['[1,2]', /JSON object/],
    ['{"client":1,"op":"frobnicate","key":"x","ok":true,"call":0,"return":1}', /"op" must be one of/],
    ['{"client":1,"op":"put","key":"x","ok":true,"call":0,"return":1}', /put needs "value"/],
    ['{"client":1,"op":"get","key":"x","ok":true,"call":0,"return":1}', /needs "output"/],
    ['{"client":1,"op":"cas","key":"x","value":"b","ok":true,"call":0,"return":1}', /needs "expected"/],
    ['{"client":1,"op":"append","key":"x","value":5,"ok":true,"call":0,"return":1}', /append "value" must be a string/],
    ['{"client":1,"op":"put","key":"x","value":"a","ok":"yes","call":0,"return":1}', /"ok" must be/],
    ['{"client":1,"op":"put","key":"x","value":"a","ok":true,"call":5,"return":1}', /before "call"/],
    ['{"client":1,"op":"put","key":"x","value":"a","ok":true,"call":1.5,"return":2}', /"call" must be an integer/],
    ['{"client":1,"op":"put","key":"x","value":"a","ok":true,"call":0,"retrun":1}', /unknown field "retrun"/],
    [
      '{"client":1,"op":"get","key":"x","ok":true,"output":"a","value":"b","call":0,"return":1}',
      /"value" does not apply to get/,
    ],
  ];
  for (const [badLine, reason] of cases) {
    const text = `${good}\n\n${good}\n${badLine}\n${good}\n`;
    assert.throws(
      () => parseHistory(text),
      (error: unknown) => {
        assert.ok(error instanceof HistoryFormatError, `expected HistoryFormatError for ${badLine}`);
        assert.equal(error.line, 4);
        assert.equal(error.index, 2);
        assert.match(error.message, /^history line 4: /);
        assert.match(error.message, reason);
        return true;
      },
    );
  }
});

test('checkLinearizability validates in-memory operations too', () => {
  const backwards = put('x', 'a', [10, 5]);
  assert.throws(() => checkLinearizability([put('x', 'a', [0, 1]), backwards]), (error: unknown) => {
    assert.ok(error instanceof HistoryFormatError);
    assert.equal(error.line, null);
    assert.equal(error.index, 1);
    return true;
  });
});

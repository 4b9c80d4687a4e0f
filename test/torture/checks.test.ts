/**
 * The checking stage of `synod torture` can fail: doctored histories with a lost acknowledged
 * write, a resurrected deleted value or a stale read are reported, while histories where an
 * unknown write explains what was read are not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HistoryOp } from '../../src/check/history.js';
import { checkHistory, findLostWrites } from '../../src/torture/checks.js';

let client = 0;
function put(key: string, value: string, call: number, returned: number | null, ok: boolean | null = true): HistoryOp {
  return { client: (client += 1), op: 'put', key, value, ok, call, return: ok === null ? null : returned };
}
function remove(key: string, call: number, returned: number | null, ok: boolean | null = true): HistoryOp {
  return { client: (client += 1), op: 'delete', key, ok, call, return: ok === null ? null : returned };
}
function get(key: string, output: string | null, call: number, returned: number): HistoryOp {
  return { client: (client += 1), op: 'get', key, ok: true, output, call, return: returned };
}

/** A clean, busy history over several keys: sequential writes, each read back. */
function cleanHistory(): HistoryOp[] {
  const history: HistoryOp[] = [];
  let time = 0;
  for (let round = 0; round < 50; round += 1) {
    for (const key of ['a', 'b', 'c']) {
      history.push(put(key, `${key}${round}`, time, time + 5));
      history.push(get(key, `${key}${round}`, time + 6, time + 9));
      time += 10;
    }
  }
  for (const key of ['a', 'b', 'c']) history.push(get(key, `${key}49`, time, time + 1));
  return history;
}

test('a clean history passes', () => {
  const verdict = checkHistory(cleanHistory());
  assert.equal(verdict.linearizable, true);
  assert.equal(verdict.lostAcknowledgedWrites, 0);
  assert.equal(verdict.unknown, 0);
});

test('an acknowledged write missing from the final read is lost, and not linearizable', () => {
  const history = cleanHistory();
  // Doctor the final read of b: it now sees the value before the last acknowledged write.
  const finalB = history.map((op) => op.key).lastIndexOf('b');
  history[finalB] = { ...(history[finalB] as HistoryOp), output: 'b48' };
  const verdict = checkHistory(history);
  assert.equal(verdict.linearizable, false);
  assert.equal(verdict.lostAcknowledgedWrites, 1);
  assert.equal(verdict.lost[0]?.write.value, 'b49');
  assert.match(verdict.explanation ?? '', /"b"/);
});

test('a stale read in the middle is not linearizable, but loses no write', () => {
  const history = [put('x', '1', 0, 10), put('x', '2', 20, 30), get('x', '1', 40, 50), get('x', '2', 60, 70)];
  const verdict = checkHistory(history);
  assert.equal(verdict.linearizable, false);
  assert.equal(verdict.lostAcknowledgedWrites, 0);
});

test('a deleted value that comes back, and a key that empties with no delete, are lost writes', () => {
  assert.equal(findLostWrites([put('k', 'v', 0, 10), remove('k', 20, 30), get('k', 'v', 40, 50)]).length, 1);
  assert.equal(findLostWrites([put('k', 'v', 0, 10), get('k', null, 40, 50)]).length, 1);
  assert.equal(findLostWrites([put('k', 'v', 0, 10), get('k', 'never written', 40, 50)]).length, 1);
});

test('a write with an unknown outcome may land late: what it explains is not a loss', () => {
  // c timed out (ok:null) but may have taken effect after b: reading c is fine.
  const late = [put('k', 'a', 0, 10), put('k', 'c', 5, null, null), put('k', 'b', 20, 30), get('k', 'c', 40, 50)];
  assert.equal(checkHistory(late).linearizable, true);
  assert.equal(findLostWrites(late).length, 0);
  // The same for an unknown delete and absence.
  const deleted = [put('k', 'a', 0, 10), remove('k', 15, null, null), get('k', null, 40, 50)];
  assert.equal(checkHistory(deleted).linearizable, true);
  assert.equal(findLostWrites(deleted).length, 0);
  // A write concurrent with the acknowledged one may be ordered after it.
  const concurrent = [put('k', 'a', 0, 30), put('k', 'b', 10, 20), get('k', 'a', 40, 50)];
  assert.equal(findLostWrites(concurrent).length, 0);
  assert.equal(checkHistory(concurrent).linearizable, true);
});

test('a write that certainly failed explains nothing', () => {
  // Nothing that took effect wrote a2: both acknowledged writes are gone.
  const history = [put('k', 'a', 0, 10), put('k', 'b', 20, 30), put('k', 'a2', 35, 36, false), get('k', 'a2', 40, 50)];
  assert.equal(findLostWrites(history).length, 2);
  assert.equal(checkHistory(history).linearizable, false);
});

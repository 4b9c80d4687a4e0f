import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../src/core/prng.js';
import { makeBallot, ballotRound, ballotNode, nextBallot, formatBallot } from '../../src/core/ballot.js';

test('prng: same seed, same sequence; different seeds differ', () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const c = new Prng(43);
  const seqA = Array.from({ length: 100 }, () => a.nextUint32());
  const seqB = Array.from({ length: 100 }, () => b.nextUint32());
  const seqC = Array.from({ length: 100 }, () => c.nextUint32());
  assert.deepEqual(seqA, seqB);
  assert.notDeepEqual(seqA, seqC);
});

test('prng: int stays in range and covers it', () => {
  const prng = new Prng(7);
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i += 1) {
    const value = prng.int(3, 9);
    assert.ok(value >= 3 && value < 9);
    seen.add(value);
  }
  assert.equal(seen.size, 6);
});

test('ballots order by round, then node id', () => {
  assert.ok(makeBallot(1, 3) < makeBallot(2, 1));
  assert.ok(makeBallot(2, 1) < makeBallot(2, 2));
  assert.equal(ballotRound(makeBallot(5, 7)), 5);
  assert.equal(ballotNode(makeBallot(5, 7)), 7);
  assert.equal(nextBallot(makeBallot(4, 2), 3), makeBallot(4, 3));
  assert.equal(nextBallot(makeBallot(4, 3), 2), makeBallot(5, 2));
  assert.equal(formatBallot(makeBallot(3, 2)), '3.2');
});

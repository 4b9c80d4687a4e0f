import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvariantError } from '../../src/core/assert.js';
import { Lane, LanePool } from '../../src/client/lanes.js';

const timeoutError = (): Error => new Error('lane wait timed out');

test('lanes: created on demand, the last freed reused first, each with its own seq', async () => {
  const pool = new LanePool('c', 3);
  const first = await pool.acquire(1000, timeoutError);
  assert.equal(first.id, 'c.0');
  assert.deepStrictEqual([first.nextSeq(), first.nextSeq()], [1, 2]);
  pool.release(first);
  const again = await pool.acquire(1000, timeoutError);
  assert.equal(again, first, 'one request at a time uses one lane');
  const second = await pool.acquire(1000, timeoutError);
  assert.equal(second.id, 'c.1');
  assert.equal(second.nextSeq(), 1);
  assert.equal(again.nextSeq(), 3);
});

test('lanes: when all are busy, waiters get lanes first-in first-out', async () => {
  const pool = new LanePool('c', 1);
  const lane = await pool.acquire(1000, timeoutError);
  const order: string[] = [];
  const waiters = ['a', 'b', 'c'].map((name) => pool.acquire(1000, timeoutError).then((got) => {
    order.push(name);
    return got;
  }));
  assert.equal(pool.waiting, 3);
  pool.release(lane);
  pool.release(await waiters[0]!);
  pool.release(await waiters[1]!);
  assert.equal(await waiters[2], lane);
  assert.deepStrictEqual(order, ['a', 'b', 'c']);
});

test('lanes: a waiter that times out is skipped; rejectAll fails the rest', async () => {
  const pool = new LanePool('c', 1);
  const lane = await pool.acquire(1000, timeoutError);
  await assert.rejects(pool.acquire(1, timeoutError), /timed out/);
  const waiting = pool.acquire(1000, timeoutError);
  pool.release(lane);
  assert.equal(await waiting, lane);
  const rejected = assert.rejects(pool.acquire(1000, timeoutError), /closed/);
  pool.rejectAll(new Error('closed'));
  await rejected;
  assert.throws(() => pool.release(new Lane('stranger')), InvariantError);
});

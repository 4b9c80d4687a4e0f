/**
 * The node side of fault control: the slow-disk wrapper keeps the storage contract (it passes the
 * shared conformance suite, resolves appends in call order, never before its delay), and the IPC
 * hook shifts the wall clock, sets the delay, answers probes, and answers malformed requests with
 * typed errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeBallot } from '../../src/core/ballot.js';
import { ConfigError } from '../../src/server/config.js';
import type { NodeStatusReport } from '../../src/server/service.js';
import { MemoryStorage } from '../../src/storage/adapter.js';
import { MemoryLogStore } from '../../src/storage/memory.js';
import type { ControlReply, ReadyNotice } from '../../src/torture/control.js';
import { FaultControl } from '../../src/torture/fault-control.js';
import { SlowStorage } from '../../src/torture/slow-storage.js';
import { runStorageConformance } from '../storage/conformance.js';

runStorageConformance('slow (1 ms over memory)', async () => {
  const store = new MemoryLogStore();
  return {
    open: async () => {
      const storage = new SlowStorage(new MemoryStorage(store));
      storage.delayMs = 1;
      return storage;
    },
    cleanup: async () => {},
  };
});

test('a slowed append resolves no earlier than its delay, and appends resolve in call order', async () => {
  const storage = new SlowStorage(new MemoryStorage());
  storage.delayMs = 50;
  const started = performance.now();
  const order: number[] = [];
  const first = storage.append([{ type: 'promise', ballot: makeBallot(1, 1) }]).then(() => order.push(1));
  storage.delayMs = 0; // a later, faster append must still resolve after the slow one
  const second = storage.append([{ type: 'promise', ballot: makeBallot(2, 1) }]).then(() => order.push(2));
  await Promise.all([first, second]);
  assert.ok(performance.now() - started >= 45, 'the delay was applied');
  assert.deepEqual(order, [1, 2]);
  assert.equal(storage.delayedAppends, 1);
  assert.equal(storage.state().promised, makeBallot(2, 1));
  assert.throws(() => {
    storage.delayMs = -1;
  }, RangeError);
  await storage.close();
});

test('the fault-control hook shifts Date.now, slows the wrapped storage, answers probes and rejects malformed requests', () => {
  const sent: (ControlReply | ReadyNotice)[] = [];
  const control = new FaultControl((message) => sent.push(message));
  try {
    const wrap = control.nodeOptions().wrapStorage;
    assert.ok(wrap !== undefined);
    const storage = wrap(new MemoryStorage()) as SlowStorage;

    control.handle({ type: 'probe', id: 1 });
    assert.deepEqual(sent.pop(), { type: 'error', id: 1, message: 'the node is not serving yet' });

    const status = { appliedIndex: 7, role: 'leader', ballot: '3.1' } as NodeStatusReport;
    control.attach({ digest: () => 'abc', status: () => status });
    assert.equal(sent.shift()?.type, 'ready');
    control.handle({ type: 'probe', id: 2 });
    assert.deepEqual(sent.pop(), { type: 'probe', id: 2, report: { appliedIndex: 7, digest: 'abc', role: 'leader', ballot: '3.1' } });

    control.handle({ type: 'fsync-delay', id: 3, ms: 25 });
    assert.deepEqual(sent.pop(), { type: 'ack', id: 3 });
    assert.equal(storage.delayMs, 25);

    const dayMs = 24 * 3600 * 1000;
    control.handle({ type: 'clock-offset', id: 4, ms: -dayMs });
    assert.deepEqual(sent.pop(), { type: 'ack', id: 4 });
    const shift = control.wallClockMs() - Date.now();
    assert.ok(shift >= dayMs - 1_000 && shift <= dayMs + 1_000, `Date.now is a day behind (shift ${shift} ms)`);
    control.handle({ type: 'clock-offset', id: 5, ms: 0 });
    assert.deepEqual(sent.pop(), { type: 'ack', id: 5 });
    assert.ok(Math.abs(control.wallClockMs() - Date.now()) < 1_000);

    control.handle({ type: 'fsync-delay', id: 6, ms: -5 });
    assert.equal(sent.pop()?.type, 'error');
    control.handle({ type: 'explode', id: 7 });
    assert.deepEqual(sent.pop(), { type: 'error', id: 7, message: 'unknown control request type "explode"' });
    control.handle('not an object');
    control.handle({ type: 'probe' });
    assert.deepEqual(sent, [], "a request without an id gets no answer");
  } finally {
    control.restoreClock();
  }
});

test('the hook is off unless SYNOD_FAULT_CONTROL is 1, and refuses other values', () => {
  assert.equal(FaultControl.fromEnvironment({}), null);
  assert.throws(() => FaultControl.fromEnvironment({ SYNOD_FAULT_CONTROL: 'yes' }), ConfigError);
});

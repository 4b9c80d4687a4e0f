import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { InvariantError } from '../../src/core/assert.js';
import type { Command } from '../../src/core/command.js';
import {
  KEY_BYTES_MAX,
  LIST_LIMIT_MAX,
  VALUE_BYTES_MAX,
  KvDecodeError,
  KvSnapshotError,
  KvStateMachine,
  decodeOperation,
  encodeOperation,
  type KvOperation,
  type KvResult,
} from '../../src/kv/index.js';
import { keyArbitrary, operationArbitrary } from './arbitraries.js';

const packer = new Packr({ useRecords: false });

/**
 * Drives one state machine the way a replica does: each call is the next slot of the log, and
 * each client numbers its commands 1, 2, 3, ... unless the test passes a sequence number (a retry).
 */
class Harness {
  readonly machine: KvStateMachine;
  private slot = 0;
  private readonly seqs = new Map<string, number>();

  constructor(clientSessionsMax?: number) {
    this.machine = new KvStateMachine(clientSessionsMax === undefined ? {} : { clientSessionsMax });
  }

  /** Applies `operation` from `clientId` with its next sequence number (or `seq`). */
  run(clientId: string, operation: KvOperation, seq?: number): KvResult {
    return this.runPayload(clientId, encodeOperation(operation), seq);
  }

  runPayload(clientId: string, payload: Uint8Array, seq?: number): KvResult {
    const next = seq ?? (this.seqs.get(clientId) ?? 0) + 1;
    this.seqs.set(clientId, Math.max(next, this.seqs.get(clientId) ?? 0));
    this.slot += 1;
    return this.machine.apply({ clientId, seq: next, payload }, this.slot);
  }

  get(key: string): KvResult {
    return this.machine.read({ type: 'get', key });
  }
}

function errorOf(result: KvResult): string | null {
  return result.ok ? null : result.error;
}

test('put creates then overwrites; get reads value, version and revision', () => {
  const harness = new Harness();
  assert.deepEqual(harness.run('c', { type: 'get', key: 'k' }), { ok: true, type: 'get', revision: 0, value: null, version: 0 });
  assert.deepEqual(harness.run('c', { type: 'put', key: 'k', value: 'one' }), { ok: true, type: 'put', revision: 1, version: 1, previous: null });
  assert.deepEqual(harness.run('c', { type: 'put', key: 'other', value: 'x' }), { ok: true, type: 'put', revision: 2, version: 1, previous: null });
  assert.deepEqual(harness.run('c', { type: 'put', key: 'k', value: 'two' }), { ok: true, type: 'put', revision: 3, version: 2, previous: 'one' });
  assert.deepEqual(harness.run('c', { type: 'get', key: 'k' }), { ok: true, type: 'get', revision: 3, value: 'two', version: 2 });
  // A put of the same value is still a write: new revision and version.
  assert.deepEqual(harness.run('c', { type: 'put', key: 'k', value: 'two' }), { ok: true, type: 'put', revision: 4, version: 3, previous: 'two' });
  assert.equal(harness.machine.revision, 4);
  // The empty string is a value, distinct from absence.
  harness.run('c', { type: 'put', key: 'empty', value: '' });
  assert.deepEqual(harness.get('empty'), { ok: true, type: 'get', revision: 5, value: '', version: 1 });
});

test('delete removes a key and resets its version; deleting an absent key changes nothing', () => {
  const harness = new Harness();
  harness.run('c', { type: 'put', key: 'k', value: 'v' });
  harness.run('c', { type: 'put', key: 'k', value: 'w' });
  assert.deepEqual(harness.run('c', { type: 'delete', key: 'k' }), { ok: true, type: 'delete', revision: 3, previous: 'w' });
  assert.deepEqual(harness.get('k'), { ok: true, type: 'get', revision: 3, value: null, version: 0 });
  const digestBefore = harness.machine.digest();
  assert.deepEqual(harness.run('other', { type: 'delete', key: 'k' }), { ok: true, type: 'delete', revision: 3, previous: null });
  assert.equal(harness.machine.revision, 3);
  assert.deepEqual(harness.machine.stateMachineSize(), { keys: 0, bytes: 0, sessions: 2 });
  assert.notEqual(harness.machine.digest(), digestBefore, 'the session table changed (other client recorded)');
  assert.deepEqual(harness.run('c', { type: 'put', key: 'k', value: 'again' }), { ok: true, type: 'put', revision: 4, version: 1, previous: null });
});

test('cas on value: null expects absence; a mismatch reports the current value and changes nothing', () => {
  const harness = new Harness();
  assert.deepEqual(harness.run('c', { type: 'cas', key: 'k', value: 'a', expectedValue: null }), {
    ok: true, type: 'cas', revision: 1, version: 1, previous: null,
  });
  const taken = harness.run('c', { type: 'cas', key: 'k', value: 'b', expectedValue: null });
  assert.deepEqual(taken, {
    ok: false, error: 'cas_failed', message: 'current value differs from expectedValue', current: { value: 'a', version: 1 },
  });
  const wrong = harness.run('c', { type: 'cas', key: 'k', value: 'b', expectedValue: 'z' });
  assert.equal(errorOf(wrong), 'cas_failed');
  assert.deepEqual(harness.run('c', { type: 'cas', key: 'k', value: 'b', expectedValue: 'a' }), {
    ok: true, type: 'cas', revision: 2, version: 2, previous: 'a',
  });
  assert.equal(harness.machine.revision, 2);
  assert.deepEqual(harness.get('k'), { ok: true, type: 'get', revision: 2, value: 'b', version: 2 });
  const absent = harness.run('c', { type: 'cas', key: 'missing', value: 'x', expectedValue: 'anything' });
  assert.deepEqual(absent.ok ? null : absent.current, { value: null, version: 0 });
});

test('cas on version: 0 expects absence; both expectations must hold', () => {
  const harness = new Harness();
  assert.equal(errorOf(harness.run('c', { type: 'cas', key: 'k', value: 'a', expectedVersion: 1 })), 'cas_failed');
  assert.deepEqual(harness.run('c', { type: 'cas', key: 'k', value: 'a', expectedVersion: 0 }), {
    ok: true, type: 'cas', revision: 1, version: 1, previous: null,
  });
  const stale = harness.run('c', { type: 'cas', key: 'k', value: 'b', expectedVersion: 0 });
  assert.deepEqual(stale, {
    ok: false, error: 'cas_failed', message: 'current version 1 differs from expectedVersion 0', current: { value: 'a', version: 1 },
  });
  assert.equal(errorOf(harness.run('c', { type: 'cas', key: 'k', value: 'b', expectedValue: 'a', expectedVersion: 2 })), 'cas_failed');
  assert.equal(errorOf(harness.run('c', { type: 'cas', key: 'k', value: 'b', expectedValue: 'x', expectedVersion: 1 })), 'cas_failed');
  assert.deepEqual(harness.run('c', { type: 'cas', key: 'k', value: 'b', expectedValue: 'a', expectedVersion: 1 }), {
    ok: true, type: 'cas', revision: 2, version: 2, previous: 'a',
  });
});

test('list by prefix: byte order, limit, more', () => {
  const harness = new Harness();
  for (const key of ['b', 'a/2', 'a/10', 'a/1', 'a', 'ab', 'a/\uFFFD', 'a/\u{1F600}', 'c']) {
    harness.run('c', { type: 'put', key, value: `v-${key}` });
  }
  const keysOf = (result: KvResult): string[] => (result.ok && result.type === 'list' ? result.entries.map((entry) => entry.key) : []);
  const all = harness.run('c', { type: 'list', prefix: '', limit: 100 });
  // U+1F600 sorts after U+FFFD in UTF-8 bytes, although JavaScript's `<` says otherwise.
  assert.deepEqual(keysOf(all), ['a', 'a/1', 'a/10', 'a/2', 'a/\uFFFD', 'a/\u{1F600}', 'ab', 'b', 'c']);
  const limited = harness.run('c', { type: 'list', prefix: 'a/', limit: 2 });
  assert.deepEqual(limited, {
    ok: true, type: 'list', revision: 9, more: true,
    entries: [{ key: 'a/1', value: 'v-a/1', version: 1 }, { key: 'a/10', value: 'v-a/10', version: 1 }],
  });
  const exact = harness.machine.read({ type: 'list', prefix: 'a/', limit: 5 });
  assert.deepEqual(keysOf(exact), ['a/1', 'a/10', 'a/2', 'a/\uFFFD', 'a/\u{1F600}']);
  assert.equal(exact.ok && exact.type === 'list' && exact.more, false);
  assert.deepEqual(keysOf(harness.machine.read({ type: 'list', prefix: 'zz', limit: 5 })), []);
  harness.run('c', { type: 'delete', key: 'a/10' });
  assert.deepEqual(keysOf(harness.machine.read({ type: 'list', prefix: 'a/1', limit: 5 })), ['a/1']);
});

test('too_large and bad_request are results, recorded, and change no key', () => {
  const harness = new Harness();
  const cases: [KvOperation, string][] = [
    [{ type: 'put', key: 'k'.repeat(KEY_BYTES_MAX + 1), value: 'v' }, 'too_large'],
    [{ type: 'put', key: 'k', value: 'v'.repeat(VALUE_BYTES_MAX + 1) }, 'too_large'],
    [{ type: 'list', prefix: '', limit: LIST_LIMIT_MAX + 1 }, 'too_large'],
    [{ type: 'put', key: '', value: 'v' }, 'bad_request'],
    [{ type: 'cas', key: 'k', value: 'v' }, 'bad_request'],
    [{ type: 'list', prefix: '', limit: 0 }, 'bad_request'],
    [{ type: 'put', key: '\uD800', value: 'v' }, 'bad_request'],
  ];
  for (const [operation, error] of cases) assert.equal(errorOf(harness.run('c', operation)), error, JSON.stringify(operation).slice(0, 80));
  assert.equal(harness.machine.revision, 0);
  assert.equal(harness.machine.stateMachineSize().keys, 0);
  assert.equal(errorOf(harness.machine.read({ type: 'get', key: '' })), 'bad_request');
});

test('malformed payloads yield bad_request without throwing, and consume the sequence number', () => {
  const harness = new Harness();
  const payloads = [
    new Uint8Array(0),
    Uint8Array.from([0xc1]),
    Uint8Array.from([0xff, 0x00, 0x13, 0x37]),
    packer.pack({ type: 'put', key: 'k', value: 'v' }),
    packer.pack([1, 'k']),
    Uint8Array.from([...encodeOperation({ type: 'put', key: 'k', value: 'v' }), 0x00]),
    Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]),
    Uint8Array.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x41]),
    new Uint8Array(100_000).fill(0x91),
  ];
  for (const payload of payloads) {
    const result = harness.runPayload('c', payload);
    assert.deepEqual(result, { ok: false, error: 'bad_request', message: 'malformed operation payload' });
  }
  assert.equal(harness.machine.revision, 0);
  // The retry of the last one gets the same answer; an older sequence number is stale.
  assert.equal(errorOf(harness.runPayload('c', new Uint8Array(0), payloads.length)), 'bad_request');
  assert.deepEqual(harness.runPayload('c', new Uint8Array(0), 1), { ok: false, error: 'bad_request', message: 'stale sequence number' });
});

test('a retry returns the original result and does not execute again', () => {
  const harness = new Harness();
  const first = harness.run('alice', { type: 'put', key: 'k', value: 'from alice' }, 1);
  assert.deepEqual(first, { ok: true, type: 'put', revision: 1, version: 1, previous: null });
  harness.run('bob', { type: 'put', key: 'k', value: 'from bob' }, 1);
  // Alice's retry arrives after Bob's write: executing it again would overwrite Bob's value.
  assert.deepEqual(harness.run('alice', { type: 'put', key: 'k', value: 'from alice' }, 1), first);
  assert.deepEqual(harness.get('k'), { ok: true, type: 'get', revision: 2, value: 'from bob', version: 2 });
  // Failures are remembered too: a retried failed cas does not succeed later.
  const failed = harness.run('carol', { type: 'cas', key: 'k', value: 'x', expectedVersion: 3 }, 7);
  assert.equal(errorOf(failed), 'cas_failed');
  harness.run('bob', { type: 'put', key: 'k', value: 'third' }, 2);
  assert.deepEqual(harness.run('carol', { type: 'cas', key: 'k', value: 'x', expectedVersion: 3 }, 7), failed);
  assert.equal(harness.machine.revision, 3);
});

test('a stale sequence number is refused without executing', () => {
  const harness = new Harness();
  harness.run('c', { type: 'put', key: 'k', value: 'one' }, 1);
  harness.run('c', { type: 'put', key: 'k', value: 'two' }, 2);
  assert.deepEqual(harness.run('c', { type: 'put', key: 'k', value: 'one' }, 1), {
    ok: false, error: 'bad_request', message: 'stale sequence number',
  });
  assert.deepEqual(harness.get('k'), { ok: true, type: 'get', revision: 2, value: 'two', version: 2 });
  // Sequence numbers may skip ahead; the next one executes.
  assert.equal(harness.run('c', { type: 'delete', key: 'k' }, 10).ok, true);
});

test('a retried read is answered from the current state (reads are not stored)', () => {
  const harness = new Harness();
  harness.run('writer', { type: 'put', key: 'k', value: 'old' });
  assert.deepEqual(harness.run('reader', { type: 'get', key: 'k' }, 1), { ok: true, type: 'get', revision: 1, value: 'old', version: 1 });
  harness.run('writer', { type: 'put', key: 'k', value: 'new' });
  assert.deepEqual(harness.run('reader', { type: 'get', key: 'k' }, 1), { ok: true, type: 'get', revision: 2, value: 'new', version: 2 });
  // Reusing a read's sequence number for a write is a client bug: refused, not executed.
  assert.equal(errorOf(harness.run('reader', { type: 'put', key: 'k', value: 'sneaky' }, 1)), 'bad_request');
  assert.equal(harness.machine.revision, 2);
});

test('invalid client ids and sequence numbers are refused and not recorded', () => {
  const machine = new KvStateMachine();
  const payload = encodeOperation({ type: 'put', key: 'k', value: 'v' });
  const bad: Command[] = [
    { clientId: '', seq: 1, payload },
    { clientId: 'x'.repeat(300), seq: 1, payload },
    { clientId: 'c', seq: -1, payload },
    { clientId: 'c', seq: 1.5, payload },
  ];
  bad.forEach((command, index) => assert.equal(errorOf(machine.apply(command, index + 1)), 'bad_request'));
  assert.deepEqual(machine.stateMachineSize(), { keys: 0, bytes: 0, sessions: 0 });
});

test('slots: applied in order, batches share a slot, noops advance, going back is an invariant violation', () => {
  const machine = new KvStateMachine();
  assert.equal(machine.appliedSlot, 0);
  const put = (clientId: string, slot: number): KvResult =>
    machine.apply({ clientId, seq: 1, payload: encodeOperation({ type: 'put', key: clientId, value: 'v' }) }, slot);
  put('a', 1);
  put('b', 1);
  machine.applyNoop(2);
  put('c', 5);
  assert.equal(machine.appliedSlot, 5);
  assert.throws(() => put('d', 4), InvariantError);
  assert.throws(() => machine.applyNoop(3), InvariantError);
  assert.throws(() => put('e', 0), InvariantError);
});

test('sessions are bounded: the least recently applied is evicted, deterministically', () => {
  const harness = new Harness(3);
  harness.run('a', { type: 'put', key: 'a', value: '1' });
  harness.run('b', { type: 'put', key: 'b', value: '1' });
  harness.run('c', { type: 'put', key: 'c', value: '1' });
  harness.run('a', { type: 'put', key: 'a', value: '2' }); // a is now the most recent: order b, c, a
  harness.run('d', { type: 'put', key: 'd', value: '1' }); // evicts b
  assert.equal(harness.machine.stateMachineSize().sessions, 3);
  const revision = harness.machine.revision;
  // c, a and d are remembered: their retries do not execute.
  harness.run('c', { type: 'put', key: 'c', value: '1' }, 1);
  harness.run('a', { type: 'put', key: 'a', value: '2' }, 2);
  harness.run('d', { type: 'put', key: 'd', value: '1' }, 1);
  assert.equal(harness.machine.revision, revision);
  // b was forgotten: its retry executes again (the documented limit of a bounded table).
  assert.deepEqual(harness.run('b', { type: 'put', key: 'b', value: '1' }, 1), { ok: true, type: 'put', revision: revision + 1, version: 2, previous: '1' });
  assert.equal(harness.machine.stateMachineSize().sessions, 3);

  const replay = (): string => {
    const replica = new Harness(3);
    for (const clientId of ['a', 'b', 'c', 'a', 'd', 'b', 'e', 'c']) replica.run(clientId, { type: 'put', key: clientId, value: 'v' });
    return replica.machine.digest();
  };
  assert.equal(replay(), replay());
});

test('snapshot and restore: same digest, same future, sessions kept', () => {
  const harness = new Harness();
  harness.run('a', { type: 'put', key: 'k', value: 'v' });
  harness.run('b', { type: 'put', key: 'k', value: 'w' });
  harness.run('b', { type: 'put', key: 'é\u{1F600}', value: 'x'.repeat(1000) });
  harness.run('a', { type: 'delete', key: 'k' });
  harness.run('c', { type: 'cas', key: 'z', value: 'v', expectedVersion: 4 });
  harness.run('d', { type: 'get', key: 'z' });
  harness.machine.applyNoop(100);
  const original = harness.machine;
  const restored = KvStateMachine.restore(original.snapshot());
  assert.equal(restored.digest(), original.digest());
  assert.equal(restored.appliedSlot, 100);
  assert.equal(restored.revision, original.revision);
  assert.deepEqual(restored.stateMachineSize(), original.stateMachineSize());
  const future: [Command, number][] = [
    [{ clientId: 'a', seq: 2, payload: encodeOperation({ type: 'delete', key: 'k' }) }, 101], // retry: stored result
    [{ clientId: 'b', seq: 1, payload: encodeOperation({ type: 'put', key: 'k', value: 'w' }) }, 102], // stale
    [{ clientId: 'e', seq: 1, payload: encodeOperation({ type: 'put', key: 'new', value: '1' }) }, 103],
  ];
  for (const [command, slot] of future) assert.deepEqual(restored.apply(command, slot), original.apply(command, slot));
  assert.equal(restored.digest(), original.digest());
  assert.equal(KvStateMachine.restore(new KvStateMachine().snapshot()).digest(), new KvStateMachine().digest());
});

test('restore rejects corrupt snapshots with KvSnapshotError', () => {
  const harness = new Harness();
  harness.run('a', { type: 'put', key: 'k1', value: 'v' });
  harness.run('b', { type: 'put', key: 'k2', value: 'v' });
  const snapshot = harness.machine.snapshot();
  const corrupt: Uint8Array[] = [
    new Uint8Array(0),
    snapshot.subarray(0, snapshot.length - 1),
    Uint8Array.from([...snapshot, 0]),
    packer.pack(['synod-kv/0', 2, 2, [], []]),
    packer.pack({ format: 'synod-kv/1' }),
    // Keys out of order.
    packer.pack(['synod-kv/1', 2, 2, ['k2', 'v', 1, 2, 2, 'k1', 'v', 1, 1, 1], []]),
    // A version that more writes than revisions could produce.
    packer.pack(['synod-kv/1', 2, 2, ['k1', 'v', 5, 1, 1], []]),
    // A modification revision after the store revision.
    packer.pack(['synod-kv/1', 2, 2, ['k1', 'v', 1, 3, 3], []]),
    // A session slot past the applied slot, and a repeated client id.
    packer.pack(['synod-kv/1', 2, 0, [], ['a', 1, 3, null]]),
    packer.pack(['synod-kv/1', 2, 0, [], ['a', 1, 1, null, 'a', 2, 2, null]]),
    // A stored result of the wrong shape.
    packer.pack(['synod-kv/1', 2, 0, [], ['a', 1, 1, [1, 'x']]]),
  ];
  for (const bytes of corrupt) {
    assert.throws(() => KvStateMachine.restore(bytes), KvSnapshotError, Buffer.from(bytes).toString('hex').slice(0, 60));
  }
  assert.throws(() => KvStateMachine.restore(snapshot, { clientSessionsMax: 1 }), KvSnapshotError);
  const flipped = Uint8Array.from(snapshot);
  const position = flipped.length - 3;
  flipped[position] = (flipped[position] ?? 0) ^ 0xff;
  assert.throws(() => KvStateMachine.restore(flipped), KvSnapshotError);
});

test('property: random bytes given to restore either restore or throw KvSnapshotError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        KvStateMachine.restore(bytes);
      } catch (error) {
        assert.ok(error instanceof KvSnapshotError, String(error));
      }
    }),
    { numRuns: 5000 },
  );
});

test('stateMachineSize counts keys and UTF-8 bytes of keys and values', () => {
  const harness = new Harness();
  harness.run('c', { type: 'put', key: 'ab', value: 'xyz' });
  harness.run('c', { type: 'put', key: 'é', value: '\u{1F600}' });
  assert.deepEqual(harness.machine.stateMachineSize(), { keys: 2, bytes: 2 + 3 + 2 + 4, sessions: 1 });
  harness.run('c', { type: 'put', key: 'ab', value: '' });
  assert.equal(harness.machine.stateMachineSize().bytes, 2 + 2 + 4);
  harness.run('c', { type: 'delete', key: 'é' });
  assert.deepEqual(harness.machine.stateMachineSize(), { keys: 1, bytes: 2, sessions: 1 });
});

// Properties over random command sequences.

const commandArbitrary = fc.record({
  clientId: fc.constantFrom('a', 'b', 'c', 'd'),
  seqStep: fc.constantFrom(1, 1, 1, 0, -1), // mostly new commands, some retries, some stale
  operation: operationArbitrary,
  malformed: fc.option(fc.uint8Array({ maxLength: 6 }), { freq: 10, nil: null }),
});
type RandomCommand = typeof commandArbitrary extends fc.Arbitrary<infer T> ? T : never;

/** Turns random steps into commands, keeping per-client sequence numbers plausible. */
function toCommands(steps: readonly RandomCommand[]): Command[] {
  const seqs = new Map<string, number>();
  return steps.map(({ clientId, seqStep, operation, malformed }) => {
    const seq = Math.max(0, (seqs.get(clientId) ?? 0) + seqStep);
    seqs.set(clientId, Math.max(seq, seqs.get(clientId) ?? 0));
    return { clientId, seq, payload: malformed ?? encodeOperation(operation) };
  });
}

test('property: replicas fed the same commands have equal digests, also across snapshot and restore', () => {
  fc.assert(
    fc.property(fc.array(commandArbitrary, { maxLength: 80 }), fc.nat(), fc.integer({ min: 1, max: 5 }), (steps, cut, sessionsMax) => {
      const commands = toCommands(steps);
      let left = new KvStateMachine({ clientSessionsMax: sessionsMax });
      let right = new KvStateMachine({ clientSessionsMax: sessionsMax });
      const cutAt = commands.length === 0 ? 0 : cut % commands.length;
      commands.forEach((command, index) => {
        if (index === cutAt) right = KvStateMachine.restore(right.snapshot(), { clientSessionsMax: sessionsMax });
        const slot = index + 1;
        assert.deepEqual(right.apply(command, slot), left.apply(command, slot));
      });
      assert.equal(right.digest(), left.digest());
      left = KvStateMachine.restore(left.snapshot(), { clientSessionsMax: sessionsMax });
      assert.equal(left.digest(), right.digest());
    }),
    { numRuns: 300 },
  );
});

/** The reference model: a Map of key to {value, version}, and a revision counter. */
class Model {
  private readonly entries = new Map<string, { value: string; version: number }>();
  private revision = 0;

  apply(operation: KvOperation): KvResult {
    switch (operation.type) {
      case 'put':
        return { ok: true, type: 'put', ...this.write(operation.key, operation.value) };
      case 'get': {
        const entry = this.entries.get(operation.key);
        return { ok: true, type: 'get', revision: this.revision, value: entry?.value ?? null, version: entry?.version ?? 0 };
      }
      case 'delete': {
        const entry = this.entries.get(operation.key);
        if (entry === undefined) return { ok: true, type: 'delete', revision: this.revision, previous: null };
        this.entries.delete(operation.key);
        this.revision += 1;
        return { ok: true, type: 'delete', revision: this.revision, previous: entry.value };
      }
      case 'cas': {
        const entry = this.entries.get(operation.key);
        const current = { value: entry?.value ?? null, version: entry?.version ?? 0 };
        const valueHolds = operation.expectedValue === undefined || operation.expectedValue === current.value;
        const versionHolds = operation.expectedVersion === undefined || operation.expectedVersion === current.version;
        if (!valueHolds || !versionHolds) return { ok: false, error: 'cas_failed', message: 'ignored', current };
        return { ok: true, type: 'cas', ...this.write(operation.key, operation.value) };
      }
      case 'list':
        throw new Error('the model does not list');
    }
  }

  private write(key: string, value: string): { revision: number; version: number; previous: string | null } {
    const entry = this.entries.get(key);
    this.revision += 1;
    this.entries.set(key, { value, version: (entry?.version ?? 0) + 1 });
    return { revision: this.revision, version: (entry?.version ?? 0) + 1, previous: entry?.value ?? null };
  }
}

test('property: put/get/delete/cas agree with a Map model', () => {
  const modelOperation = operationArbitrary.filter(
    (operation) => operation.type !== 'list' && !(operation.type === 'cas' && operation.expectedValue === undefined && operation.expectedVersion === undefined),
  );
  fc.assert(
    fc.property(fc.array(modelOperation, { maxLength: 120 }), (operations) => {
      const machine = new KvStateMachine();
      const model = new Model();
      operations.forEach((operation, index) => {
        const actual = machine.apply({ clientId: 'client', seq: index + 1, payload: encodeOperation(operation) }, index + 1);
        const expected = model.apply(operation);
        if (!expected.ok && !actual.ok) assert.deepEqual({ ...actual, message: 'ignored' }, expected);
        else assert.deepEqual(actual, expected, JSON.stringify(operation));
      });
    }),
    { numRuns: 300 },
  );
});

test('property: list agrees with filtering and sorting the model keys by bytes', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(keyArbitrary, fc.boolean()), { maxLength: 60 }), fc.oneof(fc.constant(''), keyArbitrary), fc.integer({ min: 1, max: 8 }), (writes, prefix, limit) => {
      const harness = new Harness();
      const model = new Map<string, number>();
      for (const [key, isPut] of writes) {
        harness.run('c', isPut ? { type: 'put', key, value: key } : { type: 'delete', key });
        if (isPut) model.set(key, (model.get(key) ?? 0) + 1);
        else model.delete(key);
      }
      const matching = [...model.keys()]
        .filter((key) => key.startsWith(prefix))
        .sort((left, right) => Buffer.compare(Buffer.from(left), Buffer.from(right)));
      const result = harness.machine.read({ type: 'list', prefix, limit });
      assert.deepEqual(result, {
        ok: true, type: 'list', revision: harness.machine.revision, more: matching.length > limit,
        entries: matching.slice(0, limit).map((key) => ({ key, value: key, version: model.get(key) })),
      });
    }),
    { numRuns: 300 },
  );
});

test('property: decodeOperation on random bytes returns a valid operation or throws KvDecodeError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 32 }), (bytes) => {
      try {
        const operation = decodeOperation(bytes);
        assert.equal(Buffer.from(encodeOperation(operation)).equals(bytes), true);
      } catch (error) {
        assert.ok(error instanceof KvDecodeError, String(error));
      }
    }),
    { numRuns: 20_000 },
  );
});

test('a payload applied by the replica that encoded it (no decode) and by one that decodes it gives the same results and state', () => {
  const operations = fc.sample(fc.array(operationArbitrary, { minLength: 1, maxLength: 40 }), { numRuns: 60, seed: 4242 });
  // Invalid operations too: not remembered, so both replicas decode and refuse them alike.
  operations.push([
    { type: 'put', key: '\uD800', value: 'v' },
    { type: 'put', key: 'k', value: 'v'.repeat(VALUE_BYTES_MAX + 1) },
    { type: 'cas', key: 'k', value: 'v', expectedVersion: -1 },
    { type: 'put', key: 'k', value: 'v' },
  ]);
  for (const batch of operations) {
    const proposer = new KvStateMachine();
    const follower = new KvStateMachine();
    batch.forEach((operation, index) => {
      const payload = proposer.encodePayload(operation);
      const command: Command = { clientId: 'c', seq: index + 1, payload };
      assert.deepEqual(proposer.apply(command, index + 1), follower.apply({ ...command, payload: Uint8Array.from(payload) }, index + 1), JSON.stringify(operation).slice(0, 80));
    });
    assert.equal(proposer.digest(), follower.digest());
  }
});

test('a replica applies a payload it encoded from the remembered operation, without decoding it', () => {
  const machine = new KvStateMachine();
  const payload = machine.encodePayload({ type: 'put', key: 'k', value: 'v' });
  payload.fill(0); // undecodable now: only the remembered operation can apply
  assert.equal(machine.apply({ clientId: 'c', seq: 1, payload }, 1).ok, true);
  assert.deepEqual(machine.read({ type: 'get', key: 'k' }), { ok: true, type: 'get', revision: 1, value: 'v', version: 1 });
  // Remembered until applied once: the same bytes again are decoded (and here refused).
  assert.equal(machine.apply({ clientId: 'c', seq: 2, payload }, 2).ok, false);
});

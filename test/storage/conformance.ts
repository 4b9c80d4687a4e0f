/**
 * The storage conformance suite every `LogStorage` adapter passes (automerge-repo's
 * `runStorageAdapterTests` pattern). Importing this module only defines functions; the adapter test
 * files call `runStorageConformance`.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Ballot, makeBallot } from '../../src/core/ballot.js';
import type { EntryValue, LogEntry, PersistRecord, PersistentState } from '../../src/core/multipaxos/types.js';
import type { LogStorage } from '../../src/storage/adapter.js';
import { StorageUsageError } from '../../src/storage/errors.js';

/** What a conformance run needs from an adapter: a way to (re)open the same medium, and cleanup. */
export interface StorageFixture {
  /** Opens the adapter on the fixture's medium; a second call after close() models a restart. */
  open(): Promise<LogStorage>;
  cleanup(): Promise<void>;
}

/** A `commands` value whose single command carries `payload`. */
export function commandsValue(epoch: Ballot, payload: Uint8Array, clientId = 'client-1', seq = 1): EntryValue {
  return { type: 'commands', epoch, commands: [{ clientId, seq, payload }] };
}

/** Entries sorted by slot, so states compare independently of iteration order. */
export function sortedEntries(state: PersistentState): LogEntry[] {
  return [...state.entries].sort((left, right) => left.slot - right.slot);
}

/** Asserts two states hold the same promise and the same entries. */
export function assertSameState(actual: PersistentState, expected: PersistentState): void {
  assert.equal(actual.promised, expected.promised);
  assert.deepStrictEqual(sortedEntries(actual), sortedEntries(expected));
}

const B1 = makeBallot(1, 1);
const B2 = makeBallot(2, 1);

/** One of each kind of record, in an order the store accepts. */
export function sampleRecords(): PersistRecord[] {
  return [
    { type: 'promise', ballot: B1 },
    { type: 'accept', slot: 1, ballot: B1, value: { type: 'start-working', epoch: B1 } },
    { type: 'accept', slot: 2, ballot: B1, value: commandsValue(B1, new Uint8Array([1, 2, 3])) },
    { type: 'accept', slot: 3, ballot: B1, value: { type: 'noop' } },
    { type: 'chosen', slot: 1, ballot: B1 },
    { type: 'promise', ballot: B2 },
    { type: 'chosen', slot: 4, ballot: B1, value: commandsValue(B1, new Uint8Array([9]), 'client-2', 7) },
  ];
}

/** Runs the shared suite against the adapter that `setup` builds. */
export function runStorageConformance(name: string, setup: () => Promise<StorageFixture>): void {
  describe(`${name} storage conformance`, () => {
    test('appended records are in state(): promise, accepts, chosen marks with and without value', () => appendedRecordsAreInState(setup));
    test('reopening returns the same state', () => reopenReturnsSameState(setup));
    test('entry(slot) reads back each durable entry, also after reopen and later appends', () => entriesReadBack(setup));
    test('many concurrent appends all resolve and land in call order', () => concurrentAppendsLandInOrder(setup));
    test('a 1 MiB payload round-trips, also across reopen', () => largePayloadRoundTrips(setup));
    test('an empty append resolves and changes nothing', () => emptyAppendIsFine(setup));
    test('refuses records the log could never replay, and appends after close', () => refusesUnreplayableRecords(setup));
  });
}

async function appendedRecordsAreInState(setup: () => Promise<StorageFixture>): Promise<void> {
  await withStorage(setup, async (storage) => {
    await storage.append(sampleRecords());
    const state = storage.state();
    assert.equal(state.promised, B2);
    const entries = sortedEntries(state);
    assert.deepStrictEqual(entries.map((entry) => [entry.slot, entry.chosen]), [
      [1, true], [2, false], [3, false], [4, true],
    ]);
    assert.deepStrictEqual(entries[1]?.value, commandsValue(B1, new Uint8Array([1, 2, 3])));
    assert.deepStrictEqual(entries[3]?.value, commandsValue(B1, new Uint8Array([9]), 'client-2', 7));
  });
}

/** `entry(slot)` agrees with `state()` for every slot, and is undefined where no entry is. */
function assertEntriesMatchState(storage: LogStorage, maxSlot: number): void {
  const bySlot = new Map(sortedEntries(storage.state()).map((entry) => [entry.slot, entry]));
  for (let slot = 1; slot <= maxSlot; slot += 1) assert.deepStrictEqual(storage.entry(slot), bySlot.get(slot), `slot ${slot}`);
}

async function entriesReadBack(setup: () => Promise<StorageFixture>): Promise<void> {
  const fixture = await setup();
  try {
    const first = await fixture.open();
    await first.append(sampleRecords());
    assert.deepStrictEqual(first.entry(2), { slot: 2, ballot: B1, value: commandsValue(B1, new Uint8Array([1, 2, 3])), chosen: false });
    // A chosen mark without a value keeps the accepted entry's ballot and value.
    assert.deepStrictEqual(first.entry(1), { slot: 1, ballot: B1, value: { type: 'start-working', epoch: B1 }, chosen: true });
    assert.equal(first.entry(5), undefined);
    assertEntriesMatchState(first, 6);
    await first.close();
    const second = await fixture.open();
    assertEntriesMatchState(second, 6);
    // A higher ballot replaces slot 3, then its chosen mark; slot 40 arrives chosen with its value.
    await second.append([
      { type: 'accept', slot: 3, ballot: B2, value: commandsValue(B2, Uint8Array.of(5, 5)) },
      { type: 'chosen', slot: 3, ballot: B2 },
      { type: 'chosen', slot: 40, ballot: B2, value: { type: 'noop' } },
    ]);
    assert.deepStrictEqual(second.entry(3), { slot: 3, ballot: B2, value: commandsValue(B2, Uint8Array.of(5, 5)), chosen: true });
    assert.deepStrictEqual(second.entry(40), { slot: 40, ballot: B2, value: { type: 'noop' }, chosen: true });
    assertEntriesMatchState(second, 41);
    await second.close();
  } finally {
    await fixture.cleanup();
  }
}

async function reopenReturnsSameState(setup: () => Promise<StorageFixture>): Promise<void> {
  const fixture = await setup();
  try {
    const first = await fixture.open();
    await first.append(sampleRecords());
    await first.append([{ type: 'accept', slot: 2, ballot: B2, value: { type: 'noop' } }]);
    const before = first.state();
    await first.close();
    const second = await fixture.open();
    assertSameState(second.state(), before);
    assert.equal(second.firstSlot, first.firstSlot);
    await second.append([{ type: 'chosen', slot: 2, ballot: B2 }]);
    await second.close();
    const third = await fixture.open();
    assert.equal(sortedEntries(third.state())[1]?.chosen, true);
    await third.close();
  } finally {
    await fixture.cleanup();
  }
}

async function concurrentAppendsLandInOrder(setup: () => Promise<StorageFixture>): Promise<void> {
  await withStorage(setup, async (storage) => {
    const appendsCount = 300;
    const appends: Promise<void>[] = [];
    for (let index = 1; index <= appendsCount; index += 1) {
      const ballot = makeBallot(index, 1);
      // Promises must not decrease and slot 1 is rewritten each time: only call order passes.
      appends.push(
        storage.append([
          { type: 'promise', ballot },
          { type: 'accept', slot: 1, ballot, value: { type: 'start-working', epoch: ballot } },
          { type: 'accept', slot: index + 1, ballot, value: commandsValue(ballot, Uint8Array.of(index % 256)) },
        ]),
      );
    }
    await Promise.all(appends);
    const last = makeBallot(appendsCount, 1);
    const entries = sortedEntries(storage.state());
    assert.equal(storage.state().promised, last);
    assert.equal(entries.length, appendsCount + 1);
    assert.deepStrictEqual(entries[0]?.value, { type: 'start-working', epoch: last });
  });
}

async function largePayloadRoundTrips(setup: () => Promise<StorageFixture>): Promise<void> {
  const fixture = await setup();
  try {
    const payload = new Uint8Array(1024 * 1024);
    for (let index = 0; index < payload.length; index += 1) payload[index] = (index * 31 + 7) % 251;
    const storage = await fixture.open();
    await storage.append([{ type: 'accept', slot: 1, ballot: B1, value: commandsValue(B1, payload) }]);
    assert.deepStrictEqual(sortedEntries(storage.state())[0]?.value, commandsValue(B1, payload));
    await storage.close();
    const reopened = await fixture.open();
    assert.deepStrictEqual(sortedEntries(reopened.state())[0]?.value, commandsValue(B1, payload));
    await reopened.close();
  } finally {
    await fixture.cleanup();
  }
}

async function emptyAppendIsFine(setup: () => Promise<StorageFixture>): Promise<void> {
  await withStorage(setup, async (storage) => {
    await storage.append([]);
    await storage.append([{ type: 'promise', ballot: B1 }]);
    const concurrent = [storage.append([{ type: 'promise', ballot: B2 }]), storage.append([])];
    await Promise.all(concurrent);
    assert.equal(storage.state().promised, B2);
    assert.deepStrictEqual([...storage.state().entries], []);
  });
}

async function refusesUnreplayableRecords(setup: () => Promise<StorageFixture>): Promise<void> {
  await withStorage(setup, async (storage) => {
    await storage.append([{ type: 'promise', ballot: B2 }]);
    await assert.rejects(storage.append([{ type: 'promise', ballot: B1 }]), StorageUsageError);
    await assert.rejects(storage.append([{ type: 'chosen', slot: 5, ballot: B1 }]), StorageUsageError);
    await assert.rejects(
      storage.append([{ type: 'accept', slot: storage.firstSlot - 1, ballot: B2, value: { type: 'noop' } }]),
      StorageUsageError,
    );
    assert.equal(storage.state().promised, B2);
    await storage.close();
    await assert.rejects(storage.append([{ type: 'promise', ballot: B2 }]), StorageUsageError);
  }, false);
}

/** Opens a fresh fixture, runs `body`, then closes (unless `body` did) and cleans up. */
async function withStorage(
  setup: () => Promise<StorageFixture>,
  body: (storage: LogStorage) => Promise<void>,
  closeAfter = true,
): Promise<void> {
  const fixture = await setup();
  try {
    const storage = await fixture.open();
    await body(storage);
    if (closeAfter) await storage.close();
  } finally {
    await fixture.cleanup();
  }
}

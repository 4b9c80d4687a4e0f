/**
 * Lazy appends (chosen marks nobody waits for): they get no fsync of their own when a sync append
 * follows soon, they are still written (and their promise resolves) when none follows, and close
 * writes them. Order with later appends is kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeBallot } from '../../src/core/ballot.js';
import type { PersistRecord } from '../../src/core/multipaxos/types.js';
import { FileStorage } from '../../src/storage/file.js';
import { sortedEntries } from './conformance.js';

const B = makeBallot(1, 1);
const accept = (slot: number): PersistRecord => ({ type: 'accept', slot, ballot: B, value: { type: 'noop' } });
const chosen = (slot: number): PersistRecord => ({ type: 'chosen', slot, ballot: B });

async function withStorage(body: (storage: FileStorage, directory: string) => Promise<void>): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), 'synod-lazy-'));
  try {
    const storage = await FileStorage.open(directory, { logger: { warn: () => {} } });
    await body(storage, directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

test('a lazy append rides with the next sync append: one fsync for both, in order', () => withStorage(async (storage) => {
  await storage.append([{ type: 'promise', ballot: B }, accept(1)]);
  const before = storage.stats.fsyncs;
  const lazy = storage.append([chosen(1)], 'lazy');
  await new Promise((resolve) => setImmediate(resolve)); // well before the lazy timer
  await storage.append([accept(2)]);
  await lazy;
  assert.equal(storage.stats.fsyncs - before, 1, 'the chosen mark shared the accept\'s fsync');
  const entries = sortedEntries(storage.state());
  assert.deepEqual(entries.map((entry) => [entry.slot, entry.chosen]), [[1, true], [2, false]]);
  await storage.close();
}));

test('a lazy append with no sync append after it still becomes durable on its own', () => withStorage(async (storage, directory) => {
  await storage.append([{ type: 'promise', ballot: B }, accept(1)]);
  await storage.append([chosen(1)], 'lazy');
  await storage.close();
  const reopened = await FileStorage.open(directory, { logger: { warn: () => {} } });
  assert.equal(sortedEntries(reopened.state())[0]?.chosen, true);
  await reopened.close();
}));

test('close writes lazy records that are still waiting', () => withStorage(async (storage, directory) => {
  await storage.append([{ type: 'promise', ballot: B }, accept(1)]);
  void storage.append([chosen(1)], 'lazy');
  await storage.close();
  const reopened = await FileStorage.open(directory, { logger: { warn: () => {} } });
  assert.equal(sortedEntries(reopened.state())[0]?.chosen, true);
  await reopened.close();
}));

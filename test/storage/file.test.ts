import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { type Ballot, makeBallot } from '../../src/core/ballot.js';
import type { EntryValue, PersistRecord, PersistentState } from '../../src/core/multipaxos/types.js';
import { StorageCorruptionError, StorageUsageError } from '../../src/storage/errors.js';
import { FileStorage, type FileStorageOptions } from '../../src/storage/file.js';
import { MemoryLogStore } from '../../src/storage/memory.js';
import { encodeRecord } from '../../src/storage/codec.js';
import { crc32c } from '../../src/storage/crc32.js';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, encodeFrame, frameBytes } from '../../src/storage/segment.js';
import { assertSameState, commandsValue, runStorageConformance, sortedEntries } from './conformance.js';

/** A fresh temporary directory per test. */
async function temporaryDirectory(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'synod-storage-'));
}

runStorageConformance('file', async () => {
  const directory = await temporaryDirectory();
  return {
    open: () => FileStorage.open(directory, { logger: { warn: () => {} } }),
    cleanup: () => rm(directory, { recursive: true, force: true }),
  };
});

// A small segment limit makes the shared suite exercise rotation and multi-segment recovery too.
runStorageConformance('file with 4 KiB segments', async () => {
  const directory = await temporaryDirectory();
  return {
    open: () => FileStorage.open(directory, { segmentBytesMax: 4096, logger: { warn: () => {} } }),
    cleanup: () => rm(directory, { recursive: true, force: true }),
  };
});

/** Opens `directory` collecting warnings. */
async function openCollecting(directory: string, options: FileStorageOptions = {}): Promise<{ storage: FileStorage; warnings: string[] }> {
  const warnings: string[] = [];
  const storage = await FileStorage.open(directory, { ...options, logger: { warn: (message) => warnings.push(message) } });
  return { storage, warnings };
}

/**
 * Accept records for slots 1..count, one append (so one frame) each; returns the state after. No
 * preallocation unless `options` asks for it: the file then ends at its last record, so a test can
 * place bytes right after it (the preallocated layout has tests of its own below).
 */
async function writeAccepts(directory: string, count: number, options: FileStorageOptions = {}): Promise<PersistentState> {
  const { storage } = await openCollecting(directory, { preallocateBytes: 0, ...options });
  for (let slot = 1; slot <= count; slot += 1) {
    await storage.append([{ type: 'accept', slot, ballot: B1, value: commandsValue(B1, Uint8Array.of(slot, slot)) }]);
  }
  const state = storage.state();
  await storage.close();
  return state;
}

/** Byte offsets of the frames in a segment file (up to a zero length: preallocated space). */
async function frameOffsets(path: string): Promise<number[]> {
  const bytes = await readFile(path);
  const offsets: number[] = [];
  for (let offset = SEGMENT_HEADER_BYTES; offset + 4 <= bytes.length && bytes.readUInt32LE(offset) !== 0; offset += frameBytes(bytes.readUInt32LE(offset))) {
    offsets.push(offset);
  }
  return offsets;
}

async function segmentPaths(directory: string): Promise<string[]> {
  return (await readdir(directory)).filter((name) => name.endsWith('.log')).sort().map((name) => join(directory, name));
}

/** Flips one bit of the byte at `offset`. */
async function flipBit(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x10;
  await writeFile(path, bytes);
}

/**
 * Opening `directory` fails with a StorageCorruptionError at `offset`, and the segment at `path`
 * keeps its `size` bytes: nothing was truncated.
 */
async function assertRefusedUntouched(directory: string, path: string, offset: number, size: number, label: string, options: FileStorageOptions = {}): Promise<void> {
  await assert.rejects(openCollecting(directory, options), (error: unknown) => {
    assert.ok(error instanceof StorageCorruptionError, `${label}: ${String(error)}`);
    assert.equal(error.offset, offset, label);
    return true;
  });
  assert.equal((await stat(path)).size, size, `${label}: nothing truncated`);
}

const B1 = makeBallot(1, 1);

/** Runs `body` on a fresh temporary directory, removed afterwards. */
async function withDirectory(body: (directory: string) => Promise<void>): Promise<void> {
  const directory = await temporaryDirectory();
  try {
    await body(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

test('file storage: group commit: 1000 concurrent appends share far fewer fsyncs', () =>
  withDirectory(async (directory) => {
    const { storage } = await openCollecting(directory);
    const appends: Promise<void>[] = [];
    for (let slot = 1; slot <= 1000; slot += 1) {
      appends.push(storage.append([{ type: 'accept', slot, ballot: B1, value: { type: 'noop' } }]));
      // Yield now and then so appends arrive while a round is in flight, not all before the first.
      if (slot % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(appends);
    const { appends: appendsCount, fsyncs, bytes } = storage.stats;
    assert.equal(appendsCount, 1000);
    assert.ok(fsyncs >= 1 && fsyncs <= 50, `expected coalescing, got ${fsyncs} fsyncs`);
    assert.ok(bytes > 1000 * FRAME_HEADER_BYTES);
    assert.equal([...storage.state().entries].length, 1000);
    await storage.close();
  }));

test('file storage: torn tail: a file cut mid-record is truncated to the last good record, with a warning', () =>
  withDirectory(async (directory) => {
    const before = await writeAccepts(directory, 5);
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    const offsets = await frameOffsets(path);
    const lastOffset = offsets[4] ?? 0;
    await truncate(path, lastOffset + FRAME_HEADER_BYTES + 2);
    const { storage, warnings } = await openCollecting(directory);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /truncated torn tail/);
    assert.match(warnings[0] ?? '', new RegExp(`offset ${lastOffset}`));
    assert.deepStrictEqual(sortedEntries(storage.state()), sortedEntries(before).slice(0, 4));
    assert.equal((await stat(path)).size, lastOffset);
    // The repaired log takes appends again and they survive the next reopen.
    await storage.append([{ type: 'accept', slot: 5, ballot: B1, value: { type: 'noop' } }]);
    await storage.close();
    const reopened = await openCollecting(directory);
    assert.deepStrictEqual(reopened.warnings, []);
    assert.equal([...reopened.storage.state().entries].length, 5);
    await reopened.storage.close();
  }));

test('file storage: torn tail: a cut-off prefix of the next record after the last record is truncated, with a warning', () =>
  withDirectory(async (directory) => {
    const next = encodeFrame(encodeRecord({ type: 'accept', slot: 9, ballot: B1, value: commandsValue(B1, new Uint8Array(100).fill(7)) }), 3);
    const tails = [next.subarray(0, 3), next.subarray(0, FRAME_HEADER_BYTES), next.subarray(0, next.length - 1)];
    for (const tail of tails) {
      await rm(directory, { recursive: true, force: true });
      const before = await writeAccepts(directory, 3);
      const [path] = await segmentPaths(directory);
      assert.ok(path !== undefined);
      await appendFile(path, tail);
      const { storage, warnings } = await openCollecting(directory);
      assert.equal(warnings.length, 1, `tail of ${tail.length} bytes`);
      assertSameState(storage.state(), before);
      await storage.close();
    }
  }));

test('file storage: zeros after the last record are space, not damage: kept, not reported, and the next records go there', () =>
  withDirectory(async (directory) => {
    const before = await writeAccepts(directory, 3);
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    const dataEnd = (await stat(path)).size;
    await appendFile(path, Buffer.alloc(4096));
    const { storage, warnings } = await openCollecting(directory, { preallocateBytes: 0 });
    assert.deepStrictEqual(warnings, []);
    assertSameState(storage.state(), before);
    await storage.append([{ type: 'accept', slot: 4, ballot: B1, value: { type: 'noop' } }]);
    await storage.close();
    assert.equal((await stat(path)).size, dataEnd + 4096, 'the record went into the zeros; the file did not grow');
    assert.deepStrictEqual(await frameOffsets(path).then((offsets) => offsets.length), 4);
    const reopened = await openCollecting(directory);
    assert.deepStrictEqual(reopened.warnings, []);
    assert.equal([...reopened.storage.state().entries].length, 4);
    await reopened.storage.close();
  }));

test('file storage: preallocation: the segment grows in zero-filled steps, not with every append, and reopens silently', () =>
  withDirectory(async (directory) => {
    const step = 8192;
    const { storage } = await openCollecting(directory, { preallocateBytes: step });
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    const sizes = new Set<number>();
    for (let slot = 1; slot <= 200; slot += 1) {
      await storage.append([{ type: 'accept', slot, ballot: B1, value: commandsValue(B1, new Uint8Array(100).fill(slot)) }]);
      sizes.add((await stat(path)).size);
    }
    const dataEnd = storage.durableEnd().byteLength;
    const state = storage.state();
    await storage.close();
    const size = (await stat(path)).size;
    assert.ok(size > dataEnd && size <= dataEnd + step, `file ${size} bytes, records end at ${dataEnd}`);
    assert.ok(sizes.size <= Math.ceil(dataEnd / step) + 1, `the file took ${sizes.size} sizes over 200 appends`);
    assert.ok((await readFile(path)).subarray(dataEnd).every((byte) => byte === 0), 'zeros after the records');
    const { storage: reopened, warnings } = await openCollecting(directory, { preallocateBytes: step });
    assert.deepStrictEqual(warnings, []);
    assertSameState(reopened.state(), state);
    await reopened.append([{ type: 'accept', slot: 201, ballot: B1, value: { type: 'noop' } }]);
    assert.equal(reopened.durableEnd().byteLength > dataEnd, true);
    await reopened.close();
    assert.equal((await stat(path)).size, size, 'appending after a reopen uses the zeros already there');
  }));

test('file storage: preallocation: a torn write into the zeros (whole sectors of a record missing) is truncated with a warning', () =>
  withDirectory(async (directory) => {
    const { storage } = await openCollecting(directory, { preallocateBytes: 8192 });
    for (let slot = 1; slot <= 3; slot += 1) await storage.append([{ type: 'accept', slot, ballot: B1, value: commandsValue(B1, Uint8Array.of(slot)) }]);
    const before = storage.state();
    const dataEnd = storage.durableEnd().byteLength;
    await storage.close();
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    // A 1500-byte record, written from `dataEnd`: the first sector it touches landed, the rest did not.
    const frame = encodeFrame(encodeRecord({ type: 'accept', slot: 4, ballot: B1, value: commandsValue(B1, new Uint8Array(1500).fill(9)) }), 3);
    const landed = Math.ceil((dataEnd + 1) / 512) * 512 - dataEnd;
    const bytes = await readFile(path);
    bytes.set(frame.subarray(0, landed), dataEnd);
    await writeFile(path, bytes);
    const { storage: reopened, warnings } = await openCollecting(directory);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', new RegExp(`truncated torn tail .* offset ${dataEnd}`));
    assertSameState(reopened.state(), before);
    await reopened.close();
  }));

test('file storage: preallocation: a complete last record in the zeros with a flipped bit, or garbage among the zeros, is a StorageCorruptionError', () =>
  withDirectory(async (directory) => {
    for (const damage of ['flip', 'garbage'] as const) {
      await rm(directory, { recursive: true, force: true });
      const { storage } = await openCollecting(directory, { preallocateBytes: 8192 });
      for (let slot = 1; slot <= 4; slot += 1) await storage.append([{ type: 'accept', slot, ballot: B1, value: commandsValue(B1, new Uint8Array(40).fill(slot)) }]);
      const dataEnd = storage.durableEnd().byteLength;
      await storage.close();
      const [path] = await segmentPaths(directory);
      assert.ok(path !== undefined);
      const offsets = await frameOffsets(path);
      const lastOffset = offsets[3] ?? 0;
      const bytes = await readFile(path);
      const at = damage === 'flip' ? lastOffset + FRAME_HEADER_BYTES + 5 : dataEnd + 3000;
      bytes[at] = (bytes[at] ?? 0) ^ 0x10;
      await writeFile(path, bytes);
      await assert.rejects(openCollecting(directory), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptionError, `${damage}: ${String(error)}`);
        assert.equal(error.offset, damage === 'flip' ? lastOffset : dataEnd, damage);
        return true;
      });
    }
  }));

test('file storage: preallocation: a sealed segment is cut to its last record when the next one starts', () =>
  withDirectory(async (directory) => {
    const before = await writeAccepts(directory, 100, { segmentBytesMax: 1024, preallocateBytes: 512 });
    const paths = await segmentPaths(directory);
    assert.ok(paths.length > 3);
    for (const path of paths.slice(0, -1)) {
      const bytes = await readFile(path);
      const offsets = await frameOffsets(path);
      const last = offsets[offsets.length - 1] ?? 0;
      assert.equal(bytes.length, last + frameBytes(bytes.readUInt32LE(last)), `${path} ends at its last record`);
    }
    const { storage, warnings } = await openCollecting(directory, { segmentBytesMax: 1024 });
    assert.deepStrictEqual(warnings, []);
    assertSameState(storage.state(), before);
    await storage.close();
  }));

test('file storage: a complete last record whose payload ends in zeros past a sector boundary, with one bit flipped, is a StorageCorruptionError, never dropped as torn', () =>
  withDirectory(async (directory) => {
    // A payload ending in 600 zero bytes: the record's last non-zero bytes (before the trailer)
    // lie more than a sector before its end. Such a record is complete and may have been
    // acknowledged; read as a torn write it would be silently truncated away.
    for (const preallocateBytes of [0, 8192]) {
      await rm(directory, { recursive: true, force: true });
      const { storage } = await openCollecting(directory, { preallocateBytes });
      await storage.append([{ type: 'accept', slot: 1, ballot: B1, value: { type: 'noop' } }]);
      const lastOffset = storage.durableEnd().byteLength;
      const payload = new Uint8Array(1000).fill(7, 0, 400);
      await storage.append([{ type: 'accept', slot: 2, ballot: B1, value: commandsValue(B1, payload) }]);
      await storage.close();
      const [path] = await segmentPaths(directory);
      assert.ok(path !== undefined);
      const pristine = await readFile(path);
      for (const at of [lastOffset + FRAME_HEADER_BYTES + 5, lastOffset + 1, lastOffset + 6]) {
        const bytes = Buffer.from(pristine);
        bytes[at] = (bytes[at] ?? 0) ^ 0x01;
        await writeFile(path, bytes);
        await assertRefusedUntouched(directory, path, lastOffset, pristine.length, `preallocate ${preallocateBytes}, byte ${at}`, { preallocateBytes });
      }
    }
  }));

test('file storage: a valid frame copied to another record boundary is a StorageCorruptionError (frames carry their sequence number)', () =>
  withDirectory(async (directory) => {
    for (const where of ['middle', 'end'] as const) {
      await rm(directory, { recursive: true, force: true });
      await writeAccepts(directory, 5);
      const [path] = await segmentPaths(directory);
      assert.ok(path !== undefined);
      const bytes = await readFile(path);
      const offsets = await frameOffsets(path);
      const copy = bytes.subarray(offsets[1] ?? 0, offsets[2] ?? 0);
      const at = where === 'middle' ? (offsets[3] ?? 0) : bytes.length;
      await writeFile(path, Buffer.concat([bytes.subarray(0, at), copy, bytes.subarray(at)]));
      await assert.rejects(openCollecting(directory), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptionError, `${where}: ${String(error)}`);
        assert.equal(error.offset, at, where);
        return true;
      });
    }
  }));

test('file storage: preallocation never grows a segment past segmentBytesMax, on the calling thread or the thread pool', () =>
  withDirectory(async (directory) => {
    for (const blockingSyncMaxMs of [2, 0]) {
      await rm(directory, { recursive: true, force: true });
      const options = { segmentBytesMax: 3000, preallocateBytes: 2048, blockingSyncMaxMs };
      // Checked after every append: a segment grown past the limit and cut back when sealed would
      // pass a check made only at the end.
      const { storage: writer } = await openCollecting(directory, options);
      for (let slot = 1; slot <= 200; slot += 1) {
        await writer.append([{ type: 'accept', slot, ballot: B1, value: commandsValue(B1, Uint8Array.of(slot, slot)) }]);
        for (const path of await segmentPaths(directory)) {
          const size = (await stat(path)).size;
          assert.ok(size <= 3000, `after slot ${slot}, ${path}: ${size} bytes`);
        }
      }
      const before = writer.state();
      await writer.close();
      const paths = await segmentPaths(directory);
      assert.ok(paths.length > 2, `${paths.length} segments`);
      const { storage, warnings } = await openCollecting(directory, options);
      assert.deepStrictEqual(warnings, []);
      assertSameState(storage.state(), before);
      await storage.close();
    }
  }));

/** Rewrites a log written by `writeAccepts` in format version 1 (frames without sequence number or trailer). */
async function downgradeToVersion1(path: string): Promise<void> {
  const bytes = await readFile(path);
  const header = Buffer.from(bytes.subarray(0, SEGMENT_HEADER_BYTES));
  header.writeUInt32LE(1, 8); // the header checksum covers bytes 16..32 only
  const frames: Buffer[] = [header];
  for (const offset of await frameOffsets(path)) {
    const length = bytes.readUInt32LE(offset);
    const payload = bytes.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
    const frame = Buffer.alloc(8 + length);
    frame.writeUInt32LE(length, 0);
    frame.writeUInt32LE(crc32c(payload), 4);
    frame.set(payload, 8);
    frames.push(frame);
  }
  await writeFile(path, Buffer.concat(frames));
}

test('file storage: a version 1 log is read by its own rules, sealed on open, and new records go to a version 2 segment', () =>
  withDirectory(async (directory) => {
    const before = await writeAccepts(directory, 4);
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    await downgradeToVersion1(path);
    const version1 = await readFile(path);
    // Zeros after its records (a file that grew before its data landed) are space.
    await appendFile(path, Buffer.alloc(700));
    const { storage, warnings } = await openCollecting(directory);
    assert.deepStrictEqual(warnings, []);
    assertSameState(storage.state(), before);
    await storage.append([{ type: 'accept', slot: 5, ballot: B1, value: { type: 'noop' } }]);
    const after = storage.state();
    await storage.close();
    const paths = await segmentPaths(directory);
    assert.equal(paths.length, 2, 'a new segment after the sealed version 1 one');
    assert.deepStrictEqual(await readFile(path), version1, 'sealed where its records end');
    assert.equal((await readFile(paths[1] ?? '')).readUInt32LE(8), 2);
    const reopened = await openCollecting(directory);
    assert.deepStrictEqual(reopened.warnings, []);
    assertSameState(reopened.storage.state(), after);
    await reopened.storage.close();
    // In a version 1 segment a torn tail is still repaired, and a complete last record with a
    // flipped bit is still corruption (zeros are never judged unwritten sectors there).
    for (const damage of ['torn', 'flip'] as const) {
      await rm(directory, { recursive: true, force: true });
      await writeAccepts(directory, 4);
      await downgradeToVersion1(path);
      const bytes = await readFile(path);
      if (damage === 'torn') await writeFile(path, bytes.subarray(0, bytes.length - 2));
      else await flipBit(path, bytes.length - 1);
      const result = openCollecting(directory);
      if (damage === 'flip') {
        await assert.rejects(result, StorageCorruptionError);
        continue;
      }
      const { storage: repaired, warnings: repairWarnings } = await result;
      assert.equal(repairWarnings.length, 1);
      assert.equal([...repaired.state().entries].length, 3);
      await repaired.close();
    }
  }));

test('file storage: a version 1 last record whose payload ends in zeros, followed by zeros, with one bit flipped, is a StorageCorruptionError', () =>
  withDirectory(async (directory) => {
    // Version 1 frames have no trailer: the record's own zeros cannot be told from space after it,
    // so no zero may be judged an unwritten sector there.
    const { storage } = await openCollecting(directory, { preallocateBytes: 0 });
    await storage.append([{ type: 'accept', slot: 1, ballot: B1, value: { type: 'noop' } }]);
    await storage.append([{ type: 'accept', slot: 2, ballot: B1, value: commandsValue(B1, new Uint8Array(1000).fill(7, 0, 400)) }]);
    await storage.close();
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    await downgradeToVersion1(path);
    const version1 = await readFile(path);
    const lastOffset = SEGMENT_HEADER_BYTES + 8 + version1.readUInt32LE(SEGMENT_HEADER_BYTES); // version 1 frames: 8-byte header
    await appendFile(path, Buffer.alloc(4096));
    const pristine = await readFile(path);
    // A payload bit (the checksum no longer matches at any end), and single and double bits of the
    // length field (the record now seems to run into the zeros).
    for (const flips of [[lastOffset + 8 + 5], [lastOffset + 1], [lastOffset + 1, lastOffset + 2]]) {
      const bytes = Buffer.from(pristine);
      for (const at of flips) bytes[at] = (bytes[at] ?? 0) ^ 0x01;
      await writeFile(path, bytes);
      await assertRefusedUntouched(directory, path, lastOffset, pristine.length, `bytes ${flips.join(',')}`);
    }
  }));

test('file storage: preallocation: two flipped bits in the last record\'s length field are a StorageCorruptionError, not a torn write', () =>
  withDirectory(async (directory) => {
    const { storage } = await openCollecting(directory, { preallocateBytes: 8192 });
    for (let slot = 1; slot <= 3; slot += 1) await storage.append([{ type: 'accept', slot, ballot: B1, value: commandsValue(B1, new Uint8Array(40).fill(slot)) }]);
    await storage.close();
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    const lastOffset = (await frameOffsets(path))[2] ?? 0;
    const pristine = await readFile(path);
    // The length grows by 0x300: the frame seems to run on into the zeros, as a cut-short write would.
    const bytes = Buffer.from(pristine);
    bytes[lastOffset + 1] = (bytes[lastOffset + 1] ?? 0) ^ 0x03;
    await writeFile(path, bytes);
    await assertRefusedUntouched(directory, path, lastOffset, pristine.length, 'length bits 8 and 9');
  }));

test('file storage: an append refused for a too-large record writes nothing, and later appends and a reopen stay consistent', () =>
  withDirectory(async (directory) => {
    const { storage } = await openCollecting(directory, { recordBytesMax: 4096 });
    await storage.append([{ type: 'accept', slot: 1, ballot: B1, value: { type: 'noop' } }]);
    await assert.rejects(
      storage.append([
        { type: 'accept', slot: 2, ballot: B1, value: { type: 'noop' } },
        { type: 'accept', slot: 3, ballot: B1, value: commandsValue(B1, new Uint8Array(8000).fill(1)) },
      ]),
      StorageUsageError,
    );
    assert.equal([...storage.state().entries].length, 1, 'the refused append changed nothing');
    for (let slot = 2; slot <= 5; slot += 1) await storage.append([{ type: 'accept', slot, ballot: B1, value: commandsValue(B1, Uint8Array.of(slot)) }]);
    const before = storage.state();
    await storage.close();
    const { storage: reopened, warnings } = await openCollecting(directory, { recordBytesMax: 4096 });
    assert.deepStrictEqual(warnings, []);
    assertSameState(reopened.state(), before);
    await reopened.append([{ type: 'accept', slot: 6, ballot: B1, value: { type: 'noop' } }]);
    const after = reopened.state();
    await reopened.close();
    const again = await openCollecting(directory, { recordBytesMax: 4096 });
    assert.deepStrictEqual(again.warnings, []);
    assertSameState(again.storage.state(), after);
    await again.storage.close();
  }));

test('file storage: garbage after the last record is not a torn write (a write leaves a prefix or zeros): StorageCorruptionError', () =>
  withDirectory(async (directory) => {
    for (const tail of [Buffer.from('garbage!garbage!garbage!'), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), Buffer.from([0, 0, 0, 0, 0, 0, 9])]) {
      await rm(directory, { recursive: true, force: true });
      await writeAccepts(directory, 3);
      const [path] = await segmentPaths(directory);
      assert.ok(path !== undefined);
      const size = (await stat(path)).size;
      await appendFile(path, tail);
      await assert.rejects(openCollecting(directory), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptionError, String(error));
        assert.equal(error.file, path);
        assert.equal(error.offset, size);
        assert.match(error.message, /not a torn write/);
        return true;
      });
    }
  }));

test('file storage: every single-bit flip in the last record (length, checksum or payload) is a StorageCorruptionError, never truncated', () =>
  withDirectory(async (directory) => {
    await writeAccepts(directory, 4);
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    const pristine = await readFile(path);
    const lastOffset = (await frameOffsets(path))[3] ?? 0;
    for (let offset = lastOffset; offset < pristine.length; offset += 1) {
      for (let bit = 0; bit < 8; bit += 1) {
        const bytes = Buffer.from(pristine);
        bytes[offset] = (bytes[offset] ?? 0) ^ (1 << bit);
        await writeFile(path, bytes);
        await assert.rejects(openCollecting(directory), (error: unknown) => {
          assert.ok(error instanceof StorageCorruptionError, `byte ${offset} bit ${bit}: ${String(error)}`);
          assert.equal(error.offset, lastOffset, `byte ${offset} bit ${bit}`);
          return true;
        });
        assert.equal((await stat(path)).size, pristine.length, 'nothing truncated');
      }
    }
  }));

test('file storage: a bit flip in a middle record is a StorageCorruptionError naming file and offset', () =>
  withDirectory(async (directory) => {
    await writeAccepts(directory, 6);
    const [path] = await segmentPaths(directory);
    assert.ok(path !== undefined);
    const offsets = await frameOffsets(path);
    const badOffset = offsets[2] ?? 0;
    await flipBit(path, badOffset + FRAME_HEADER_BYTES + 2);
    await assert.rejects(openCollecting(directory), (error: unknown) => {
      assert.ok(error instanceof StorageCorruptionError);
      assert.equal(error.file, path);
      assert.equal(error.offset, badOffset);
      assert.match(error.message, new RegExp(`${path}.*offset ${badOffset}`));
      return true;
    });
  }));

test('file storage: a corrupt length field in the middle (too large, or past the end) is fatal, not a torn tail', () =>
  withDirectory(async (directory) => {
    for (const length of [0xfffffff0, 17 * 1024 * 1024, 5000]) {
      await rm(directory, { recursive: true, force: true });
      await writeAccepts(directory, 6);
      const [path] = await segmentPaths(directory);
      assert.ok(path !== undefined);
      const bytes = await readFile(path);
      const badOffset = (await frameOffsets(path))[1] ?? 0;
      bytes.writeUInt32LE(length, badOffset);
      await writeFile(path, bytes);
      await assert.rejects(openCollecting(directory), StorageCorruptionError);
    }
  }));

test('file storage: segments rotate at segmentBytesMax and recovery replays across them', () =>
  withDirectory(async (directory) => {
    const options = { segmentBytesMax: 1024 };
    const before = await writeAccepts(directory, 200, options);
    const paths = await segmentPaths(directory);
    assert.ok(paths.length > 5, `expected several segments, got ${paths.length}`);
    for (const path of paths) assert.ok((await stat(path)).size <= 1024);
    const { storage, warnings } = await openCollecting(directory, options);
    assert.deepStrictEqual(warnings, []);
    assertSameState(storage.state(), before);
    await storage.close();
  }));

test('file storage: corruption in a sealed (non-last) segment is fatal even at its end', () =>
  withDirectory(async (directory) => {
    await writeAccepts(directory, 100, { segmentBytesMax: 1024 });
    const paths = await segmentPaths(directory);
    const sealed = paths[1];
    assert.ok(sealed !== undefined && paths.length > 2);
    await truncate(sealed, (await stat(sealed)).size - 1);
    await assert.rejects(openCollecting(directory), (error: unknown) => {
      assert.ok(error instanceof StorageCorruptionError);
      assert.equal(error.file, sealed);
      return true;
    });
  }));

test('file storage: a missing segment is fatal', () =>
  withDirectory(async (directory) => {
    await writeAccepts(directory, 100, { segmentBytesMax: 1024 });
    const paths = await segmentPaths(directory);
    await rm(paths[1] ?? '');
    await assert.rejects(openCollecting(directory), StorageCorruptionError);
  }));

test('file storage: a log can start at a slot above 1, kept across reopen', () =>
  withDirectory(async (directory) => {
    const { storage } = await openCollecting(directory, { firstSlot: 100 });
    assert.equal(storage.firstSlot, 100);
    await assert.rejects(storage.append([{ type: 'accept', slot: 99, ballot: B1, value: { type: 'noop' } }]), StorageUsageError);
    await storage.append([{ type: 'accept', slot: 100, ballot: B1, value: { type: 'noop' } }]);
    await storage.close();
    const reopened = await openCollecting(directory);
    assert.equal(reopened.storage.firstSlot, 100);
    assert.deepStrictEqual(sortedEntries(reopened.storage.state()).map((entry) => entry.slot), [100]);
    await reopened.storage.close();
    await assert.rejects(openCollecting(directory, { firstSlot: 5 }), StorageUsageError);
  }));

test('file storage: property: random record sequences round-trip through close and reopen', () =>
  withDirectory(async (directory) => {
    await fc.assert(
      fc.asyncProperty(recordBatchesArbitrary(), fc.integer({ min: 256, max: 8192 }), async (batches, segmentBytesMax) => {
        const propertyDirectory = await mkdtemp(join(directory, 'run-'));
        try {
          const expected = new MemoryLogStore();
          const { storage } = await openCollecting(propertyDirectory, { segmentBytesMax });
          try {
            await Promise.all(batches.map((batch) => storage.append(batch)));
            for (const record of batches.flat()) expected.apply(record);
            assertSameState(storage.state(), expected.state());
          } finally {
            await storage.close();
          }
          const reopened = await openCollecting(propertyDirectory, { segmentBytesMax });
          try {
            assert.deepStrictEqual(reopened.warnings, []);
            assertSameState(reopened.storage.state(), expected.state());
          } finally {
            await reopened.storage.close();
          }
        } finally {
          await rm(propertyDirectory, { recursive: true, force: true }); // keep the disk small across runs
        }
      }),
      { numRuns: 40 },
    );
  }));

/**
 * Batches of records the store accepts: promises never decrease (each is the running maximum) and
 * a chosen mark without a value only names a slot an earlier record filled.
 */
function recordBatchesArbitrary(): fc.Arbitrary<PersistRecord[][]> {
  const ballot = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }).map((value) => value as Ballot);
  const command = fc.record({
    clientId: fc.string({ maxLength: 12 }),
    seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    payload: fc.uint8Array({ maxLength: 300 }),
  }).map((fields) => ({ ...fields })); // fc.record builds null-prototype objects; decoding builds plain ones
  const value: fc.Arbitrary<EntryValue> = fc.oneof(
    fc.constant({ type: 'noop' as const }),
    ballot.map((epoch) => ({ type: 'start-working' as const, epoch })),
    fc.tuple(ballot, fc.array(command, { maxLength: 4 })).map(([epoch, commands]) => ({
      type: 'commands' as const,
      epoch,
      commands,
    })),
  );
  const slot = fc.integer({ min: 1, max: 20 });
  const raw = fc.oneof(
    ballot.map((b): PersistRecord => ({ type: 'promise', ballot: b })),
    fc.tuple(slot, ballot, value).map(([s, b, v]): PersistRecord => ({ type: 'accept', slot: s, ballot: b, value: v })),
    fc.tuple(slot, ballot, value).map(([s, b, v]): PersistRecord => ({ type: 'chosen', slot: s, ballot: b, value: v })),
    fc.tuple(slot, ballot).map(([s, b]): PersistRecord => ({ type: 'chosen', slot: s, ballot: b })),
  );
  return fc.array(fc.array(raw, { maxLength: 8 }), { maxLength: 12 }).map(makeReplayable);
}

/** Rewrites generated records so that the store accepts them in order. */
function makeReplayable(batches: PersistRecord[][]): PersistRecord[][] {
  let promised = 0;
  const filled = new Set<number>();
  return batches.map((batch) =>
    batch.map((record): PersistRecord => {
      if (record.type === 'promise') {
        promised = Math.max(promised, record.ballot);
        return { type: 'promise', ballot: promised as Ballot };
      }
      if (record.type === 'chosen' && record.value === undefined && !filled.has(record.slot)) {
        return { type: 'accept', slot: record.slot, ballot: record.ballot, value: { type: 'noop' } };
      }
      filled.add(record.slot);
      return record;
    }),
  );
}

test('file storage: a round that someone waits for syncs on the calling thread; a lazy-only round goes to the thread pool', () =>
  withDirectory(async (directory) => {
    // A lazy round (a leader's own acceptances) blocking the event loop for a write + fdatasync
    // would delay the proposals and answers that are waited for.
    const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
    const original = fs.fdatasyncSync;
    let blocking = 0;
    fs.fdatasyncSync = (fd: number) => {
      blocking += 1;
      original(fd);
    };
    syncBuiltinESMExports();
    try {
      const { storage } = await openCollecting(directory);
      const accept = (slot: number): PersistRecord => ({ type: 'accept', slot, ballot: B1, value: commandsValue(B1, Uint8Array.of(slot)) });
      await storage.append([accept(1)], 'sync');
      assert.equal(blocking, 1, 'a sync round fdatasyncs on the calling thread');
      const before = storage.stats.fsyncs;
      await storage.append([accept(2)], 'lazy');
      assert.equal(storage.stats.fsyncs, before + 1, 'the lazy round ran');
      assert.equal(blocking, 1, 'a lazy round fdatasyncs on the thread pool');
      await storage.close();
      const { storage: reopened } = await openCollecting(directory);
      assert.deepStrictEqual(sortedEntries(reopened.state()).map((entry) => entry.slot), [1, 2]);
      await reopened.close();
    } finally {
      fs.fdatasyncSync = original;
      syncBuiltinESMExports();
    }
  }));

test('file storage: entry() reads values back from sealed and open segments; a damaged frame is a typed error', () =>
  withDirectory(async (directory) => {
    const { storage } = await openCollecting(directory, { segmentBytesMax: 1024, preallocateBytes: 0 });
    const marker = (slot: number): Uint8Array => Uint8Array.from({ length: 24 }, (_, index) => (slot * 7 + index) % 256);
    for (let slot = 1; slot <= 60; slot += 1) {
      await storage.append([{ type: 'accept', slot, ballot: B1, value: commandsValue(B1, marker(slot)) }]);
      if (slot % 2 === 0) await storage.append([{ type: 'chosen', slot, ballot: B1 }]);
    }
    const segments = (await readdir(directory)).filter((name) => name.endsWith('.log')).sort();
    assert.ok(segments.length > 3, `the entries span several segments (${segments.length})`);
    // Out of order, so reads hop between segment files.
    for (const slot of [60, 1, 33, 2, 59, 17]) {
      assert.deepStrictEqual(storage.entry(slot), { slot, ballot: B1, value: commandsValue(B1, marker(slot)), chosen: slot % 2 === 0 });
    }
    // Damage slot 5's payload in its (sealed) segment: the read-back names file and offset, and is not a wrong value.
    const needle = Buffer.from(marker(5));
    let damaged = 0;
    for (const name of segments) {
      const path = join(directory, name);
      const bytes = await readFile(path);
      const at = bytes.indexOf(needle);
      if (at < 0) continue;
      bytes[at + 3] = (bytes[at + 3] ?? 0) ^ 0xff;
      await writeFile(path, bytes);
      damaged += 1;
      assert.throws(() => storage.entry(5), (error: unknown) => error instanceof StorageCorruptionError && error.file === path && /reading back slot 5: frame checksum mismatch/.test(error.message));
    }
    assert.equal(damaged, 1, 'slot 5 was found on disk and damaged');
    assert.deepStrictEqual(storage.entry(6)?.value, commandsValue(B1, marker(6)), 'the other entries still read back');
    await storage.close();
    assert.throws(() => storage.entry(6), StorageUsageError);
  }));

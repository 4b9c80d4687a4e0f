/**
 * Fuzzing the write-ahead log reader: real logs written by `FileStorage` (several segments), then
 * damaged on disk — bit flips, zeroed ranges, truncation, garbage or zeros appended, a segment
 * removed — and reopened. The outcome must be a typed `StorageCorruptionError` naming a segment
 * file, or the exact state of a prefix of the records written that loses nothing undamaged: all
 * of them when the damage touched no record, and only records at or after the damage when the
 * damage reaches the end of the log (a torn tail). Damage a crash can cause (the last segment cut
 * anywhere, zeros after it) must open. Never another exception, never a record that differs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { makeBallot, type Ballot } from '../../src/core/ballot.js';
import type { EntryValue, LogEntry, PersistRecord } from '../../src/core/multipaxos/types.js';
import { StorageCorruptionError } from '../../src/storage/errors.js';
import { FileStorage } from '../../src/storage/file.js';
import { MemoryLogStore } from '../../src/storage/memory.js';
import { SECTOR_BYTES, SEGMENT_HEADER_BYTES, frameBytes } from '../../src/storage/segment.js';
import { fuzzParameters, fuzzSeed, seededRandom } from './mutate.js';

const quiet = { warn: () => {} };

/** A state as comparable JSON: the promise and the entries by slot. */
function stateKey(state: { promised: number; entries: Iterable<LogEntry> }): string {
  const entries = [...state.entries].sort((left, right) => left.slot - right.slot);
  return JSON.stringify({ promised: state.promised, entries }, (_key, value: unknown) => (value instanceof Uint8Array ? [...value] : value));
}

/** Records a replica could write, in an order the store accepts (promises rise, marks name filled slots). */
function recordsFor(seed: number, count: number): PersistRecord[] {
  const random = seededRandom(seed);
  const records: PersistRecord[] = [];
  let round = 1;
  const filled = new Set<number>();
  const value = (ballot: Ballot): EntryValue => {
    const kind = random();
    if (kind < 0.2) return { type: 'noop' };
    if (kind < 0.35) return { type: 'start-working', epoch: ballot };
    const commands = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, index) => ({
      clientId: `c${Math.floor(random() * 4)}`, seq: index + Math.floor(random() * 100),
      payload: Uint8Array.from({ length: Math.floor(random() * 120) }, () => Math.floor(random() * 256)),
    }));
    return { type: 'commands', epoch: ballot, commands };
  };
  while (records.length < count) {
    const ballot = makeBallot(round, 1 + Math.floor(random() * 3));
    const kind = random();
    const slot = 1 + Math.floor(random() * 24);
    if (kind < 0.1) {
      round += 1;
      records.push({ type: 'promise', ballot: makeBallot(round, 1) });
    } else if (kind < 0.7) {
      records.push({ type: 'accept', slot, ballot, value: value(ballot) });
      filled.add(slot);
    } else if (kind < 0.85 || !filled.has(slot)) {
      records.push({ type: 'chosen', slot, ballot, value: value(ballot) });
      filled.add(slot);
    } else {
      records.push({ type: 'chosen', slot, ballot });
    }
  }
  return records;
}

/** Where one written record's frame sits. */
interface FrameSpan {
  readonly segment: number;
  readonly start: number;
  readonly end: number;
}

/** A written log: its directory, segment files (in order), frames, and the state after each prefix. */
interface BaseLog {
  readonly directory: string;
  readonly names: readonly string[];
  readonly files: readonly Buffer[];
  readonly frames: readonly FrameSpan[];
  /** stateKeys[k] is the state after the first k records. */
  readonly stateKeys: readonly string[];
}

async function writeBase(root: string, seed: number): Promise<BaseLog> {
  const random = seededRandom(seed);
  const directory = await mkdtemp(join(root, 'base-'));
  const records = recordsFor(seed, 24 + Math.floor(random() * 30));
  // Half the bases preallocate (the last segment then ends in zeros), half end at their last record.
  const preallocateBytes = random() < 0.5 ? 0 : 512 * (1 + Math.floor(random() * 4));
  const storage = await FileStorage.open(directory, { segmentBytesMax: 300 + Math.floor(random() * 1500), preallocateBytes, logger: quiet });
  const expected = new MemoryLogStore();
  const stateKeys = [stateKey(expected.state())];
  for (let index = 0; index < records.length;) {
    const batch = records.slice(index, index + 1 + Math.floor(random() * 4));
    await storage.append(batch);
    index += batch.length;
  }
  await storage.close();
  for (const record of records) {
    expected.apply(record);
    stateKeys.push(stateKey(expected.state()));
  }
  const names = (await readdir(directory)).filter((name) => name.endsWith('.log')).sort();
  const files = await Promise.all(names.map((name) => readFile(join(directory, name))));
  const frames: FrameSpan[] = [];
  files.forEach((bytes, segment) => {
    // A zero length ends the records: what follows is preallocated space.
    for (let offset = SEGMENT_HEADER_BYTES; offset + 4 <= bytes.length && bytes.readUInt32LE(offset) !== 0; offset += frameBytes(bytes.readUInt32LE(offset))) {
      frames.push({ segment, start: offset, end: offset + frameBytes(bytes.readUInt32LE(offset)) });
    }
  });
  assert.equal(frames.length, records.length, 'one frame per record');
  assert.ok(names.length >= 2, 'the base log spans several segments');
  return { directory, names, files, frames, stateKeys };
}

/** One kind of damage. Positions are taken modulo the file length. */
type Damage =
  | { readonly kind: 'flip'; readonly segment: number; readonly at: number; readonly bit: number }
  | { readonly kind: 'zero'; readonly segment: number; readonly at: number; readonly length: number }
  | { readonly kind: 'truncate'; readonly segment: number; readonly at: number }
  | { readonly kind: 'append'; readonly segment: number; readonly bytes: Uint8Array }
  | { readonly kind: 'remove'; readonly segment: number }
  | { readonly kind: 'torn-tail'; readonly at: number }
  | { readonly kind: 'torn-in-place'; readonly at: number }
  | { readonly kind: 'zeros-after-tail'; readonly length: number };

const damageArbitrary: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), segment: fc.nat(), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('zero' as const), segment: fc.nat(), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('truncate' as const), segment: fc.nat(), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), segment: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 200 }) }),
  fc.record({ kind: fc.constant('remove' as const), segment: fc.nat() }),
  fc.record({ kind: fc.constant('torn-tail' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('torn-in-place' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('zeros-after-tail' as const), length: fc.integer({ min: 1, max: 4096 }) }),
);

/**
 * What the damage did: the segment and byte range it touched (in the original file), and
 * whether a crash could have left it (then the log must open).
 */
interface Applied {
  readonly segment: number;
  readonly from: number;
  readonly to: number;
  readonly crashShaped: boolean;
  /**
   * Whether the reopened log may hold fewer records than were written: a crash cut its tail, or
   * zeros cover the last frame's trailer (the last record then reads as a write that never
   * completed, which no reader can tell from one). Any other damage loses nothing or is refused.
   */
  readonly mayDrop: boolean;
  /** The whole segment is gone. */
  readonly removed: boolean;
}

async function applyDamage(base: BaseLog, directory: string, damage: Damage): Promise<Applied | null> {
  const last = base.files.length - 1;
  const segment = 'segment' in damage ? damage.segment % base.files.length : last;
  const original = base.files[segment];
  assert.ok(original !== undefined);
  const path = join(directory, base.names[segment] ?? '');
  const bytes = Buffer.from(original);
  switch (damage.kind) {
    case 'flip': {
      const at = damage.at % bytes.length;
      bytes[at] = (bytes[at] ?? 0) ^ (1 << damage.bit);
      await writeFile(path, bytes);
      return { segment, from: at, to: at + 1, crashShaped: false, mayDrop: false, removed: false };
    }
    case 'zero': {
      const at = damage.at % bytes.length;
      const to = Math.min(bytes.length, at + damage.length);
      if (bytes.subarray(at, to).every((byte) => byte === 0)) return null; // changes nothing
      bytes.fill(0, at, to);
      await writeFile(path, bytes);
      const lastFrame = base.frames.at(-1);
      const coversTrailer = lastFrame !== undefined && lastFrame.segment === segment && at <= lastFrame.end - 1 && lastFrame.end - 1 < to;
      return { segment, from: at, to, crashShaped: false, mayDrop: coversTrailer, removed: false };
    }
    case 'truncate':
    case 'torn-tail': {
      const at = damage.at % bytes.length;
      await writeFile(path, bytes.subarray(0, at));
      // A crash leaves the LAST segment cut anywhere after its header (created whole, then appended).
      const crashShaped = segment === last && at >= SEGMENT_HEADER_BYTES;
      return { segment, from: at, to: bytes.length, crashShaped, mayDrop: crashShaped, removed: false };
    }
    case 'torn-in-place': {
      // The last segment's writes from a sector boundary on never landed (the file keeps its size,
      // as a preallocated one does): whole sectors read back as zeros.
      const at = Math.max(SEGMENT_HEADER_BYTES, Math.floor((damage.at % bytes.length) / SECTOR_BYTES) * SECTOR_BYTES);
      if (at >= bytes.length || bytes.subarray(at).every((byte) => byte === 0)) return null; // changes nothing
      bytes.fill(0, at);
      await writeFile(path, bytes);
      return { segment, from: at, to: bytes.length, crashShaped: true, mayDrop: true, removed: false };
    }
    case 'append':
      await writeFile(path, Buffer.concat([bytes, damage.bytes]));
      return { segment, from: bytes.length, to: bytes.length, crashShaped: false, mayDrop: false, removed: false };
    case 'zeros-after-tail':
      await writeFile(path, Buffer.concat([bytes, Buffer.alloc(damage.length)]));
      return { segment, from: bytes.length, to: bytes.length, crashShaped: true, mayDrop: false, removed: false };
    case 'remove':
      // Losing the whole last segment looks exactly like a log that ended earlier: not detectable
      // without a record of the log's end elsewhere (left out; see the README).
      if (segment === last) return null;
      await unlink(path);
      return { segment, from: 0, to: bytes.length, crashShaped: false, mayDrop: false, removed: true };
  }
}

/** The states a reopen may return after `applied`, as prefix lengths. */
function allowedPrefixes(base: BaseLog, applied: Applied): { minimum: number; maximum: number } {
  const total = base.frames.length;
  if (!applied.mayDrop) return { minimum: total, maximum: total };
  // Records wholly before the damage, in log order, must all survive.
  const before = base.frames.filter((frame) => frame.segment < applied.segment || (frame.segment === applied.segment && frame.end <= applied.from)).length;
  // Any undamaged record after the damage means nothing may be dropped at all.
  const intactAfter = base.frames.some((frame) => frame.segment > applied.segment || (frame.segment === applied.segment && !applied.removed && frame.start >= applied.to && frame.start >= applied.from));
  const touched = base.frames.some((frame) => frame.segment === applied.segment && frame.start < applied.to && frame.end > applied.from);
  if (intactAfter || !touched) return { minimum: total, maximum: total };
  return { minimum: before, maximum: total };
}

async function reopenCase(base: BaseLog, root: string, damage: Damage): Promise<void> {
  const directory = await mkdtemp(join(root, 'case-'));
  try {
    await cp(base.directory, directory, { recursive: true });
    const applied = await applyDamage(base, directory, damage);
    if (applied === null) return;
    let storage: FileStorage;
    try {
      storage = await FileStorage.open(directory, { logger: quiet });
    } catch (error) {
      if (!(error instanceof StorageCorruptionError)) throw new Error(`${JSON.stringify(damage)}: ${String(error)}`, { cause: error });
      assert.ok(base.names.some((name) => error.file === join(directory, name)), `the error names a segment: ${error.file}`);
      assert.ok(!applied.crashShaped, `damage a crash leaves must open, got: ${error.message}`);
      return;
    }
    try {
      const key = stateKey(storage.state());
      const prefix = base.stateKeys.indexOf(key);
      // Several prefixes can share a state; any one in range will do.
      const { minimum, maximum } = allowedPrefixes(base, applied);
      const matches = base.stateKeys.map((candidate, index) => (candidate === key ? index : -1)).filter((index) => index >= minimum && index <= maximum);
      assert.ok(prefix >= 0, `${JSON.stringify(damage)}: the reopened state is no prefix of what was written`);
      assert.ok(matches.length > 0, `${JSON.stringify(damage)}: reopened as prefix ${prefix}, allowed ${minimum}..${maximum} of ${base.frames.length}`);
    } finally {
      await storage.close();
    }
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

test('wal fuzz: damaged logs reopen as an exact, loss-free prefix or fail with a typed error naming the file', async () => {
  const root = await mkdtemp(join(tmpdir(), 'synod-wal-fuzz-'));
  try {
    for (const seed of [11, 12, 13, 14]) {
      const base = await writeBase(root, fuzzSeed(seed));
      const parameters = fuzzParameters<[Damage]>(40);
      await fc.assert(fc.asyncProperty(damageArbitrary, (damage) => reopenCase(base, root, damage)), { ...parameters, seed: (parameters.seed ?? 0) + seed });
      // Control: the undamaged log reopens whole.
      const storage = await FileStorage.open(base.directory, { logger: quiet });
      assert.equal(stateKey(storage.state()), base.stateKeys.at(-1));
      await storage.close();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

/** Copies the bytes of one written frame to another frame boundary (a misdirected or replayed write). */
async function duplicateFrame(base: BaseLog, directory: string, which: number, where: number): Promise<void> {
  const frame = base.frames[which % base.frames.length];
  const target = base.frames[where % base.frames.length];
  assert.ok(frame !== undefined && target !== undefined);
  const copy = (base.files[frame.segment] ?? Buffer.alloc(0)).subarray(frame.start, frame.end);
  const bytes = base.files[target.segment] ?? Buffer.alloc(0);
  await writeFile(join(directory, base.names[target.segment] ?? ''), Buffer.concat([bytes.subarray(0, target.end), copy, bytes.subarray(target.end)]));
}

test('wal fuzz: a whole record duplicated at a record boundary is detected', async () => {
  const root = await mkdtemp(join(tmpdir(), 'synod-wal-dup-'));
  try {
    const base = await writeBase(root, 21);
    await fc.assert(fc.asyncProperty(fc.nat(), fc.nat(), async (which, where) => {
      const directory = await mkdtemp(join(root, 'case-'));
      try {
        await cp(base.directory, directory, { recursive: true });
        await duplicateFrame(base, directory, which, where);
        let storage: FileStorage;
        try {
          storage = await FileStorage.open(directory, { logger: quiet });
        } catch (error) {
          assert.ok(error instanceof StorageCorruptionError, String(error));
          return;
        }
        try {
          assert.equal(stateKey(storage.state()), base.stateKeys.at(-1), 'a duplicate is refused or changes nothing');
        } finally {
          await storage.close();
        }
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    }), fuzzParameters(30));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

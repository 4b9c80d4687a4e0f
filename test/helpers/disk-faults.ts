/**
 * Disk-fault injection for a stopped node's data directory (import-safe: no tests here).
 *
 * - `walLayout` reads the write-ahead log as the node wrote it: segment files, their headers, and
 *   every frame with its offset and decoded record, so a fault can aim at log records, at the
 *   acceptor's metadata (its `promise` records) or at file metadata (a segment header).
 * - `flipBit` and `tearWrite` damage fsync'd bytes: a flipped bit, or a run of bytes of an earlier
 *   write that never reached the medium (read back as zeros). `planFault` picks one from a seed.
 * - `powerLossPoint` records, at the moment of a simulated power loss, how far a running node had
 *   fdatasync'd (`FileStorage.durableEnd`) and how far it had written; `powerLoss` later cuts the
 *   stopped node's log back to that point, deleting segments created after it, and leaves what a
 *   real power loss can leave of the writes issued before the moment but not yet fsync'd: nothing,
 *   a prefix of them, or zeros. Never bytes written after the moment: a node's later writes can
 *   depend on other nodes' writes that the same power loss erased.
 */
import { readFileSync } from 'node:fs';
import { readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { PersistRecord } from '../../src/core/multipaxos/types.js';
import type { Prng } from '../../src/core/prng.js';
import { decodeRecord } from '../../src/storage/codec.js';
import { SECTOR_BYTES, SEGMENT_HEADER_BYTES, decodeSegmentHeader, parseSegmentName, scanFrames } from '../../src/storage/segment.js';
import { RECORD_BYTES_MAX_DEFAULT } from '../../src/storage/file.js';

/** One frame of a segment file. */
export interface WalFrame {
  readonly file: string;
  /** Offset of the frame header in `file`. */
  readonly offset: number;
  /** Frame bytes, header included. */
  readonly byteLength: number;
  readonly record: PersistRecord;
  /** True for the last frame of the last segment (the ambiguous case for a torn write). */
  readonly last: boolean;
}

export interface WalLayout {
  /** Segment files in log order. */
  readonly segments: readonly string[];
  readonly frames: readonly WalFrame[];
}

/** Reads the log of `walDirectory` (for a data directory: `<dir>/wal`). Throws if it is not intact. */
export async function walLayout(walDirectory: string): Promise<WalLayout> {
  const segments = (await readdir(walDirectory))
    .filter((name) => parseSegmentName(name) !== null)
    .sort()
    .map((name) => join(walDirectory, name));
  const frames: WalFrame[] = [];
  for (const [index, file] of segments.entries()) {
    const bytes = new Uint8Array(await readFile(file));
    const header = decodeSegmentHeader(bytes);
    if (typeof header === 'string') throw new Error(`walLayout: ${file}: ${header}`);
    const scan = scanFrames(bytes, SEGMENT_HEADER_BYTES, RECORD_BYTES_MAX_DEFAULT, header.format, header.firstSequence);
    const preallocated = index === segments.length - 1 && bytes.subarray(scan.validEndOffset).every((byte) => byte === 0);
    if (scan.problem !== null && !preallocated) throw new Error(`walLayout: ${file} is not intact at ${scan.validEndOffset}: ${scan.problem}`);
    scan.frames.forEach(({ offset, end, payload }, frameIndex) => {
      const last = index === segments.length - 1 && frameIndex === scan.frames.length - 1;
      frames.push({ file, offset, byteLength: end - offset, record: decodeRecord(payload), last });
    });
  }
  return { segments, frames };
}

/** Where a fault lands. */
export type FaultTarget =
  /** An accept or chosen record (the log proper), not the last one. */
  | 'record'
  /** A promise record: the acceptor's metadata. */
  | 'promise'
  /** The header of a segment file: file metadata (magic, version, first sequence and slot). */
  | 'segment-header'
  /** The last record of the log: complete and maybe acknowledged, so never dropped as a torn tail. */
  | 'last-record';

export type FaultKind = 'bit-flip' | 'torn-write';

/** A planned fault and where the node must report it. */
export interface PlannedFault {
  readonly target: FaultTarget;
  readonly kind: FaultKind;
  readonly file: string;
  /** First byte changed. */
  readonly offset: number;
  /** Bit flipped (bit-flip) or bytes zeroed (torn-write). */
  readonly bit: number;
  readonly byteLength: number;
  /** The offset the node must name: the damaged frame's, or 0 for a segment header. */
  readonly reportedOffset: number;
  readonly description: string;
}

/**
 * Picks, from `random`, a fault of `kind` on `target` in `layout`. A torn write zeroes a run of an
 * earlier write that holds at least one non-zero byte (else nothing would change), starting after
 * the first byte of its frame: zeros from a frame boundary to the end of the file would be exactly
 * what an unfinished write leaves, which recovery rightly truncates.
 */
export async function planFault(layout: WalLayout, target: FaultTarget, kind: FaultKind, random: Prng): Promise<PlannedFault> {
  if (target === 'segment-header') {
    const file = layout.segments[random.int(0, layout.segments.length)] as string;
    const bytes = await readFile(file);
    const span = { start: 0, end: SEGMENT_HEADER_BYTES };
    return plan(target, kind, file, bytes, span, 0, random);
  }
  const candidates = layout.frames.filter((frame) => {
    if (target === 'last-record') return frame.last;
    if (frame.last) return false;
    return target === 'promise' ? frame.record.type === 'promise' : frame.record.type !== 'promise';
  });
  if (candidates.length === 0) throw new Error(`planFault: no ${target} frame in the log`);
  const frame = candidates[random.int(0, candidates.length)] as WalFrame;
  const bytes = await readFile(frame.file);
  return plan(target, kind, frame.file, bytes, { start: frame.offset, end: frame.offset + frame.byteLength }, frame.offset, random);
}

function plan(target: FaultTarget, kind: FaultKind, file: string, bytes: Buffer, span: { start: number; end: number }, reportedOffset: number, random: Prng): PlannedFault {
  const where = `${basename(file)} ${target} at [${span.start}, ${span.end})`;
  if (kind === 'bit-flip') {
    const offset = random.int(span.start, span.end);
    const bit = random.int(0, 8);
    return { target, kind, file, offset, bit, byteLength: 1, reportedOffset, description: `bit ${bit} of byte ${offset} in ${where}` };
  }
  // Bounded: a frame or header always holds a non-zero byte (its length, magic or checksum).
  for (let attempt = 0; attempt < 1000; attempt += 1) {
    const offset = random.int(span.start + 1, span.end);
    const byteLength = random.int(1, Math.min(64, span.end - offset) + 1);
    // The last record is followed by zeros (preallocated space): zeros up to its end (its trailer
    // byte included) would read as whole sectors that never landed, a torn write. Damage that
    // recovery can tell from one keeps a non-zero byte of the record after the zeroed run.
    const keepsTail = target !== 'last-record' || bytes.subarray(offset + byteLength, span.end).some((byte) => byte !== 0);
    if (keepsTail && bytes.subarray(offset, offset + byteLength).some((byte) => byte !== 0)) {
      return { target, kind, file, offset, bit: 0, byteLength, reportedOffset, description: `${byteLength} bytes zeroed at ${offset} in ${where}` };
    }
  }
  throw new Error(`planFault: no non-zero byte to tear in ${where}`);
}

/** Applies a planned fault to the (stopped) node's file. */
export async function injectFault(fault: PlannedFault): Promise<void> {
  if (fault.kind === 'bit-flip') await flipBit(fault.file, fault.offset, fault.bit);
  else await tearWrite(fault.file, fault.offset, fault.byteLength);
}

/** Flips bit `bit` (0–7) of the byte at `offset`. */
export async function flipBit(file: string, offset: number, bit: number): Promise<void> {
  const bytes = await readFile(file);
  if (offset >= bytes.length) throw new Error(`flipBit: offset ${offset} is past the end of ${file}`);
  bytes[offset] = (bytes[offset] ?? 0) ^ (1 << bit);
  await writeFile(file, bytes);
}

/** Zeroes `byteLength` bytes at `offset`: part of an earlier write that never reached the medium. */
export async function tearWrite(file: string, offset: number, byteLength: number): Promise<void> {
  const bytes = await readFile(file);
  if (offset + byteLength > bytes.length) throw new Error(`tearWrite: [${offset}, ${offset + byteLength}) is past the end of ${file}`);
  bytes.fill(0, offset, offset + byteLength);
  await writeFile(file, bytes);
}

/**
 * What is left, past the last fsync point, of the write that was in progress when power went:
 * nothing (the file cut there), a prefix of it, as many zeros, or (`in-place`) the file keeps its
 * size, preallocated zeros and all, and the unfinished write landed in order up to a sector
 * boundary (the sectors after it read back as zeros).
 */
export type UnfinishedWrite = 'nothing' | 'prefix' | 'zeros' | 'in-place';

/** The state of one node's log at the moment of a simulated power loss. */
export interface PowerLossPoint {
  readonly file: string;
  /** Where the last completed fdatasync ended: everything before survives. */
  readonly durableLength: number;
  /** How far the file had been written (to the page cache): the bytes past `durableLength` may survive. */
  readonly writtenLength: number;
}

/** Records, synchronously (call it at the moment the power goes), where `storage` stands. */
export function powerLossPoint(storage: { durableEnd(): { readonly file: string; readonly byteLength: number } }): PowerLossPoint {
  const { file, byteLength } = storage.durableEnd();
  // The file may be longer than what was written: zeros written ahead (preallocation). What was
  // written ends at its last non-zero byte; later writes into the zeros must not count.
  const bytes = readFileSync(file);
  let written = bytes.length;
  while (written > byteLength && bytes[written - 1] === 0) written -= 1;
  return { file, durableLength: byteLength, writtenLength: written };
}

/**
 * Simulates, on the stopped node, a power loss at the moment `point` was recorded: segments after
 * `point.file` vanish, and `point.file` keeps its fsync'd bytes plus, per `unfinished`, a random
 * prefix of the bytes written but not fsync'd by then, or as many zeros, or (`in-place`) keeps its
 * size with a sector-aligned prefix of those bytes landed. Returns the bytes cut.
 */
export async function powerLoss(point: PowerLossPoint, unfinished: UnfinishedWrite, random: Prng): Promise<number> {
  const directory = dirname(point.file);
  const current = parseSegmentName(basename(point.file));
  if (current === null) throw new Error(`powerLoss: ${point.file} is not a segment`);
  let cut = 0;
  for (const name of await readdir(directory)) {
    const sequence = parseSegmentName(name);
    if (sequence !== null && sequence > current) {
      cut += (await readFile(join(directory, name))).length;
      await rm(join(directory, name));
    }
  }
  const bytes = await readFile(point.file);
  if (unfinished === 'in-place') {
    const start = Math.ceil(point.durableLength / SECTOR_BYTES) * SECTOR_BYTES;
    const end = Math.ceil(point.writtenLength / SECTOR_BYTES) * SECTOR_BYTES;
    const landed = end > start ? start + SECTOR_BYTES * random.int(0, (end - start) / SECTOR_BYTES + 1) : start;
    // Bytes past the fsync point within its sector: that sector was written again (from the page
    // cache) and either holds the new bytes or the old, never a mix; here, the new. Everything
    // after what landed reads as zeros, including what the node wrote after the moment.
    const keptEnd = Math.max(point.durableLength, Math.min(landed, point.writtenLength));
    let writtenEnd = bytes.length;
    while (writtenEnd > keptEnd && bytes[writtenEnd - 1] === 0) writtenEnd -= 1;
    bytes.fill(0, keptEnd);
    await writeFile(point.file, bytes);
    return cut + (writtenEnd - keptEnd);
  }
  cut += bytes.length - point.durableLength;
  await truncate(point.file, point.durableLength);
  const unsynced = bytes.subarray(point.durableLength, point.writtenLength);
  if (unsynced.length === 0 || unfinished === 'nothing') return cut;
  const kept = random.int(1, unsynced.length + 1);
  const tail = unfinished === 'prefix' ? unsynced.subarray(0, kept) : Buffer.alloc(kept);
  await writeFile(point.file, Buffer.concat([bytes.subarray(0, point.durableLength), tail]));
  return cut - kept;
}

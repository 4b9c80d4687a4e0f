/**
 * Recovery of a write-ahead log directory on open: replay every segment in sequence order into a
 * `MemoryLogStore`, repairing only what a crash can leave behind.
 *
 * - Zeros after the last record of the LAST segment are space written ahead of the records
 *   (preallocation), or a file that grew before its data landed: no records, nothing to repair.
 * - A bad frame at the tail of the LAST segment, with no valid frame after it, that can only be a
 *   write that never completed — the file (or its written part, before whole zero sectors) ends
 *   inside the frame — is a torn
 *   write of records that were never acknowledged (an append resolves only after its fdatasync,
 *   and a node reveals a record only after that). The file is truncated to the last good frame,
 *   fsync'd, and the repair reported through `logger.warn`.
 * - Any other bad frame is corruption of records that may have been acknowledged:
 *   `StorageCorruptionError` naming file and offset. That includes the ambiguous case of a bad
 *   LAST record that is complete (its whole payload is in the file) but fails its checksum, or
 *   whose length field is damaged: a torn write leaves a prefix of the frame or zeros, never a
 *   complete frame with other bytes, so such a frame was written in full and may have been
 *   fsync'd and acknowledged — say, a promise a proposer counted on. Dropping it could make this
 *   acceptor break that promise, and two values could be chosen for one slot. So the node refuses
 *   to start and an operator rebuilds it from its peers (`synod start --rejoin`), which is safe
 *   whatever the log held (see `segment.ts`, `damagedRecordReason`).
 *
 * Known limits. A power loss may persist the pages of the final, never-acknowledged batch out of
 * order, leaving a hole followed by valid bytes: that reads as corruption and stops the node
 * (fail-safe: an operator decides) rather than being repaired automatically. A disk that loses
 * fsync'd data exactly at a record boundary at the end of the log (whole records, or the whole
 * last segment file) is not detectable here: the log then looks like one that ended earlier.
 */
import { open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InvariantError } from '../core/assert.js';
import { decodeRecord } from './codec.js';
import { StorageCorruptionError, StorageDecodeError } from './errors.js';
import { MemoryLogStore } from './memory.js';
import {
  SEGMENT_HEADER_BYTES,
  damagedRecordReason,
  zeroTailStart,
  decodeSegmentHeader,
  findValidFrame,
  parseSegmentName,
  scanFrames,
} from './segment.js';

/** Where warnings about repaired damage go (a torn tail truncated on open). */
export interface StorageLogger {
  warn(message: string): void;
}

/** The state of a log directory after replay. */
export interface RecoveredLog {
  readonly store: MemoryLogStore;
  /** Null when the directory holds no segment yet (a new log). */
  readonly firstSlot: number | null;
  /** Sequence number the next appended record gets. */
  readonly nextSequence: number;
  /** The segment new records go to, with its valid length; null for a new log. */
  readonly lastSegment: { readonly path: string; readonly firstSequence: number; readonly byteLength: number } | null;
}

/** Replays the log in `directory`; see the module comment for what is repaired and what is fatal. */
export async function recoverLog(directory: string, recordBytesMax: number, logger: StorageLogger): Promise<RecoveredLog> {
  const names = await listSegments(directory);
  const store = new MemoryLogStore();
  let firstSlot: number | null = null;
  let nextSequence = 0;
  let lastSegment: RecoveredLog['lastSegment'] = null;
  for (const [index, { name, firstSequence }] of names.entries()) {
    const path = join(directory, name);
    const bytes = new Uint8Array(await readFile(path));
    const header = decodeSegmentHeader(bytes);
    if (typeof header === 'string') throw new StorageCorruptionError(path, 0, header);
    if (header.firstSequence !== firstSequence || firstSequence !== nextSequence) {
      throw new StorageCorruptionError(path, 0, `segment starts at record ${header.firstSequence}, expected ${nextSequence}`);
    }
    if (firstSlot !== null && header.firstSlot !== firstSlot) {
      throw new StorageCorruptionError(path, 0, `segment first slot ${header.firstSlot} differs from ${firstSlot}`);
    }
    firstSlot = header.firstSlot;
    const isLast = index === names.length - 1;
    const replayed = await replaySegment({ path, bytes, isLast, recordBytesMax, logger, store, firstSlot });
    nextSequence += replayed.records;
    lastSegment = { path, firstSequence, byteLength: replayed.byteLength };
  }
  return { store, firstSlot, nextSequence, lastSegment };
}

interface SegmentReplay {
  readonly path: string;
  readonly bytes: Uint8Array;
  readonly isLast: boolean;
  readonly recordBytesMax: number;
  readonly logger: StorageLogger;
  readonly store: MemoryLogStore;
  readonly firstSlot: number;
}

/**
 * Applies one segment's frames; truncates a torn tail of the last segment. The last segment may
 * end in zeros written ahead of its records (`FileStorage` preallocates): an all-zero tail after
 * the last record is space, kept as it is and not reported. Where a torn write left part of a
 * record before such zeros, the zeros from the first whole zero sector on are that space and the
 * bytes before them are judged as if the file ended there (a prefix of a record: torn; anything
 * else: corruption). A sector is written whole or not at all, so the unwritten part of a torn
 * write is whole sectors of zeros.
 */
async function replaySegment(segment: SegmentReplay): Promise<{ records: number; byteLength: number }> {
  const { path, bytes, recordBytesMax } = segment;
  const scan = scanFrames(bytes, SEGMENT_HEADER_BYTES, recordBytesMax);
  let torn = false;
  if (scan.problem !== null) {
    const at = scan.validEndOffset;
    if (!segment.isLast) throw new StorageCorruptionError(path, at, `${scan.problem} in a sealed segment`);
    const written = bytes.subarray(0, zeroTailStart(bytes, at));
    torn = written.byteLength > at;
    if (torn) {
      const validAfter = findValidFrame(written, at + 1, recordBytesMax);
      if (validAfter !== null) {
        throw new StorageCorruptionError(path, at, `${scan.problem}, followed by a valid frame at offset ${validAfter}`);
      }
      const damaged = damagedRecordReason(written, at, recordBytesMax);
      if (damaged !== null) throw new StorageCorruptionError(path, at, `${damaged}; not a torn write`);
    }
  }
  for (const { offset, payload } of scan.frames) applyFrame(segment, offset, payload);
  if (torn) {
    const droppedBytes = bytes.byteLength - scan.validEndOffset;
    await truncateFile(path, scan.validEndOffset);
    segment.logger.warn(
      `storage: truncated torn tail of ${path} at byte offset ${scan.validEndOffset} ` +
        `(${droppedBytes} bytes dropped: ${scan.problem})`,
    );
  }
  return { records: scan.frames.length, byteLength: scan.validEndOffset };
}

function applyFrame(segment: SegmentReplay, offset: number, payload: Uint8Array): void {
  try {
    const record = decodeRecord(payload);
    if (record.type !== 'promise' && record.slot < segment.firstSlot) {
      throw new StorageDecodeError(`slot ${record.slot} below the log's first slot ${segment.firstSlot}`);
    }
    segment.store.apply(record);
  } catch (error) {
    // The checksum matched, so these bytes are what was written: a record that does not decode or
    // apply means a bug or a foreign file, and replaying past it would rebuild the wrong state.
    if (error instanceof StorageDecodeError || error instanceof InvariantError) {
      throw new StorageCorruptionError(segment.path, offset, `record does not replay: ${error.message}`);
    }
    throw error;
  }
}

/** Segment files in sequence order; removes leftovers of an interrupted segment creation. */
async function listSegments(directory: string): Promise<{ name: string; firstSequence: number }[]> {
  const segments: { name: string; firstSequence: number }[] = [];
  for (const name of await readdir(directory)) {
    if (name.endsWith('.log.tmp')) {
      await unlink(join(directory, name)); // never renamed into place, so it holds no records
      continue;
    }
    const firstSequence = parseSegmentName(name);
    if (firstSequence !== null) segments.push({ name, firstSequence });
  }
  return segments.sort((left, right) => left.firstSequence - right.firstSequence);
}

async function truncateFile(path: string, byteLength: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(byteLength);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

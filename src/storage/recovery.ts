/**
 * Recovery of a write-ahead log directory on open: replay every segment in sequence order into a
 * `MemoryLogStore` (the state a restarted replica starts from) and a `WalIndex` (where each
 * slot's entry is on disk, which the adapter keeps), repairing only what a crash can leave behind.
 *
 * - Zeros after the last record of the LAST segment are space written ahead of the records
 *   (preallocation), or a file that grew before its data landed: no records, nothing to repair.
 * - A bad frame at the tail of the LAST segment, with no valid frame after it, that can only be a
 *   write that never completed — the written bytes end inside the frame, where they end at the
 *   file's end or (version 2 segments) before the whole zero sectors that end the file — is a torn
 *   write of records that were never acknowledged (an append resolves only after its fdatasync,
 *   and a node reveals a record only after that). The file is truncated to the last good frame,
 *   fsync'd, and the repair reported through `logger.warn`.
 * - Any other bad frame is corruption of records that may have been acknowledged:
 *   `StorageCorruptionError` naming file and offset. That includes the ambiguous case of a bad
 *   LAST record that is complete (its whole frame is in the written bytes) but fails its checks,
 *   or whose length field is damaged: a torn write leaves a prefix of the frame or zeros, never a
 *   complete frame with other bytes, so such a frame was written in full and may have been
 *   fsync'd and acknowledged — say, a promise a proposer counted on. Dropping it could make this
 *   acceptor break that promise, and two values could be chosen for one slot. So the node refuses
 *   to start and an operator rebuilds it from its peers (`synod start --rejoin`), which is safe
 *   whatever the log held (see `segment.ts`, `damagedRecordReason`).
 *
 * Known limits. A power loss may persist the sectors of the final, never-acknowledged batch out of
 * order, leaving a hole followed by written bytes: that reads as corruption and stops the node
 * (fail-safe: an operator decides) rather than being repaired automatically. Records written into
 * preallocated space overwrite blocks the file already has, so this is likelier there than for
 * appends (which ext4's ordered mode keeps from exposing unwritten blocks); it needs a power loss
 * (not a process crash) during a write of more than one page. A disk that loses fsync'd data
 * exactly at a record boundary at the end of the log (whole records, or the whole last segment
 * file), or that reads back the end of the last record as whole sectors of zeros, is not
 * detectable here: the log then looks like one that ended earlier, or was torn.
 */
import { open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InvariantError } from '../core/assert.js';
import { decodeRecord } from './codec.js';
import { StorageCorruptionError, StorageDecodeError } from './errors.js';
import { MemoryLogStore } from './memory.js';
import { WalIndex } from './wal-index.js';
import {
  type FrameFormat,
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
  /** The same records, located: null when the directory holds no segment yet. */
  readonly index: WalIndex | null;
  /** The segment files in order (ordinal = position), with their frame format. */
  readonly segments: readonly { readonly path: string; readonly format: FrameFormat }[];
  /** Null when the directory holds no segment yet (a new log). */
  readonly firstSlot: number | null;
  /** Sequence number the next appended record gets. */
  readonly nextSequence: number;
  /** The segment new records go to, with its valid length; null for a new log. */
  readonly lastSegment: { readonly path: string; readonly firstSequence: number; readonly byteLength: number; readonly version: 1 | 2 } | null;
}

/** Replays the log in `directory`; see the module comment for what is repaired and what is fatal. */
export async function recoverLog(directory: string, recordBytesMax: number, logger: StorageLogger): Promise<RecoveredLog> {
  const names = await listSegments(directory);
  const store = new MemoryLogStore();
  let index: WalIndex | null = null;
  const segments: { path: string; format: FrameFormat }[] = [];
  let firstSlot: number | null = null;
  let nextSequence = 0;
  let lastSegment: RecoveredLog['lastSegment'] = null;
  for (const [ordinal, { name, firstSequence }] of names.entries()) {
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
    const isLast = ordinal === names.length - 1;
    const { format } = header;
    index ??= new WalIndex(firstSlot);
    segments.push({ path, format });
    const replayed = await replaySegment({ path, bytes, format, firstSequence, isLast, recordBytesMax, logger, store, index, ordinal, firstSlot });
    nextSequence += replayed.records;
    lastSegment = { path, firstSequence, byteLength: replayed.byteLength, version: format.version };
  }
  return { store, index, segments, firstSlot, nextSequence, lastSegment };
}

interface SegmentReplay {
  readonly path: string;
  readonly bytes: Uint8Array;
  readonly format: FrameFormat;
  readonly firstSequence: number;
  readonly isLast: boolean;
  readonly recordBytesMax: number;
  readonly logger: StorageLogger;
  readonly store: MemoryLogStore;
  readonly index: WalIndex;
  /** This segment's position among the log's segment files. */
  readonly ordinal: number;
  readonly firstSlot: number;
}

/**
 * Applies one segment's frames; truncates a torn tail of the last segment. The last segment may
 * end in zeros written ahead of its records (`FileStorage` preallocates): an all-zero tail after
 * the last record is space, kept as it is and not reported. Where a torn write left part of a
 * record before such zeros, the zeros from the first whole zero sector on are that space (a sector
 * is written whole or not at all, so the unwritten part of a torn write is whole sectors of zeros)
 * and the bytes before them are judged as if the file ended there: a prefix of a record is torn,
 * anything else corruption. That judgement needs version 2 frames, which end in a non-zero byte
 * (see `segment.ts`); in a version 1 segment only an all-zero tail is space.
 */
async function replaySegment(segment: SegmentReplay): Promise<{ records: number; byteLength: number }> {
  const { path, bytes, recordBytesMax, format } = segment;
  const scan = scanFrames(bytes, SEGMENT_HEADER_BYTES, recordBytesMax, format, segment.firstSequence);
  let tornBytes = 0;
  if (scan.problem !== null) {
    const at = scan.validEndOffset;
    if (!segment.isLast) throw new StorageCorruptionError(path, at, `${scan.problem} in a sealed segment`);
    const writtenEnd = format.version === 2 ? zeroTailStart(bytes, at) : bytes.every((byte, index) => index < at || byte === 0) ? at : bytes.byteLength;
    tornBytes = writtenEnd - at;
    if (tornBytes > 0) {
      const validAfter = findValidFrame(bytes, at + 1, recordBytesMax, format);
      if (validAfter !== null) {
        throw new StorageCorruptionError(path, at, `${scan.problem}, followed by a valid frame at offset ${validAfter}`);
      }
      const damaged = damagedRecordReason(bytes.subarray(0, writtenEnd), at, recordBytesMax, format);
      if (damaged !== null) throw new StorageCorruptionError(path, at, `${damaged}; not a torn write`);
    }
  }
  for (const { offset, end, payload } of scan.frames) applyFrame(segment, offset, end - offset, payload);
  if (tornBytes > 0) {
    await truncateFile(path, scan.validEndOffset);
    segment.logger.warn(
      `storage: truncated torn tail of ${path} at byte offset ${scan.validEndOffset} ` +
        `(${tornBytes} bytes of an unfinished write dropped: ${scan.problem})`,
    );
  }
  return { records: scan.frames.length, byteLength: scan.validEndOffset };
}

function applyFrame(segment: SegmentReplay, offset: number, frameBytes: number, payload: Uint8Array): void {
  try {
    const record = decodeRecord(payload);
    if (record.type !== 'promise' && record.slot < segment.firstSlot) {
      throw new StorageDecodeError(`slot ${record.slot} below the log's first slot ${segment.firstSlot}`);
    }
    segment.store.apply(record);
    segment.index.apply(record, segment.ordinal, offset, frameBytes);
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

/** Cuts the file at `path` to `byteLength` and makes the new size durable. */
export async function truncateFile(path: string, byteLength: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(byteLength);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The on-disk layout of write-ahead log segments.
 *
 * A log is a directory of segment files `wal-<firstSequence, 20 digits>.log`, where a record's
 * sequence number is its position in the whole log (0-based). Zero padding makes name order equal
 * numeric order. Each segment is:
 *
 *     header (32 bytes, written once before the segment becomes visible)
 *       [0, 8)   magic "SYNODWAL"
 *       [8, 12)  format version, u32 LE
 *       [12, 16) CRC-32C of bytes [16, 32), u32 LE
 *       [16, 24) first sequence number, u64 LE
 *       [24, 32) first slot of the log, u64 LE (the same in every segment)
 *     frames, back to back:
 *       [u32 LE payload length][u32 LE CRC-32C of payload][payload: one encoded PersistRecord]
 */
import { crc32c } from './crc32.js';
import { mayStartRecord } from './codec.js';

export const SEGMENT_HEADER_BYTES = 32;
export const FRAME_HEADER_BYTES = 8;
const MAGIC = 'SYNODWAL';
const FORMAT_VERSION = 1;
const SEGMENT_NAME = /^wal-(\d{20})\.log$/;

/** What a segment header says. */
export interface SegmentHeader {
  readonly firstSequence: number;
  readonly firstSlot: number;
}

/** The file name of the segment whose first record has sequence number `firstSequence`. */
export function segmentName(firstSequence: number): string {
  return `wal-${String(firstSequence).padStart(20, '0')}.log`;
}

/** The first sequence number a segment file name encodes, or null if it is not a segment name. */
export function parseSegmentName(name: string): number | null {
  const match = SEGMENT_NAME.exec(name);
  if (match === null || match[1] === undefined) return null;
  const firstSequence = Number(match[1]);
  return Number.isSafeInteger(firstSequence) ? firstSequence : null;
}

export function encodeSegmentHeader(header: SegmentHeader): Uint8Array {
  const bytes = new Uint8Array(SEGMENT_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, FORMAT_VERSION, true);
  view.setBigUint64(16, BigInt(header.firstSequence), true);
  view.setBigUint64(24, BigInt(header.firstSlot), true);
  view.setUint32(12, crc32c(bytes, 16, SEGMENT_HEADER_BYTES), true);
  return bytes;
}

/** Decodes a segment header; returns a reason string when the header is not valid. */
export function decodeSegmentHeader(bytes: Uint8Array): SegmentHeader | string {
  if (bytes.byteLength < SEGMENT_HEADER_BYTES) return 'segment shorter than its header';
  const view = new DataView(bytes.buffer, bytes.byteOffset, SEGMENT_HEADER_BYTES);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return 'bad segment magic';
  if (view.getUint32(8, true) !== FORMAT_VERSION) return `unknown format version ${view.getUint32(8, true)}`;
  if (view.getUint32(12, true) !== crc32c(bytes, 16, SEGMENT_HEADER_BYTES)) return 'segment header checksum mismatch';
  const firstSequence = Number(view.getBigUint64(16, true));
  const firstSlot = Number(view.getBigUint64(24, true));
  if (!Number.isSafeInteger(firstSequence) || !Number.isSafeInteger(firstSlot) || firstSlot < 1) {
    return 'segment header fields out of range';
  }
  return { firstSequence, firstSlot };
}

/** Frames one encoded record: header and payload in one buffer, ready for a single write. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  const view = new DataView(frame.buffer);
  view.setUint32(0, payload.byteLength, true);
  view.setUint32(4, crc32c(payload), true);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** Result of reading the frames of one segment buffer. */
export interface FrameScan {
  /** Payloads (views into the buffer) of the valid frames, in order, with their offsets. */
  readonly frames: readonly { readonly offset: number; readonly payload: Uint8Array }[];
  /** Offset just past the last valid frame. */
  readonly validEndOffset: number;
  /** Why reading stopped before the end of the buffer, or null if every byte was a valid frame. */
  readonly problem: string | null;
}

/** Reads frames from `startOffset` until the end of `bytes` or the first invalid frame. */
export function scanFrames(bytes: Uint8Array, startOffset: number, recordBytesMax: number): FrameScan {
  const frames: { offset: number; payload: Uint8Array }[] = [];
  let offset = startOffset;
  // Bounded: every iteration advances `offset` by at least one frame header.
  while (offset < bytes.byteLength) {
    const problem = frameProblem(bytes, offset, recordBytesMax);
    if (problem !== null) return { frames, validEndOffset: offset, problem };
    const length = readUint32(bytes, offset);
    frames.push({ offset, payload: bytes.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length) });
    offset += FRAME_HEADER_BYTES + length;
  }
  return { frames, validEndOffset: offset, problem: null };
}

/** Why the frame at `offset` is not valid, or null if it is. */
function frameProblem(bytes: Uint8Array, offset: number, recordBytesMax: number): string | null {
  if (offset + FRAME_HEADER_BYTES > bytes.byteLength) return 'frame header runs past the end of the file';
  const length = readUint32(bytes, offset);
  // Length 0 is never written; it is what a zero-filled tail (a crash after the file grew) reads as.
  if (length === 0) return 'frame length is zero';
  if (length > recordBytesMax) return `frame length ${length} exceeds recordBytesMax ${recordBytesMax}`;
  const payloadStart = offset + FRAME_HEADER_BYTES;
  if (payloadStart + length > bytes.byteLength) return 'frame payload runs past the end of the file';
  if (readUint32(bytes, offset + 4) !== crc32c(bytes, payloadStart, payloadStart + length)) {
    return 'frame checksum mismatch';
  }
  return null;
}

/**
 * The offset of the first valid frame at or after `fromOffset`, or null. Recovery uses it to tell
 * a torn tail (nothing valid follows the bad frame) from corruption in the middle (valid frames
 * follow, so acknowledged records would be lost by truncating). `mayStartRecord` filters candidate
 * offsets cheaply before the checksum.
 */
export function findValidFrame(bytes: Uint8Array, fromOffset: number, recordBytesMax: number): number | null {
  const lastHeaderOffset = bytes.byteLength - FRAME_HEADER_BYTES - 1;
  for (let offset = fromOffset; offset <= lastHeaderOffset; offset += 1) {
    if (!mayStartRecord(bytes[offset + FRAME_HEADER_BYTES] ?? 0)) continue;
    if (frameProblem(bytes, offset, recordBytesMax) === null) return offset;
  }
  return null;
}

/**
 * Decides what the invalid bytes from `offset` (the first bad frame at the end of the last
 * segment, with no valid frame after it) can be. Returns null when they can only be a write that
 * never completed, hence never acknowledged: the file ends inside the frame (a prefix of what was
 * being written), or everything from `offset` is zero (the file grew before its data landed).
 * Returns a reason otherwise: the bytes could be a complete record that was fsync'd and then
 * damaged (a flipped bit, a bad sector), which must not be dropped silently:
 * - a complete frame (its payload lies inside the file) whose checksum fails;
 * - a zero length followed by non-zero bytes (a torn write leaves a prefix or zeros, not this);
 * - a length above `recordBytesMax` (no write, whole or partial, produces one);
 * - a frame whose payload runs past the end, but whose bytes up to the end of the file, or up to
 *   the length with any one bit changed, match the stored checksum: a complete record with a
 *   damaged length field.
 */
export function damagedRecordReason(bytes: Uint8Array, offset: number, recordBytesMax: number): string | null {
  const end = bytes.byteLength;
  if (offset + 4 > end) return null; // the file ends inside the length field
  const length = readUint32(bytes, offset);
  if (length === 0) {
    for (let index = offset; index < end; index += 1) {
      if (bytes[index] !== 0) return `a zero length field followed by non-zero bytes at offset ${index}`;
    }
    return null;
  }
  if (length > recordBytesMax) return `frame length ${length} exceeds recordBytesMax ${recordBytesMax}`;
  if (offset + FRAME_HEADER_BYTES > end) return null; // the file ends inside the checksum field
  const payloadStart = offset + FRAME_HEADER_BYTES;
  const storedChecksum = readUint32(bytes, offset + 4);
  if (payloadStart + length <= end) {
    return 'a complete frame fails its checksum (a damaged record that may have been acknowledged)';
  }
  const candidates = new Set<number>([end - payloadStart]);
  for (let bit = 0; bit < 32; bit += 1) candidates.add((length ^ (1 << bit)) >>> 0);
  for (const candidate of candidates) {
    if (candidate <= 0 || payloadStart + candidate > end) continue;
    if (crc32c(bytes, payloadStart, payloadStart + candidate) === storedChecksum) {
      return `a complete record of ${candidate} bytes with a damaged length field (${length})`;
    }
  }
  return null; // the payload was cut short: a write that never completed
}

/** The unit a disk writes whole: a torn write leaves whole sectors unwritten. */
export const SECTOR_BYTES = 512;

/**
 * Where the zeros that end `bytes` begin, at or after `fromOffset`: `fromOffset` when every byte
 * from it is zero; else the first sector boundary (of the file) after its last non-zero byte,
 * capped at the end. The bytes from there on are space no write reached.
 */
export function zeroTailStart(bytes: Uint8Array, fromOffset: number): number {
  let last = bytes.byteLength - 1;
  while (last >= fromOffset && bytes[last] === 0) last -= 1;
  if (last < fromOffset) return fromOffset;
  return Math.min(bytes.byteLength, Math.ceil((last + 1) / SECTOR_BYTES) * SECTOR_BYTES);
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0, true);
}

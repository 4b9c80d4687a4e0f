/**
 * The on-disk layout of write-ahead log segments.
 *
 * A log is a directory of segment files `wal-<firstSequence, 20 digits>.log`, where a record's
 * sequence number is its position in the whole log (0-based). Zero padding makes name order equal
 * numeric order. Each segment is:
 *
 *     header (32 bytes, written once before the segment becomes visible)
 *       [0, 8)   magic "SYNODWAL"
 *       [8, 12)  format version, u32 LE (2; version 1 segments are still read)
 *       [12, 16) CRC-32C of bytes [16, 32), u32 LE
 *       [16, 24) first sequence number, u64 LE
 *       [24, 32) first slot of the log, u64 LE (the same in every segment)
 *     frames, back to back (version 2):
 *       [0, 4)   payload length n, u32 LE
 *       [4, 8)   CRC-32C of bytes [8, 16 + n), u32 LE: the sequence number and the payload
 *       [8, 16)  the record's sequence number, u64 LE
 *       [16, 16 + n) payload: one encoded PersistRecord
 *       [16 + n] trailer byte 0xA5
 *
 * Why the sequence number: a whole valid frame copied to another record boundary (a misdirected
 * or replayed write) would otherwise replay as a genuine record. Why the trailer: every frame ends
 * in a non-zero byte, so the zeros after the last record (space written ahead, see `file.ts`) are
 * never part of a complete frame, and recovery can tell a record cut short by a torn write (its
 * end lies in zeros no write reached) from a complete record that was damaged (see
 * `damagedRecordReason`). Version 1 frames were [length][CRC-32C of payload][payload]; a version
 * 1 segment is read by the rules that held for it (no zeros are judged as unwritten sectors) and
 * sealed when the log is opened, so new frames always go to a version 2 segment.
 */
import { crc32c, crc32cFirstMatchingEnd } from './crc32.js';
import { mayStartRecord } from './codec.js';

export const SEGMENT_HEADER_BYTES = 32;
/** Bytes before the payload in a frame of the current format. */
export const FRAME_HEADER_BYTES = 16;
/** Bytes after the payload in a frame of the current format. */
export const FRAME_TRAILER_BYTES = 1;
export const FRAME_TRAILER = 0xa5;
const MAGIC = 'SYNODWAL';
export const FORMAT_VERSION = 2;

/** How the frames of one segment are laid out, by its format version. */
export interface FrameFormat {
  readonly version: 1 | 2;
  readonly headerBytes: number;
  readonly trailerBytes: number;
}

const FORMATS: Readonly<Record<1 | 2, FrameFormat>> = {
  1: { version: 1, headerBytes: 8, trailerBytes: 0 },
  2: { version: 2, headerBytes: FRAME_HEADER_BYTES, trailerBytes: FRAME_TRAILER_BYTES },
};

/** The frame format of segment format `version`. */
export function frameFormat(version: 1 | 2): FrameFormat {
  return FORMATS[version];
}

/** Bytes a frame of the current format takes for a payload of `payloadBytes`. */
export function frameBytes(payloadBytes: number): number {
  return FRAME_HEADER_BYTES + payloadBytes + FRAME_TRAILER_BYTES;
}
const SEGMENT_NAME = /^wal-(\d{20})\.log$/;

/** What a segment header says. */
export interface SegmentHeader {
  readonly firstSequence: number;
  readonly firstSlot: number;
}

/** A decoded segment header: its fields and the format its frames follow. */
export interface DecodedSegmentHeader extends SegmentHeader {
  readonly format: FrameFormat;
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
export function decodeSegmentHeader(bytes: Uint8Array): DecodedSegmentHeader | string {
  if (bytes.byteLength < SEGMENT_HEADER_BYTES) return 'segment shorter than its header';
  const view = new DataView(bytes.buffer, bytes.byteOffset, SEGMENT_HEADER_BYTES);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return 'bad segment magic';
  const version = view.getUint32(8, true);
  if (version !== 1 && version !== 2) return `unknown format version ${version}`;
  if (view.getUint32(12, true) !== crc32c(bytes, 16, SEGMENT_HEADER_BYTES)) return 'segment header checksum mismatch';
  const firstSequence = Number(view.getBigUint64(16, true));
  const firstSlot = Number(view.getBigUint64(24, true));
  if (!Number.isSafeInteger(firstSequence) || !Number.isSafeInteger(firstSlot) || firstSlot < 1) {
    return 'segment header fields out of range';
  }
  return { firstSequence, firstSlot, format: frameFormat(version) };
}

/** Frames one encoded record as record `sequence` of the log, ready for a single write. */
export function encodeFrame(payload: Uint8Array, sequence: number): Uint8Array {
  const frame = new Uint8Array(frameBytes(payload.byteLength));
  frame.set(payload, FRAME_HEADER_BYTES);
  return sealFrame(frame, sequence);
}

/**
 * Completes a frame whose payload already sits at `FRAME_HEADER_BYTES` and fills the rest of
 * `frame` but for the trailer byte: writes the length, the sequence number, the trailer and the
 * checksum. Returns `frame`.
 */
export function sealFrame(frame: Uint8Array, sequence: number): Uint8Array {
  const payloadBytes = frame.byteLength - FRAME_HEADER_BYTES - FRAME_TRAILER_BYTES;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setUint32(0, payloadBytes, true);
  view.setBigUint64(8, BigInt(sequence), true);
  frame[FRAME_HEADER_BYTES + payloadBytes] = FRAME_TRAILER;
  view.setUint32(4, crc32c(frame, 8, FRAME_HEADER_BYTES + payloadBytes), true);
  return frame;
}

/** Result of reading the frames of one segment buffer. */
export interface FrameScan {
  /** Payloads (views into the buffer) of the valid frames, in order, with their offsets and ends. */
  readonly frames: readonly { readonly offset: number; readonly end: number; readonly payload: Uint8Array }[];
  /** Offset just past the last valid frame. */
  readonly validEndOffset: number;
  /** Why reading stopped before the end of the buffer, or null if every byte was a valid frame. */
  readonly problem: string | null;
}

/**
 * Reads frames of `format` from `startOffset` until the end of `bytes` or the first invalid frame;
 * the first is record `firstSequence` of the log (version 2 frames must carry their number).
 */
export function scanFrames(bytes: Uint8Array, startOffset: number, recordBytesMax: number, format: FrameFormat, firstSequence: number): FrameScan {
  const frames: { offset: number; end: number; payload: Uint8Array }[] = [];
  let offset = startOffset;
  // Bounded: every iteration advances `offset` by at least one frame header.
  while (offset < bytes.byteLength) {
    const problem = frameProblem(bytes, offset, recordBytesMax, format, firstSequence + frames.length);
    if (problem !== null) return { frames, validEndOffset: offset, problem };
    const payloadStart = offset + format.headerBytes;
    const payloadEnd = payloadStart + readUint32(bytes, offset);
    const end = payloadEnd + format.trailerBytes;
    frames.push({ offset, end, payload: bytes.subarray(payloadStart, payloadEnd) });
    offset = end;
  }
  return { frames, validEndOffset: offset, problem: null };
}

/**
 * The payload of `bytes` read back as one whole frame of `format` (any sequence number), or why
 * it is not a valid frame.
 */
export function readWholeFrame(bytes: Uint8Array, recordBytesMax: number, format: FrameFormat): Uint8Array | string {
  const problem = frameProblem(bytes, 0, recordBytesMax, format, null);
  if (problem !== null) return problem;
  const length = readUint32(bytes, 0);
  if (format.headerBytes + length + format.trailerBytes !== bytes.byteLength) return 'frame length does not match the indexed frame';
  return bytes.subarray(format.headerBytes, format.headerBytes + length);
}

/**
 * Why the frame at `offset` is not valid, or null if it is. `sequence` is the record number it
 * must carry, or null to accept any (a search for valid frames after damage).
 */
function frameProblem(bytes: Uint8Array, offset: number, recordBytesMax: number, format: FrameFormat, sequence: number | null): string | null {
  if (offset + format.headerBytes > bytes.byteLength) return 'frame header runs past the end of the file';
  const length = readUint32(bytes, offset);
  // Length 0 is never written; it is what a zero-filled tail (a crash after the file grew) reads as.
  if (length === 0) return 'frame length is zero';
  if (length > recordBytesMax) return `frame length ${length} exceeds recordBytesMax ${recordBytesMax}`;
  const payloadStart = offset + format.headerBytes;
  if (payloadStart + length + format.trailerBytes > bytes.byteLength) return 'frame payload runs past the end of the file';
  if (!checksumMatches(bytes, offset, length, format)) return 'frame checksum mismatch';
  if (format.version === 1) return null;
  if (bytes[payloadStart + length] !== FRAME_TRAILER) return 'frame trailer byte is not 0xa5';
  const stored = readUint64(bytes, offset + 8);
  if (sequence !== null && stored !== sequence) return `frame holds record ${stored} where record ${sequence} belongs`;
  return null;
}

/** Whether the stored checksum of the frame at `offset` matches, taking its length as `length`. */
function checksumMatches(bytes: Uint8Array, offset: number, length: number, format: FrameFormat): boolean {
  const covered = format.version === 1 ? offset + format.headerBytes : offset + 8;
  return readUint32(bytes, offset + 4) === crc32c(bytes, covered, offset + format.headerBytes + length);
}

/**
 * The offset of the first valid frame (carrying any sequence number) at or after `fromOffset`, or
 * null. Recovery uses it to tell a torn tail (nothing valid follows the bad frame) from corruption
 * in the middle (valid frames follow, so acknowledged records would be lost by truncating).
 * `mayStartRecord` filters candidate offsets cheaply before the checksum.
 */
export function findValidFrame(bytes: Uint8Array, fromOffset: number, recordBytesMax: number, format: FrameFormat): number | null {
  const lastHeaderOffset = bytes.byteLength - format.headerBytes - 1;
  for (let offset = fromOffset; offset <= lastHeaderOffset; offset += 1) {
    if (!mayStartRecord(bytes[offset + format.headerBytes] ?? 0)) continue;
    if (frameProblem(bytes, offset, recordBytesMax, format, null) === null) return offset;
  }
  return null;
}

/**
 * Decides what the invalid bytes from `offset` (the first bad frame at the end of the last
 * segment, with no valid frame after it) can be. `bytes` ends where writes reached: for version 2,
 * before the whole zero sectors that end the file (`zeroTailStart`); for version 1, at the end of
 * the file. Returns null when the bytes can only be a write that never completed, hence never
 * acknowledged: they end inside the frame (a prefix of what was being written), or everything from
 * `offset` is zero. Returns a reason otherwise: the bytes could be a complete record that was
 * fsync'd and then damaged (a flipped bit, a bad sector), which must not be dropped silently:
 * - a complete frame (its payload, and trailer, lie inside `bytes`) that fails its checks;
 * - a zero length followed by non-zero bytes (a torn write leaves a prefix or zeros, not this);
 * - a length above `recordBytesMax` (no write, whole or partial, produces one);
 * - a frame whose payload runs past the end, but which is valid if it ends where the written bytes
 *   end (version 2: at the last non-zero byte, its trailer; version 1: anywhere from the last
 *   non-zero byte to the end of the file), or with any one bit of its length field changed: a
 *   complete record with a damaged length field.
 *
 * Version 2 frames make this sound in front of zeros: a complete frame ends in its non-zero
 * trailer, so it always lies inside `bytes`, and a record cut short is one whose end lies in zeros.
 * (A version 1 frame may end in zero bytes, so zeros cannot be judged unwritten there.)
 */
export function damagedRecordReason(bytes: Uint8Array, offset: number, recordBytesMax: number, format: FrameFormat): string | null {
  const end = bytes.byteLength;
  if (offset + 4 > end) return null; // the bytes end inside the length field
  const length = readUint32(bytes, offset);
  if (length === 0) {
    for (let index = offset; index < end; index += 1) {
      if (bytes[index] !== 0) return `a zero length field followed by non-zero bytes at offset ${index}`;
    }
    return null;
  }
  if (length > recordBytesMax) return `frame length ${length} exceeds recordBytesMax ${recordBytesMax}`;
  if (offset + format.headerBytes > end) return null; // the bytes end inside the frame header
  const payloadStart = offset + format.headerBytes;
  if (payloadStart + length + format.trailerBytes <= end) {
    return 'a complete frame fails its checks (a damaged record that may have been acknowledged)';
  }
  // Where the written bytes end: at the last non-zero byte (a version 2 frame's trailer), or, in a
  // version 1 segment, anywhere from there to the end of the file (its payload may end in zeros).
  let lastWritten = end;
  while (lastWritten > payloadStart && bytes[lastWritten - 1] === 0) lastWritten -= 1;
  const candidates = new Set<number>();
  if (format.version === 1) {
    const storedChecksum = readUint32(bytes, offset + 4);
    const matchingEnd = crc32cFirstMatchingEnd(bytes, payloadStart, Math.max(lastWritten, payloadStart + 1), end, storedChecksum);
    if (matchingEnd !== null) return `a complete record of ${matchingEnd - payloadStart} bytes with a damaged length field (${length})`;
  } else {
    candidates.add(lastWritten - format.trailerBytes - payloadStart);
  }
  for (let bit = 0; bit < 32; bit += 1) candidates.add((length ^ (1 << bit)) >>> 0);
  for (const candidate of candidates) {
    if (candidate <= 0 || payloadStart + candidate + format.trailerBytes > end) continue;
    if (!checksumMatches(bytes, offset, candidate, format)) continue;
    if (format.version === 2 && bytes[payloadStart + candidate] !== FRAME_TRAILER) continue;
    return `a complete record of ${candidate} bytes with a damaged length field (${length})`;
  }
  return null; // the payload was cut short: a write that never completed
}

/** The unit a disk writes whole: a torn write leaves whole sectors unwritten. */
export const SECTOR_BYTES = 512;

/**
 * Where the zeros that end `bytes` begin, at or after `fromOffset`: `fromOffset` when every byte
 * from it is zero; else the first sector boundary (of the file) after its last non-zero byte,
 * capped at the end. For a version 2 segment the bytes from there on are space no write reached.
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

/** A u64 LE field as a number (a sequence number past 2^53 reads as a non-matching value). */
function readUint64(bytes: Uint8Array, offset: number): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset + offset, 8).getBigUint64(0, true));
}

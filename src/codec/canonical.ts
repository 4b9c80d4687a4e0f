/**
 * A hand-written writer and reader for the canonical MessagePack subset our records use: the very
 * bytes msgpackr (`packArray`, `useRecords: false`) produces for flat arrays of non-negative safe
 * integers, strings, booleans, nil, byte arrays and nested arrays, without building the array of
 * fields first or walking a decoded value afterwards.
 *
 * They exist for the hot paths: every client request and result, on both ends, and every command
 * payload a replica applies went through msgpackr twice (pack or unpack, then a canonical re-pack
 * to compare); see README, Benchmarks. msgpackr stays the reference and the fallback: the writer
 * is only used for values it encodes byte for byte as msgpackr does (tests compare the two on
 * random values), and the reader only answers for canonical input: on anything else (a wider
 * header than needed, a float, a negative number, invalid UTF-8, bytes left over) it gives up with
 * `NOT_CANONICAL`, and the caller decodes with the general, msgpackr-based path, which decides and
 * words the error. So the fast path never accepts what the general one would refuse, nor reads a
 * value differently (tests check that on random and mutated bytes).
 *
 * The canonical forms, as msgpackr writes them: an integer in the smallest of positive fixint,
 * uint8, uint16 and uint32, and a float64 above 2^32 - 1; a string or bin with the smallest length
 * header; an array with the smallest of fixarray, array16, array32.
 */
import { Buffer } from 'node:buffer';
import { isWellFormed } from './text.js';

/** Thrown by `CanonicalReader` when input is not canonical; callers catch it and fall back. */
export const NOT_CANONICAL: unique symbol = Symbol('not canonical MessagePack');

const SCRATCH_BYTES_MIN = 64 * 1024;
/** The largest integer msgpackr writes as an unsigned integer rather than a float64. */
const UINT32_MAX = 0xffff_ffff;

/**
 * Writes one record into a shared scratch buffer and copies it out. Single-threaded and
 * synchronous: a record is begun, written and finished without yielding, so one scratch serves
 * every writer (`begin` resets it).
 */
export class CanonicalWriter {
  private scratch = Buffer.allocUnsafe(SCRATCH_BYTES_MIN);
  private offset = 0;

  /** Starts a record, leaving `prefixBytes` bytes in front of it (e.g. for a frame length). */
  begin(prefixBytes = 0): this {
    this.offset = prefixBytes;
    return this;
  }

  arrayHeader(count: number): this {
    this.ensure(5);
    const scratch = this.scratch;
    if (count < 16) {
      scratch[this.offset++] = 0x90 | count;
    } else if (count < 0x10000) {
      scratch[this.offset] = 0xdc;
      scratch.writeUInt16BE(count, this.offset + 1);
      this.offset += 3;
    } else {
      scratch[this.offset] = 0xdd;
      scratch.writeUInt32BE(count, this.offset + 1);
      this.offset += 5;
    }
    return this;
  }

  /** A non-negative safe integer (callers guarantee it; the encoders only write such fields). */
  uint(value: number): this {
    this.ensure(9);
    const scratch = this.scratch;
    if (value < 0x80) {
      scratch[this.offset++] = value;
    } else if (value < 0x100) {
      scratch[this.offset] = 0xcc;
      scratch[this.offset + 1] = value;
      this.offset += 2;
    } else if (value < 0x10000) {
      scratch[this.offset] = 0xcd;
      scratch.writeUInt16BE(value, this.offset + 1);
      this.offset += 3;
    } else if (value <= UINT32_MAX) {
      scratch[this.offset] = 0xce;
      scratch.writeUInt32BE(value, this.offset + 1);
      this.offset += 5;
    } else {
      scratch[this.offset] = 0xcb;
      scratch.writeDoubleBE(value, this.offset + 1);
      this.offset += 9;
    }
    return this;
  }

  nil(): this {
    this.ensure(1);
    this.scratch[this.offset++] = 0xc0;
    return this;
  }

  boolean(value: boolean): this {
    this.ensure(1);
    this.scratch[this.offset++] = value ? 0xc3 : 0xc2;
    return this;
  }

  /**
   * A well-formed string (callers check `isWellFormed` first: a lone surrogate has no UTF-8
   * form, and msgpackr's own output for one is what the fallback writes).
   */
  string(text: string): this {
    // Up to 3 bytes per UTF-16 unit, plus the largest header.
    this.ensure(text.length * 3 + 5);
    const scratch = this.scratch;
    const start = this.offset;
    if (text.length < 11) {
      // At most 30 bytes: a fixstr whichever characters it holds.
      const bytes = scratch.write(text, start + 1);
      scratch[start] = 0xa0 | bytes;
      this.offset = start + 1 + bytes;
      return this;
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    let header: number;
    if (bytes < 32) {
      scratch[start] = 0xa0 | bytes;
      header = 1;
    } else if (bytes < 0x100) {
      scratch[start] = 0xd9;
      scratch[start + 1] = bytes;
      header = 2;
    } else if (bytes < 0x10000) {
      scratch[start] = 0xda;
      scratch.writeUInt16BE(bytes, start + 1);
      header = 3;
    } else {
      scratch[start] = 0xdb;
      scratch.writeUInt32BE(bytes, start + 1);
      header = 5;
    }
    scratch.write(text, start + header, bytes);
    this.offset = start + header + bytes;
    return this;
  }

  stringOrNull(text: string | null): this {
    return text === null ? this.nil() : this.string(text);
  }

  /** A MessagePack bin holding `bytes`. */
  bytes(bytes: Uint8Array): this {
    const length = bytes.byteLength;
    this.binHeader(length);
    this.ensure(length);
    this.scratch.set(bytes, this.offset);
    this.offset += length;
    return this;
  }

  /**
   * Starts a bin whose contents the caller writes next (with this writer) and closes with
   * `endBin(mark)`: a nested record without a copy of its own.
   */
  beginBin(): number {
    this.ensure(2);
    const mark = this.offset;
    this.offset += 2; // room for a bin8 header, the usual size; widened in endBin if needed
    return mark;
  }

  endBin(mark: number): this {
    const length = this.offset - mark - 2;
    const header = length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
    if (header > 2) {
      this.ensure(header - 2);
      this.scratch.copyWithin(mark + header, mark + 2, this.offset);
      this.offset += header - 2;
    }
    const saved = this.offset;
    this.offset = mark;
    this.binHeader(length);
    this.offset = saved;
    return this;
  }

  /** Skips `bytes` bytes, for the caller to fill in the finished copy (e.g. a trailer). */
  space(bytes: number): this {
    this.ensure(bytes);
    this.offset += bytes;
    return this;
  }

  /** A copy of the record (prefix included), as a Buffer of its own. */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.offset);
    this.scratch.copy(out, 0, 0, this.offset);
    return out;
  }

  /** Like `finish`, with the record's length after the prefix written big-endian in the first 4 bytes. */
  finishFrame(): Buffer {
    this.scratch.writeUInt32BE(this.offset - 4, 0);
    return this.finish();
  }

  private binHeader(length: number): void {
    this.ensure(5);
    const scratch = this.scratch;
    if (length < 0x100) {
      scratch[this.offset] = 0xc4;
      scratch[this.offset + 1] = length;
      this.offset += 2;
    } else if (length < 0x10000) {
      scratch[this.offset] = 0xc5;
      scratch.writeUInt16BE(length, this.offset + 1);
      this.offset += 3;
    } else {
      scratch[this.offset] = 0xc6;
      scratch.writeUInt32BE(length, this.offset + 1);
      this.offset += 5;
    }
  }

  private ensure(bytes: number): void {
    if (this.offset + bytes <= this.scratch.byteLength) return;
    const grown = Buffer.allocUnsafe(Math.max(this.scratch.byteLength * 2, this.offset + bytes));
    this.scratch.copy(grown, 0, 0, this.offset);
    this.scratch = grown;
  }
}

/** Whether `CanonicalWriter.string` writes `value` as msgpackr would: a well-formed string. */
export function isWritableString(value: unknown): value is string {
  return typeof value === 'string' && isWellFormed(value);
}

/** Whether `CanonicalWriter.uint` writes `value` as msgpackr would: a non-negative safe integer. */
export function isWritableUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Runs `read` over all of `bytes`: its value if the input is canonical and used up; null when
 * `read` gives up (`NOT_CANONICAL`) or bytes are left over. Other errors propagate.
 */
export function readCanonical<T>(bytes: unknown, read: (reader: CanonicalReader) => T): T | null {
  if (!(bytes instanceof Uint8Array)) return null;
  try {
    const reader = new CanonicalReader(bytes);
    const value = read(reader);
    reader.end();
    return value;
  } catch (error) {
    if (error === NOT_CANONICAL) return null;
    throw error;
  }
}

/** The one writer the encoders share (see `CanonicalWriter`). */
export const canonicalWriter = new CanonicalWriter();

/**
 * Reads canonical MessagePack from `bytes[start, end)`. Every method either returns a value that
 * msgpackr would decode from the same bytes, or throws `NOT_CANONICAL`.
 */
export class CanonicalReader {
  private offset: number;
  private readonly buffer: Buffer;

  constructor(
    bytes: Uint8Array,
    start = 0,
    private readonly limit = bytes.byteLength,
  ) {
    this.buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.offset = start;
  }

  /** The element count of an array header. */
  arrayHeader(): number {
    const byte = this.byte();
    if ((byte & 0xf0) === 0x90) return byte & 0x0f;
    if (byte === 0xdc) {
      const count = this.u16();
      if (count < 16) throw NOT_CANONICAL;
      return count;
    }
    if (byte === 0xdd) {
      const count = this.u32();
      if (count < 0x10000) throw NOT_CANONICAL;
      return count;
    }
    throw NOT_CANONICAL;
  }

  /** A non-negative safe integer. */
  uint(): number {
    const byte = this.byte();
    if (byte < 0x80) return byte;
    if (byte === 0xcc) {
      const value = this.byte();
      if (value < 0x80) throw NOT_CANONICAL;
      return value;
    }
    if (byte === 0xcd) {
      const value = this.u16();
      if (value < 0x100) throw NOT_CANONICAL;
      return value;
    }
    if (byte === 0xce) {
      const value = this.u32();
      if (value < 0x10000) throw NOT_CANONICAL;
      return value;
    }
    if (byte === 0xcb) {
      this.need(8);
      const value = this.buffer.readDoubleBE(this.offset);
      this.offset += 8;
      if (!Number.isSafeInteger(value) || value <= UINT32_MAX) throw NOT_CANONICAL;
      return value;
    }
    throw NOT_CANONICAL;
  }

  /** A string of valid UTF-8. */
  string(): string {
    const byte = this.byte();
    const length = (byte & 0xe0) === 0xa0 ? byte & 0x1f : this.sizedLength(byte, 0xd9, 32);
    const start = this.take(length);
    const text = this.buffer.toString('utf8', start, start + length);
    // Invalid UTF-8 decodes to U+FFFD; so does a real U+FFFD, which the general path then reads.
    if (text.includes('\uFFFD')) throw NOT_CANONICAL;
    return text;
  }

  /** A string, or null for nil. */
  stringOrNull(): string | null {
    return this.nil() ? null : this.string();
  }

  /** A non-negative safe integer, or null for nil. */
  uintOrNull(): number | null {
    return this.nil() ? null : this.uint();
  }

  boolean(): boolean {
    const byte = this.byte();
    if (byte === 0xc3) return true;
    if (byte === 0xc2) return false;
    throw NOT_CANONICAL;
  }

  /** Whether the next value is nil (consumed if so). */
  nil(): boolean {
    if (this.peek() !== 0xc0) return false;
    this.offset += 1;
    return true;
  }

  /** The contents of a bin, as a view into the input (no copy). */
  bytes(): Uint8Array {
    const length = this.sizedLength(this.byte(), 0xc4, 0);
    const start = this.take(length);
    return new Uint8Array(this.buffer.buffer, this.buffer.byteOffset + start, length);
  }

  /** Requires that the input is used up. */
  end(): void {
    if (this.offset !== this.limit) throw NOT_CANONICAL;
  }

  /**
   * The length after a str8/16/32 or bin8/16/32 marker (`marker8` is the 8-bit one, the wider
   * ones follow it), which must need its width: at least `minimum8`, 0x100, 0x10000.
   */
  private sizedLength(byte: number, marker8: number, minimum8: number): number {
    let length: number;
    let minimum: number;
    if (byte === marker8) {
      length = this.byte();
      minimum = minimum8;
    } else if (byte === marker8 + 1) {
      length = this.u16();
      minimum = 0x100;
    } else if (byte === marker8 + 2) {
      length = this.u32();
      minimum = 0x10000;
    } else {
      throw NOT_CANONICAL;
    }
    if (length < minimum) throw NOT_CANONICAL;
    return length;
  }

  /** Skips `length` bytes of content; returns where they start. */
  private take(length: number): number {
    this.need(length);
    const start = this.offset;
    this.offset += length;
    return start;
  }

  private peek(): number {
    if (this.offset >= this.limit) throw NOT_CANONICAL;
    return this.buffer[this.offset] as number;
  }

  private byte(): number {
    if (this.offset >= this.limit) throw NOT_CANONICAL;
    return this.buffer[this.offset++] as number;
  }

  private u16(): number {
    this.need(2);
    const value = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  private u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  private need(bytes: number): void {
    if (this.offset + bytes > this.limit) throw NOT_CANONICAL;
  }
}

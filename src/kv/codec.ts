/**
 * Low-level helpers shared by the key-value codecs (operations, results, snapshots): one MessagePack
 * packer, UTF-8 accounting, and a strict field reader for decoding untrusted arrays.
 *
 * Every record goes on the wire as a flat MessagePack array of primitives (no maps, no records,
 * no extensions). Arrays of strings and integers pack to the same bytes on every platform, which
 * is what lets replicas compare digests and lets a decoder insist on the canonical encoding.
 */
import { Packr } from 'msgpackr';

/**
 * The single packer. `useRecords: false` turns off msgpackr's record extension, whose output
 * depends on which structures the packer saw before (state across calls); without it the bytes
 * depend only on the value packed.
 */
const packer = new Packr({ useRecords: false });

/** Thrown when bytes or a decoded value do not have the shape a codec expects. */
export class KvDecodeError extends Error {
  override readonly name = 'KvDecodeError';
}

/**
 * Packs an array of primitives (strings, safe integers, booleans, null, nested arrays). Returns a
 * plain Uint8Array view (no copy): msgpackr returns a Buffer that may carry extra own properties,
 * which would make equal payloads compare unequal under deep equality.
 */
export function packFields(fields: readonly unknown[]): Uint8Array {
  const packed = packer.pack(fields);
  return new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
}

/**
 * Unpacks bytes that must hold exactly one MessagePack array. msgpackr's own error messages differ
 * between its native and JavaScript decoders, so they are replaced by a fixed message (kept as
 * `cause`): a decode failure must read the same on every replica.
 */
export function unpackFields(bytes: Uint8Array, what: string): readonly unknown[] {
  if (!(bytes instanceof Uint8Array)) throw new KvDecodeError(`${what} must be bytes`);
  let value: unknown;
  try {
    value = packer.unpack(bytes);
  } catch (cause) {
    throw new KvDecodeError(`${what} is not valid MessagePack`, { cause });
  }
  if (!Array.isArray(value)) throw new KvDecodeError(`${what} must be an array`);
  return value;
}

/** Whether two byte arrays hold the same bytes. */
export function bytesEqual(left: Uint8Array, right: Uint8Array): boolean {
  if (left.byteLength !== right.byteLength) return false;
  for (let index = 0; index < left.byteLength; index += 1) {
    if (left[index] !== right[index]) return false;
  }
  return true;
}

const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * Whether a string is well-formed UTF-16 (no lone surrogate). A lone surrogate has no UTF-8
 * encoding: msgpackr would write invalid bytes that different decoders read back differently,
 * and its place in byte order would be undefined. Keys, values and client ids must be well-formed.
 */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** The length of `text` encoded as UTF-8 (a lone surrogate counts as the 3 bytes of U+FFFD). */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let index = 0; index < text.length; index += 1) {
    const unit = text.charCodeAt(index);
    if (unit < 0x80) {
      bytes += 1;
    } else if (unit < 0x800) {
      bytes += 2;
    } else if (unit >= 0xd800 && unit <= 0xdbff && isLowSurrogate(text.charCodeAt(index + 1))) {
      bytes += 4;
      index += 1;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/**
 * Whether `text` takes more than `limitBytes` in UTF-8, without counting when the answer follows
 * from the length alone (each UTF-16 unit is 1 to 3 bytes): the common short string costs O(1).
 */
export function exceedsBytes(text: string, limitBytes: number): boolean {
  if (text.length > limitBytes) return true;
  if (text.length * 3 <= limitBytes) return false;
  return utf8ByteLength(text) > limitBytes;
}

/**
 * Reads the fields of a decoded array in order, checking each one's type, and that nothing is
 * left over. Every error names the record and the field, for the operator reading a log line.
 */
export class FieldReader {
  private index = 0;

  constructor(
    private readonly fields: readonly unknown[],
    private readonly what: string,
  ) {}

  /** A well-formed string. */
  string(name: string): string {
    const value = this.next();
    if (typeof value !== 'string') throw this.error(name, 'must be a string');
    if (!isWellFormed(value)) throw this.error(name, 'must be well-formed UTF-16');
    return value;
  }

  /** A well-formed string or null. */
  stringOrNull(name: string): string | null {
    if (this.peek() === null) {
      this.index += 1;
      return null;
    }
    return this.string(name);
  }

  /** A safe integer at or above `minimum`. */
  integer(name: string, minimum: number): number {
    const value = this.next();
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw this.error(name, 'must be an integer');
    if (value < minimum) throw this.error(name, `must be at least ${minimum}`);
    return value;
  }

  /** A safe integer at or above `minimum`, or null. */
  integerOrNull(name: string, minimum: number): number | null {
    if (this.peek() === null) {
      this.index += 1;
      return null;
    }
    return this.integer(name, minimum);
  }

  /** A boolean. */
  boolean(name: string): boolean {
    const value = this.next();
    if (typeof value !== 'boolean') throw this.error(name, 'must be a boolean');
    return value;
  }

  /** A nested array whose length is a multiple of `stride` (flattened records of `stride` fields). */
  array(name: string, stride: number): readonly unknown[] {
    const value = this.next();
    if (!Array.isArray(value)) throw this.error(name, 'must be an array');
    if (value.length % stride !== 0) throw this.error(name, `must hold a multiple of ${stride} fields`);
    return value;
  }

  /** A nested array or null. */
  arrayOrNull(name: string, stride: number): readonly unknown[] | null {
    if (this.peek() === null) {
      this.index += 1;
      return null;
    }
    return this.array(name, stride);
  }

  /** Checks that every field was read: trailing fields mean a shape this version does not know. */
  end(): void {
    if (this.index !== this.fields.length) {
      throw new KvDecodeError(`${this.what} has ${this.fields.length} fields, expected ${this.index}`);
    }
  }

  private peek(): unknown {
    return this.fields[this.index];
  }

  private next(): unknown {
    if (this.index >= this.fields.length) throw new KvDecodeError(`${this.what} is missing fields`);
    const value = this.fields[this.index];
    this.index += 1;
    return value;
  }

  private error(name: string, problem: string): KvDecodeError {
    return new KvDecodeError(`${this.what} field ${name} ${problem}`);
  }
}

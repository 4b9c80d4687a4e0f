/**
 * The MessagePack layer shared by the key-value codecs (operations, results, snapshots) and the
 * client protocol (frames): one packer, packing and unpacking a flat array of fields, and a strict
 * reader for the fields of a decoded array.
 *
 * Every record goes on the wire as a flat MessagePack array of primitives (no maps, no records,
 * no extensions). Arrays of strings and integers pack to the same bytes on every platform, which
 * is what lets replicas compare digests and lets a decoder insist on the canonical encoding.
 *
 * Each user keeps its own error type: `unpackArray` takes an error factory, and `FieldReaderBase`
 * leaves `fail` to its subclass.
 */
import { Packr } from 'msgpackr';
import { exceedsBytes, isWellFormed } from './text.js';

/**
 * The single packer. `useRecords: false` turns off msgpackr's record extension, whose output
 * depends on which structures the packer saw before (state across calls); without it the bytes
 * depend only on the value packed, so replicas encode a value the same way, and either end of a
 * connection can restart (and lose the packer's state) without confusing the other.
 */
const packer = new Packr({ useRecords: false });

/** Makes the decode error of one codec (called with a fixed message, and the cause when there is one). */
export type DecodeErrorFactory = (message: string, options?: ErrorOptions) => Error;

/**
 * Packs an array of primitives (strings, safe integers, booleans, null, byte arrays, nested
 * arrays). Returns a plain Uint8Array view (no copy): msgpackr returns a Buffer that may carry
 * extra own properties, which would make equal payloads compare unequal under deep equality.
 */
export function packArray(fields: readonly unknown[]): Uint8Array {
  const packed = packer.pack(fields);
  return new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
}

/**
 * Unpacks bytes that must hold exactly one MessagePack array. msgpackr's own error messages differ
 * between its native and JavaScript decoders, so they are replaced by a fixed message (kept as
 * `cause`): a decode failure must read the same on every replica and at either end of a connection.
 */
export function unpackArray(bytes: Uint8Array, what: string, decodeError: DecodeErrorFactory): readonly unknown[] {
  if (!(bytes instanceof Uint8Array)) throw decodeError(`${what} must be bytes`);
  let value: unknown;
  try {
    value = packer.unpack(bytes);
  } catch (cause) {
    throw decodeError(`${what} is not valid MessagePack`, { cause });
  }
  if (!Array.isArray(value)) throw decodeError(`${what} must be an array`);
  return value;
}

/**
 * Reads the fields of a decoded array in order. The array is untrusted, so the reader checks each
 * field's type and range, that nothing is missing or left over, and names the record and field in
 * its error for the operator reading a log line. Subclasses choose the error type through `fail`.
 */
export abstract class FieldReaderBase {
  private index = 0;

  constructor(
    private readonly fields: readonly unknown[],
    protected readonly what: string,
  ) {}

  /** A decode error for this record, with `message` as is. */
  abstract fail(message: string, cause?: unknown): Error;

  /** A safe integer in [minimum, maximum]. */
  integer(name: string, minimum: number, maximum: number = Number.MAX_SAFE_INTEGER): number {
    const value = this.next();
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw this.error(name, 'must be an integer');
    if (value < minimum) throw this.error(name, `must be at least ${minimum}`);
    if (value > maximum) throw this.error(name, `must be at most ${maximum}`);
    return value;
  }

  /** A safe integer at or above `minimum`, or null. */
  integerOrNull(name: string, minimum: number): number | null {
    return this.takeNull() ? null : this.integer(name, minimum);
  }

  /** A finite number at or above `minimum` (durations may be fractional). */
  number(name: string, minimum: number): number {
    const value = this.next();
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.error(name, 'must be a finite number');
    if (value < minimum) throw this.error(name, `must be at least ${minimum}`);
    return value;
  }

  /** A finite number at or above `minimum`, or null. */
  numberOrNull(name: string, minimum: number): number | null {
    return this.takeNull() ? null : this.number(name, minimum);
  }

  /** A well-formed string, of at most `bytesMax` UTF-8 bytes when a bound is given. */
  string(name: string, bytesMax?: number): string {
    const value = this.next();
    if (typeof value !== 'string') throw this.error(name, 'must be a string');
    if (!isWellFormed(value)) throw this.error(name, 'must be well-formed UTF-16');
    if (bytesMax !== undefined && exceedsBytes(value, bytesMax)) throw this.error(name, `must be at most ${bytesMax} bytes`);
    return value;
  }

  /** A well-formed string (bounded as in `string`) or null. */
  stringOrNull(name: string, bytesMax?: number): string | null {
    return this.takeNull() ? null : this.string(name, bytesMax);
  }

  /** One of the strings in `allowed`. */
  oneOf<T extends string>(name: string, allowed: readonly T[]): T {
    const value = this.next();
    const found = allowed.find((candidate) => candidate === value);
    if (found === undefined) throw this.error(name, `must be one of ${allowed.join(', ')}`);
    return found;
  }

  /** A boolean. */
  boolean(name: string): boolean {
    const value = this.next();
    if (typeof value !== 'boolean') throw this.error(name, 'must be a boolean');
    return value;
  }

  /** A MessagePack bin value. */
  bytes(name: string): Uint8Array {
    const value = this.next();
    if (!(value instanceof Uint8Array)) throw this.error(name, 'must be bytes');
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
    return this.takeNull() ? null : this.array(name, stride);
  }

  /** Whether fields remain (for flattened records). */
  hasMore(): boolean {
    return this.index < this.fields.length;
  }

  /** Checks that every field was read: trailing fields mean a shape this version does not know. */
  end(): void {
    if (this.index !== this.fields.length) {
      throw this.fail(`${this.what} has ${this.fields.length} fields, expected ${this.index}`);
    }
  }

  private takeNull(): boolean {
    if (this.index < this.fields.length && this.fields[this.index] === null) {
      this.index += 1;
      return true;
    }
    return false;
  }

  private next(): unknown {
    if (this.index >= this.fields.length) throw this.fail(`${this.what} is missing fields`);
    const value = this.fields[this.index];
    this.index += 1;
    return value;
  }

  private error(name: string, problem: string): Error {
    return this.fail(`${this.what} field ${name} ${problem}`);
  }
}

/**
 * The typed error of the client protocol, and a strict reader for the fields of a decoded frame.
 * Frames come from the network, so every field is untrusted: the reader checks each one's type
 * and range, that nothing is missing or left over, and names the record and field in its error
 * for the operator reading a log line.
 */
import { Packr } from 'msgpackr';
import { isWellFormed, utf8ByteLength } from '../kv/codec.js';

/**
 * Bytes do not decode to a well-formed protocol message (untrusted input, not a bug).
 *
 * `reqId` is set when the frame's envelope (its type and request id) decoded but a later field
 * did not: the frame boundary is intact, so a server answers that one request with `bad_request`
 * and keeps the connection. When `reqId` is null the frame itself is malformed and the
 * connection must close.
 */
export class ProtocolDecodeError extends Error {
  override readonly name = 'ProtocolDecodeError';
  constructor(
    message: string,
    readonly reqId: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * The single packer. `useRecords: false` turns off msgpackr's record extension, whose output
 * depends on structures the packer saw before; without it a frame's bytes depend only on its
 * value, so either end can restart (and lose the packer's state) without confusing the other.
 */
const packer = new Packr({ useRecords: false });

/** Packs one frame payload: an array of primitives, byte arrays and nested arrays. */
export function packFrameFields(fields: readonly unknown[]): Uint8Array {
  const packed = packer.pack(fields);
  return new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
}

/**
 * Unpacks bytes that must hold exactly one MessagePack array. msgpackr's own messages differ
 * between its native and JavaScript decoders, so they are kept only as `cause`.
 */
export function unpackFrameFields(bytes: Uint8Array, what: string): readonly unknown[] {
  if (!(bytes instanceof Uint8Array)) throw new ProtocolDecodeError(`${what} must be bytes`);
  let value: unknown;
  try {
    value = packer.unpack(bytes);
  } catch (cause) {
    throw new ProtocolDecodeError(`${what} is not valid MessagePack`, null, { cause });
  }
  if (!Array.isArray(value)) throw new ProtocolDecodeError(`${what} must be an array`);
  return value;
}

/**
 * Reads the fields of a decoded array in order. Errors carry `reqId` once `setReqId` was called,
 * so that everything after a request's envelope is a per-request failure.
 */
export class WireReader {
  private index = 0;
  private reqId: number | null = null;

  constructor(
    private readonly fields: readonly unknown[],
    private readonly what: string,
  ) {}

  /** Marks the envelope as decoded: later errors belong to request `reqId`. */
  setReqId(reqId: number): void {
    this.reqId = reqId;
  }

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

  /** A well-formed string of at most `bytesMax` UTF-8 bytes. */
  string(name: string, bytesMax: number): string {
    const value = this.next();
    if (typeof value !== 'string') throw this.error(name, 'must be a string');
    if (!isWellFormed(value)) throw this.error(name, 'must be well-formed UTF-16');
    if (value.length > bytesMax || utf8ByteLength(value) > bytesMax) throw this.error(name, `must be at most ${bytesMax} bytes`);
    return value;
  }

  /** A well-formed string or null. */
  stringOrNull(name: string, bytesMax: number): string | null {
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

  /** A reader over a nested array, inheriting this reader's request id. */
  nested(fields: readonly unknown[], what: string): WireReader {
    const reader = new WireReader(fields, `${this.what} ${what}`);
    if (this.reqId !== null) reader.setReqId(this.reqId);
    return reader;
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

  /** A decode error for this record (with its request id when known). */
  fail(message: string, cause?: unknown): ProtocolDecodeError {
    return new ProtocolDecodeError(message, this.reqId, cause === undefined ? undefined : { cause });
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

  private error(name: string, problem: string): ProtocolDecodeError {
    return this.fail(`${this.what} field ${name} ${problem}`);
  }
}

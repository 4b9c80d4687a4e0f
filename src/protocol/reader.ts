/**
 * The typed error of the client protocol, and a strict reader for the fields of a decoded frame.
 * Frames come from the network, so every field is untrusted: the reader checks each one's type
 * and range, that nothing is missing or left over, and names the record and field in its error
 * for the operator reading a log line.
 */
import { FieldReaderBase, packArray, unpackArray } from '../codec/fields.js';

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
 * Packs one frame payload (an array of primitives, byte arrays and nested arrays) with the shared
 * packer: `useRecords: false` makes a frame's bytes depend only on its value, so either end can
 * restart (and lose the packer's state) without confusing the other (see `packArray`).
 */
export function packFrameFields(fields: readonly unknown[]): Uint8Array {
  return packArray(fields);
}

/**
 * Unpacks bytes that must hold exactly one MessagePack array, or throws a frame-level
 * `ProtocolDecodeError` (no `reqId`). msgpackr's own messages differ between its native and
 * JavaScript decoders, so they are kept only as `cause` (see `unpackArray`).
 */
export function unpackFrameFields(bytes: Uint8Array, what: string): readonly unknown[] {
  return unpackArray(bytes, what, (message, options) => new ProtocolDecodeError(message, null, options));
}

/**
 * Reads the fields of a decoded array in order (see `FieldReaderBase`). Errors carry `reqId` once
 * `setReqId` was called, so that everything after a request's envelope is a per-request failure.
 * Strings read here must be bounded: frames come from the network.
 */
export class WireReader extends FieldReaderBase {
  private reqId: number | null = null;

  /** Marks the envelope as decoded: later errors belong to request `reqId`. */
  setReqId(reqId: number): void {
    this.reqId = reqId;
  }

  /** A well-formed string of at most `bytesMax` UTF-8 bytes. */
  override string(name: string, bytesMax: number): string {
    return super.string(name, bytesMax);
  }

  /** A well-formed string of at most `bytesMax` UTF-8 bytes, or null. */
  override stringOrNull(name: string, bytesMax: number): string | null {
    return super.stringOrNull(name, bytesMax);
  }

  /** A reader over a nested array, inheriting this reader's request id. */
  nested(fields: readonly unknown[], what: string): WireReader {
    const reader = new WireReader(fields, `${this.what} ${what}`);
    if (this.reqId !== null) reader.setReqId(this.reqId);
    return reader;
  }

  /** A decode error for this record (with its request id when known). */
  fail(message: string, cause?: unknown): ProtocolDecodeError {
    return new ProtocolDecodeError(message, this.reqId, cause === undefined ? undefined : { cause });
  }
}

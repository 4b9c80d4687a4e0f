/**
 * Low-level helpers shared by the key-value codecs (operations, results, snapshots): packing, UTF-8
 * accounting, and a strict field reader for decoding untrusted arrays, all throwing `KvDecodeError`.
 * The MessagePack layer itself (one packer, the field reader) lives in `src/codec`, shared with the
 * client protocol.
 *
 * Every record goes on the wire as a flat MessagePack array of primitives (no maps, no records,
 * no extensions). Arrays of strings and integers pack to the same bytes on every platform, which
 * is what lets replicas compare digests and lets a decoder insist on the canonical encoding.
 */
import { Buffer } from 'node:buffer';
import { FieldReaderBase, packArray, unpackArray } from '../codec/fields.js';

export { exceedsBytes, isWellFormed, utf8ByteLength } from '../codec/text.js';

/** Thrown when bytes or a decoded value do not have the shape a codec expects. */
export class KvDecodeError extends Error {
  override readonly name = 'KvDecodeError';
}

/**
 * Packs an array of primitives with the shared packer (`useRecords: false`: the bytes depend only
 * on the value, as replicas comparing digests need; see `packArray`).
 */
export function packFields(fields: readonly unknown[]): Uint8Array {
  return packArray(fields);
}

/**
 * Unpacks bytes that must hold exactly one MessagePack array, or throws `KvDecodeError` with a
 * fixed message (msgpackr's own is only its `cause`): a decode failure must read the same on every
 * replica (see `unpackArray`).
 */
export function unpackFields(bytes: Uint8Array, what: string): readonly unknown[] {
  return unpackArray(bytes, what, (message, options) => new KvDecodeError(message, options));
}

/** Whether two byte arrays hold the same bytes. */
export function bytesEqual(left: Uint8Array, right: Uint8Array): boolean {
  if (left.byteLength !== right.byteLength) return false;
  // Native compare: a JS loop over the bytes was a visible share of a leader's CPU (it runs for
  // every client request, see `decodeOperation`).
  return Buffer.compare(left, right) === 0;
}

/**
 * Reads the fields of a decoded array in order, checking each one's type, and that nothing is
 * left over (see `FieldReaderBase`). Every error is a `KvDecodeError` naming the record and the
 * field, for the operator reading a log line.
 */
export class FieldReader extends FieldReaderBase {
  /** A decode error for this record. */
  fail(message: string, cause?: unknown): KvDecodeError {
    return new KvDecodeError(message, cause === undefined ? undefined : { cause });
  }
}

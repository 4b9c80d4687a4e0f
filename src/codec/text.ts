/**
 * UTF-16 / UTF-8 accounting for strings that go into MessagePack: shared by the key-value codecs,
 * the client protocol and the client.
 */

/** `String.prototype.isWellFormed` (Node 20; not in the ES2022 lib this project compiles against). */
interface WellFormedCheck {
  isWellFormed(): boolean;
}

/**
 * Whether a string is well-formed UTF-16 (no lone surrogate). A lone surrogate has no UTF-8
 * encoding: msgpackr would write invalid bytes that different decoders read back differently,
 * and its place in byte order would be undefined. Keys, values and client ids must be well-formed.
 */
export function isWellFormed(text: string): boolean {
  // Native: the regular expression it replaces was a visible share of a client's CPU per request.
  return (text as unknown as WellFormedCheck).isWellFormed();
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

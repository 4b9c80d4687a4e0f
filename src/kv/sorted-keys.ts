/**
 * The ordered index of keys, for list-by-prefix: a sorted sequence of sorted chunks (the layout of
 * Python's sortedcontainers). Insert and remove cost a binary search over the chunks, one inside a
 * chunk, and a splice of at most CHUNK_KEYS_MAX keys (plus, rarely, a splice of the chunk array,
 * n / CHUNK_KEYS_MAX long). A flat sorted array would move n keys per insert; a balanced tree
 * would cost far more code for no gain at the sizes an in-memory store holds.
 *
 * Order is UTF-8 byte order, which equals Unicode code point order, not JavaScript's `<` (UTF-16
 * code unit order): the two differ for characters above U+FFFF versus U+E000..U+FFFF.
 */
import { assert } from '../core/assert.js';

/** A chunk splits in two when it grows past this many keys. */
const CHUNK_KEYS_MAX = 512;

/**
 * Compares two well-formed strings in UTF-8 byte order; negative, zero or positive. At the first
 * differing UTF-16 unit, surrogates (which start characters above U+FFFF) are ranked above
 * U+E000..U+FFFF, which turns code unit order into code point order.
 */
export function compareKeys(left: string, right: string): number {
  if (left === right) return 0;
  const length = Math.min(left.length, right.length);
  for (let index = 0; index < length; index += 1) {
    const leftUnit = left.charCodeAt(index);
    const rightUnit = right.charCodeAt(index);
    if (leftUnit !== rightUnit) return codePointRank(leftUnit) - codePointRank(rightUnit);
  }
  return left.length - right.length;
}

function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  if (unit >= 0xe000) return unit - 0x800;
  return unit + 0x2000;
}

/** Keys found by a prefix scan, and whether more matched than the limit allowed. */
export interface PrefixScan {
  readonly keys: string[];
  readonly more: boolean;
}

/** A set of distinct keys kept in byte order. */
export class SortedKeys {
  /** Non-empty sorted chunks; every key of a chunk sorts before every key of the next. */
  private readonly chunks: string[][] = [];
  private count = 0;

  /** Builds the index from keys already in strictly increasing byte order (a snapshot's). */
  static fromSorted(keys: readonly string[]): SortedKeys {
    const index = new SortedKeys();
    const half = CHUNK_KEYS_MAX >>> 1;
    for (let start = 0; start < keys.length; start += half) {
      index.chunks.push(keys.slice(start, start + half));
    }
    index.count = keys.length;
    return index;
  }

  /** The number of keys. */
  get size(): number {
    return this.count;
  }

  /** Adds a key that is not in the index. */
  insert(key: string): void {
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      this.count = 1;
      return;
    }
    const chunkIndex = this.chunkIndexFor(key);
    const chunk = this.chunkAt(chunkIndex);
    const index = lowerBound(chunk, key);
    assert(chunk[index] !== key, 'sorted keys: inserted key is already present');
    chunk.splice(index, 0, key);
    this.count += 1;
    if (chunk.length > CHUNK_KEYS_MAX) {
      this.chunks.splice(chunkIndex + 1, 0, chunk.splice(chunk.length >>> 1));
    }
  }

  /** Removes a key that is in the index. */
  remove(key: string): void {
    const chunkIndex = this.chunkIndexFor(key);
    const chunk = this.chunkAt(chunkIndex);
    const index = lowerBound(chunk, key);
    assert(chunk[index] === key, 'sorted keys: removed key is absent');
    chunk.splice(index, 1);
    this.count -= 1;
    if (chunk.length === 0) this.chunks.splice(chunkIndex, 1);
  }

  /** Up to `limit` keys that start with `prefix`, in order. Costs O(log n + limit). */
  scanPrefix(prefix: string, limit: number): PrefixScan {
    assert(Number.isSafeInteger(limit) && limit >= 0, 'sorted keys: scan limit must be a non-negative integer');
    const keys: string[] = [];
    if (this.chunks.length === 0) return { keys, more: false };
    // Keys with a prefix form one run, starting at the prefix's lower bound (no key sorts between
    // the prefix and its extensions).
    let chunkIndex = this.chunkIndexFor(prefix);
    let index = lowerBound(this.chunkAt(chunkIndex), prefix);
    for (; chunkIndex < this.chunks.length; chunkIndex += 1, index = 0) {
      const chunk = this.chunkAt(chunkIndex);
      for (; index < chunk.length; index += 1) {
        const key = chunk[index] as string;
        if (!key.startsWith(prefix)) return { keys, more: false };
        if (keys.length === limit) return { keys, more: true };
        keys.push(key);
      }
    }
    return { keys, more: false };
  }

  /** Every key, in order. */
  *[Symbol.iterator](): IterableIterator<string> {
    for (const chunk of this.chunks) yield* chunk;
  }

  /** The first chunk whose last key is at or after `key` (the last chunk when there is none). */
  private chunkIndexFor(key: string): number {
    let low = 0;
    let high = this.chunks.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const chunk = this.chunkAt(middle);
      if (compareKeys(chunk[chunk.length - 1] as string, key) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private chunkAt(index: number): string[] {
    const chunk = this.chunks[index];
    assert(chunk !== undefined && chunk.length > 0, 'sorted keys: chunk index out of range or chunk empty');
    return chunk;
  }
}

/** The first index in sorted `keys` whose key is at or after `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareKeys(keys[middle] as string, key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

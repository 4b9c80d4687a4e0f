/**
 * CRC-32C (Castagnoli), the checksum that frames every write-ahead log record. Node 20 has no
 * built-in CRC (zlib.crc32 arrived in Node 22), so this is the classic byte-at-a-time table
 * version. Castagnoli rather than the zlib polynomial because it detects more error patterns in
 * the record sizes a log writes, and it is what etcd, LevelDB and ext4 use for the same job.
 */

/** The reflected Castagnoli polynomial. */
const POLYNOMIAL_REFLECTED = 0x82f63b78;

const TABLE: Uint32Array = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte += 1) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL_REFLECTED : crc >>> 1;
    }
    table[byte] = crc >>> 0;
  }
  return table;
}

/**
 * The CRC-32C of `bytes[start, end)`, as an unsigned 32-bit integer. The range form lets the
 * recovery scan checksum a frame inside a segment buffer without slicing it.
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.byteLength): number {
  let crc = 0xffffffff;
  for (let index = start; index < end; index += 1) {
    // Both indexes are in range by construction; `?? 0` only satisfies noUncheckedIndexedAccess.
    crc = (TABLE[(crc ^ (bytes[index] ?? 0)) & 0xff] ?? 0) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * The first `end` in [`fromEnd`, `toEnd`] at which the CRC-32C of `bytes[start, end)` equals
 * `checksum`, or null: every candidate end of a record in one pass (linear, not quadratic).
 */
export function crc32cFirstMatchingEnd(bytes: Uint8Array, start: number, fromEnd: number, toEnd: number, checksum: number): number | null {
  let crc = 0xffffffff;
  for (let index = start; index < toEnd; index += 1) {
    if (index >= fromEnd && ((crc ^ 0xffffffff) >>> 0) === checksum) return index;
    crc = (TABLE[(crc ^ (bytes[index] ?? 0)) & 0xff] ?? 0) ^ (crc >>> 8);
  }
  return ((crc ^ 0xffffffff) >>> 0) === checksum && toEnd >= fromEnd ? toEnd : null;
}

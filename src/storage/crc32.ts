/**
 * CRC-32C (Castagnoli), the checksum that frames every write-ahead log record. Node 20 has no
 * built-in CRC (zlib.crc32 arrived in Node 22), so this is the table-driven "slicing-by-8"
 * form: eight bytes per step through eight tables (~3x the byte-at-a-time loop on a record of a
 * few KB), with the byte-at-a-time loop for the ragged ends. Castagnoli rather than the zlib polynomial because it detects more error patterns in
 * the record sizes a log writes, and it is what etcd, LevelDB and ext4 use for the same job.
 */

/** The reflected Castagnoli polynomial. */
const POLYNOMIAL_REFLECTED = 0x82f63b78;

/**
 * Eight tables of 256 entries, back to back: table k maps a byte to the CRC contribution of that
 * byte followed by k zero bytes. Table 0 is the classic one.
 */
const TABLES: Uint32Array = buildTables();
const TABLE: Uint32Array = TABLES.subarray(0, 256);

function buildTables(): Uint32Array {
  const tables = new Uint32Array(8 * 256);
  for (let byte = 0; byte < 256; byte += 1) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL_REFLECTED : crc >>> 1;
    }
    tables[byte] = crc >>> 0;
  }
  for (let byte = 0; byte < 256; byte += 1) {
    let crc = tables[byte] as number;
    for (let k = 1; k < 8; k += 1) {
      crc = (tables[crc & 0xff] as number) ^ (crc >>> 8);
      tables[k * 256 + byte] = crc >>> 0;
    }
  }
  return tables;
}

/**
 * The CRC-32C of `bytes[start, end)`, as an unsigned 32-bit integer. The range form lets the
 * recovery scan checksum a frame inside a segment buffer without slicing it.
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.byteLength): number {
  let crc = 0xffffffff;
  let index = start;
  const t = TABLES;
  // Every index below is in range by construction; `?? 0` only satisfies noUncheckedIndexedAccess.
  for (; index + 8 <= end; index += 8) {
    const low = crc ^ ((bytes[index] ?? 0) | ((bytes[index + 1] ?? 0) << 8) | ((bytes[index + 2] ?? 0) << 16) | ((bytes[index + 3] ?? 0) << 24));
    crc =
      (t[1792 + (low & 0xff)] ?? 0) ^
      (t[1536 + ((low >>> 8) & 0xff)] ?? 0) ^
      (t[1280 + ((low >>> 16) & 0xff)] ?? 0) ^
      (t[1024 + (low >>> 24)] ?? 0) ^
      (t[768 + (bytes[index + 4] ?? 0)] ?? 0) ^
      (t[512 + (bytes[index + 5] ?? 0)] ?? 0) ^
      (t[256 + (bytes[index + 6] ?? 0)] ?? 0) ^
      (t[bytes[index + 7] ?? 0] ?? 0);
  }
  for (; index < end; index += 1) {
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

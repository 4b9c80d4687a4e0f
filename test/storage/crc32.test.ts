/**
 * CRC-32C: the slicing-by-8 `crc32c` against the check value of the Castagnoli polynomial and a
 * bit-at-a-time reference, over every alignment and ragged end; and `crc32cFirstMatchingEnd`
 * (the byte-at-a-time scan recovery uses) against it.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { crc32c, crc32cFirstMatchingEnd } from '../../src/storage/crc32.js';
import { fuzzParameters } from '../fuzz/mutate.js';

/** One bit at a time, straight from the definition (reflected, init and final xor all ones). */
function reference(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0xffffffff;
  for (let index = start; index < end; index += 1) {
    crc ^= bytes[index] as number;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

test('crc32c: the check value of "123456789" and of the empty range', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, '32 zero bytes (RFC 3720 B.4)');
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43, '32 bytes of 0xff (RFC 3720 B.4)');
});

test('crc32c: property: equals the bit-at-a-time definition on any range, and the recovery scan finds that end', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), fc.nat(), (bytes, a, b) => {
      const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
      const end = start + (bytes.length - start === 0 ? 0 : b % (bytes.length - start + 1));
      const crc = crc32c(bytes, start, end);
      assert.equal(crc, reference(bytes, start, end));
      assert.equal(crc32cFirstMatchingEnd(bytes, start, end, end, crc), end);
    }),
    fuzzParameters(2_000),
  );
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  KEY_BYTES_MAX,
  LIST_LIMIT_MAX,
  VALUE_BYTES_MAX,
  KvDecodeError,
  decodeOperation,
  decodeResult,
  encodeOperation,
  encodeResult,
  validateOperation,
  type KvOperation,
  type KvResult,
} from '../../src/kv/index.js';
import { operationArbitrary, plainRecord, valueArbitrary } from './arbitraries.js';

const packer = new Packr({ useRecords: false });

function assertSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(Buffer.from(actual).toString('hex'), Buffer.from(expected).toString('hex'));
}

/** Runs a decode: it must return or throw KvDecodeError, nothing else. */
function decodesOrRejects<T>(decode: () => T): T | KvDecodeError {
  try {
    return decode();
  } catch (error) {
    assert.ok(error instanceof KvDecodeError, `expected KvDecodeError, got ${String(error)}`);
    return error;
  }
}

test('property: operations round-trip through the codec', () => {
  fc.assert(
    fc.property(operationArbitrary, (operation) => {
      assert.deepEqual(decodeOperation(encodeOperation(operation)), operation);
    }),
    { numRuns: 2000 },
  );
});

test('cas keeps "no expectation" apart from "expect absent"', () => {
  const expectAbsent: KvOperation = { type: 'cas', key: 'k', value: 'v', expectedValue: null };
  const expectVersion: KvOperation = { type: 'cas', key: 'k', value: 'v', expectedVersion: 0 };
  assert.deepEqual(decodeOperation(encodeOperation(expectAbsent)), expectAbsent);
  assert.deepEqual(decodeOperation(encodeOperation(expectVersion)), expectVersion);
  assert.ok(!('expectedValue' in decodeOperation(encodeOperation(expectVersion))));
});

const resultArbitrary: fc.Arbitrary<KvResult> = fc.oneof(
  plainRecord({
    ok: fc.constant(false as const),
    error: fc.constantFrom('cas_failed' as const, 'too_large' as const, 'bad_request' as const),
    message: fc.string(),
  }),
  plainRecord({
    ok: fc.constant(false as const),
    error: fc.constant('cas_failed' as const),
    message: fc.string(),
    current: fc.oneof(
      plainRecord({ value: fc.constant(null), version: fc.constant(0) }),
      plainRecord({ value: valueArbitrary, version: fc.integer({ min: 1, max: 1e9 }) }),
    ),
  }),
  plainRecord({
    ok: fc.constant(true as const),
    type: fc.constantFrom('put' as const, 'cas' as const),
    revision: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    version: fc.integer({ min: 1, max: 1e6 }),
    previous: fc.option(valueArbitrary, { nil: null }),
  }),
  fc.oneof(
    plainRecord({ ok: fc.constant(true as const), type: fc.constant('get' as const), revision: fc.nat(), value: fc.constant(null), version: fc.constant(0) }),
    plainRecord({ ok: fc.constant(true as const), type: fc.constant('get' as const), revision: fc.nat(), value: valueArbitrary, version: fc.integer({ min: 1, max: 9 }) }),
  ),
  plainRecord({ ok: fc.constant(true as const), type: fc.constant('delete' as const), revision: fc.nat(), previous: fc.option(valueArbitrary, { nil: null }) }),
  plainRecord({
    ok: fc.constant(true as const),
    type: fc.constant('list' as const),
    revision: fc.nat(),
    entries: fc.array(plainRecord({ key: fc.string({ minLength: 1 }), value: valueArbitrary, version: fc.integer({ min: 1, max: 9 }) }), { maxLength: 5 }),
    more: fc.boolean(),
  }),
);

test('property: results round-trip through the codec', () => {
  fc.assert(
    fc.property(resultArbitrary, (result) => {
      assert.deepEqual(decodeResult(encodeResult(result)), result);
    }),
    { numRuns: 2000 },
  );
});

test('property: random bytes decode to an operation or throw KvDecodeError, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 48 }), (bytes) => {
      const decoded = decodesOrRejects(() => decodeOperation(bytes));
      if (!(decoded instanceof KvDecodeError)) assertSameBytes(encodeOperation(decoded), bytes);
      decodesOrRejects(() => decodeResult(bytes));
    }),
    { numRuns: 20_000 },
  );
});

test('property: near-miss operation arrays decode or throw KvDecodeError', () => {
  const field = fc.oneof(
    fc.integer({ min: -3, max: 7 }),
    fc.string({ maxLength: 4 }),
    fc.constant(null),
    fc.boolean(),
    fc.double(),
    fc.uint8Array({ maxLength: 3 }),
    fc.array(fc.nat(), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 3 }), fc.nat(), { maxKeys: 2 }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 6 }), fc.array(field, { maxLength: 6 }), (tag, rest) => {
      const bytes = packer.pack([tag, ...rest]);
      const decoded = decodesOrRejects(() => decodeOperation(bytes));
      if (!(decoded instanceof KvDecodeError)) {
        assertSameBytes(encodeOperation(decoded), bytes);
        validateOperation(decoded); // a decoded operation is well-typed: validation answers, never throws
      }
      decodesOrRejects(() => decodeResult(bytes));
    }),
    { numRuns: 20_000 },
  );
});

test('property: mutated encodings decode or throw KvDecodeError', () => {
  fc.assert(
    fc.property(operationArbitrary, fc.nat(), fc.integer({ min: 0, max: 255 }), (operation, position, byte) => {
      const bytes = Uint8Array.from(encodeOperation(operation));
      bytes[position % bytes.length] = byte;
      decodesOrRejects(() => decodeOperation(bytes));
      decodesOrRejects(() => decodeOperation(bytes.subarray(0, position % bytes.length)));
    }),
    { numRuns: 20_000 },
  );
});

test('decode rejects trailing bytes, wrong shapes and non-canonical encodings', () => {
  const valid = encodeOperation({ type: 'get', key: 'k' });
  const cases: Uint8Array[] = [
    new Uint8Array(0),
    Uint8Array.from([...valid, 0]),
    packer.pack({ type: 'get', key: 'k' }),
    packer.pack([2, 'k', 'extra']),
    packer.pack([9, 'k']),
    packer.pack([1, 'k', 7]),
    packer.pack([5, 'p', 1.5]),
    packer.pack([4, 'k', 'v', 4, null, null]),
    packer.pack([4, 'k', 'v', 0, 'x', null]),
    packer.pack([4, 'k', 'v', 2, null, null]),
    // Tag 2 written as a uint16 (cd 00 02) instead of a positive fixint: same value, other bytes.
    Uint8Array.from([0x92, 0xcd, 0x00, 0x02, 0xa1, 0x6b]),
    // Invalid UTF-8 (an overlong NUL) that some decoders repair and others read raw.
    Uint8Array.from([0x92, 0x02, 0xa2, 0xc0, 0x80]),
    // A lone surrogate encoded as CESU-8.
    Uint8Array.from([0x92, 0x02, 0xa3, 0xed, 0xa0, 0x80]),
  ];
  for (const bytes of cases) {
    assert.throws(() => decodeOperation(bytes), KvDecodeError, `bytes ${Buffer.from(bytes).toString('hex')}`);
  }
  assert.throws(() => decodeResult(packer.pack([2, 1, 'v', 0])), KvDecodeError);
  assert.throws(() => decodeResult(packer.pack([0, 9, 'm', null])), KvDecodeError);
});

test('validateOperation: limits give too_large, malformed fields bad_request', () => {
  const codeOf = (operation: KvOperation): string | null => validateOperation(operation)?.error ?? null;
  assert.equal(codeOf({ type: 'put', key: 'k'.repeat(KEY_BYTES_MAX), value: 'v'.repeat(VALUE_BYTES_MAX) }), null);
  assert.equal(codeOf({ type: 'put', key: 'k'.repeat(KEY_BYTES_MAX + 1), value: '' }), 'too_large');
  // 2049 two-byte characters: under the limit in UTF-16 units, over it in bytes.
  assert.equal(codeOf({ type: 'get', key: 'é'.repeat(2049) }), 'too_large');
  assert.equal(codeOf({ type: 'put', key: 'k', value: 'v'.repeat(VALUE_BYTES_MAX + 1) }), 'too_large');
  assert.equal(codeOf({ type: 'cas', key: 'k', value: 'v', expectedValue: 'v'.repeat(VALUE_BYTES_MAX + 1) }), 'too_large');
  assert.equal(codeOf({ type: 'list', prefix: 'p'.repeat(KEY_BYTES_MAX + 1), limit: 1 }), 'too_large');
  assert.equal(codeOf({ type: 'list', prefix: '', limit: LIST_LIMIT_MAX + 1 }), 'too_large');
  assert.equal(codeOf({ type: 'list', prefix: '', limit: LIST_LIMIT_MAX }), null);
  assert.equal(codeOf({ type: 'put', key: '', value: 'v' }), 'bad_request');
  assert.equal(codeOf({ type: 'delete', key: '' }), 'bad_request');
  assert.equal(codeOf({ type: 'put', key: 'a\uD800', value: 'v' }), 'bad_request');
  assert.equal(codeOf({ type: 'put', key: 'k', value: '\uDC00' }), 'bad_request');
  assert.equal(codeOf({ type: 'cas', key: 'k', value: 'v' }), 'bad_request');
  assert.equal(codeOf({ type: 'cas', key: 'k', value: 'v', expectedVersion: -1 }), 'bad_request');
  assert.equal(codeOf({ type: 'cas', key: 'k', value: 'v', expectedVersion: 1.5 }), 'bad_request');
  assert.equal(codeOf({ type: 'list', prefix: '', limit: 0 }), 'bad_request');
  assert.equal(codeOf({ type: 'list', prefix: '', limit: Number.NaN }), 'bad_request');
  assert.equal(codeOf({ type: 'list', prefix: '', limit: 1 }), null);
});

/**
 * The hand-written canonical MessagePack writer and reader (`src/codec/canonical.ts`) against
 * msgpackr, which stays the reference: the fast encoders (client frames, results, command
 * payloads, write-ahead log records) must give msgpackr's bytes, and the fast
 * decoders must either decline (the general path then decides) or read exactly what the general,
 * msgpackr-based decoder reads, on valid, random, mutated and type-confused input.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { CanonicalReader, NOT_CANONICAL, canonicalWriter } from '../../src/codec/canonical.js';
import { packArray } from '../../src/codec/fields.js';
import {
  decodeOperationGeneral,
  decodeResultGeneral,
  encodeOperation,
  encodeResult,
  operationFields,
  readCanonicalOperation,
  readCanonicalResult,
  resultToFields,
  type KvOperation,
  type KvResult,
} from '../../src/kv/ops.js';
import {
  clientMessageFields,
  decodeClientMessageGeneral,
  decodeServerMessageGeneral,
  encodeClientFrame,
  encodeClientMessage,
  encodeServerFrame,
  encodeServerMessage,
  readCanonicalRequest,
  readCanonicalResultMessage,
  serverMessageFields,
  type ClientMessage,
  type ServerMessage,
} from '../../src/protocol/wire.js';
import { applyEdits, byteEditsArbitrary, confuseEncoding, fuzzParameters, kept, valueConfusionArbitrary } from '../fuzz/mutate.js';
import { plainRecord } from '../kv/arbitraries.js';
import { persistRecordArbitrary } from '../fuzz/arbitraries.js';
import { makeBallot } from '../../src/core/ballot.js';
import type { PersistRecord } from '../../src/core/multipaxos/types.js';
import { encodeRecord, isWritableRecord } from '../../src/storage/codec.js';
import { encodeRecordFrame } from '../../src/storage/file.js';
import { encodeFrame } from '../../src/storage/segment.js';

/** Lengths either side of every header boundary (fixstr/str8/str16/str32, bin8/16/32). */
const boundaryLength = fc.constantFrom(0, 1, 10, 11, 31, 32, 33, 255, 256, 257, 65_535, 65_536, 65_537);
const unit = fc.constantFrom('a', 'é', '中', '\u{1F600}', '\u0000', '\uFFFD');
/** Strings of any length class; multi-byte units move the byte length across the boundaries. */
const text = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.tuple(boundaryLength, unit).map(([length, char]) => 'x'.repeat(Math.max(0, length - 1)) + char) },
);
/** Integers either side of every width boundary, up to the largest safe integer. */
const uint = fc.oneof(
  fc.constantFrom(0, 127, 128, 255, 256, 65_535, 65_536, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER),
  fc.nat(),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
);
const key = text.filter((value) => value.length > 0);

const operation: fc.Arbitrary<KvOperation> = fc.oneof(
  plainRecord({ type: fc.constant('put' as const), key, value: text }),
  plainRecord({ type: fc.constant('get' as const), key }),
  plainRecord({ type: fc.constant('delete' as const), key }),
  fc
    .tuple(key, text, fc.option(fc.option(text, { nil: null }), { nil: undefined }), fc.option(uint, { nil: undefined }))
    .map(([casKey, value, expectedValue, expectedVersion]) => {
      const cas: { -readonly [K in keyof Extract<KvOperation, { type: 'cas' }>]: Extract<KvOperation, { type: 'cas' }>[K] } = { type: 'cas', key: casKey, value };
      if (expectedValue !== undefined) cas.expectedValue = expectedValue;
      if (expectedVersion !== undefined) cas.expectedVersion = expectedVersion;
      return cas;
    }),
  plainRecord({ type: fc.constant('list' as const), prefix: text, limit: uint }),
);

const positive = uint.filter((value) => value >= 1);
const success: fc.Arbitrary<KvResult> = fc.oneof(
  plainRecord({ ok: fc.constant(true as const), type: fc.constantFrom('put' as const, 'cas' as const), revision: positive, version: positive, previous: fc.option(text, { nil: null }) }),
  fc.tuple(uint, fc.option(fc.tuple(text, positive), { nil: null })).map(([revision, present]): KvResult =>
    present === null ? { ok: true, type: 'get', revision, value: null, version: 0 } : { ok: true, type: 'get', revision, value: present[0], version: present[1] },
  ),
  plainRecord({ ok: fc.constant(true as const), type: fc.constant('delete' as const), revision: uint, previous: fc.option(text, { nil: null }) }),
  plainRecord({
    ok: fc.constant(true as const),
    type: fc.constant('list' as const),
    revision: uint,
    entries: fc.array(plainRecord({ key, value: text, version: positive }), { maxLength: 8 }),
    more: fc.boolean(),
  }),
);
const result: fc.Arbitrary<KvResult> = fc.oneof(
  success,
  fc
    .tuple(fc.constantFrom('cas_failed' as const, 'too_large' as const, 'bad_request' as const), text, fc.option(fc.tuple(fc.option(text, { nil: null }), uint), { nil: undefined }))
    .map(([error, message, current]): KvResult =>
      current === undefined ? { ok: false, error, message } : { ok: false, error, message, current: { value: current[0], version: current[1] } },
    ),
);

/** Client ids within their limit (a longer one is a bad request, which only the general path words). */
const clientId = fc.string({ unit, minLength: 1, maxLength: 12 });
const request: fc.Arbitrary<ClientMessage> = fc
  .tuple(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), clientId, uint, operation)
  .map(([reqId, clientId, seq, op]) => ({ type: 'request', reqId, clientId, seq, operation: op }));
const resultMessage: fc.Arbitrary<ServerMessage> = fc
  .tuple(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), success)
  .map(([reqId, value]) => ({ type: 'result', reqId, result: value as Extract<KvResult, { ok: true }> }));

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

test('canonical writer: operations, results, requests and results frames are msgpackr\'s bytes', () => {
  fc.assert(fc.property(operation, (op) => assert.equal(hex(encodeOperation(op)), hex(packArray(operationFields(op))))), fuzzParameters(1_500));
  fc.assert(fc.property(result, (value) => assert.equal(hex(encodeResult(value)), hex(packArray(resultToFields(value))))), fuzzParameters(1_500));
  fc.assert(
    fc.property(request, (message) => {
      assert.equal(hex(encodeClientMessage(message)), hex(packArray(clientMessageFields(message))));
      const frame = encodeClientFrame(message);
      assert.equal(frame.readUInt32BE(0), frame.byteLength - 4, 'the length prefix is the payload length');
    }),
    fuzzParameters(800),
  );
  fc.assert(
    fc.property(resultMessage, (message) => {
      assert.equal(hex(encodeServerMessage(message)), hex(packArray(serverMessageFields(message))));
      const frame = encodeServerFrame(message);
      assert.equal(frame.readUInt32BE(0), frame.byteLength - 4, 'the length prefix is the payload length');
    }),
    fuzzParameters(800),
  );
});

test('canonical writer: a nested bin widens its header past 255 and 65,535 bytes; a lone surrogate takes the general path', () => {
  for (const length of [200, 300, 70_000]) {
    const message: ClientMessage = { type: 'request', reqId: 7, clientId: 'c', seq: 1, operation: { type: 'put', key: 'k', value: 'v'.repeat(length) } };
    assert.equal(hex(encodeClientMessage(message)), hex(packArray(clientMessageFields(message))));
  }
  const lone: KvOperation = { type: 'put', key: 'k', value: 'a\uD800b' };
  assert.equal(hex(encodeOperation(lone)), hex(packArray(operationFields(lone))));
  const many: KvResult = { ok: true, type: 'list', revision: 3, more: false, entries: Array.from({ length: 30_000 }, (_, index) => ({ key: `k${index}`, value: 'v', version: 1 })) };
  assert.equal(hex(encodeResult(many)), hex(packArray(resultToFields(many))), 'array32 header');
});

/**
 * Valid encodings go through the fast reader and read as the general decoder reads them. A U+FFFD
 * in a string sends the fast reader to the general path (it cannot tell a real one from replaced
 * invalid UTF-8); every other valid encoding must be taken by the fast path.
 */
function readsValid<T>(values: fc.Arbitrary<T>, encode: (value: T) => Uint8Array, fastRead: (bytes: Uint8Array) => unknown, decode: (bytes: Uint8Array) => unknown, runs: number): void {
  fc.assert(
    fc.property(values, (value) => {
      const bytes = encode(value);
      const read = fastRead(bytes);
      if (JSON.stringify(value).includes('\uFFFD')) assert.equal(read, null);
      else assert.deepEqual(read, decode(bytes));
    }),
    fuzzParameters(runs),
  );
}

test('canonical reader: valid encodings are read by the fast path, and read as the general decoder reads them', () => {
  readsValid(operation, encodeOperation, readCanonicalOperation, decodeOperationGeneral, 1_500);
  readsValid(result, encodeResult, readCanonicalResult, decodeResultGeneral, 1_500);
  readsValid(request, encodeClientMessage, readCanonicalRequest, decodeClientMessageGeneral, 800);
  readsValid(resultMessage, encodeServerMessage, readCanonicalResultMessage, decodeServerMessageGeneral, 800);
});

/** The general decoder's answer: the value, or 'rejected'. */
function general<T>(decode: (bytes: Uint8Array) => T, bytes: Uint8Array): T | 'rejected' {
  try {
    return decode(bytes);
  } catch {
    return 'rejected';
  }
}

/** Whenever the fast reader answers, the general decoder accepts the same bytes and reads the same value. */
function agree<T>(fastRead: (bytes: Uint8Array) => T | null, decode: (bytes: Uint8Array) => T, bytes: Uint8Array): void {
  const read = fastRead(bytes);
  if (read === null) return;
  assert.deepEqual(read, general(decode, bytes), `fast path answered ${hex(bytes)}`);
}

test('canonical reader: property: on mutated, type-confused and random bytes it declines or agrees with the general decoder', () => {
  const cases = <T>(values: fc.Arbitrary<T>, encode: (value: T) => Uint8Array) =>
    fc.tuple(values.map((value) => kept(encode(value))), byteEditsArbitrary, fc.option(valueConfusionArbitrary, { nil: undefined }));
  const mutate = ([bytes, edits, confusion]: [Uint8Array, Parameters<typeof applyEdits>[1], Parameters<typeof confuseEncoding>[1] | undefined]) =>
    applyEdits(confusion === undefined ? bytes : confuseEncoding(bytes, confusion), edits);
  fc.assert(fc.property(cases(operation, encodeOperation), (c) => agree(readCanonicalOperation, decodeOperationGeneral, mutate(c))), fuzzParameters(3_000));
  fc.assert(fc.property(cases(result, encodeResult), (c) => agree(readCanonicalResult, decodeResultGeneral, mutate(c))), fuzzParameters(3_000));
  fc.assert(fc.property(cases(request, encodeClientMessage), (c) => agree(readCanonicalRequest, decodeClientMessageGeneral, mutate(c))), fuzzParameters(2_000));
  fc.assert(fc.property(cases(resultMessage, encodeServerMessage), (c) => agree(readCanonicalResultMessage, decodeServerMessageGeneral, mutate(c))), fuzzParameters(2_000));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      agree(readCanonicalOperation, decodeOperationGeneral, bytes);
      agree(readCanonicalResult, decodeResultGeneral, bytes);
      agree(readCanonicalRequest, decodeClientMessageGeneral, bytes);
      agree(readCanonicalResultMessage, decodeServerMessageGeneral, bytes);
    }),
    fuzzParameters(3_000),
  );
});

test('canonical reader: wider headers than needed, floats for small integers and invalid UTF-8 are declined', () => {
  const declined = (bytes: number[]): void => {
    const reader = new CanonicalReader(Uint8Array.from(bytes));
    assert.throws(() => {
      reader.arrayHeader();
      reader.uint();
      reader.string();
      reader.end();
    }, (error: unknown) => error === NOT_CANONICAL, hex(Uint8Array.from(bytes)));
  };
  declined([0x92, 0xcc, 0x01, 0xa1, 0x61]); // uint8 for 1
  declined([0xdc, 0x00, 0x02, 0x01, 0xa1, 0x61]); // array16 for 2 elements
  declined([0x92, 0x01, 0xd9, 0x01, 0x61]); // str8 for a 1-byte string
  declined([0x92, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xa1, 0x61]); // float64 1.0
  declined([0x92, 0x01, 0xa2, 0xc3, 0x28]); // invalid UTF-8
  declined([0x92, 0x01, 0xa3, 0xed, 0xa0, 0x80]); // an encoded surrogate
  declined([0x92, 0x01, 0xa1, 0x61, 0x00]); // a trailing byte
  declined([0x92, 0xff, 0xa1, 0x61]); // a negative fixint
  // The canonical forms themselves are read.
  const reader = new CanonicalReader(Uint8Array.from([0x93, 0xcb, 0x41, 0xf0, 0, 0, 0, 0, 0, 0, 0xce, 0x00, 0x01, 0x00, 0x00, 0xa1, 0x61]));
  assert.equal(reader.arrayHeader(), 3);
  assert.equal(reader.uint(), 2 ** 32);
  assert.equal(reader.uint(), 65_536);
  assert.equal(reader.string(), 'a');
  reader.end();
  // The shared writer is reset by each begin: no bytes of an earlier record leak into the next.
  canonicalWriter.begin().string('x'.repeat(100));
  assert.equal(hex(canonicalWriter.begin().uint(1).finish()), '01');
});

test('canonical writer: write-ahead log frames are the bytes msgpackr and encodeFrame made', () => {
  const big: PersistRecord = {
    type: 'accept',
    slot: 9,
    ballot: makeBallot(3, 1),
    value: { type: 'commands', epoch: makeBallot(3, 1), commands: Array.from({ length: 40 }, (_, index) => ({ clientId: `c${index}`, seq: index * 1000, payload: new Uint8Array(300 + index) })) },
  };
  const lone: PersistRecord = { type: 'accept', slot: 1, ballot: makeBallot(1, 1), value: { type: 'commands', epoch: makeBallot(1, 1), commands: [{ clientId: '\uDC00', seq: 0, payload: new Uint8Array(1) }] } };
  assert.ok(isWritableRecord(big) && !isWritableRecord(lone));
  for (const record of [big, lone]) assert.equal(hex(encodeRecordFrame(record, 77)), hex(encodeFrame(encodeRecord(record), 77)));
  fc.assert(
    fc.property(persistRecordArbitrary, fc.maxSafeNat(), (record, sequence) => {
      assert.equal(hex(encodeRecordFrame(record, sequence)), hex(encodeFrame(encodeRecord(record), sequence)));
    }),
    fuzzParameters(1_500),
  );
});

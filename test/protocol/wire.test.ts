import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { InvariantError } from '../../src/core/assert.js';
import { encodeOperation, encodeResult } from '../../src/kv/index.js';
import {
  MESSAGE_BYTES_MAX,
  ProtocolDecodeError,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  type ServerMessage,
} from '../../src/protocol/index.js';
import type { NodeStatusReport } from '../../src/server/service.js';
import { clientMessageArbitrary, serverMessageArbitrary, statusArbitrary } from './arbitraries.js';

const packer = new Packr({ useRecords: false });
const put = encodeOperation({ type: 'put', key: 'k', value: 'v' });

/** Decodes with `decode`: the outcome must be a message that re-encodes to itself, or a ProtocolDecodeError. */
function decodeOrReject<T>(bytes: Uint8Array, decode: (bytes: Uint8Array) => T, encode: (message: T) => Uint8Array): 'decoded' | 'rejected' {
  try {
    const message = decode(bytes);
    assert.deepStrictEqual(decode(encode(message)), message);
    return 'decoded';
  } catch (error) {
    assert.ok(error instanceof ProtocolDecodeError, `unexpected ${String(error)}`);
    return 'rejected';
  }
}

const decodeEitherOrReject = (bytes: Uint8Array): void => {
  decodeOrReject(bytes, decodeClientMessage, encodeClientMessage);
  decodeOrReject(bytes, decodeServerMessage, encodeServerMessage);
};

/** The reqId a decode error reports, or 'no error'. */
function rejectedReqId(bytes: Uint8Array, decode: (bytes: Uint8Array) => unknown): number | null | 'no error' {
  try {
    decode(bytes);
    return 'no error';
  } catch (error) {
    assert.ok(error instanceof ProtocolDecodeError, `unexpected ${String(error)}`);
    return error.reqId;
  }
}

const sampleStatus: NodeStatusReport = {
  id: 2, role: 'leader', serving: true, leader: { id: 2, clientAddress: '127.0.0.1:7002', httpAddress: null },
  ballot: '4.2', firstUnchosen: 10, appliedIndex: 9, maxSlot: 9, revision: 7, keys: 3,
  peers: [{ id: 1, connected: true, lag: 0, rttMs: 0.4 }, { id: 3, connected: false, lag: null, rttMs: null }],
  readMode: 'index', uptimeMs: 1234.5,
};

test('wire: every client message kind round-trips', () => {
  const messages = [
    { type: 'hello', version: 1, token: null },
    { type: 'hello', version: 1, token: 'secret' },
    { type: 'request', reqId: 1, clientId: 'c.0', seq: 1, operation: { type: 'put', key: 'k', value: 'v' } },
    { type: 'request', reqId: 9, clientId: 'c.0', seq: 2, operation: { type: 'cas', key: 'k', value: 'w', expectedValue: null, expectedVersion: 0 } },
    { type: 'request', reqId: 10, clientId: 'c.1', seq: 0, operation: { type: 'list', prefix: '', limit: 10 } },
    { type: 'status-request', reqId: 3 },
  ] as const;
  for (const message of messages) assert.deepStrictEqual(decodeClientMessage(encodeClientMessage(message)), message);
});

test('wire: every server message kind round-trips', () => {
  const messages: ServerMessage[] = [
    { type: 'welcome', version: 1, nodeId: 3, requestFrameBytesMax: 1 << 21 },
    { type: 'result', reqId: 4, result: { ok: true, type: 'get', revision: 5, value: 'v', version: 2 } },
    { type: 'failure', reqId: 0, failure: { ok: false, error: 'overloaded', message: 'too many connections' } },
    { type: 'failure', reqId: 5, failure: { ok: false, error: 'cas_failed', message: 'no', current: { value: null, version: 0 } } },
    { type: 'failure', reqId: 6, failure: { ok: false, error: 'not_leader', message: 'go', leader: { id: 1, clientAddress: 'h:1', httpAddress: 'h:2' } } },
    { type: 'status', reqId: 7, status: sampleStatus },
  ];
  for (const message of messages) assert.deepStrictEqual(decodeServerMessage(encodeServerMessage(message)), message);
});

test('wire: property: client and server messages round-trip', () => {
  fc.assert(fc.property(clientMessageArbitrary, (message) => {
    assert.deepStrictEqual(decodeClientMessage(encodeClientMessage(message)), message);
  }), { numRuns: 1_000 });
  fc.assert(fc.property(serverMessageArbitrary, (message) => {
    assert.deepStrictEqual(decodeServerMessage(encodeServerMessage(message)), message);
  }), { numRuns: 1_000 });
});

test('wire: a request with a bad body is rejected with its reqId; a bad envelope without', () => {
  const bodyErrors: unknown[][] = [
    [2, 7, '', 1, put],
    [2, 7, 'c', -1, put],
    [2, 7, 'c', 1.5, put],
    [2, 7, 'x'.repeat(257), 1, put],
    [2, 7, 'c', 1, 'not bytes'],
    [2, 7, 'c', 1, new Uint8Array([0x92, 0x01, 0xa1])], // truncated operation
    [2, 7, 'c', 1, packer.pack([1, 'k', 'v', 'extra'])],
    [2, 7, 'c', 1, packer.pack([1, 'k', 'v']).subarray(0, 3)],
    [2, 7, 'c', 1, put, 'extra'],
    [2, 7, 'c'],
  ];
  for (const fields of bodyErrors) assert.equal(rejectedReqId(packer.pack(fields), decodeClientMessage), 7, JSON.stringify(fields));
  const envelopeErrors: unknown[] = [
    null, 'x', [], [9, 1], [2], [2, 0, 'c', 1, put], [2, -1, 'c', 1, put], [2, '7', 'c', 1, put], [3, 0], [3, 1, 2],
    [1, 'paxos', 1, null], [1, 'synod', 0, null], [1, 'synod', 1], [1, 'synod', 1, 5], { type: 2 },
  ];
  for (const value of envelopeErrors) assert.equal(rejectedReqId(packer.pack(value), decodeClientMessage), null, JSON.stringify(value));
});

test('wire: a canonical operation is required: a non-canonical encoding of a valid put is rejected', () => {
  // 0xd9 is str8: the key "k" written with a longer header than msgpack's shortest form.
  const nonCanonical = new Uint8Array([0x93, 0x01, 0xd9, 0x01, 0x6b, 0xa1, 0x76]);
  assert.equal(rejectedReqId(packer.pack([2, 7, 'c', 1, nonCanonical]), decodeClientMessage), 7);
});

test('wire: server messages with wrong shapes are rejected', () => {
  const resultBytes = encodeResult({ ok: true, type: 'delete', revision: 1, previous: null });
  const failureResult = encodeResult({ ok: false, error: 'bad_request', message: 'no' });
  const malformed: unknown[] = [
    [1, 1, 0, 8192], [1, 1, 1024, 8192], [1, 1, 1, 10], [1, 0, 1, 8192],
    [2, 0, resultBytes], [2, 1, failureResult], [2, 1, 'text'], [2, 1, resultBytes, null],
    [3, 1, 'no_such_code', 'm', null, null],
    [3, 1, 'timeout', 'm', [null, 0], null],
    [3, 1, 'timeout', 'm', null, [1, null, null]],
    [3, 1, 'cas_failed', 'm', ['v', 0], null],
    [3, 1, 'cas_failed', 'm', [null, 0, 1], null],
    [3, 1, 'not_leader', 'm', null, [0, null, null]],
    [3, 1, 'not_leader', 'm', null, [1, 5, null]],
    [3, 1, 'timeout', 'x'.repeat(MESSAGE_BYTES_MAX + 1), null, null],
    [4, 1, []], [5, 1],
  ];
  for (const value of malformed) assert.throws(() => decodeServerMessage(packer.pack(value)), ProtocolDecodeError, JSON.stringify(value));
});

test('wire: a status report is checked field by field', () => {
  const bad: Partial<Record<keyof NodeStatusReport, unknown>>[] = [
    { id: 0 }, { role: 'king' }, { serving: 1 }, { ballot: 5 }, { appliedIndex: -1 }, { keys: 1.5 }, { readMode: 'lease' },
    { uptimeMs: Number.NaN }, { peers: [{ id: 1, connected: true, lag: -1, rttMs: null }] },
    { peers: [{ id: 1, connected: 'yes', lag: null, rttMs: null }] },
  ];
  for (const change of bad) {
    const status = { ...sampleStatus, ...change } as NodeStatusReport;
    // The server refuses to encode a malformed report (a service bug, caught before the wire)...
    assert.throws(() => encodeServerMessage({ type: 'status', reqId: 1, status }), InvariantError, JSON.stringify(change));
  }
  // ...and a client refuses one that arrives anyway.
  const fields = [1, 'leader', true, null, '1.1', 1, 0, 0, 0, 0, [1, true, null], 'index', 0];
  assert.throws(() => decodeServerMessage(packer.pack([4, 1, fields])), ProtocolDecodeError);
});

test('wire: the failure encoder keeps only the fields a code carries and sanitises the message', () => {
  const leader = { id: 2, clientAddress: 'h:1', httpAddress: null };
  const decoded = decodeServerMessage(encodeServerMessage({
    type: 'failure', reqId: 1,
    failure: { ok: false, error: 'timeout', message: `lone \ud800 ${'x'.repeat(5000)}`, current: { value: 'v', version: 1 }, leader },
  }));
  assert.equal(decoded.type, 'failure');
  assert.ok(decoded.type === 'failure');
  assert.deepStrictEqual(Object.keys(decoded.failure).sort(), ['error', 'message', 'ok']);
  assert.ok(decoded.failure.message.startsWith('lone \uFFFD x'));
  assert.ok(decoded.failure.message.length <= 1024);
});

test('wire: property: status reports round-trip', () => {
  fc.assert(fc.property(statusArbitrary, fc.integer({ min: 1, max: 1e6 }), (status, reqId) => {
    assert.deepStrictEqual(decodeServerMessage(encodeServerMessage({ type: 'status', reqId, status })), { type: 'status', reqId, status });
  }), { numRuns: 300 });
});

test('wire: property: random bytes decode or throw ProtocolDecodeError, nothing else', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), decodeEitherOrReject), { numRuns: 3_000 });
});

test('wire: property: random MessagePack values decode or throw ProtocolDecodeError', () => {
  fc.assert(fc.property(fc.anything({ withNullPrototype: true }), (value) => decodeEitherOrReject(packer.pack(value))), { numRuns: 2_000 });
  const tags = fc.tuple(fc.integer({ min: 0, max: 5 }), fc.array(fc.anything(), { maxLength: 7 }));
  fc.assert(fc.property(tags, ([tag, rest]) => decodeEitherOrReject(packer.pack([tag, ...rest]))), { numRuns: 2_000 });
});

test('wire: property: mutated valid frames decode or throw ProtocolDecodeError', () => {
  const mutation = fc.record({
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    cut: fc.option(fc.nat()),
  });
  const mutate = (encoded: Uint8Array, { flips, cut }: { flips: [number, number][]; cut: number | null }): Uint8Array => {
    const bytes = Uint8Array.from(encoded);
    for (const [position, value] of flips) bytes[position % bytes.length] = value;
    return cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
  };
  fc.assert(fc.property(clientMessageArbitrary, mutation, (message, change) => {
    decodeOrReject(mutate(encodeClientMessage(message), change), decodeClientMessage, encodeClientMessage);
  }), { numRuns: 2_000 });
  fc.assert(fc.property(serverMessageArbitrary, mutation, (message, change) => {
    decodeOrReject(mutate(encodeServerMessage(message), change), decodeServerMessage, encodeServerMessage);
  }), { numRuns: 2_000 });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { makeBallot } from '../../src/core/ballot.js';
import { decodeMessage, encodeMessage } from '../../src/transport/codec.js';
import { FrameDecoder, encodeFrame } from '../../src/transport/framing.js';
import { FrameTooLargeError, WireDecodeError } from '../../src/transport/transport.js';
import { sampleMessages } from './conformance.js';

const packer = new Packr({ useRecords: false });

/** Decodes `bytes`: the result must be a message or a WireDecodeError, nothing else. */
function decodeOrReject(bytes: Uint8Array): 'decoded' | 'rejected' {
  try {
    const message = decodeMessage(bytes);
    // Whatever decodes must re-encode to something that decodes to the same message.
    assert.deepStrictEqual(decodeMessage(encodeMessage(message)), message);
    return 'decoded';
  } catch (error) {
    assert.ok(error instanceof WireDecodeError, `unexpected ${String(error)}`);
    return 'rejected';
  }
}

test('codec: every sample message round-trips exactly', () => {
  for (const message of sampleMessages(1, 2)) assert.deepStrictEqual(decodeMessage(encodeMessage(message)), message);
});

test('codec: rejects wrong shapes with WireDecodeError', () => {
  const valid = { type: 'heartbeat', from: 1, to: 2, ballot: makeBallot(1, 1), commitIndex: 3, readRound: 0 };
  const malformed: unknown[] = [
    null, 1, 'x', [], [valid],
    { ...valid, type: 'bogus' },
    { ...valid, from: 0 },
    { ...valid, to: 1024 },
    { ...valid, from: 1.5 },
    { ...valid, commitIndex: -1 },
    { ...valid, commitIndex: 2 ** 60 },
    { ...valid, ballot: 1024 * 5 }, // node 0 is not a node
    { ...valid, extra: 1 },
    { type: 'heartbeat', from: 1, to: 2, ballot: makeBallot(1, 1) },
    { type: 'learn', from: 1, to: 2, slots: [1, 'two'] },
    { type: 'learn', from: 1, to: 2, slots: {} },
    { type: 'accept', from: 1, to: 2, ballot: 1025, commitIndex: 0, entries: [{ slot: 1, value: { type: 'nope' } }] },
    { type: 'accept', from: 1, to: 2, ballot: 1025, commitIndex: 0, entries: [{ slot: 1, value: { type: 'noop', x: 1 } }] },
    {
      type: 'accept', from: 1, to: 2, ballot: 1025, commitIndex: 0,
      entries: [{ slot: 1, value: { type: 'commands', epoch: 1025, commands: [{ clientId: 'c', seq: 1, payload: 'text' }] } }],
    },
    { type: 'promise', from: 1, to: 2, ballot: 1025, maxSlot: 0, entries: [{ slot: 1, ballot: 1025, value: { type: 'noop' }, chosen: 1 }] },
    { type: 'learned', from: 1, to: 2, entries: [{ slot: 1, ballot: 1025n, value: { type: 'noop' } }] },
    JSON.parse('{"type":"learn","from":1,"to":2,"slots":[],"__proto__":{"x":1}}'),
    { type: 'rejoin', from: 1, to: 2, nonce: -1, fence: 0 },
    { type: 'rejoin', from: 1, to: 2, nonce: 1, fence: 1024 * 3 }, // a fence naming node 0
    { type: 'rejoin', from: 1, to: 2, nonce: 1 },
    { type: 'rejoin-ack', from: 1, to: 2, nonce: 1, promised: 1025, fence: 0 },
  ];
  for (const value of malformed) {
    assert.throws(() => decodeMessage(packer.pack(value)), WireDecodeError, JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? `${item}n` : item)));
  }
  assert.throws(() => decodeMessage(new Uint8Array([0xc1])), WireDecodeError);
  assert.throws(() => decodeMessage(new Uint8Array(0)), WireDecodeError);
  assert.throws(() => decodeMessage(new Uint8Array([0xd6, 0xff, 0, 0, 0, 1])), WireDecodeError); // a timestamp extension
});

test('codec fuzz: random bytes decode to a message or throw WireDecodeError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => void decodeOrReject(bytes)), { numRuns: 3_000 });
});

test('codec fuzz: random MessagePack values decode to a message or throw WireDecodeError', () => {
  fc.assert(fc.property(fc.anything({ withNullPrototype: true }), (value) => void decodeOrReject(packer.pack(value))), { numRuns: 2_000 });
});

test('codec fuzz: flipping bytes of valid messages never escapes WireDecodeError', () => {
  const encoded = sampleMessages(4, 5).map((message) => encodeMessage(message));
  const mutation = fc.record({
    which: fc.nat({ max: encoded.length - 1 }),
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    cut: fc.option(fc.nat()),
  });
  fc.assert(fc.property(mutation, ({ which, flips, cut }) => {
    const original = encoded[which] ?? new Uint8Array(0);
    let bytes = Uint8Array.from(original);
    for (const [position, value] of flips) bytes[position % bytes.length] = value;
    if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.length + 1));
    decodeOrReject(bytes);
  }), { numRuns: 3_000 });
});

test('framing: random chunking reassembles the exact frames', () => {
  const frames = fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 });
  fc.assert(fc.property(frames, fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }), (payloads, cuts) => {
    const stream = Buffer.concat(payloads.map((payload) => encodeFrame(payload)));
    const decoder = new FrameDecoder(1_000);
    const output: Uint8Array[] = [];
    let offset = 0;
    for (let index = 0; offset < stream.length; index += 1) {
      const size = cuts[index % cuts.length] ?? 1;
      for (const frame of decoder.push(stream.subarray(offset, offset + size))) output.push(Uint8Array.from(frame));
      offset += size;
    }
    assert.deepStrictEqual(output, payloads.map((payload) => Uint8Array.from(payload)));
    assert.equal(decoder.bufferedBytes, 0);
  }), { numRuns: 500 });
});

test('framing: an oversized length prefix throws FrameTooLargeError before buffering the payload', () => {
  const decoder = new FrameDecoder(100);
  assert.deepStrictEqual(decoder.push(encodeFrame(new Uint8Array(100))).map((frame) => frame.length), [100]);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(101, 0);
  assert.throws(() => decoder.push(header.subarray(0, 2)).concat(decoder.push(header.subarray(2))), FrameTooLargeError);
  assert.equal(decoder.bufferedBytes, 0);
  const huge = new FrameDecoder();
  assert.throws(() => huge.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])), FrameTooLargeError);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeBallot } from '../../src/core/ballot.js';
import type { AcceptMessage, ProposedEntry } from '../../src/core/multipaxos/types.js';
import { ACCEPT_TAG } from '../../src/transport/accept-codec.js';
import { decodeMessage, encodeMessage } from '../../src/transport/codec.js';
import { WireDecodeError } from '../../src/transport/transport.js';

const BALLOT = makeBallot(7, 2);

function accept(entries: readonly ProposedEntry[], to = 1): AcceptMessage {
  return { type: 'accept', from: 2, to, ballot: BALLOT, entries, commitIndex: 41 };
}

const ENTRIES: readonly ProposedEntry[] = [
  { slot: 42, value: { type: 'start-working', epoch: BALLOT } },
  { slot: 43, value: { type: 'noop' } },
  {
    slot: 44,
    value: {
      type: 'commands',
      epoch: BALLOT,
      commands: [
        { clientId: 'bench-1.0', seq: 1, payload: new Uint8Array(130).fill(3) },
        { clientId: 'ключ-µ-🙂', seq: 2 ** 52, payload: new Uint8Array(0) },
      ],
    },
  },
];

test('accept codec: accepts go out in the binary form and decode to an equal message', () => {
  const bytes = encodeMessage(accept(ENTRIES));
  assert.equal(bytes[0], ACCEPT_TAG);
  assert.deepStrictEqual(decodeMessage(bytes), accept(ENTRIES));
});

test('accept codec: followers sharing one entries array get the same entry bytes, each with its own header', () => {
  const toOne = Buffer.from(encodeMessage(accept(ENTRIES, 1)));
  const toThree = Buffer.from(encodeMessage(accept(ENTRIES, 3)));
  assert.deepStrictEqual(toOne.subarray(6), toThree.subarray(6));
  assert.equal(decodeMessage(toThree).to, 3);
  assert.equal(decodeMessage(toOne).to, 1);
});

test('accept codec: a decoded payload is a copy: changing the received bytes afterwards changes nothing', () => {
  const bytes = encodeMessage(accept(ENTRIES));
  const decoded = decodeMessage(bytes) as AcceptMessage;
  bytes.fill(0xee, 30);
  assert.deepStrictEqual(decoded, accept(ENTRIES));
});

test('accept codec: every truncation, and any byte after the last entry, is a WireDecodeError', () => {
  const bytes = encodeMessage(accept(ENTRIES));
  for (let length = 1; length < bytes.byteLength; length += 1) {
    assert.throws(() => decodeMessage(bytes.subarray(0, length)), WireDecodeError, `cut at ${length}`);
  }
  assert.throws(() => decodeMessage(Buffer.concat([bytes, Uint8Array.of(0)])), /bytes after the last entry/);
});

test('accept codec: hostile fields are refused by the same rules as the MessagePack form', () => {
  const base = Buffer.from(encodeMessage(accept(ENTRIES)));
  const edit = (change: (bytes: Buffer) => void): Buffer => {
    const bytes = Buffer.from(base);
    change(bytes);
    return bytes;
  };
  const cases: [string, Buffer, RegExp][] = [
    ['layout version', edit((bytes) => void (bytes[1] = 9)), /layout version/],
    ['sender id 0', edit((bytes) => bytes.writeUInt16LE(0, 2)), /from is not a valid node id/],
    ['ballot of another node', edit((bytes) => bytes.writeDoubleLE(makeBallot(7, 3), 6)), /ballot belongs to node 3/],
    ['fractional commit index', edit((bytes) => bytes.writeDoubleLE(1.5, 14)), /commitIndex/],
    ['NaN commit index', edit((bytes) => bytes.writeDoubleLE(Number.NaN, 14)), /commitIndex/],
    ['entry count beyond the bytes', edit((bytes) => bytes.writeUInt32LE(0xffffffff, 22)), /more entries than bytes/],
    ['slot 0', edit((bytes) => bytes.writeDoubleLE(0, 26)), /slot must be at least 1/],
    ['unknown value kind', edit((bytes) => void (bytes[34] = 7)), /unknown entry value type/],
  ];
  for (const [name, bytes, pattern] of cases) {
    assert.throws(() => decodeMessage(bytes), (error: unknown) => error instanceof WireDecodeError && pattern.test(error.message), name);
  }
  const repeated = encodeMessage(accept([{ slot: 5, value: { type: 'noop' } }, { slot: 5, value: { type: 'noop' } }]));
  assert.throws(() => decodeMessage(repeated), /entries repeat slot 5/);
});

test('accept codec: a client id that is not valid UTF-8 is refused, not repaired', () => {
  const message = accept([{ slot: 1, value: { type: 'commands', epoch: BALLOT, commands: [{ clientId: 'ab', seq: 1, payload: Uint8Array.of(1) }] } }]);
  const bytes = Buffer.from(encodeMessage(message));
  const at = bytes.indexOf(Buffer.from('ab'));
  assert.ok(at > 0);
  bytes[at] = 0xc3; // a lead byte followed by an ASCII byte: invalid UTF-8
  assert.throws(() => decodeMessage(bytes), /clientId is not valid UTF-8/);
});

/**
 * The binary layouts of `accepted`, `heartbeat` and `heartbeat-ack` (`control-codec.ts`): used by
 * `encodeMessage`, exact round trips, and every malformed variant refused with `WireDecodeError`
 * by the same rules the MessagePack form is checked with.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeBallot } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import { decodeMessage, encodeMessage } from '../../src/transport/codec.js';
import { WireDecodeError } from '../../src/transport/transport.js';

const LEADER_BALLOT = makeBallot(7, 2);
const MESSAGES: readonly Message[] = [
  { type: 'accepted', from: 1, to: 2, ballot: LEADER_BALLOT, slots: [41, 42, 2 ** 40], firstUnchosen: 41 },
  { type: 'accepted', from: 3, to: 2, ballot: LEADER_BALLOT, slots: [], firstUnchosen: 0 },
  { type: 'heartbeat', from: 2, to: 3, ballot: LEADER_BALLOT, commitIndex: 2 ** 52, readRound: 9 },
  { type: 'heartbeat-ack', from: 3, to: 2, ballot: LEADER_BALLOT, firstUnchosen: 17, maxSlot: 20, readRound: 9 },
];

function refused(bytes: Uint8Array, why: string): void {
  assert.throws(() => decodeMessage(bytes), WireDecodeError, why);
}

/** `bytes` with the f64 at `at` replaced. */
function withDouble(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = Buffer.from(bytes);
  copy.writeDoubleLE(value, at);
  return copy;
}

test('control codec: the three small messages go out in their binary layouts and round-trip exactly', () => {
  const layouts = { accepted: 2, heartbeat: 3, 'heartbeat-ack': 4 } as const;
  for (const message of MESSAGES) {
    const bytes = encodeMessage(message);
    assert.equal(bytes[0], 0xc1, message.type);
    assert.equal(bytes[1], layouts[message.type as keyof typeof layouts], message.type);
    assert.deepStrictEqual(decodeMessage(bytes), message);
  }
});

test('control codec: truncated, extended and out-of-range messages are refused', () => {
  for (const message of MESSAGES) {
    const bytes = encodeMessage(message);
    for (let length = 2; length < bytes.byteLength; length += 1) refused(bytes.subarray(0, length), `${message.type} cut to ${length}`);
    refused(Uint8Array.from([...bytes, 0]), `${message.type} with a byte after the last field`);
    // Node ids: 0 is no node.
    refused(Uint8Array.from([...bytes.subarray(0, 2), 0, 0, ...bytes.subarray(4)]), `${message.type} from node 0`);
    // The ballot must be the leader's, node 2 (the sender of a heartbeat, the addressee of an answer).
    refused(withDouble(bytes, 6, makeBallot(7, 3)), `${message.type} with another node's ballot`);
    refused(withDouble(bytes, 6, 0), `${message.type} with ballot 0`);
    // Integers: safe, non-negative, whole.
    for (const bad of [1.5, -1, 2 ** 53, Number.NaN]) refused(withDouble(bytes, 14, bad), `${message.type} field at 14 = ${bad}`);
  }
  const accepted = encodeMessage(MESSAGES[0] as Message);
  refused(withDouble(accepted, 26, 0), 'accepted slot 0');
  refused(withDouble(accepted, 34, 41), 'accepted repeating a slot');
  const count = Buffer.from(accepted);
  count.writeUInt32LE(4, 22);
  refused(count, 'accepted whose slot count exceeds its bytes');
});

/**
 * Binary wire forms of the small messages a stable leader exchanges on every round: `accepted`
 * (a follower's answer to each accept), `heartbeat` (sent per read-index round as well as on the
 * tick) and `heartbeat-ack`. As MessagePack maps with string keys they cost the leader more than
 * the accepts themselves at 64 clients reading (a map pack per heartbeat, an unpack and a field
 * check per ack: ~15% of its busy time); these fixed layouts cost a few buffer reads.
 *
 * They share `accept-codec.ts`'s first byte, 0xc1 (MessagePack's "never used" byte), and tell
 * themselves apart by the second, where an accept has its layout version (1):
 *
 *     accepted       [0] 0xc1 [1] 2 [2] u16 from [4] u16 to [6] f64 ballot [14] f64 firstUnchosen
 *                    [22] u32 slot count, then f64 per slot
 *     heartbeat      [0] 0xc1 [1] 3 [2] u16 from [4] u16 to [6] f64 ballot [14] f64 commitIndex
 *                    [22] f64 readRound
 *     heartbeat-ack  [0] 0xc1 [1] 4 [2] u16 from [4] u16 to [6] f64 ballot [14] f64 firstUnchosen
 *                    [22] f64 maxSlot [30] f64 readRound
 *
 * Little-endian; f64 fields hold safe integers. The decoder checks every field with the rules of
 * `codec.ts` (the same ones the map form is checked with), that nothing is missing or left over,
 * and builds a fresh message.
 */
import { assert } from '../core/assert.js';
import { isValidNodeId, type NodeId } from '../core/ballot.js';
import type { AcceptedMessage, HeartbeatAckMessage, HeartbeatMessage } from '../core/multipaxos/types.js';
import type { AcceptFieldRules } from './accept-codec.js';
import { WireDecodeError } from './transport.js';

export const ACCEPTED_LAYOUT = 2;
export const HEARTBEAT_LAYOUT = 3;
export const HEARTBEAT_ACK_LAYOUT = 4;
/** The first byte of every binary message (as `ACCEPT_TAG`). */
const BINARY_TAG = 0xc1;
const ENVELOPE_BYTES = 14;

/** The messages with a layout here. */
export type ControlMessage = AcceptedMessage | HeartbeatMessage | HeartbeatAckMessage;

/** Whether the second byte of a binary message names one of these layouts. */
export function isControlLayout(layout: number | undefined): boolean {
  return layout === ACCEPTED_LAYOUT || layout === HEARTBEAT_LAYOUT || layout === HEARTBEAT_ACK_LAYOUT;
}

/** Encodes a message built by our own core (asserts, rather than reports, anything malformed). */
export function encodeControl(message: ControlMessage): Uint8Array {
  let bytes: Buffer;
  switch (message.type) {
    case 'accepted': {
      bytes = envelope(ACCEPTED_LAYOUT, message, 12 + message.slots.length * 8);
      writeSafe(bytes, message.firstUnchosen, 14);
      bytes.writeUInt32LE(message.slots.length, 22);
      let at = 26;
      for (const slot of message.slots) at = writeSafe(bytes, slot, at);
      break;
    }
    case 'heartbeat':
      bytes = envelope(HEARTBEAT_LAYOUT, message, 16);
      writeSafe(bytes, message.commitIndex, 14);
      writeSafe(bytes, message.readRound, 22);
      break;
    case 'heartbeat-ack':
      bytes = envelope(HEARTBEAT_ACK_LAYOUT, message, 24);
      writeSafe(bytes, message.firstUnchosen, 14);
      writeSafe(bytes, message.maxSlot, 22);
      writeSafe(bytes, message.readRound, 30);
      break;
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function envelope(layout: number, message: { readonly from: NodeId; readonly to: NodeId; readonly ballot: number }, bodyBytes: number): Buffer {
  assert(isValidNodeId(message.from) && isValidNodeId(message.to), 'binary message: node ids in range');
  const bytes = Buffer.allocUnsafe(ENVELOPE_BYTES + bodyBytes);
  bytes[0] = BINARY_TAG;
  bytes[1] = layout;
  bytes.writeUInt16LE(message.from, 2);
  bytes.writeUInt16LE(message.to, 4);
  writeSafe(bytes, message.ballot, 6);
  return bytes;
}

function writeSafe(bytes: Buffer, value: number, at: number): number {
  assert(Number.isSafeInteger(value) && value >= 0, 'binary message: integers are non-negative safe integers');
  return bytes.writeDoubleLE(value, at);
}

/**
 * Decodes one of these layouts from untrusted bytes (whose first byte the caller checked);
 * throws `WireDecodeError` if malformed.
 */
export function decodeControl(input: Uint8Array, rules: AcceptFieldRules): ControlMessage {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const layout = bytes[1];
  const expected = layout === ACCEPTED_LAYOUT ? 26 : layout === HEARTBEAT_LAYOUT ? 30 : 38;
  if (bytes.byteLength < expected) throw new WireDecodeError('binary message: truncated');
  const from = bytes.readUInt16LE(2);
  const to = bytes.readUInt16LE(4);
  if (!isValidNodeId(from)) throw new WireDecodeError('from is not a valid node id');
  if (!isValidNodeId(to)) throw new WireDecodeError('to is not a valid node id');
  const ballot = bytes.readDoubleLE(6);
  if (layout === HEARTBEAT_LAYOUT) {
    exactly(bytes, expected);
    return {
      type: 'heartbeat',
      from,
      to,
      ballot: rules.ownedBallot(ballot, from),
      commitIndex: rules.slot(bytes.readDoubleLE(14), 'commitIndex'),
      readRound: rules.slot(bytes.readDoubleLE(22), 'readRound'),
    };
  }
  if (layout === HEARTBEAT_ACK_LAYOUT) {
    exactly(bytes, expected);
    return {
      type: 'heartbeat-ack',
      from,
      to,
      ballot: rules.ownedBallot(ballot, to),
      firstUnchosen: rules.slot(bytes.readDoubleLE(14), 'firstUnchosen'),
      maxSlot: rules.slot(bytes.readDoubleLE(22), 'maxSlot'),
      readRound: rules.slot(bytes.readDoubleLE(30), 'readRound'),
    };
  }
  assert(layout === ACCEPTED_LAYOUT, 'decodeControl is called for its own layouts');
  const count = bytes.readUInt32LE(22);
  exactly(bytes, expected + count * 8);
  const slots: number[] = [];
  for (let index = 0; index < count; index += 1) slots.push(rules.entrySlot(bytes.readDoubleLE(26 + index * 8)));
  if (new Set(slots).size !== slots.length) throw new WireDecodeError('slots repeat a slot');
  return {
    type: 'accepted',
    from,
    to,
    ballot: rules.ownedBallot(ballot, to),
    slots,
    firstUnchosen: rules.slot(bytes.readDoubleLE(14), 'firstUnchosen'),
  };
}

function exactly(bytes: Buffer, length: number): void {
  if (bytes.byteLength < length) throw new WireDecodeError('binary message: truncated');
  if (bytes.byteLength > length) throw new WireDecodeError('binary message: bytes after the last field');
}

/**
 * The binary wire form of `accept`, the message a stable leader sends most and the largest: every
 * client command crosses the network inside one. MessagePack maps with string keys cost the
 * leader ~55 µs per accept of 28 commands to encode (it sends one per follower) and a follower
 * ~40–70 µs to decode; this fixed layout does both in a few µs, and the leader encodes the entries
 * once for all followers (they share the same `entries` array).
 *
 * Layout, little-endian; integers that may exceed 32 bits are float64 holding a safe integer:
 *
 *     [0]  u8   ACCEPT_TAG (0xc1: MessagePack's "never used" byte, so no MessagePack message
 *               starts with it and the two forms cannot be confused)
 *     [1]  u8   layout version (1)
 *     [2]  u16  from        [4]  u16 to
 *     [6]  f64  ballot      [14] f64 commitIndex
 *     [22] u32  entry count, then per entry:
 *          f64 slot, u8 value kind (0 noop, 1 start-working, 2 commands), then by kind:
 *            start-working: f64 epoch
 *            commands:      f64 epoch, u32 count, then per command:
 *                           u16 clientId length, clientId (UTF-8), f64 seq, u32 payload length, payload
 *
 * The decoder treats its input as hostile, like `decodeMessage`: every length is checked against
 * the bytes there are, every integer and ballot with the same rules (`codec.ts`), nothing may
 * follow the last entry, and the result is a fresh object whose payloads view a private copy.
 */
import { assert } from '../core/assert.js';
import { isValidNodeId, type Ballot, type NodeId } from '../core/ballot.js';
import type { Command } from '../core/command.js';
import type { AcceptMessage, EntryValue, ProposedEntry } from '../core/multipaxos/types.js';
import { utf8ByteLength } from '../codec/text.js';
import { WireDecodeError } from './transport.js';

export const ACCEPT_TAG = 0xc1;
const LAYOUT_VERSION = 1;
const HEADER_BYTES = 26;
const VALUE_NOOP = 0;
const VALUE_START_WORKING = 1;
const VALUE_COMMANDS = 2;
const CLIENT_ID_BYTES_MAX = 0xffff;

/** The validators of `codec.ts`, passed in so both forms check fields by the same rules. */
export interface AcceptFieldRules {
  readonly slot: (value: unknown, what: string) => number;
  readonly entrySlot: (value: unknown) => number;
  readonly realBallot: (value: unknown, what: string) => Ballot;
  readonly ownedBallot: (value: unknown, owner: NodeId) => Ballot;
}

/** Encoded entry sections by entries array: a leader sends the same array to every follower. */
const encodedEntries = new WeakMap<readonly ProposedEntry[], Buffer>();

/** Encodes an accept built by our own core (asserts, rather than reports, anything malformed). */
export function encodeAccept(message: AcceptMessage): Uint8Array {
  let entries = encodedEntries.get(message.entries);
  if (entries === undefined) {
    entries = encodeEntries(message.entries);
    encodedEntries.set(message.entries, entries);
  }
  assert(isValidNodeId(message.from) && isValidNodeId(message.to), 'accept: node ids in range');
  assertSafe(message.ballot);
  assertSafe(message.commitIndex);
  const bytes = Buffer.allocUnsafe(HEADER_BYTES + entries.byteLength);
  bytes[0] = ACCEPT_TAG;
  bytes[1] = LAYOUT_VERSION;
  bytes.writeUInt16LE(message.from, 2);
  bytes.writeUInt16LE(message.to, 4);
  bytes.writeDoubleLE(message.ballot, 6);
  bytes.writeDoubleLE(message.commitIndex, 14);
  bytes.writeUInt32LE(message.entries.length, 22);
  entries.copy(bytes, HEADER_BYTES);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function encodeEntries(entries: readonly ProposedEntry[]): Buffer {
  let size = 0;
  for (const entry of entries) {
    size += 9;
    const value = entry.value;
    if (value.type === 'start-working') size += 8;
    if (value.type !== 'commands') continue;
    size += 12;
    for (const command of value.commands) size += 14 + utf8ByteLength(command.clientId) + command.payload.byteLength;
  }
  const bytes = Buffer.allocUnsafe(size);
  let at = 0;
  for (const entry of entries) {
    assertSafe(entry.slot);
    at = bytes.writeDoubleLE(entry.slot, at);
    const value = entry.value;
    switch (value.type) {
      case 'noop':
        at = bytes.writeUInt8(VALUE_NOOP, at);
        break;
      case 'start-working':
        at = bytes.writeUInt8(VALUE_START_WORKING, at);
        assertSafe(value.epoch);
        at = bytes.writeDoubleLE(value.epoch, at);
        break;
      case 'commands':
        at = bytes.writeUInt8(VALUE_COMMANDS, at);
        assertSafe(value.epoch);
        at = bytes.writeDoubleLE(value.epoch, at);
        at = bytes.writeUInt32LE(value.commands.length, at);
        for (const command of value.commands) {
          // Client ids are well-formed (the client protocol refuses lone surrogates), so the
          // UTF-8 length computed above is what `write` writes.
          const written = bytes.write(command.clientId, at + 2, 'utf8');
          assert(written <= CLIENT_ID_BYTES_MAX, 'accept: clientId fits its length field');
          bytes.writeUInt16LE(written, at);
          at += 2 + written;
          assertSafe(command.seq);
          at = bytes.writeDoubleLE(command.seq, at);
          at = bytes.writeUInt32LE(command.payload.byteLength, at);
          bytes.set(command.payload, at);
          at += command.payload.byteLength;
        }
        break;
    }
  }
  assert(at === size, 'accept: entries filled exactly');
  return bytes;
}

function assertSafe(value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'accept: integers are non-negative safe integers');
}

/** Decodes an accept in the binary form from untrusted bytes; throws `WireDecodeError` if malformed. */
export function decodeAccept(input: Uint8Array, rules: AcceptFieldRules): AcceptMessage {
  const reader = new Reader(input);
  reader.u8(); // the tag, checked by the caller
  if (reader.u8() !== LAYOUT_VERSION) throw new WireDecodeError('accept: unknown layout version');
  const from = reader.u16();
  const to = reader.u16();
  if (!isValidNodeId(from)) throw new WireDecodeError('from is not a valid node id');
  if (!isValidNodeId(to)) throw new WireDecodeError('to is not a valid node id');
  const ballot = rules.ownedBallot(reader.f64(), from);
  const commitIndex = rules.slot(reader.f64(), 'commitIndex');
  const count = reader.u32();
  // Each entry takes at least 9 bytes: a count beyond what the bytes can hold is a lie.
  if (count > reader.remaining / 9) throw new WireDecodeError('accept: more entries than bytes');
  const entries: ProposedEntry[] = [];
  const slots = new Set<number>();
  for (let index = 0; index < count; index += 1) {
    const slot = rules.entrySlot(reader.f64());
    if (slots.has(slot)) throw new WireDecodeError(`entries repeat slot ${slot}`);
    slots.add(slot);
    entries.push({ slot, value: readValue(reader, rules) });
  }
  if (reader.remaining !== 0) throw new WireDecodeError('accept: bytes after the last entry');
  return { type: 'accept', from, to, ballot, entries, commitIndex };
}

function readValue(reader: Reader, rules: AcceptFieldRules): EntryValue {
  const kind = reader.u8();
  switch (kind) {
    case VALUE_NOOP:
      return { type: 'noop' };
    case VALUE_START_WORKING:
      return { type: 'start-working', epoch: rules.realBallot(reader.f64(), 'epoch') };
    case VALUE_COMMANDS: {
      const epoch = rules.realBallot(reader.f64(), 'epoch');
      const count = reader.u32();
      // Each command takes at least 14 bytes.
      if (count > reader.remaining / 14) throw new WireDecodeError('accept: more commands than bytes');
      const commands: Command[] = [];
      for (let index = 0; index < count; index += 1) {
        const clientId = reader.text(reader.u16());
        const seq = rules.slot(reader.f64(), 'seq');
        const payload = reader.view(reader.u32());
        commands.push({ clientId, seq, payload });
      }
      return { type: 'commands', epoch, commands };
    }
    default:
      throw new WireDecodeError('unknown entry value type');
  }
}

/**
 * Bounds-checked reads over untrusted bytes. The reader works on its own copy of the message, and
 * payloads are views into that copy: one allocation per message instead of one per command (an
 * array over 64 bytes gets a backing store of its own, ~1 µs each here), and no view keeps the
 * received batch (the socket's read buffer) alive.
 */
class Reader {
  private at = 0;
  private readonly bytes: Buffer;

  constructor(input: Uint8Array) {
    this.bytes = Buffer.from(input);
  }

  get remaining(): number {
    return this.bytes.byteLength - this.at;
  }

  private take(length: number): number {
    if (length > this.remaining) throw new WireDecodeError('accept: truncated');
    const start = this.at;
    this.at += length;
    return start;
  }

  u8(): number {
    return this.bytes.readUInt8(this.take(1));
  }

  u16(): number {
    return this.bytes.readUInt16LE(this.take(2));
  }

  u32(): number {
    return this.bytes.readUInt32LE(this.take(4));
  }

  f64(): number {
    return this.bytes.readDoubleLE(this.take(8));
  }

  /** A UTF-8 string that must decode exactly (no invalid sequence silently replaced). */
  text(length: number): string {
    const start = this.take(length);
    const end = start + length;
    let ascii = true;
    for (let index = start; index < end; index += 1) {
      if ((this.bytes[index] as number) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return this.bytes.toString('latin1', start, end);
    const text = this.bytes.toString('utf8', start, end);
    if (!Buffer.from(text, 'utf8').equals(this.bytes.subarray(start, end))) {
      throw new WireDecodeError('clientId is not valid UTF-8');
    }
    return text;
  }

  /** A view of `length` bytes of this reader's own copy. */
  view(length: number): Uint8Array {
    const start = this.take(length);
    return new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + start, length);
  }
}

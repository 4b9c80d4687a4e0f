/**
 * The wire form of a `Message`: one MessagePack map per message, with exactly the fields of its
 * type — except `accept`, which has a binary layout of its own (`accept-codec.ts`; a leading byte
 * no MessagePack value starts with tells the forms apart), and `accepted`, `heartbeat` and
 * `heartbeat-ack`, which have small fixed layouts (`control-codec.ts`; the map form of these three
 * is still read). `decodeMessage` treats its input as hostile: it checks every tag, integer, node id and
 * nested entry, rebuilds a fresh object from the checked fields (so no unexpected property, getter
 * or prototype reaches the core), and throws `WireDecodeError` for anything else.
 *
 * It also checks the invariants every message our core builds satisfies, which the core relies on
 * (it asserts them, and an assertion stops the node): a sender's own requests (prepare, accept,
 * heartbeat) carry a ballot it owns, and answers (promise, accepted, nack, heartbeat-ack) one owned
 * by the node they answer; log entries sit at slots of at least 1, at most one entry per slot per
 * message, with non-zero ballots and epochs; a promise that lists entries names the last of them
 * as its max slot.
 */
import { Packr } from 'msgpackr';
import { ballotNode, isValidNodeId, type Ballot, type NodeId } from '../core/ballot.js';
import { assert } from '../core/assert.js';
import type { Command } from '../core/command.js';
import type {
  ChosenEntry,
  EntryValue,
  LogEntry,
  Message,
  ProposedEntry,
} from '../core/multipaxos/types.js';
import { WireDecodeError } from './transport.js';
import { ACCEPT_TAG, type AcceptFieldRules, decodeAccept, encodeAccept } from './accept-codec.js';
import { decodeControl, encodeControl, isControlLayout } from './control-codec.js';

/**
 * `useRecords: false` turns off msgpackr's record extension, whose output depends on structures the
 * packer saw earlier; without it each message's bytes depend only on the message, so a peer that
 * restarts (and loses the packer's state) still decodes everything.
 */
const packer = new Packr({ useRecords: false });

/** A plain object whose values are still unchecked. */
type Fields = Readonly<Record<string, unknown>>;

/** Encodes a message. The message must be well formed (it comes from our own core). */
export function encodeMessage(message: Message): Uint8Array {
  // The hot, large message has a binary form that takes only its known fields (`accept-codec.ts`).
  if (message.type === 'accept') return encodeAccept(message);
  // So have the small messages of every round (`control-codec.ts`).
  if (message.type === 'accepted' || message.type === 'heartbeat' || message.type === 'heartbeat-ack') return encodeControl(message);
  // Rebuilding through the validator drops any stray property a caller attached, so the peer's
  // strict decoder never rejects our output; a malformed message is a bug here, not bad input.
  let canonical: Message;
  try {
    canonical = readMessage(message);
  } catch (error) {
    assert(false, `encodeMessage: malformed outgoing message: ${String(error)}`);
  }
  return packer.pack(canonical);
}

/** Decodes and validates one message from untrusted bytes; throws `WireDecodeError` if malformed. */
export function decodeMessage(bytes: Uint8Array): Message {
  if (!(bytes instanceof Uint8Array)) throw new WireDecodeError('message must be bytes');
  if (bytes[0] === ACCEPT_TAG) return isControlLayout(bytes[1]) ? decodeControl(bytes, ACCEPT_RULES) : decodeAccept(bytes, ACCEPT_RULES);
  let value: unknown;
  try {
    value = packer.unpack(bytes);
  } catch (cause) {
    // msgpackr's own messages vary between its native and JavaScript decoders; keep them as cause.
    throw new WireDecodeError('message is not valid MessagePack', { cause });
  }
  return readMessage(value);
}

/** Packs a handshake record (a flat map of strings, integers and bytes). */
export function encodeRecord(record: Fields): Uint8Array {
  return packer.pack(record);
}

/** Unpacks a handshake record with exactly `keys`; throws `WireDecodeError` otherwise. */
export function decodeRecord(bytes: Uint8Array, keys: readonly string[], what: string): Fields {
  let value: unknown;
  try {
    value = packer.unpack(bytes);
  } catch (cause) {
    throw new WireDecodeError(`${what} is not valid MessagePack`, { cause });
  }
  return readFields(value, keys, what);
}

/** Validates an unknown value as a `Message`, returning a freshly built copy. */
export function readMessage(value: unknown): Message {
  const type = readType(value);
  switch (type) {
    case 'prepare': {
      const fields = readFields(value, ['type', 'from', 'to', 'ballot', 'firstUnchosen'], type);
      const envelope = readEnvelope(fields);
      return { type, ...envelope, ballot: readOwnedBallot(fields.ballot, envelope.from), firstUnchosen: readSlot(fields.firstUnchosen, 'firstUnchosen') };
    }
    case 'promise': {
      const fields = readFields(value, ['type', 'from', 'to', 'ballot', 'entries', 'maxSlot'], type);
      const envelope = readEnvelope(fields);
      const entries = readEntries(fields.entries, readLogEntry);
      const maxSlot = readSlot(fields.maxSlot, 'maxSlot');
      // An acceptor lists every entry from the asked slot up to its max slot, which holds one.
      const lastSlot = entries.reduce((last, entry) => Math.max(last, entry.slot), 0);
      if (entries.length > 0 && maxSlot !== lastSlot) throw new WireDecodeError('promise maxSlot is not its last entry');
      return { type, ...envelope, ballot: readOwnedBallot(fields.ballot, envelope.to), entries, maxSlot };
    }
    case 'accept': {
      const fields = readFields(value, ['type', 'from', 'to', 'ballot', 'entries', 'commitIndex'], type);
      const envelope = readEnvelope(fields);
      const entries = readEntries(fields.entries, readProposedEntry);
      return { type, ...envelope, ballot: readOwnedBallot(fields.ballot, envelope.from), entries, commitIndex: readSlot(fields.commitIndex, 'commitIndex') };
    }
    case 'accepted': {
      const fields = readFields(value, ['type', 'from', 'to', 'ballot', 'slots', 'firstUnchosen'], type);
      const envelope = readEnvelope(fields);
      return { type, ...envelope, ballot: readOwnedBallot(fields.ballot, envelope.to), slots: readSlots(fields.slots), firstUnchosen: readSlot(fields.firstUnchosen, 'firstUnchosen') };
    }
    case 'nack': {
      const fields = readFields(value, ['type', 'from', 'to', 'ballot', 'promised'], type);
      const envelope = readEnvelope(fields);
      return { type, ...envelope, ballot: readOwnedBallot(fields.ballot, envelope.to), promised: readBallot(fields.promised, 'promised') };
    }
    case 'heartbeat': {
      const fields = readFields(value, ['type', 'from', 'to', 'ballot', 'commitIndex', 'readRound'], type);
      const envelope = readEnvelope(fields);
      return { type, ...envelope, ballot: readOwnedBallot(fields.ballot, envelope.from), commitIndex: readSlot(fields.commitIndex, 'commitIndex'), readRound: readSlot(fields.readRound, 'readRound') };
    }
    case 'heartbeat-ack': {
      const fields = readFields(value, ['type', 'from', 'to', 'ballot', 'firstUnchosen', 'maxSlot', 'readRound'], type);
      const envelope = readEnvelope(fields);
      return { type, ...envelope, ballot: readOwnedBallot(fields.ballot, envelope.to), firstUnchosen: readSlot(fields.firstUnchosen, 'firstUnchosen'), maxSlot: readSlot(fields.maxSlot, 'maxSlot'), readRound: readSlot(fields.readRound, 'readRound') };
    }
    case 'learn': {
      const fields = readFields(value, ['type', 'from', 'to', 'slots'], type);
      return { type, ...readEnvelope(fields), slots: readSlots(fields.slots) };
    }
    case 'learned': {
      const fields = readFields(value, ['type', 'from', 'to', 'entries'], type);
      return { type, ...readEnvelope(fields), entries: readEntries(fields.entries, readChosenEntry) };
    }
    case 'rejoin': {
      const fields = readFields(value, ['type', 'from', 'to', 'nonce', 'fence'], type);
      return { type, ...readEnvelope(fields), nonce: readSlot(fields.nonce, 'nonce'), fence: readBallot(fields.fence, 'fence') };
    }
    case 'rejoin-ack': {
      const fields = readFields(value, ['type', 'from', 'to', 'nonce', 'promised'], type);
      return { type, ...readEnvelope(fields), nonce: readSlot(fields.nonce, 'nonce'), promised: readBallot(fields.promised, 'promised') };
    }
  }
}

const MESSAGE_TYPES: ReadonlySet<string> = new Set<Message['type']>([
  'prepare', 'promise', 'accept', 'accepted', 'nack', 'heartbeat', 'heartbeat-ack', 'learn', 'learned', 'rejoin', 'rejoin-ack',
]);

function readType(value: unknown): Message['type'] {
  if (!isPlainObject(value)) throw new WireDecodeError('message must be a map');
  const type = value.type;
  if (typeof type !== 'string' || !MESSAGE_TYPES.has(type)) throw new WireDecodeError('unknown message type');
  return type as Message['type'];
}

function isPlainObject(value: unknown): value is Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** Checks `value` is a plain object with exactly `keys` as own enumerable data properties. */
function readFields(value: unknown, keys: readonly string[], what: string): Fields {
  if (!isPlainObject(value)) throw new WireDecodeError(`${what} must be a map`);
  const own = Object.keys(value);
  if (own.length !== keys.length) throw new WireDecodeError(`${what} has ${own.length} fields, expected ${keys.length}`);
  for (const key of keys) {
    const descriptor = Object.getOwnPropertyDescriptor(value, key);
    if (descriptor === undefined || !('value' in descriptor)) throw new WireDecodeError(`${what} lacks field ${key}`);
  }
  return value;
}

function readEnvelope(fields: Fields): { from: NodeId; to: NodeId } {
  if (!isValidNodeId(fields.from)) throw new WireDecodeError('from is not a valid node id');
  if (!isValidNodeId(fields.to)) throw new WireDecodeError('to is not a valid node id');
  return { from: fields.from, to: fields.to };
}

function readArray(value: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new WireDecodeError(`${what} must be an array`);
  return value;
}

/** Slots, indexes and sequence numbers: non-negative safe integers. */
function readSlot(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new WireDecodeError(`${what} must be a non-negative safe integer`);
  }
  return value;
}

/** Slots of log entries: at least 1 (slot 0 does not exist), each at most once. */
function readSlots(value: unknown): number[] {
  const slots = readArray(value, 'slots').map(readEntrySlot);
  if (new Set(slots).size !== slots.length) throw new WireDecodeError('slots repeat a slot');
  return slots;
}

function readEntrySlot(value: unknown): number {
  const slot = readSlot(value, 'slot');
  if (slot < 1) throw new WireDecodeError('slot must be at least 1');
  return slot;
}

/** Entries of one message: at most one per slot (a ballot has one value per slot). */
function readEntries<T extends { readonly slot: number }>(value: unknown, readEntry: (entry: unknown) => T): T[] {
  const entries = readArray(value, 'entries').map(readEntry);
  const slots = new Set<number>();
  for (const entry of entries) {
    if (slots.has(entry.slot)) throw new WireDecodeError(`entries repeat slot ${entry.slot}`);
    slots.add(entry.slot);
  }
  return entries;
}

/** A ballot is 0 (none) or `round * NODE_ID_LIMIT + nodeId` with a valid node id. */
function readBallot(value: unknown, what: string): Ballot {
  const ballot = readSlot(value, what) as Ballot;
  if (ballot !== 0 && !isValidNodeId(ballotNode(ballot))) throw new WireDecodeError(`${what} names no valid node`);
  return ballot;
}

/** A real (non-zero) ballot: what entries were accepted at, and what epochs are. */
function readRealBallot(value: unknown, what: string): Ballot {
  const ballot = readBallot(value, what);
  if (ballot === 0) throw new WireDecodeError(`${what} must not be 0`);
  return ballot;
}

/** The ballot of a request or answer: real, and owned by `owner` (the proposer it belongs to). */
function readOwnedBallot(value: unknown, owner: NodeId): Ballot {
  const ballot = readRealBallot(value, 'ballot');
  if (ballotNode(ballot) !== owner) throw new WireDecodeError(`ballot belongs to node ${ballotNode(ballot)}, not ${owner}`);
  return ballot;
}

const ACCEPT_RULES: AcceptFieldRules = { slot: readSlot, entrySlot: readEntrySlot, realBallot: readRealBallot, ownedBallot: readOwnedBallot };

function readLogEntry(value: unknown): LogEntry {
  const fields = readFields(value, ['slot', 'ballot', 'value', 'chosen'], 'log entry');
  if (typeof fields.chosen !== 'boolean') throw new WireDecodeError('chosen must be a boolean');
  return {
    slot: readEntrySlot(fields.slot),
    ballot: readRealBallot(fields.ballot, 'ballot'),
    value: readEntryValue(fields.value),
    chosen: fields.chosen,
  };
}

function readProposedEntry(value: unknown): ProposedEntry {
  const fields = readFields(value, ['slot', 'value'], 'proposed entry');
  return { slot: readEntrySlot(fields.slot), value: readEntryValue(fields.value) };
}

function readChosenEntry(value: unknown): ChosenEntry {
  const fields = readFields(value, ['slot', 'ballot', 'value'], 'chosen entry');
  return { slot: readEntrySlot(fields.slot), ballot: readRealBallot(fields.ballot, 'ballot'), value: readEntryValue(fields.value) };
}

function readEntryValue(value: unknown): EntryValue {
  if (!isPlainObject(value)) throw new WireDecodeError('entry value must be a map');
  switch (value.type) {
    case 'noop':
      readFields(value, ['type'], 'noop');
      return { type: 'noop' };
    case 'start-working': {
      const fields = readFields(value, ['type', 'epoch'], 'start-working');
      return { type: 'start-working', epoch: readRealBallot(fields.epoch, 'epoch') };
    }
    case 'commands': {
      const fields = readFields(value, ['type', 'epoch', 'commands'], 'commands');
      const commands = readArray(fields.commands, 'commands').map(readCommand);
      return { type: 'commands', epoch: readRealBallot(fields.epoch, 'epoch'), commands };
    }
    default:
      throw new WireDecodeError('unknown entry value type');
  }
}

function readCommand(value: unknown): Command {
  const fields = readFields(value, ['clientId', 'seq', 'payload'], 'command');
  if (typeof fields.clientId !== 'string') throw new WireDecodeError('clientId must be a string');
  if (!(fields.payload instanceof Uint8Array)) throw new WireDecodeError('payload must be bytes');
  // msgpackr hands out Buffers that may share memory with the whole received batch; a plain copy
  // compares equal to what the sender passed and does not keep the batch alive.
  return { clientId: fields.clientId, seq: readSlot(fields.seq, 'seq'), payload: new Uint8Array(fields.payload) };
}

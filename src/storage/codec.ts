/**
 * Binary encoding of `PersistRecord`s for the write-ahead log. Each record is one MessagePack array
 * of primitives (no maps, no msgpackr record extension), so the bytes depend only on the record:
 *
 * - promise: `[0, ballot]`
 * - accept:  `[1, slot, ballot, value]`
 * - chosen:  `[2, slot, ballot, value | null]`
 * - value:   noop `[0]`, start-working `[1, epoch]`, commands `[2, epoch, [[clientId, seq, payload], ...]]`
 *
 * Command payloads are MessagePack `bin`, so they round-trip byte for byte. Decoding is strict:
 * the checksum already says the bytes are the ones written, so a shape mismatch means a bug or a
 * foreign file, and is reported rather than guessed around.
 */
import { Packr } from 'msgpackr';
import { type CanonicalWriter, isWritableString, isWritableUint } from '../codec/canonical.js';
import { assertNever } from '../core/assert.js';
import type { Ballot } from '../core/ballot.js';
import type { Command } from '../core/command.js';
import type { EntryValue, PersistRecord } from '../core/multipaxos/types.js';
import { StorageDecodeError } from './errors.js';

/** `useRecords: false`: no state shared across calls, the bytes depend only on the value. */
const packer = new Packr({ useRecords: false });

const RECORD_PROMISE = 0;
const RECORD_ACCEPT = 1;
const RECORD_CHOSEN = 2;
const VALUE_NOOP = 0;
const VALUE_START_WORKING = 1;
const VALUE_COMMANDS = 2;

/** MessagePack fixarray markers of the two record arities (2 and 4 fields). */
const FIRST_BYTE_PROMISE = 0x92;
const FIRST_BYTE_ACCEPT_OR_CHOSEN = 0x94;

/**
 * Encodes one record. The result is a fresh copy: msgpackr reuses its output buffer between calls,
 * and the log keeps the bytes until they are written.
 */
export function encodeRecord(record: PersistRecord): Uint8Array {
  return new Uint8Array(packer.pack(recordFields(record)));
}

/**
 * Whether `writeRecord` writes this record exactly as `encodeRecord` packs it: ballots, slots and
 * sequence numbers non-negative safe integers, client ids well-formed strings (as every command a
 * replica accepts has). Anything else is packed by msgpackr, so its bytes stay what they were.
 */
export function isWritableRecord(record: PersistRecord): boolean {
  if (record.type === 'promise') return isWritableUint(record.ballot);
  if (!isWritableUint(record.slot) || !isWritableUint(record.ballot)) return false;
  const { value } = record;
  if (value === undefined || value.type === 'noop') return true;
  if (!isWritableUint(value.epoch)) return false;
  if (value.type === 'start-working') return true;
  for (const command of value.commands) {
    if (!isWritableString(command.clientId) || !isWritableUint(command.seq) || !(command.payload instanceof Uint8Array)) return false;
  }
  return true;
}

/** Writes the bytes of `encodeRecord` with `writer`; the record must be `isWritableRecord`. */
export function writeRecord(writer: CanonicalWriter, record: PersistRecord): CanonicalWriter {
  switch (record.type) {
    case 'promise':
      return writer.arrayHeader(2).uint(RECORD_PROMISE).uint(record.ballot);
    case 'accept':
      return writeValue(writer.arrayHeader(4).uint(RECORD_ACCEPT).uint(record.slot).uint(record.ballot), record.value);
    case 'chosen':
      writer.arrayHeader(4).uint(RECORD_CHOSEN).uint(record.slot).uint(record.ballot);
      return record.value === undefined ? writer.nil() : writeValue(writer, record.value);
    default:
      return assertNever(record, 'persist record');
  }
}

function writeValue(writer: CanonicalWriter, value: EntryValue): CanonicalWriter {
  switch (value.type) {
    case 'noop':
      return writer.arrayHeader(1).uint(VALUE_NOOP);
    case 'start-working':
      return writer.arrayHeader(2).uint(VALUE_START_WORKING).uint(value.epoch);
    case 'commands':
      writer.arrayHeader(3).uint(VALUE_COMMANDS).uint(value.epoch).arrayHeader(value.commands.length);
      for (const command of value.commands) writer.arrayHeader(3).string(command.clientId).uint(command.seq).bytes(command.payload);
      return writer;
    default:
      return assertNever(value, 'entry value');
  }
}

function recordFields(record: PersistRecord): unknown[] {
  switch (record.type) {
    case 'promise':
      return [RECORD_PROMISE, record.ballot];
    case 'accept':
      return [RECORD_ACCEPT, record.slot, record.ballot, valueFields(record.value)];
    case 'chosen':
      return [RECORD_CHOSEN, record.slot, record.ballot, record.value === undefined ? null : valueFields(record.value)];
    default:
      return assertNever(record, 'persist record');
  }
}

function valueFields(value: EntryValue): unknown[] {
  switch (value.type) {
    case 'noop':
      return [VALUE_NOOP];
    case 'start-working':
      return [VALUE_START_WORKING, value.epoch];
    case 'commands':
      return [
        VALUE_COMMANDS,
        value.epoch,
        value.commands.map((command) => [command.clientId, command.seq, command.payload]),
      ];
    default:
      return assertNever(value, 'entry value');
  }
}

/**
 * Whether a payload starting with `firstByte` could be an encoded record. The recovery scan uses it
 * as a cheap filter before checksumming a candidate frame.
 */
export function mayStartRecord(firstByte: number): boolean {
  return firstByte === FIRST_BYTE_PROMISE || firstByte === FIRST_BYTE_ACCEPT_OR_CHOSEN;
}

/** Decodes one record; throws `StorageDecodeError` when the bytes are not exactly one record. */
export function decodeRecord(bytes: Uint8Array): PersistRecord {
  let fields: unknown;
  try {
    fields = packer.unpack(bytes);
  } catch (cause) {
    throw new StorageDecodeError('record is not valid MessagePack', { cause });
  }
  if (!Array.isArray(fields)) throw new StorageDecodeError('record must be an array');
  const tag = fields[0];
  if (tag === RECORD_PROMISE && fields.length === 2) {
    return { type: 'promise', ballot: readBallot(fields[1]) };
  }
  if (tag === RECORD_ACCEPT && fields.length === 4) {
    return { type: 'accept', slot: readSlot(fields[1]), ballot: readBallot(fields[2]), value: readValue(fields[3]) };
  }
  if (tag === RECORD_CHOSEN && fields.length === 4) {
    const slot = readSlot(fields[1]);
    const ballot = readBallot(fields[2]);
    if (fields[3] === null) return { type: 'chosen', slot, ballot };
    return { type: 'chosen', slot, ballot, value: readValue(fields[3]) };
  }
  throw new StorageDecodeError(`unknown record tag ${String(tag)} with ${fields.length} fields`);
}

function readValue(fields: unknown): EntryValue {
  if (!Array.isArray(fields)) throw new StorageDecodeError('entry value must be an array');
  const tag = fields[0];
  if (tag === VALUE_NOOP && fields.length === 1) return { type: 'noop' };
  if (tag === VALUE_START_WORKING && fields.length === 2) {
    return { type: 'start-working', epoch: readBallot(fields[1]) };
  }
  if (tag === VALUE_COMMANDS && fields.length === 3) {
    const commands = fields[2];
    if (!Array.isArray(commands)) throw new StorageDecodeError('commands must be an array');
    return { type: 'commands', epoch: readBallot(fields[1]), commands: commands.map(readCommand) };
  }
  throw new StorageDecodeError(`unknown entry value tag ${String(tag)} with ${fields.length} fields`);
}

function readCommand(fields: unknown): Command {
  if (!Array.isArray(fields) || fields.length !== 3) throw new StorageDecodeError('command must be a 3-array');
  const [clientId, seq, payload] = fields as unknown[];
  if (typeof clientId !== 'string') throw new StorageDecodeError('command clientId must be a string');
  if (!Number.isSafeInteger(seq)) throw new StorageDecodeError('command seq must be a safe integer');
  if (!(payload instanceof Uint8Array)) throw new StorageDecodeError('command payload must be bytes');
  // A plain Uint8Array copy: msgpackr hands back a Buffer view into the segment buffer, which would
  // pin the whole segment in memory and compare unequal to the Uint8Array that was appended.
  return { clientId, seq: seq as number, payload: new Uint8Array(payload) };
}

function readBallot(value: unknown): Ballot {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new StorageDecodeError('ballot must be a non-negative safe integer');
  }
  return value as Ballot;
}

function readSlot(value: unknown): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new StorageDecodeError('slot must be a positive safe integer');
  }
  return value as number;
}

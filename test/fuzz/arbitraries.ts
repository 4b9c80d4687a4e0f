/**
 * fast-check generators for the fuzz suites: well-formed peer messages and persist records (the
 * seeds that mutations start from), and the byte-level mutations themselves. Import-safe.
 */
import fc from 'fast-check';
import { makeBallot, type Ballot, type NodeId } from '../../src/core/ballot.js';
import type { Command } from '../../src/core/command.js';
import type { ChosenEntry, EntryValue, LogEntry, Message, PersistRecord, ProposedEntry } from '../../src/core/multipaxos/types.js';

/** Node ids of the small cluster the generators speak about. */
export const FUZZ_NODES: readonly NodeId[] = [1, 2, 3];

const slotArbitrary = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
const indexArbitrary = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.maxSafeNat());
const roundArbitrary = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 2 ** 40 }));

/** A ballot owned by `node` (round at least 1: round 0 is never used). */
export function ballotOf(node: NodeId): fc.Arbitrary<Ballot> {
  return roundArbitrary.map((round) => makeBallot(round, node));
}

const anyBallot = fc.constantFrom(...FUZZ_NODES).chain(ballotOf);

export const commandArbitrary: fc.Arbitrary<Command> = fc
  .tuple(fc.string({ maxLength: 12 }), indexArbitrary, fc.uint8Array({ maxLength: 48 }))
  .map(([clientId, seq, payload]) => ({ clientId, seq, payload }));

export const entryValueArbitrary: fc.Arbitrary<EntryValue> = fc.oneof(
  fc.constant<EntryValue>({ type: 'noop' }),
  anyBallot.map((epoch): EntryValue => ({ type: 'start-working', epoch })),
  fc.tuple(anyBallot, fc.array(commandArbitrary, { maxLength: 4 }))
    .map(([epoch, commands]): EntryValue => ({ type: 'commands', epoch, commands })),
);

/** Entries at distinct slots, in increasing slot order (as a replica lists them). */
function distinctSlots<T extends { slot: number }>(entry: (slot: number) => fc.Arbitrary<T>): fc.Arbitrary<T[]> {
  return fc
    .uniqueArray(slotArbitrary, { maxLength: 5 })
    .chain((slots) => fc.tuple(...[...slots].sort((left, right) => left - right).map(entry)))
    .map((entries) => [...entries]);
}

const logEntries = distinctSlots((slot) =>
  fc.tuple(anyBallot, entryValueArbitrary, fc.boolean()).map(([ballot, value, chosen]): LogEntry => ({ slot, ballot, value, chosen })));
const proposedEntries = distinctSlots((slot) => entryValueArbitrary.map((value): ProposedEntry => ({ slot, value })));
const chosenEntries = distinctSlots((slot) =>
  fc.tuple(anyBallot, entryValueArbitrary).map(([ballot, value]): ChosenEntry => ({ slot, ballot, value })));
const slotList = fc.uniqueArray(slotArbitrary, { maxLength: 6 });

/**
 * Any message `from` may send `to`, shaped as the core shapes it: a sender's own requests
 * (prepare, accept, heartbeat) carry a ballot it owns; answers carry the ballot of the node they
 * answer.
 */
export function messageArbitrary(from: NodeId, to: NodeId): fc.Arbitrary<Message> {
  const own = ballotOf(from);
  const theirs = ballotOf(to);
  return fc.oneof(
    fc.tuple(own, indexArbitrary).map(([ballot, firstUnchosen]): Message => ({ type: 'prepare', from, to, ballot, firstUnchosen })),
    // An acceptor lists its entries up to its max slot, which holds the last one.
    fc.tuple(theirs, logEntries, indexArbitrary).map(([ballot, entries, maxSlot]): Message => ({
      type: 'promise', from, to, ballot, entries, maxSlot: entries.length === 0 ? maxSlot : Math.max(...entries.map((entry) => entry.slot)),
    })),
    fc.tuple(own, proposedEntries, indexArbitrary).map(([ballot, entries, commitIndex]): Message => ({ type: 'accept', from, to, ballot, entries, commitIndex })),
    fc.tuple(theirs, slotList, indexArbitrary).map(([ballot, slots, firstUnchosen]): Message => ({ type: 'accepted', from, to, ballot, slots, firstUnchosen })),
    fc.tuple(theirs, anyBallot).map(([ballot, promised]): Message => ({ type: 'nack', from, to, ballot, promised })),
    fc.tuple(own, indexArbitrary, indexArbitrary).map(([ballot, commitIndex, readRound]): Message => ({ type: 'heartbeat', from, to, ballot, commitIndex, readRound })),
    fc.tuple(theirs, indexArbitrary, indexArbitrary, indexArbitrary)
      .map(([ballot, firstUnchosen, maxSlot, readRound]): Message => ({ type: 'heartbeat-ack', from, to, ballot, firstUnchosen, maxSlot, readRound })),
    slotList.map((slots): Message => ({ type: 'learn', from, to, slots })),
    chosenEntries.map((entries): Message => ({ type: 'learned', from, to, entries })),
  );
}

/** Any message between two distinct members of `FUZZ_NODES`. */
export const anyMessageArbitrary: fc.Arbitrary<Message> = fc
  .tuple(fc.constantFrom(...FUZZ_NODES), fc.constantFrom(...FUZZ_NODES))
  .filter(([from, to]) => from !== to)
  .chain(([from, to]) => messageArbitrary(from, to));

/** Any persist record (not necessarily one a replica would write after the others). */
export const persistRecordArbitrary: fc.Arbitrary<PersistRecord> = fc.oneof(
  anyBallot.map((ballot): PersistRecord => ({ type: 'promise', ballot })),
  fc.tuple(slotArbitrary, anyBallot, entryValueArbitrary).map(([slot, ballot, value]): PersistRecord => ({ type: 'accept', slot, ballot, value })),
  fc.tuple(slotArbitrary, anyBallot, fc.option(entryValueArbitrary, { nil: undefined }))
    .map(([slot, ballot, value]): PersistRecord => (value === undefined ? { type: 'chosen', slot, ballot } : { type: 'chosen', slot, ballot, value })),
);

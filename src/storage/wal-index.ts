/**
 * Where each slot's entry lives in the write-ahead log, without the entry: the file adapter's
 * memory of its log. Per slot it holds the entry's ballot, whether it is chosen, and the frame
 * (segment, offset, length) that carries its value; reading the value back is one `pread`
 * (`FileStorage.entry`). About 25 bytes a slot, in typed arrays the garbage collector never walks,
 * where holding the entries themselves would cost a few hundred bytes of small objects a slot,
 * each walked by every major collection for as long as the node runs.
 *
 * The rules are `MemoryLogStore.apply`'s: an accept replaces the slot's entry; a chosen mark with
 * a value replaces it as chosen; a chosen mark without one marks the stored entry chosen and keeps
 * its ballot and its frame.
 */
import { assert, assertNever } from '../core/assert.js';
import { type Ballot, BALLOT_ZERO } from '../core/ballot.js';
import type { PersistRecord } from '../core/multipaxos/types.js';

/** A slot's entry as the index knows it: the value is in the frame at `offset` of `segment`. */
export interface WalLocation {
  readonly ballot: Ballot;
  readonly chosen: boolean;
  /** Ordinal of the segment file (0 = the log's first), as `FileStorage` numbers them. */
  readonly segment: number;
  readonly offset: number;
  readonly frameBytes: number;
}

const NO_ENTRY = 0;
const ACCEPTED = 1;
const CHOSEN = 2;
const INITIAL_CAPACITY = 1024;

export class WalIndex {
  private promisedBallot: Ballot = BALLOT_ZERO;
  private states = new Uint8Array(INITIAL_CAPACITY);
  private ballots = new Float64Array(INITIAL_CAPACITY);
  private segments = new Uint32Array(INITIAL_CAPACITY);
  private offsets = new Float64Array(INITIAL_CAPACITY);
  private frameBytes = new Uint32Array(INITIAL_CAPACITY);
  /** One past the highest slot index holding an entry. */
  private end = 0;

  constructor(
    /** The log's first slot: index 0 of the arrays. */
    readonly firstSlot: number,
  ) {}

  get promised(): Ballot {
    return this.promisedBallot;
  }

  has(slot: number): boolean {
    const index = slot - this.firstSlot;
    return index >= 0 && index < this.end && this.states[index] !== NO_ENTRY;
  }

  /** Applies one durable record, written as the frame at (`segment`, `offset`, `frameBytes`). */
  apply(record: PersistRecord, segment: number, offset: number, frameBytes: number): void {
    switch (record.type) {
      case 'promise':
        assert(record.ballot >= this.promisedBallot, 'persisted promise never decreases');
        this.promisedBallot = record.ballot;
        return;
      case 'accept':
        this.set(record.slot, ACCEPTED, record.ballot, segment, offset, frameBytes);
        return;
      case 'chosen': {
        if (record.value !== undefined) {
          this.set(record.slot, CHOSEN, record.ballot, segment, offset, frameBytes);
          return;
        }
        assert(this.has(record.slot), `chosen mark for slot ${record.slot} without a stored entry`);
        this.states[record.slot - this.firstSlot] = CHOSEN;
        return;
      }
      default:
        assertNever(record, 'persist record');
    }
  }

  locate(slot: number): WalLocation | undefined {
    const index = slot - this.firstSlot;
    if (index < 0 || index >= this.end) return undefined;
    const state = this.states[index];
    if (state === NO_ENTRY || state === undefined) return undefined;
    return {
      ballot: this.ballots[index] as Ballot,
      chosen: state === CHOSEN,
      segment: this.segments[index] as number,
      offset: this.offsets[index] as number,
      frameBytes: this.frameBytes[index] as number,
    };
  }

  /** Every slot holding an entry, ascending. */
  *slots(): IterableIterator<number> {
    for (let index = 0; index < this.end; index += 1) {
      if (this.states[index] !== NO_ENTRY) yield this.firstSlot + index;
    }
  }

  private set(slot: number, state: number, ballot: Ballot, segment: number, offset: number, frameBytes: number): void {
    const index = slot - this.firstSlot;
    assert(Number.isSafeInteger(index) && index >= 0, `slot ${slot} below the log's first slot ${this.firstSlot}`);
    if (index >= this.states.length) this.grow(index + 1);
    this.states[index] = state;
    this.ballots[index] = ballot;
    this.segments[index] = segment;
    this.offsets[index] = offset;
    this.frameBytes[index] = frameBytes;
    if (index >= this.end) this.end = index + 1;
  }

  private grow(needed: number): void {
    let capacity = this.states.length;
    while (capacity < needed) capacity *= 2;
    const grown = <T extends Uint8Array | Uint32Array | Float64Array>(old: T, make: (length: number) => T): T => {
      const next = make(capacity);
      next.set(old);
      return next;
    };
    this.states = grown(this.states, (length) => new Uint8Array(length));
    this.ballots = grown(this.ballots, (length) => new Float64Array(length));
    this.segments = grown(this.segments, (length) => new Uint32Array(length));
    this.offsets = grown(this.offsets, (length) => new Float64Array(length));
    this.frameBytes = grown(this.frameBytes, (length) => new Uint32Array(length));
  }
}

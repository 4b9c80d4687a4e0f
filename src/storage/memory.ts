/**
 * The in-memory storage adapter: a node's durable acceptor state as rebuilt from the records its
 * driver persisted. The simulator keeps one per node across crashes (a crash loses only what was
 * not yet persisted), and the file adapter replays its write-ahead log into the same structure.
 */
import { assert, assertNever } from '../core/assert.js';
import { type Ballot, BALLOT_ZERO } from '../core/ballot.js';
import type { LogEntry, PersistRecord, PersistentState } from '../core/multipaxos/types.js';

export class MemoryLogStore {
  private promisedBallot: Ballot = BALLOT_ZERO;
  private readonly entries = new Map<number, LogEntry>();

  /** Applies one persisted record; returns the log entry it wrote, if any. */
  apply(record: PersistRecord): LogEntry | null {
    switch (record.type) {
      case 'promise':
        assert(record.ballot >= this.promisedBallot, 'persisted promise never decreases');
        this.promisedBallot = record.ballot;
        return null;
      case 'accept': {
        const entry: LogEntry = { slot: record.slot, ballot: record.ballot, value: record.value, chosen: false };
        this.entries.set(record.slot, entry);
        return entry;
      }
      case 'chosen': {
        const existing = this.entries.get(record.slot);
        let entry: LogEntry;
        if (record.value !== undefined) {
          entry = { slot: record.slot, ballot: record.ballot, value: record.value, chosen: true };
        } else {
          assert(existing !== undefined, `chosen mark for slot ${record.slot} without a stored entry`);
          entry = { ...existing, chosen: true };
        }
        this.entries.set(record.slot, entry);
        return entry;
      }
      default:
        return assertNever(record, 'persist record');
    }
  }

  get promised(): Ballot {
    return this.promisedBallot;
  }

  entry(slot: number): LogEntry | undefined {
    return this.entries.get(slot);
  }

  has(slot: number): boolean {
    return this.entries.has(slot);
  }

  /** The state a restarted replica starts from. */
  state(): PersistentState {
    return { promised: this.promisedBallot, entries: [...this.entries.values()] };
  }
}

/**
 * The storage adapter contract between a Multi-Paxos driver and a durable medium, kept as small as
 * automerge-repo's: append what a `Ready` says to persist, read the state back on restart, close.
 * Every adapter (memory, file) passes the shared suite in `test/storage/conformance.ts`.
 */
import { assert } from '../core/assert.js';
import type { Ballot } from '../core/ballot.js';
import type { LogEntry, PersistRecord, PersistentState } from '../core/multipaxos/types.js';
import { StorageUsageError } from './errors.js';
import { MemoryLogStore } from './memory.js';

/** A node's durable log of `PersistRecord`s. */
export interface LogStorage {
  /**
   * Appends records in order. The promise resolves only once every one of them is durable (for
   * the file adapter: written and fdatasync'd), so a driver may send a Ready's messages then.
   * Records of concurrent calls land in call order. An empty array resolves once everything
   * appended before it is durable.
   */
  append(records: readonly PersistRecord[], durability?: Durability): Promise<void>;
  /** The acceptor state rebuilt from every durable record (what a restarted replica starts from). */
  state(): PersistentState;
  /**
   * The entry at `slot` as the durable records leave it, read back from the medium; undefined if
   * none holds the slot. Records of appends not yet durable are not seen. A replica reads the
   * entries it dropped from memory this way (`ReplicaOptions.readDurableEntry`).
   */
  entry(slot: number): LogEntry | undefined;
  /** Waits for pending appends, then releases the medium; later appends are refused. */
  close(): Promise<void>;
  /** The lowest slot the log may hold (greater than 1 once a snapshot has replaced a prefix). */
  readonly firstSlot: number;
}

/**
 * `sync` (the default): the caller waits for these records, so a round of writes starts at once.
 * `lazy`: nobody waits (see `Ready.durability`); the records are queued in order and ride
 * with the next `sync` round, or are written within `LAZY_FLUSH_MS` if none comes. The promise
 * still resolves only once they are durable.
 */
export type Durability = 'sync' | 'lazy';

/** Longest a lazy record waits for a sync append to share its fsync with. */
export const LAZY_FLUSH_MS = 10;

/** Default `firstSlot` of a new log: slots are numbered from 1. */
export const FIRST_SLOT_DEFAULT = 1;

/**
 * Checks records before they are made durable, against the state they will be applied to plus the
 * records already queued ahead of them. A record `MemoryLogStore.apply` would reject must never
 * reach the disk: replaying it on every restart would fail the same way, and the node could never
 * start again.
 */
/** What `RecordChecker` needs to know of the durable state. */
export interface DurableAcceptorView {
  readonly promised: Ballot;
  has(slot: number): boolean;
}

export class RecordChecker {
  private promisedQueued: Ballot;
  /** Slots that records queued but not yet applied will hold an entry for. */
  private readonly slotsQueued = new Set<number>();

  constructor(
    private readonly store: DurableAcceptorView,
    private readonly firstSlot: number,
  ) {
    this.promisedQueued = store.promised;
  }

  /** Throws `StorageUsageError` (nothing queued) if any of `records` may not be appended. */
  check(records: readonly PersistRecord[]): void {
    let promised = this.promisedQueued;
    const slots = new Set<number>();
    for (const record of records) {
      if (record.type === 'promise') {
        if (record.ballot < promised) throw new StorageUsageError(`promise ${record.ballot} below ${promised}`);
        promised = record.ballot;
        continue;
      }
      if (!Number.isSafeInteger(record.slot) || record.slot < this.firstSlot) {
        throw new StorageUsageError(`slot ${record.slot} is below the log's first slot ${this.firstSlot}`);
      }
      const known = slots.has(record.slot) || this.slotsQueued.has(record.slot) || this.store.has(record.slot);
      if (record.type === 'chosen' && record.value === undefined && !known) {
        throw new StorageUsageError(`chosen mark for slot ${record.slot} without a stored entry`);
      }
      slots.add(record.slot);
    }
    this.promisedQueued = promised;
    for (const slot of slots) this.slotsQueued.add(slot);
  }

  /** Called once every queued record has been applied to the store. */
  drained(): void {
    assert(this.store.promised === this.promisedQueued, 'applied promise equals the queued promise');
    this.slotsQueued.clear();
  }
}

/**
 * The memory adapter: `MemoryLogStore` behind the `LogStorage` interface. Appends are "durable" at
 * once (the store outlives the adapter, as the simulator's disk outlives a crashed node), so
 * reopening over the same store returns the same state.
 */
export class MemoryStorage implements LogStorage {
  private closed = false;
  private readonly checker: RecordChecker;

  constructor(
    /** The store standing in for the disk; pass the same one to model a restart. */
    readonly store: MemoryLogStore = new MemoryLogStore(),
    readonly firstSlot: number = FIRST_SLOT_DEFAULT,
  ) {
    assert(Number.isSafeInteger(firstSlot) && firstSlot >= 1, 'firstSlot is a positive integer');
    this.checker = new RecordChecker(store, firstSlot);
  }

  append(records: readonly PersistRecord[], _durability: Durability = 'sync'): Promise<void> {
    if (this.closed) return Promise.reject(new StorageUsageError('append after close'));
    try {
      this.checker.check(records);
    } catch (error) {
      return Promise.reject(error);
    }
    for (const record of records) this.store.apply(record);
    this.checker.drained();
    return Promise.resolve();
  }

  state(): PersistentState {
    return this.store.state();
  }

  entry(slot: number): LogEntry | undefined {
    return this.store.entry(slot);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

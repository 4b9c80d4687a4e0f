/**
 * A `LogStorage` wrapper that makes the disk slow on demand: each append resolves `delayMs` after
 * the wrapped storage made its records durable, as a slow fsync would. The torture harness turns
 * the delay up and down at run time; a production node never has this wrapper.
 *
 * Durability is never weakened: the wrapped append has completed (records written and synced)
 * before the delay starts, so a node killed during the delay has its records on disk and only
 * its acknowledgement is late — exactly what a slow fsync looks like to the process.
 */
import type { LogEntry, PersistRecord, PersistentState } from '../core/multipaxos/types.js';
import type { Durability, LogStorage } from '../storage/adapter.js';

export class SlowStorage implements LogStorage {
  private delayMsCurrent = 0;
  /** Settles when every append issued so far has resolved or failed: keeps resolutions in call order. */
  private tail: Promise<void> = Promise.resolve();
  private appendsDelayed = 0;

  constructor(private readonly inner: LogStorage) {}

  get firstSlot(): number {
    return this.inner.firstSlot;
  }

  /** The delay added to every append from now on (ms; 0 turns it off). */
  set delayMs(value: number) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`append delay must be a non-negative number of ms, got ${value}`);
    this.delayMsCurrent = value;
  }

  get delayMs(): number {
    return this.delayMsCurrent;
  }

  /** Appends that were slowed down so far. */
  get delayedAppends(): number {
    return this.appendsDelayed;
  }

  append(records: readonly PersistRecord[], durability?: Durability): Promise<void> {
    const delayMs = this.delayMsCurrent;
    const durable = this.inner.append(records, durability);
    const previous = this.tail;
    // Each append is slowed once, as by a slow fsync; appends in flight together are slowed
    // together (a group-commit disk does not serve a queue of them one slow fsync each), and
    // they still resolve in call order, as the contract says.
    const done = durable.then(async () => {
      if (delayMs > 0) {
        this.appendsDelayed += 1;
        await new Promise<void>((resolve) => setTimeout(resolve, delayMs));
      }
      await previous;
    });
    this.tail = done.catch(() => {});
    return done;
  }

  state(): PersistentState {
    return this.inner.state();
  }

  /** Reads are not slowed: only the write path is under test. */
  entry(slot: number): LogEntry | undefined {
    return this.inner.entry(slot);
  }

  async close(): Promise<void> {
    await this.tail;
    await this.inner.close();
  }
}

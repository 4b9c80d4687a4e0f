/**
 * Lanes make pipelining safe for exactly-once. The state machine remembers only the last `seq`
 * of each client id and refuses an older one as stale, so one client id must never have two
 * requests in flight: the second could overtake the first, and the first would then be refused
 * even though the caller is still waiting for it. A client therefore owns `lanesMax` sub-session
 * ids `${clientId}.${lane}`, each with its own seq counter and at most one request outstanding.
 * A request takes a free lane (waiting first-in first-out when all are busy) and keeps it, with
 * the same (lane id, seq), through every retry.
 *
 * Lanes are created on first use and the most recently freed one is reused first, so a client
 * that does one thing at a time uses one session on the servers, not `lanesMax`.
 */
import { assert } from '../core/assert.js';

/** One sub-session: an id and the last seq it used. */
export class Lane {
  private seqLast = 0;

  constructor(readonly id: string) {}

  /** The seq of the next new request on this lane (retries reuse the one they were given). */
  nextSeq(): number {
    this.seqLast += 1;
    assert(Number.isSafeInteger(this.seqLast), 'lane seq overflow');
    return this.seqLast;
  }
}

interface Waiter {
  resolve(lane: Lane): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | null;
  settled: boolean;
}

/** The lanes of one client, and the queue of requests waiting for one. */
export class LanePool {
  private readonly lanes: Lane[] = [];
  /** Free lanes; the last freed is taken first. */
  private readonly free: Lane[] = [];
  private readonly busy = new Set<Lane>();
  private waiters: Waiter[] = [];
  private waitersHead = 0;

  constructor(
    private readonly clientId: string,
    readonly lanesMax: number,
  ) {
    assert(Number.isSafeInteger(lanesMax) && lanesMax >= 1, 'lanes must be a positive integer');
  }

  /** Requests waiting for a lane. */
  get waiting(): number {
    return this.waiters.length - this.waitersHead;
  }

  /**
   * Takes a free lane, or waits for one. Waiting ends with `onTimeout()`'s error after
   * `timeoutMs` (the request was never sent, so nothing changed).
   */
  acquire(timeoutMs: number, onTimeout: () => Error): Promise<Lane> {
    const lane = this.tryAcquire();
    if (lane !== null) return Promise.resolve(lane);
    return new Promise<Lane>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: null, settled: false };
      waiter.timer = setTimeout(() => {
        waiter.settled = true;
        reject(onTimeout());
      }, Math.max(0, timeoutMs));
      this.waiters.push(waiter);
    });
  }

  /**
   * Takes a free lane at once, or null when every lane is busy (then `acquire` queues). No
   * promise: a request that finds a lane free (nearly every one) goes out in this same turn.
   */
  tryAcquire(): Lane | null {
    // No newcomer overtakes a waiter: `release` hands a freed lane to the oldest live waiter, so
    // a lane is free only while nobody waits.
    return this.take();
  }

  /** Frees `lane`: hands it to the oldest waiter still waiting, or keeps it for the next request. */
  release(lane: Lane): void {
    assert(this.busy.delete(lane), 'released a lane that was not taken');
    const waiter = this.nextWaiter();
    if (waiter === null) {
      this.free.push(lane);
      return;
    }
    this.busy.add(lane);
    waiter.resolve(lane);
  }

  /** Fails every waiter (the client is closing). */
  rejectAll(error: Error): void {
    let waiter = this.nextWaiter();
    // Bounded: each iteration removes one waiter.
    while (waiter !== null) {
      waiter.reject(error);
      waiter = this.nextWaiter();
    }
  }

  private take(): Lane | null {
    let lane = this.free.pop() ?? null;
    if (lane === null && this.lanes.length < this.lanesMax) {
      lane = new Lane(`${this.clientId}.${this.lanes.length}`);
      this.lanes.push(lane);
    }
    if (lane !== null) this.busy.add(lane);
    return lane;
  }

  /** Removes and returns the oldest waiter that has not timed out (clearing its timer). */
  private nextWaiter(): Waiter | null {
    while (this.waitersHead < this.waiters.length) {
      const waiter = this.waiters[this.waitersHead];
      assert(waiter !== undefined, 'waiter index in range');
      this.waitersHead += 1;
      this.compact();
      if (waiter.settled) continue;
      waiter.settled = true;
      if (waiter.timer !== null) clearTimeout(waiter.timer);
      return waiter;
    }
    return null;
  }

  /** Drops consumed waiters once they are the larger part of the array (amortised O(1)). */
  private compact(): void {
    if (this.waitersHead > 64 && this.waitersHead * 2 > this.waiters.length) {
      this.waiters = this.waiters.slice(this.waitersHead);
      this.waitersHead = 0;
    }
  }
}

/**
 * The simulator's agenda: events ordered by virtual time, ties broken by insertion order, so a
 * run is a pure function of its seed. A binary heap keeps push and pop O(log n).
 */
import { assert } from '../core/assert.js';

interface Event {
  readonly at: number;
  readonly order: number;
  readonly run: () => void;
}

export class EventQueue {
  private readonly heap: Event[] = [];
  private insertions = 0;
  private clock = 0;

  /** Current virtual time in microseconds. */
  get now(): number {
    return this.clock;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `run` at virtual time `at` (not in the past). */
  at(at: number, run: () => void): void {
    assert(at >= this.clock, 'events are never scheduled in the past');
    this.insertions += 1;
    this.heap.push({ at, order: this.insertions, run });
    this.siftUp(this.heap.length - 1);
  }

  after(delay: number, run: () => void): void {
    this.at(this.clock + delay, run);
  }

  /** Runs the next event; false when the agenda is empty or the next event is after `until`. */
  runNext(until: number): boolean {
    const first = this.heap[0];
    if (first === undefined || first.at > until) return false;
    const last = this.heap.pop() as Event;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    this.clock = first.at;
    first.run();
    return true;
  }

  /** Moves the clock to `time` once every earlier event has run. */
  advanceTo(time: number): void {
    assert(time >= this.clock, 'time never goes backwards');
    this.clock = time;
  }

  private less(i: number, j: number): boolean {
    const a = this.heap[i] as Event;
    const b = this.heap[j] as Event;
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  private siftUp(index: number): void {
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(index: number): void {
    let i = index;
    const length = this.heap.length;
    while (true) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < length && this.less(left, smallest)) smallest = left;
      if (right < length && this.less(right, smallest)) smallest = right;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i] as Event;
    this.heap[i] = this.heap[j] as Event;
    this.heap[j] = a;
  }
}

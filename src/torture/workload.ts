/**
 * The clients of a torture run: K concurrent closed-loop workers doing get / put / cas / delete
 * on many keys through `SynodClient`, each write with a value no other write uses (so a read
 * names the one write it saw, which keeps the history cheap to check), and the final reads after
 * healing. Every operation is recorded in the history format of DESIGN.md with call and return
 * times from one monotonic clock (`process.hrtime.bigint`, nanoseconds since the run began).
 *
 * Outcomes: a success is `ok: true`; a failed compare is a cas with `ok: false` and no error; a
 * failure the client knows had no effect (`bad_request`, `too_large`) is `ok: false` with the
 * error; anything else (timeout, lost connection, no leader before the deadline) is unknown,
 * `ok: null` with no return time: the operation may have taken effect at any point after its
 * call, or never.
 *
 * Two kinds of workers: impatient ones (short attempts, move to another node quickly) keep the
 * load on whoever leads; patient ones wait several seconds for one node, so when their node is
 * a leader that gets paused, they are still waiting when it wakes up and are answered by a
 * deposed leader — which must not serve a stale read or acknowledge a write it cannot commit.
 */
import type { HistoryOp } from '../check/history.js';
import { SynodClient, SynodClientError } from '../client/index.js';
import { Prng } from '../core/prng.js';

export interface WorkloadOptions {
  /** Client endpoints of every node. */
  readonly endpoints: readonly string[];
  readonly clients: number;
  readonly keys: number;
  readonly seed: number;
  /** Mean pause between one worker's operations (ms); 0 runs flat out. */
  readonly thinkMs: number;
}

/** Operation mix (cumulative): get, put, cas, delete. */
const GET_SHARE = 0.35;
const PUT_SHARE = 0.65;
const CAS_SHARE = 0.85;

/** Client id of the final reads in the history (workers are 1..K). */
export const FINAL_READER = 0;
/** Attempts per key of the final read (each one recorded) before the key counts as unreadable. */
const FINAL_READ_ATTEMPTS = 12;
/** Keys read at once in the final phase. */
const FINAL_READ_PARALLEL = 8;

type Knowledge = Map<string, string | null>;

export class Workload {
  readonly history: HistoryOp[] = [];
  private readonly origin = process.hrtime.bigint();
  private readonly clients: SynodClient[] = [];
  private workers: Promise<void>[] = [];
  private stopping = false;
  private inFlight = 0;

  constructor(private readonly options: WorkloadOptions) {}

  /** The history clock: nanoseconds since the workload was created. */
  now(): number {
    return Number(process.hrtime.bigint() - this.origin);
  }

  keyName(index: number): string {
    return `k${index}`;
  }

  get pending(): number {
    return this.inFlight;
  }

  /** Starts every worker. */
  start(): void {
    const seeds = new Prng(this.options.seed ^ 0x5a5a5a5a);
    for (let worker = 1; worker <= this.options.clients; worker += 1) {
      const patient = worker % 3 === 0;
      // Each worker starts at a different node, so load and pinned waits spread over the cluster.
      const endpoints = rotate(this.options.endpoints, worker);
      const client = new SynodClient({
        endpoints,
        lanes: 1,
        timeoutMs: patient ? 6_000 : 3_000,
        attemptTimeoutMs: patient ? 5_000 : 500,
      });
      this.clients.push(client);
      this.workers.push(this.runWorker(worker, client, seeds.fork()));
    }
  }

  /** Stops issuing operations, waits for those in flight (each ends by its deadline), closes the clients. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
    this.workers = [];
    await Promise.all(this.clients.map((client) => client.close()));
  }

  /**
   * Reads every key once more through a fresh client, retrying a key whose read fails (every
   * attempt is in the history). Returns the keys that could not be read.
   */
  async finalReads(): Promise<string[]> {
    const client = new SynodClient({ endpoints: this.options.endpoints, lanes: FINAL_READ_PARALLEL, timeoutMs: 5_000, attemptTimeoutMs: 1_000 });
    const unreadable: string[] = [];
    try {
      const keys = Array.from({ length: this.options.keys }, (_, index) => this.keyName(index));
      for (let start = 0; start < keys.length; start += FINAL_READ_PARALLEL) {
        await Promise.all(keys.slice(start, start + FINAL_READ_PARALLEL).map(async (key) => {
          for (let attempt = 0; attempt < FINAL_READ_ATTEMPTS; attempt += 1) {
            const op = await this.perform(client, FINAL_READER, { op: 'get', key }, new Map());
            if (op.ok === true) return;
          }
          unreadable.push(key);
        }));
      }
    } finally {
      await client.close();
    }
    return unreadable;
  }

  private async runWorker(worker: number, client: SynodClient, random: Prng): Promise<void> {
    const knowledge: Knowledge = new Map();
    let written = 0;
    // Bounded by `stop`: each iteration waits for one operation (bounded by its deadline).
    while (!this.stopping) {
      const key = this.keyName(random.int(0, this.options.keys));
      const roll = random.next();
      let request: Request;
      if (roll < GET_SHARE) request = { op: 'get', key };
      else if (roll < CAS_SHARE) {
        written += 1;
        const value = `${worker}.${written}`;
        request = roll < PUT_SHARE ? { op: 'put', key, value } : { op: 'cas', key, value, expected: knowledge.get(key) ?? null };
      } else request = { op: 'delete', key };
      await this.perform(client, worker, request, knowledge);
      if (this.options.thinkMs > 0) await sleep(random.int(0, 2 * this.options.thinkMs + 1));
    }
  }

  /** Runs one operation and records it. */
  private async perform(client: SynodClient, worker: number, request: Request, knowledge: Knowledge): Promise<HistoryOp> {
    const call = this.now();
    this.inFlight += 1;
    let op: HistoryOp;
    try {
      op = await this.execute(client, worker, request, call, knowledge);
    } finally {
      this.inFlight -= 1;
    }
    this.history.push(op);
    return op;
  }

  private async execute(client: SynodClient, worker: number, request: Request, call: number, knowledge: Knowledge): Promise<HistoryOp> {
    const base = { client: worker, key: request.key, call };
    try {
      switch (request.op) {
        case 'get': {
          const result = await client.get(request.key);
          knowledge.set(request.key, result.value);
          return { ...base, op: 'get', ok: true, output: result.value, return: this.now() };
        }
        case 'put':
          await client.put(request.key, request.value);
          knowledge.set(request.key, request.value);
          return { ...base, op: 'put', value: request.value, ok: true, return: this.now() };
        case 'cas':
          await client.cas(request.key, request.value, { expectedValue: request.expected });
          knowledge.set(request.key, request.value);
          return { ...base, op: 'cas', value: request.value, expected: request.expected, ok: true, return: this.now() };
        case 'delete':
          await client.delete(request.key);
          knowledge.set(request.key, null);
          return { ...base, op: 'delete', ok: true, return: this.now() };
      }
    } catch (error) {
      if (!(error instanceof SynodClientError)) throw error;
      const returned = this.now();
      const payload = request.op === 'put' ? { value: request.value } : request.op === 'cas' ? { value: request.value, expected: request.expected } : {};
      if (error.code === 'cas_failed') {
        // The compare failed: a read that saw something else. `current` is what it saw.
        if (error.current !== undefined) knowledge.set(request.key, error.current.value);
        return { ...base, op: request.op, ...payload, ok: false, return: returned };
      }
      const message = `${error.code}: ${error.message}`.slice(0, 200);
      if (error.code === 'bad_request' || error.code === 'too_large') {
        return { ...base, op: request.op, ...payload, ok: false, error: message, return: returned };
      }
      // timeout, unavailable, not_leader, overloaded: the outcome is unknown.
      return { ...base, op: request.op, ...payload, ok: null, error: message, return: null };
    }
  }
}

type Request =
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'put'; readonly key: string; readonly value: string }
  | { readonly op: 'cas'; readonly key: string; readonly value: string; readonly expected: string | null }
  | { readonly op: 'delete'; readonly key: string };

function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

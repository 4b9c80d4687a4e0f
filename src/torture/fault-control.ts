/**
 * The node side of fault control: the opt-in hook through which `synod torture` slows a node's
 * disk, shifts its wall clock, and reads its applied index and state digest.
 *
 * It exists only when the process was started with `SYNOD_FAULT_CONTROL=1` and an IPC channel
 * (the harness spawns nodes that way); `synod start` without it never loads a wrapper, so a
 * production node has nothing of this on any path. Requests arrive on the IPC channel only.
 *
 * The clock fault shifts `Date.now()` for the whole process. Synod's protocol never reads the wall
 * clock: elections, heartbeats and retransmissions count ticks of an interval timer, deadlines use
 * `performance.now()`, and both run on the monotonic clock, which a wall-clock jump does not move.
 * What does read `Date.now()` (log timestamps, anything in a dependency) sees the jump, and the
 * torture run checks that nothing breaks. `new Date()` without arguments is not shifted.
 */
import { ConfigError } from '../server/config.js';
import type { SynodNodeOptions } from '../server/node.js';
import type { NodeStatusReport } from '../server/service.js';
import type { LogStorage } from '../storage/adapter.js';
import { FAULT_CONTROL_ENV, validateControlRequest, type ControlReply, type ControlRequest, type ReadyNotice } from './control.js';
import { SlowStorage } from './slow-storage.js';

/** What the hook reads from the node. */
export interface ProbedNode {
  digest(): string;
  status(): NodeStatusReport;
}

type Send = (message: ControlReply | ReadyNotice) => void;

export class FaultControl {
  private storage: SlowStorage | null = null;
  private node: ProbedNode | null = null;
  private clockOffsetMs = 0;
  private readonly realNow: () => number;

  /**
   * The hook if this process was started for fault testing, else null. Throws `ConfigError` when
   * the variable is set without an IPC channel: the node would silently run without its faults.
   */
  static fromEnvironment(env: NodeJS.ProcessEnv = process.env): FaultControl | null {
    if (env[FAULT_CONTROL_ENV] === undefined || env[FAULT_CONTROL_ENV] === '') return null;
    if (env[FAULT_CONTROL_ENV] !== '1') throw new ConfigError(`${FAULT_CONTROL_ENV} must be 1 or unset`);
    if (typeof process.send !== 'function') {
      throw new ConfigError(`${FAULT_CONTROL_ENV}=1 needs an IPC channel to the parent (synod torture starts nodes with one)`);
    }
    const control = new FaultControl((message) => {
      process.send?.(message);
    });
    process.on('message', (message: unknown) => control.handle(message));
    // The harness holds the other end: if it dies, this node must not linger as an orphan.
    process.on('disconnect', () => process.exit(70));
    return control;
  }

  constructor(private readonly send: Send) {
    const now = Date.now.bind(Date);
    this.realNow = now;
    Date.now = () => now() + this.clockOffsetMs;
  }

  /** Node options that install the slow-disk wrapper around the node's log storage. */
  nodeOptions(): Pick<SynodNodeOptions, 'wrapStorage'> {
    return {
      wrapStorage: (storage: LogStorage) => {
        this.storage = new SlowStorage(storage);
        return this.storage;
      },
    };
  }

  /** Starts answering probes and tells the harness the node serves. */
  attach(node: ProbedNode): void {
    this.node = node;
    this.send({ type: 'ready', pid: process.pid });
  }

  /** The real wall clock, unshifted. */
  wallClockMs(): number {
    return this.realNow();
  }

  /** Puts the real `Date.now` back (tests; a node keeps the hook for its lifetime). */
  restoreClock(): void {
    Date.now = this.realNow;
  }

  /** Handles one IPC message; malformed ones are answered with an error (or dropped without an id). */
  handle(raw: unknown): void {
    const invalid = validateControlRequest(raw);
    if (invalid !== null) {
      const id = typeof raw === 'object' && raw !== null ? (raw as { id?: unknown }).id : undefined;
      if (typeof id === 'number' && Number.isSafeInteger(id)) this.send({ type: 'error', id, message: invalid });
      return;
    }
    const request = raw as ControlRequest;
    this.send(this.execute(request));
  }

  private execute(request: ControlRequest): ControlReply {
    switch (request.type) {
      case 'fsync-delay':
        if (this.storage === null) return { type: 'error', id: request.id, message: 'the storage is not open yet' };
        this.storage.delayMs = request.ms;
        return { type: 'ack', id: request.id };
      case 'clock-offset':
        this.clockOffsetMs = request.ms;
        return { type: 'ack', id: request.id };
      case 'probe': {
        if (this.node === null) return { type: 'error', id: request.id, message: 'the node is not serving yet' };
        // Read in one synchronous step, so the digest is the state at exactly that applied index.
        const status = this.node.status();
        return { type: 'probe', id: request.id, report: { appliedIndex: status.appliedIndex, digest: this.node.digest(), role: status.role, ballot: status.ballot } };
      }
    }
  }
}

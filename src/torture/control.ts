/**
 * The fault-control protocol between `synod torture` and the node processes it runs: messages on
 * the IPC channel of a child process started with `SYNOD_FAULT_CONTROL=1`. Only a parent that
 * spawned the node with an IPC channel can send them; nothing is exposed on the network.
 *
 * Requests carry an `id`; the node answers each with a reply of the same `id`.
 */

/** The environment variable that turns the hook on (value `1`); the torture harness sets it. */
export const FAULT_CONTROL_ENV = 'SYNOD_FAULT_CONTROL';

/** Largest injected delay per append (ms): bounds what a bad request could do to a node. */
export const FSYNC_DELAY_MS_MAX = 60_000;
/** Largest clock shift (ms): ten years either way. */
export const CLOCK_OFFSET_MS_MAX = 10 * 365 * 24 * 3600 * 1000;

export type ControlRequest =
  /** Every append (write + fdatasync) resolves `ms` later than the disk made it durable. */
  | { readonly type: 'fsync-delay'; readonly id: number; readonly ms: number }
  /** `Date.now()` in the node returns the real wall clock plus `ms` (negative: the past). */
  | { readonly type: 'clock-offset'; readonly id: number; readonly ms: number }
  /** The applied index and state-machine digest, read in the same tick (for convergence). */
  | { readonly type: 'probe'; readonly id: number };

/** A request before the harness numbers it. */
export type ControlCommand = ControlRequest extends infer Request ? (Request extends unknown ? Omit<Request, 'id'> : never) : never;

export interface ProbeReport {
  readonly appliedIndex: number;
  readonly digest: string;
  readonly role: 'follower' | 'candidate' | 'leader';
  readonly ballot: string;
}

export type ControlReply =
  | { readonly type: 'ack'; readonly id: number }
  | { readonly type: 'probe'; readonly id: number; readonly report: ProbeReport }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

/** Sent once by the node when it serves (after its listeners are up). */
export interface ReadyNotice {
  readonly type: 'ready';
  readonly pid: number;
}

/** Checks a request received over IPC; returns a reason when it is malformed, else null. */
export function validateControlRequest(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null) return 'a control request must be an object';
  const request = raw as Record<string, unknown>;
  if (typeof request.id !== 'number' || !Number.isSafeInteger(request.id)) return 'a control request needs an integer id';
  switch (request.type) {
    case 'fsync-delay':
      return finiteInRange(request.ms, 0, FSYNC_DELAY_MS_MAX, 'fsync-delay ms');
    case 'clock-offset':
      return finiteInRange(request.ms, -CLOCK_OFFSET_MS_MAX, CLOCK_OFFSET_MS_MAX, 'clock-offset ms');
    case 'probe':
      return null;
    default:
      return `unknown control request type ${JSON.stringify(request.type)}`;
  }
}

function finiteInRange(value: unknown, min: number, max: number, what: string): string | null {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) return `${what} must be a number in [${min}, ${max}]`;
  return null;
}

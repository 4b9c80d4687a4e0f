/**
 * Logging that an outsider cannot turn into a flood. Refusals (bad handshakes, bad tokens, forged
 * senders) are logged because an operator must see them, but each costs whoever sends it one
 * connection or one frame, and a log line costs us disk. So each distinct message (with its
 * `reason` field, when it has one: a flood of one kind of refusal must not hide another kind) may
 * be logged `burst` times per window; beyond that lines are counted, not written, and the next
 * line written for that message carries `suppressed: n`. Counters (metrics) still count every
 * event: they, not the log, are the complete record.
 */

/** The pino-shaped surface being limited: structured fields first, then a fixed message. */
export interface LimitableLogger {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

export interface LogLimitOptions {
  /** Lines per distinct message per window (default 20). */
  readonly burst?: number;
  /** The window, in ms (default 10 s). */
  readonly windowMs?: number;
  /** The clock (default `Date.now`); injectable for tests. */
  readonly now?: () => number;
}

/** The most distinct messages tracked: messages are fixed strings in our code, so a few dozen. */
const KEYS_MAX = 256;

function keyOf(level: string, fields: object, message: string): string {
  const reason = (fields as { reason?: unknown }).reason;
  return typeof reason === 'string' ? `${level}:${message}:${reason}` : `${level}:${message}`;
}

interface Window {
  startMs: number;
  written: number;
  suppressed: number;
}

/** Wraps `logger` so that no message is written more than `burst` times per window. */
export class LimitedLogger implements LimitableLogger {
  private readonly burst: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly logger: LimitableLogger,
    options: LogLimitOptions = {},
  ) {
    this.burst = options.burst ?? 20;
    this.windowMs = options.windowMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  warn(fields: object, message: string): void {
    const suppressed = this.admit(keyOf('warn', fields, message));
    if (suppressed !== null) this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }

  info(fields: object, message: string): void {
    const suppressed = this.admit(keyOf('info', fields, message));
    if (suppressed !== null) this.logger.info(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }

  /** Null when this line must be dropped; else how many were dropped since the last one written. */
  private admit(key: string): number | null {
    const nowMs = this.now();
    let window = this.windows.get(key);
    if (window === undefined) {
      if (this.windows.size >= KEYS_MAX) this.windows.clear();
      window = { startMs: nowMs, written: 0, suppressed: 0 };
      this.windows.set(key, window);
    }
    if (nowMs - window.startMs >= this.windowMs) {
      window.startMs = nowMs;
      window.written = 0;
    }
    if (window.written >= this.burst) {
      window.suppressed += 1;
      return null;
    }
    window.written += 1;
    const suppressed = window.suppressed;
    window.suppressed = 0;
    return suppressed;
  }
}

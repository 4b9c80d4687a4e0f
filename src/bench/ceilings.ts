/**
 * The machine's ceilings, measured in the same invocation as the systems: how many fdatasync'd
 * appends per second the disk takes one at a time (every replicated write needs at least one on
 * the leader and one on a follower, overlapped), which bounds a one-client closed loop.
 */
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface FsyncCeiling {
  /** Sequential `write(100 B) + fdatasync` pairs per second. */
  readonly fsyncsPerSec: number;
  /** Mean time of one pair, in milliseconds. */
  readonly fsyncMeanMs: number;
}

/** Appends `recordBytes` and fdatasyncs, one after the other, for `durationMs`, in `dir`. */
export function measureFsync(dir: string, durationMs: number, recordBytes = 100): FsyncCeiling {
  const scratch = mkdtempSync(join(dir, 'fsync-'));
  const fd = openSync(join(scratch, 'probe'), 'a');
  const record = Buffer.alloc(recordBytes, 0x61);
  try {
    const start = process.hrtime.bigint();
    const end = start + BigInt(durationMs) * 1_000_000n;
    let count = 0;
    let now = start;
    while (now < end) {
      writeSync(fd, record);
      fdatasyncSync(fd);
      count++;
      now = process.hrtime.bigint();
    }
    const elapsedMs = Number(now - start) / 1e6;
    return { fsyncsPerSec: Math.round((count / elapsedMs) * 1000), fsyncMeanMs: Math.round((elapsedMs / count) * 1000) / 1000 };
  } finally {
    closeSync(fd);
    rmSync(scratch, { recursive: true, force: true });
  }
}

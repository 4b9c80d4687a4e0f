/**
 * CPU time of processes, for "how much CPU did this throughput cost": the load generator's own
 * (`process.cpuUsage`) and each server's from Linux `/proc/<pid>/stat` (user + system ticks).
 */
import { readFileSync } from 'node:fs';

/** Linux reports process times in clock ticks of 1/100 s (`getconf CLK_TCK`) on every platform we run. */
const TICKS_PER_SECOND = 100;

/** CPU milliseconds (user + system) a process has used so far, or null if it cannot be read. */
export function processCpuMs(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // The command name (field 2) is parenthesized and may contain spaces: split after its end.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

/** This process's CPU milliseconds so far. */
export function ownCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** CPU used between two samples, as a percentage of one core over `elapsedMs`. */
export function cpuPercent(beforeMs: number | null, afterMs: number | null, elapsedMs: number): number | null {
  if (beforeMs === null || afterMs === null || elapsedMs <= 0) return null;
  return Math.round(((afterMs - beforeMs) / elapsedMs) * 1000) / 10;
}

/** The machine's CPU time so far from `/proc/stat` (all cores, in ticks): total and stolen. */
export interface MachineTicks {
  readonly total: number;
  readonly steal: number;
}

/**
 * The machine's CPU ticks, or null if `/proc/stat` cannot be read. Steal is the time a virtual
 * CPU was runnable but the hypervisor ran something else: on a shared VM it moves throughput
 * between runs more than most changes being measured, so each run reports it.
 */
export function machineTicks(): MachineTicks | null {
  let stat: string;
  try {
    stat = readFileSync('/proc/stat', 'latin1');
  } catch {
    return null;
  }
  const line = stat.slice(0, stat.indexOf('\n'));
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"; guest time is
  // already counted in user and nice.
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (!line.startsWith('cpu ') || fields.length < 8 || fields.some((field) => !Number.isFinite(field))) return null;
  return { total: fields.reduce((sum, field) => sum + field, 0), steal: fields[7] ?? 0 };
}

/** Stolen share of all CPU time between two samples (%), or null if unknown. */
export function stealPercent(before: MachineTicks | null, after: MachineTicks | null): number | null {
  if (before === null || after === null || after.total <= before.total) return null;
  return Math.round(((after.steal - before.steal) / (after.total - before.total)) * 1000) / 10;
}

/**
 * Runs many simulation seeds and summarises them: the engine behind `synod sim --seeds N` and the
 * test-suite sweep. Every failing seed can be replayed exactly with `synod sim --seed S --trace`.
 */
import { type SimulationOptions, type SimulationResult, simulate } from './simulation.js';

export interface SweepSummary {
  readonly seeds: number;
  readonly ops: number;
  readonly violations: number;
  readonly livenessFailures: number;
  readonly failedSeeds: readonly number[];
  /** Log entries read back from a node's disk after compaction dropped them from memory. */
  readonly logReadsFromDisk: number;
}

export interface SweepProgress {
  (result: SimulationResult, index: number): void;
}

/** Runs seeds [start, start + count) and returns the summary; `onResult` sees each run. */
export function sweep(
  start: number,
  count: number,
  overrides: Partial<Omit<SimulationOptions, 'seed'>> = {},
  onResult?: SweepProgress,
): SweepSummary {
  let ops = 0;
  let violations = 0;
  let livenessFailures = 0;
  let logReadsFromDisk = 0;
  const failedSeeds: number[] = [];
  for (let index = 0; index < count; index += 1) {
    const seed = start + index;
    const result = simulate(seed, overrides);
    ops += result.ops;
    logReadsFromDisk += result.logReadsFromDisk;
    violations += result.violations.length;
    if (result.livenessFailure !== null) livenessFailures += 1;
    if (result.violations.length > 0 || result.livenessFailure !== null) failedSeeds.push(seed);
    onResult?.(result, index);
  }
  return { seeds: count, ops, violations, livenessFailures, failedSeeds, logReadsFromDisk };
}

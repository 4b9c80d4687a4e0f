/**
 * The checks of a torture run's history: linearizability (the in-repo checker, per key), and
 * lost acknowledged writes, defined precisely below.
 *
 * Lost acknowledged write. Take, for each key, its final read F: the successful get with the
 * latest call (in a torture run, a read made after every fault was healed and every client
 * stopped). An acknowledged write W of the key (put, cas or delete with `ok: true`) that returned
 * before F was called is *lost* when F observed something W must have replaced:
 *   - F's output differs from W's effect (W's value; for a delete, absence), and
 *   - every operation that could have produced F's output certainly happened before W: each
 *     put or cas that wrote exactly that value (values are unique per write, so in practice one),
 *     or for absence each delete and the initial empty state, returned before W was called —
 *     writes with an unknown outcome never count as "before", since they may land at any time.
 * Then in any order consistent with real time, F's value was written before W and F comes after
 * W, so F should have seen W or something later: the store went back on an acknowledged write
 * (a rollback, or a replica serving a state that lost it). Linearizability forbids this too, so a
 * lost write always also fails the linearizability check; this count says how many acknowledged
 * writes are gone, which a single "not linearizable" does not.
 */
import { checkLinearizability, type CheckResult } from '../check/linearizability.js';
import { canonicalJson, type HistoryOp } from '../check/history.js';

export interface LostWrite {
  readonly key: string;
  /** The acknowledged write whose effect is missing. */
  readonly write: HistoryOp;
  /** The final read that shows it missing. */
  readonly read: HistoryOp;
}

export interface HistoryVerdict {
  readonly ops: number;
  readonly unknown: number;
  readonly linearizable: CheckResult['linearizable'];
  /** Why the history is not linearizable (or the search gave up), naming the key and operations. */
  readonly explanation?: string;
  readonly lostAcknowledgedWrites: number;
  readonly lost: readonly LostWrite[];
  readonly checkMs: number;
}

/** Checks a history: linearizability of every key, and lost acknowledged writes. */
export function checkHistory(history: readonly HistoryOp[]): HistoryVerdict {
  const started = performance.now();
  const result = checkLinearizability(history);
  const lost = findLostWrites(history);
  const verdict: HistoryVerdict = {
    ops: history.length,
    unknown: history.filter((op) => op.ok === null || op.return === null).length,
    linearizable: result.linearizable,
    lostAcknowledgedWrites: lost.length,
    lost,
    checkMs: Math.round(performance.now() - started),
  };
  return result.explanation === undefined ? verdict : { ...verdict, explanation: result.explanation };
}

/** The acknowledged writes whose effect is missing from their key's final read (see the module comment). */
export function findLostWrites(history: readonly HistoryOp[]): LostWrite[] {
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    const ops = byKey.get(op.key);
    if (ops === undefined) byKey.set(op.key, [op]);
    else ops.push(op);
  }
  const lost: LostWrite[] = [];
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key) as HistoryOp[];
    const final = finalRead(ops);
    if (final === null) continue;
    const observed = canonicalJson(final.output ?? null);
    // Operations that may have produced what the final read saw.
    const sources = ops.filter((op) => op !== final && op.ok !== false && producedValue(op) === observed);
    for (const write of ops) {
      if (write.ok !== true || write.return === null || write.return >= final.call) continue;
      const effect = producedValue(write);
      if (effect === null || effect === observed) continue;
      const certainlyBefore = (op: HistoryOp): boolean => op.ok === true && op.return !== null && op.return < write.call;
      if (sources.every(certainlyBefore)) lost.push({ key, write, read: final });
    }
  }
  return lost;
}

/** The successful get with the latest call, or null. */
function finalRead(ops: readonly HistoryOp[]): HistoryOp | null {
  let final: HistoryOp | null = null;
  for (const op of ops) {
    if (op.op !== 'get' || op.ok !== true || op.return === null) continue;
    if (final === null || op.call > final.call) final = op;
  }
  return final;
}

/**
 * The canonical value a successful operation leaves in its key: a put's or cas's value, `null`
 * (absent) for a delete; null (no effect) for reads and appends, which the torture workload does
 * not issue.
 */
function producedValue(op: HistoryOp): string | null {
  switch (op.op) {
    case 'put':
    case 'cas':
      return canonicalJson(op.value ?? null);
    case 'delete':
      return canonicalJson(null);
    default:
      return null;
  }
}

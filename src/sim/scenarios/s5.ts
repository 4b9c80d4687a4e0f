/**
 * S5 — "ghost reappearance" (幽灵复现) and the StartWorking entry (seed 003).
 *
 * Form 1. Round 1: n1 (A) leads and writes slots 1–10 (slot 1 is its StartWorking); 1–5 reach a
 * majority, 6–10 exist only on n1. Round 2: n1 is down; n2 (B) is elected by {n2, n3}, both of
 * which report max log id 5; n2 writes 6–20 and only 6 and 20 reach a majority; a client read at
 * n2 misses n1's 7–10. Round 3: n1 returns, n2 is down, n1 is elected by {n1, n3} (max log id 20)
 * and re-confirms 7–20, including its own old 7–10.
 * Form 2. n1 writes A, B, C, D; only A reaches a majority; n1 fails; n2 is elected, a read misses
 * B, C, D; n2 fails having written nothing but its StartWorking; n1 is re-elected.
 *
 * With StartWorking and the replay rule, the old entries are recovered into the log (Paxos must
 * keep them) but replay ignores them: what a completed read missed never becomes visible. A
 * replica without the fix (a demonstration variant: its new leaders commit a plain no-op and
 * replay applies everything) shows the ghost — the scenario asserts both.
 */
import type { Ballot } from '../../core/ballot.js';
import { Replica } from '../../core/multipaxos/replica.js';
import type { EntryValue } from '../../core/multipaxos/types.js';
import { ScenarioRecorder, type Scenario, type ScenarioResult } from '../scenario.js';
import { MultiPaxosScript, anyMessage, messages, touching } from './multipaxos-script.js';

/** Demonstration only: Multi-Paxos without the StartWorking fix. Never used outside this scenario. */
class ReplicaWithoutStartWorking extends Replica {
  protected override startWorkingValue(_ballot: Ballot): EntryValue {
    return { type: 'noop' };
  }
  protected override replaySkips(_value: EntryValue): boolean {
    return false;
  }
}

type Fix = 'with StartWorking' | 'without the fix';

function script(recorder: ScenarioRecorder, fix: Fix): MultiPaxosScript {
  return fix === 'with StartWorking'
    ? new MultiPaxosScript(recorder, 3)
    : new MultiPaxosScript(recorder, 3, (options, state) => new ReplicaWithoutStartWorking(options, state));
}

/** Reads `keys` at `node`; returns those whose value is visible. */
function visible(run: MultiPaxosScript, node: number, keys: readonly string[]): string[] {
  return keys.filter((key) => run.read(node, key) !== null);
}

function formOne(recorder: ScenarioRecorder, fix: Fix): void {
  const run = script(recorder, fix);
  run.say(`=== form 1, ${fix}`);
  run.say('round 1: n1 leads and writes slots 2–10; 1–5 reach a majority, 6–10 stay on n1');
  run.elect(1);
  run.heartbeat(1);
  const ghostKeys: string[] = [];
  for (let slot = 2; slot <= 10; slot += 1) {
    run.put(1, `a${slot}`, `A${slot}`);
    if (slot <= 5) run.deliver(anyMessage);
    else run.drop(messages('accept', 1));
    if (slot >= 7) ghostKeys.push(`a${slot}`);
  }
  run.say('n1 fails; its clients for 6–10 time out');
  run.crash(1);
  run.say('round 2: n2 is elected by {n2, n3}; both report max log id 5');
  run.elect(2);
  for (let slot = 7; slot <= 20; slot += 1) {
    run.put(2, `b${slot}`, `B${slot}`);
    if (slot === 20) run.deliver(touching(3));
    else run.drop(messages('accept', 2, 3));
  }
  run.heartbeat(2);
  run.showLogs(5, 10);
  const missed = ghostKeys.filter((key) => !visible(run, 2, [key]).includes(key));
  recorder.check(`[form 1, ${fix}] a completed read at n2 misses n1's 7–10`, missed.length === ghostKeys.length, missed.join(','));
  run.say('round 3: n2 is down; n1 returns and is elected by {n1, n3}: max log id 20, re-confirms 7–20');
  run.crash(2);
  run.restart(1);
  run.elect(1);
  run.heartbeat(1);
  run.heartbeat(1);
  run.showLogs(5, 11);
  run.say('n2 returns and catches up');
  run.restart(2);
  run.heartbeat(1);
  run.heartbeat(1);
  judge(run, recorder, `form 1, ${fix}`, fix, missed);
}

function formTwo(recorder: ScenarioRecorder, fix: Fix): void {
  const run = script(recorder, fix);
  run.say(`=== form 2, ${fix}`);
  run.elect(1);
  run.heartbeat(1);
  run.say('n1 writes A, B, C, D; only A reaches a majority');
  run.put(1, 'A', 'A');
  run.deliver(anyMessage);
  for (const key of ['B', 'C', 'D']) {
    run.put(1, key, key);
    run.drop(messages('accept', 1));
  }
  run.say('n1 fails; n2 is elected and a client reads');
  run.crash(1);
  run.elect(2);
  run.heartbeat(2);
  const missed = ['B', 'C', 'D'].filter((key) => run.read(2, key) === null);
  recorder.check(`[form 2, ${fix}] a completed read at n2 misses B, C, D`, missed.length === 3, missed.join(','));
  run.say('n2 fails having written nothing (but its StartWorking); n1 returns and is re-elected with n3');
  run.crash(2);
  run.restart(1);
  run.elect(1);
  run.heartbeat(1);
  run.heartbeat(1);
  run.showLogs(1, 6);
  run.restart(2);
  run.heartbeat(1);
  run.heartbeat(1);
  judge(run, recorder, `form 2, ${fix}`, fix, missed);
}

/** With the fix no missed value is visible on any node; without it the ghost must appear. */
function judge(run: MultiPaxosScript, recorder: ScenarioRecorder, label: string, fix: Fix, missed: readonly string[]): void {
  const ghosts = [1, 2, 3].flatMap((node) => visible(run, node, missed).map((key) => `n${node}:${key}`));
  if (fix === 'with StartWorking') {
    recorder.check(`[${label}] no value the read missed ever becomes visible`, ghosts.length === 0, ghosts.join(' '));
  } else {
    recorder.check(`[${label}] the ghost appears (the scenario is real)`, ghosts.length > 0, ghosts.join(' '));
  }
  recorder.check(`[${label}] the agreement oracle saw no violation`, run.cluster.oracle.violations.length === 0, run.cluster.oracle.violations.join('; '));
}

export const s5: Scenario = {
  id: 'S5',
  title: 'Ghost reappearance and the StartWorking entry',
  run(): ScenarioResult {
    const recorder = new ScenarioRecorder('S5', 'Ghost reappearance and the StartWorking entry');
    for (const fix of ['without the fix', 'with StartWorking'] as const) {
      formOne(recorder, fix);
      formTwo(recorder, fix);
    }
    return recorder.finish();
  },
};

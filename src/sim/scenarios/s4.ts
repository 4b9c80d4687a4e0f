/**
 * S4 — a new leader recovers a log with holes (seed 003, "恢复").
 *
 * Log ids 1..7: slot 1 holds leader n1's StartWorking; B..G are client writes at slots 2..7 (so
 * slot 3 = C and slot 4 = D, as in the seed). Before n1 fails: C is accepted by n1 and n2 (a
 * majority: chosen) but is missing on n3, the member that becomes the new leader; D is accepted by
 * n1 only (not chosen); E by n1 and n2 (chosen); F and G by n1 only.
 * Variant "a": n3 is elected by {n3, n2} — D is not in the responding majority: slot 4 = no-op.
 * Variant "b": n3 is elected by {n3, n1} (n1 restarted, disk intact) — slot 4 = D.
 * Either way slot 3 = C everywhere, and once decided slot 4 never changes (a third election by n2
 * keeps it).
 */
import { ScenarioRecorder, type Scenario, type ScenarioResult } from '../scenario.js';
import { MultiPaxosScript, anyMessage, messages, touching } from './multipaxos-script.js';

function runVariant(recorder: ScenarioRecorder, variant: 'a' | 'b'): void {
  const script = new MultiPaxosScript(recorder, 3);
  script.say(`--- variant ${variant}: ${variant === 'a' ? 'majority {n3, n2} (no D)' : 'majority {n3, n1} (holds D)'}`);
  script.elect(1);
  script.heartbeat(1);
  script.say('n1 leads; the client writes B..G');
  script.put(1, 'B', 'B');
  script.deliver(anyMessage);
  script.put(1, 'C', 'C');
  script.drop(messages('accept', 1, 3));
  script.deliver(touching(2));
  script.put(1, 'D', 'D');
  script.drop(messages('accept', 1));
  script.put(1, 'E', 'E');
  script.drop(messages('accept', 1, 3));
  script.deliver(touching(2));
  script.put(1, 'F', 'F');
  script.put(1, 'G', 'G');
  script.drop(messages('accept', 1));
  script.drop(touching(3)); // n3 hears nothing more from n1
  const chosenBefore = [1, 2, 3, 4, 5, 6, 7].filter((slot) => script.cluster.oracle.chosen(slot) !== null);
  script.say(`chosen before n1 fails (by the oracle): slots ${chosenBefore.join(', ')}`);
  script.showLogs(1, 7);
  script.say('n1 fails');
  script.crash(1);
  if (variant === 'b') {
    script.say('n1 restarts with its disk intact; n2 is unreachable for the election');
    script.restart(1);
    script.elect(3, (message) => message.from !== 2 && message.to !== 2);
  } else {
    script.elect(3);
  }
  script.heartbeat(3, variant === 'b' ? (message) => message.from !== 2 && message.to !== 2 : anyMessage);
  const startWorkingSlot = script.statusOf(3).maxSlot;
  script.showLogs(1, startWorkingSlot);
  if (variant === 'a') {
    script.say('n1 restarts and catches up');
    script.restart(1);
  }
  script.heartbeat(3);
  script.heartbeat(3);
  const slot4AfterRecovery = script.appliedAt(3, 4);
  recorder.check(
    `[${variant}] slot 3 is C on every member`,
    [1, 2, 3].every((node) => script.appliedAt(node, 3) === 'put(C=C)'),
    [1, 2, 3].map((node) => `n${node}:${script.appliedAt(node, 3)}`).join(' '),
  );
  const expected4 = variant === 'a' ? 'noop' : 'put(D=D)';
  recorder.check(
    `[${variant}] slot 4 is ${expected4} on every member`,
    [1, 2, 3].every((node) => script.appliedAt(node, 4) === expected4),
    [1, 2, 3].map((node) => `n${node}:${script.appliedAt(node, 4)}`).join(' '),
  );
  recorder.check(
    `[${variant}] the recovery end point covers every slot a majority had accepted`,
    chosenBefore.every((slot) => slot < startWorkingSlot),
    `StartWorking at ${startWorkingSlot}, chosen ${chosenBefore.join(',')}`,
  );
  script.say('n3 fails too; a third election (n2, with n1) must keep every decided slot');
  script.crash(3);
  script.elect(2);
  script.restart(3);
  script.heartbeat(2);
  script.heartbeat(2);
  script.showLogs(1, script.statusOf(2).maxSlot);
  recorder.check(
    `[${variant}] once decided, slot 4 never changes`,
    [1, 2, 3].every((node) => script.appliedAt(node, 4) === slot4AfterRecovery) &&
      script.holds(2, 4).startsWith(slot4AfterRecovery),
    `${slot4AfterRecovery} -> ${script.holds(2, 4)}`,
  );
  recorder.check(
    `[${variant}] the agreement oracle saw no violation`,
    script.cluster.oracle.violations.length === 0,
    script.cluster.oracle.violations.join('; '),
  );
}

export const s4: Scenario = {
  id: 'S4',
  title: 'New leader recovers a log with holes',
  run(): ScenarioResult {
    const recorder = new ScenarioRecorder('S4', 'New leader recovers a log with holes');
    runVariant(recorder, 'a');
    runVariant(recorder, 'b');
    return recorder.finish();
  },
};

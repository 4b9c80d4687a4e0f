/**
 * S6 — a confirmation that reached only some followers (seed 003, "恢复优化").
 *
 * n3 leads first and leaves X accepted at slot 3 on itself only, then crashes and restarts. n1 is
 * elected by {n1, n2} and commits its StartWorking at slot 3. n1 sends the confirmation ("slot 3 chosen") to itself and n2 but not n3,
 * then fails. n2 is elected by {n2, n3}; holding a local confirmation of slot 3, it does not re-run
 * Paxos there. n3 holds X at slot 3 — accepted, never chosen: when n2's commit point passes slot 3,
 * n3 must ask which value was chosen and apply exactly that, never X.
 */
import { formatBallot } from '../../core/ballot.js';
import { ScenarioRecorder, type Scenario, type ScenarioResult } from '../scenario.js';
import type { ReplicaFactory } from '../cluster.js';
import { MultiPaxosScript, anyMessage, messages, touching } from './multipaxos-script.js';

/** Runs S6; a test passes a broken replica factory to prove the scenario's checks can fail. */
export function runS6(replicaFactory?: ReplicaFactory): ScenarioResult {
  const recorder = new ScenarioRecorder('S6', 'Confirmation that reached only some followers');
  const run = new MultiPaxosScript(recorder, 3, replicaFactory);
  run.say('n3 leads; slot 2 is chosen everywhere; X at slot 3 reaches no one else');
  run.elect(3);
  run.heartbeat(3);
  run.put(3, 'x0', 'chosen-everywhere');
  run.deliver(anyMessage);
  run.heartbeat(3);
  run.put(3, 'x', 'X');
  run.drop(messages('accept', 3));
  run.say('n3 crashes and restarts: X stays accepted on n3 alone (its disk is intact)');
  run.crash(3);
  run.restart(3);
  run.say('n1 is elected by {n1, n2} and commits its StartWorking at slot 3');
  const notToN3 = (message: { from: number; to: number }): boolean => message.from !== 3 && message.to !== 3;
  run.elect(1, notToN3);
  run.say('n1 confirms slot 3 to itself and n2 only, then fails');
  run.heartbeat(1, notToN3);
  run.drop(touching(3));
  run.showLogs(1, 3);
  const chosenAt3 = run.holds(1, 3);
  run.crash(1);
  run.say('n2 is elected by {n2, n3}');
  let n3AskedAboutSlot3 = false;
  run.elect(2, (message) => {
    if (message.type === 'learn' && message.from === 3 && message.slots.includes(3)) n3AskedAboutSlot3 = true;
    return true;
  });
  const n2Slot3 = run.cluster.node(2).store.entry(3);
  recorder.check(
    'n2, holding a local confirmation, did not re-run Paxos on slot 3',
    n2Slot3 !== undefined && n2Slot3.chosen && n2Slot3.ballot !== run.statusOf(2).promised,
    n2Slot3 === undefined ? 'no entry' : `slot 3 kept ballot ${formatBallot(n2Slot3.ballot)}`,
  );
  const watchLearn = (message: { type: string; from: number }): boolean => {
    if (message.type === 'learn' && message.from === 3) n3AskedAboutSlot3 = true;
    return true;
  };
  run.heartbeat(2, watchLearn);
  run.heartbeat(2, watchLearn);
  run.showLogs(1, 4);
  recorder.check('n3 asked which value was chosen at slot 3', n3AskedAboutSlot3);
  recorder.check(
    'n3 applied exactly the chosen value at slot 3, not its accepted X',
    run.appliedAt(3, 3) === run.appliedAt(2, 3) && run.appliedAt(3, 3) !== '-' && !run.appliedAt(3, 3).includes('X'),
    `n3 applied ${run.appliedAt(3, 3)}; chosen ${chosenAt3}`,
  );
  recorder.check('the agreement oracle saw no violation', run.cluster.oracle.violations.length === 0, run.cluster.oracle.violations.join('; '));
  return recorder.finish();
}

export const s6: Scenario = {
  id: 'S6',
  title: 'Confirmation that reached only some followers',
  run: () => runS6(),
};

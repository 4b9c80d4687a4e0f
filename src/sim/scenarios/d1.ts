/**
 * D1 — a member loses its disk (a corrupt log it cannot trust, or a replaced drive).
 *
 * n1 leads; put(x=A) at slot 2 is accepted by n1 and n3 only: chosen (a majority of three), and
 * the client is told so. n3 then loses its disk, and n1 fails.
 *
 * - amnesia (what a plain restart on a wiped data directory would do): n3 comes back as an empty
 *   acceptor and promises n2's ballot; n2, elected by {n2, n3}, sees no value at slot 2 and puts
 *   its StartWorking there. A second value is chosen for slot 2 and the acknowledged write is gone.
 *   The agreement oracle must report it (the scenario is real).
 * - rejoin (`synod start --rejoin`): n3 does not vote; n2 cannot be elected while n1 is down. When
 *   n1 returns, n3 learns every peer's promise, fences them above it, and finishes only after a
 *   leader elected above that bound (by {n1, n2}, which recovers A at slot 2) commits its
 *   StartWorking and n3 has learned everything up to it. Then n3 votes again and x = A everywhere.
 */
import type { NodeId } from '../../core/ballot.js';
import { DEFAULT_REPLICA_OPTIONS } from '../../core/multipaxos/replica.js';
import { ScenarioRecorder, type Scenario, type ScenarioResult } from '../scenario.js';
import { MultiPaxosScript, anyMessage, messages, touching } from './multipaxos-script.js';

type Variant = 'amnesia' | 'rejoin';

/** Lets `node` resend what it resends on its timers (rejoin rounds, learns), then delivers everything. */
function retransmit(run: MultiPaxosScript, node: NodeId): void {
  run.cluster.tickNode(node, DEFAULT_REPLICA_OPTIONS.retransmitTicks);
  run.deliver(anyMessage);
}

function prologue(run: MultiPaxosScript, variant: Variant): number {
  run.say(`=== ${variant}`);
  run.say('n1 leads; put(x=A) is accepted by n1 and n3 only: chosen, and acknowledged');
  run.elect(1);
  run.heartbeat(1);
  const slot = run.put(1, 'x', 'A');
  run.drop(messages('accept', 1, 2));
  run.deliver(touching(3));
  run.showLogs(1, slot);
  return slot;
}

function amnesia(recorder: ScenarioRecorder): void {
  const run = new MultiPaxosScript(recorder, 3);
  const slot = prologue(run, 'amnesia');
  recorder.check('[amnesia] put(x=A) is chosen at slot 2', run.cluster.oracle.chosen(slot) !== null);
  run.say('n3 loses its disk and restarts empty; n1 fails');
  run.loseDisk(3, false);
  run.crash(1);
  run.say('n2 campaigns; the empty n3 promises');
  run.elect(2);
  run.heartbeat(2);
  run.showLogs(1, slot);
  const violations = run.cluster.oracle.violations;
  recorder.check('[amnesia] the oracle reports two values chosen for slot 2 (the scenario is real)', violations.some((line) => line.includes(`slot ${slot}: two values chosen`)), violations.join('; '));
  recorder.check('[amnesia] the acknowledged x=A is lost at n2', run.read(2, 'x') === null);
}

function rejoin(recorder: ScenarioRecorder): void {
  const run = new MultiPaxosScript(recorder, 3);
  const slot = prologue(run, 'rejoin');
  run.say('n3 loses its disk and restarts in rejoin mode; n1 fails');
  run.loseDisk(3, true);
  run.crash(1);
  run.deliver(anyMessage);
  run.say('n2 campaigns; n3 does not vote');
  run.elect(2);
  recorder.check('[rejoin] n2 is not elected while n1 is down (n3 counts in no quorum)', run.statusOf(2).role !== 'leader');
  retransmit(run, 3);
  recorder.check('[rejoin] n3 still rejoins: it needs every peer\'s promise', run.statusOf(3).rejoining);
  run.say('n1 returns; n3 asks again, learns the highest promise, and fences n1 and n2 above it');
  run.restart(1);
  retransmit(run, 3);
  retransmit(run, 3);
  run.say('n2 campaigns above the fence and is elected by {n1, n2}; it recovers A at slot 2');
  run.elect(2);
  run.heartbeat(2);
  run.heartbeat(2);
  retransmit(run, 3);
  run.showLogs(1, slot + 1);
  const status = run.statusOf(3);
  recorder.check('[rejoin] n3 finished rejoining once it applied StartWorking of the new leader', !status.rejoining);
  recorder.check('[rejoin] n3 applied x=A at slot 2', run.appliedAt(3, slot) === 'put(x=A)', run.appliedAt(3, slot));
  recorder.check('[rejoin] x = A at the new leader', run.read(2, 'x') === 'A');
  run.say('n3 votes again: with n1 down, n2 and n3 choose put(y=B)');
  run.crash(1);
  run.put(2, 'y', 'B');
  run.deliver(anyMessage);
  run.heartbeat(2);
  recorder.check('[rejoin] y = B is chosen by {n2, n3} and applied at n3', run.appliedAt(3, slot + 2) === 'put(y=B)', run.appliedAt(3, slot + 2));
  recorder.check('[rejoin] the agreement oracle saw no violation', run.cluster.oracle.violations.length === 0, run.cluster.oracle.violations.join('; '));
}

export const d1: Scenario = {
  id: 'D1',
  title: 'A member loses its disk: amnesia versus rejoin',
  run(): ScenarioResult {
    const recorder = new ScenarioRecorder('D1', 'A member loses its disk: amnesia versus rejoin');
    amnesia(recorder);
    rejoin(recorder);
    return recorder.finish();
  },
};

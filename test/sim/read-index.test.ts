/**
 * Read index, scripted message by message: a leader cut off from the others must not answer a
 * read once a new leader has acknowledged a newer write, and must answer reads that a quorum
 * confirmed. A broken leader that skips the quorum round serves the stale value here, so the
 * test can fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Replica, type LeaderState } from '../../src/core/multipaxos/replica.js';
import type { ReplicaFactory } from '../../src/sim/cluster.js';
import { ScenarioRecorder } from '../../src/sim/scenario.js';
import { MultiPaxosScript, type ReadOutcome, anyMessage, touching } from '../../src/sim/scenarios/multipaxos-script.js';

class ReadsWithoutQuorum extends Replica {
  protected override readRoundConfirmed(_leader: LeaderState, _round: number): boolean {
    return true;
  }
}

/** n1 leads and writes x=A; it is cut off; n2 is elected by {n2, n3} and writes x=B; then a read at n1. */
function staleLeaderRead(factory?: ReplicaFactory): { outcome: ReadOutcome; trace: readonly string[] } {
  const recorder = new ScenarioRecorder('read-index', 'A cut-off leader and a read');
  const run = new MultiPaxosScript(recorder, 3, factory);
  run.elect(1);
  run.heartbeat(1);
  run.put(1, 'x', 'A');
  run.deliver(anyMessage);
  run.heartbeat(1);
  run.say('n1 is cut off; n2 is elected by {n2, n3} and commits x=B (acknowledged)');
  run.drop(touching(1));
  const apartFrom1 = (message: { from: number; to: number }): boolean => message.from !== 1 && message.to !== 1;
  run.elect(2, apartFrom1);
  run.put(2, 'x', 'B');
  run.deliver(apartFrom1);
  run.heartbeat(2, apartFrom1);
  const id = run.readByIndex(1, 'x');
  run.say('n1 still believes it leads; its read round reaches the others, who promised n2');
  run.deliver(anyMessage);
  return { outcome: run.readOutcome(id), trace: recorder.finish().trace };
}

test('a cut-off leader refuses a read once a newer leader exists (its read round is nacked)', () => {
  const { outcome, trace } = staleLeaderRead();
  assert.equal(outcome.status, 'refused', trace.join('\n'));
});

test('a leader that skips the quorum round serves a stale read (the check above can fail)', () => {
  const { outcome } = staleLeaderRead((options, state) => new ReadsWithoutQuorum(options, state));
  assert.deepEqual(outcome, { status: 'served', value: 'A' });
});

test('reads confirmed by a quorum round see every acknowledged write; one round serves many reads', () => {
  const recorder = new ScenarioRecorder('read-index', 'Reads at a healthy leader');
  const run = new MultiPaxosScript(recorder, 3);
  run.elect(1);
  run.heartbeat(1);
  run.put(1, 'x', 'A');
  run.deliver(anyMessage);
  const first = run.readByIndex(1, 'x');
  const second = run.readByIndex(1, 'x');
  assert.equal(run.readOutcome(first).status, 'pending', 'no answer before the quorum round');
  const heartbeatsBefore = run.cluster.messagesSent;
  run.deliver(anyMessage);
  assert.deepEqual(run.readOutcome(first), { status: 'served', value: 'A' });
  assert.deepEqual(run.readOutcome(second), { status: 'served', value: 'A' });
  // One round: one heartbeat to each of the two followers and their two acks.
  assert.equal(run.cluster.messagesSent - heartbeatsBefore, 4);
});

test('a read at a follower is refused with the leader hint', () => {
  const run = new MultiPaxosScript(new ScenarioRecorder('read-index', 'follower'), 3);
  run.elect(1);
  run.heartbeat(1);
  assert.deepEqual(run.cluster.readIndex(2, 99), { ok: false, error: 'not_leader', leaderHint: 1 });
  assert.equal(run.readOutcome(run.readByIndex(2, 'x')).status, 'refused');
});

// Basic Paxos core: the acceptor's rules one by one (seed 001), the proposer, the Ready contract,
// restart, timeouts, and a randomised agreement property over the deterministic harness.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvariantError } from '../../src/core/assert.js';
import { BALLOT_ZERO, makeBallot, type Ballot } from '../../src/core/ballot.js';
import { Prng } from '../../src/core/prng.js';
import { Configuration } from '../../src/core/quorum/majority.js';
import {
  ACCEPTOR_STATE_INITIAL,
  acceptorAccept,
  acceptorPrepare,
  assertAcceptorTransition,
  PaxosNode,
  type AcceptMessage,
  type AcceptorState,
  type Message,
  type PaxosNodeConfig,
  type PrepareMessage,
  type Ready,
} from '../../src/core/paxos/index.js';
import { BasicHarness, matching, runRandomTrial } from '../../src/sim/basic-harness.js';

const b = (round: number, node: number): Ballot => makeBallot(round, node);
const prepare = (ballot: Ballot): PrepareMessage => ({ type: 'prepare', from: 2, to: 1, variable: 'x', ballot });
const accept = (ballot: Ballot, value: string): AcceptMessage => ({ type: 'accept', from: 2, to: 1, variable: 'x', ballot, value });
const promisedAt = (ballot: Ballot): AcceptorState => ({ promised: ballot, accepted: null });

function nodeConfig(nodeId: number, overrides: Partial<PaxosNodeConfig> = {}): PaxosNodeConfig {
  return { nodeId, configuration: new Configuration([1, 2, 3]), random: new Prng(nodeId), ...overrides };
}

function sentOfType<T extends Message['type']>(ready: Ready, type: T): Extract<Message, { type: T }>[] {
  return ready.send.filter((message): message is Extract<Message, { type: T }> => message.type === type);
}

test('acceptor: prepare above the promise is promised, persisted, and reports nothing accepted', () => {
  const step = acceptorPrepare(promisedAt(b(1, 3)), prepare(b(2, 2)));
  assert.deepEqual(step.state, { promised: b(2, 2), accepted: null });
  assert.deepEqual(step.reply, { type: 'promise', from: 1, to: 2, variable: 'x', ballot: b(2, 2), accepted: null });
  assert.deepEqual(step.persist, { type: 'acceptor', variable: 'x', promised: b(2, 2), accepted: null });
});

test('acceptor: prepare at the promised ballot is refused (n <= promised, equality included)', () => {
  const state = promisedAt(b(2, 2));
  const step = acceptorPrepare(state, prepare(b(2, 2)));
  assert.equal(step.state, state);
  assert.equal(step.persist, null);
  assert.deepEqual(step.reply, { type: 'nack', from: 1, to: 2, variable: 'x', ballot: b(2, 2), promised: b(2, 2) });
});

test('acceptor: prepare below the promise is refused and names the higher promise', () => {
  const step = acceptorPrepare(promisedAt(b(3, 3)), prepare(b(2, 2)));
  assert.equal(step.reply.type, 'nack');
  assert.equal(step.reply.type === 'nack' && step.reply.promised, b(3, 3));
  assert.equal(step.persist, null);
});

test('acceptor: accept below the promise is refused', () => {
  const step = acceptorAccept(promisedAt(b(3, 3)), accept(b(2, 2), 'v'));
  assert.deepEqual(step.reply, { type: 'nack', from: 1, to: 2, variable: 'x', ballot: b(2, 2), promised: b(3, 3) });
  assert.equal(step.state.accepted, null);
  assert.equal(step.persist, null);
});

test('acceptor: accept at the promised ballot is accepted (n == promised)', () => {
  const step = acceptorAccept(promisedAt(b(2, 2)), accept(b(2, 2), 'v'));
  assert.equal(step.reply.type, 'accepted');
  assert.deepEqual(step.state, { promised: b(2, 2), accepted: { ballot: b(2, 2), value: 'v' } });
  assert.deepEqual(step.persist, { type: 'acceptor', variable: 'x', ...step.state });
});

test('acceptor: accept above the promise is accepted and raises the promise', () => {
  const step = acceptorAccept(promisedAt(b(1, 1)), accept(b(2, 2), 'v'));
  assert.equal(step.reply.type, 'accepted');
  assert.equal(step.state.promised, b(2, 2));
  assert.deepEqual(step.state.accepted, { ballot: b(2, 2), value: 'v' });
});

test('acceptor: a repeated accept changes nothing and needs no write', () => {
  const first = acceptorAccept(ACCEPTOR_STATE_INITIAL, accept(b(2, 2), 'v'));
  const again = acceptorAccept(first.state, accept(b(2, 2), 'v'));
  assert.equal(again.reply.type, 'accepted');
  assert.equal(again.persist, null);
  assert.equal(again.state, first.state);
});

test('acceptor: a promise reports the last accepted ballot and value', () => {
  const accepted = acceptorAccept(ACCEPTOR_STATE_INITIAL, accept(b(2, 2), '1+1=2')).state;
  const step = acceptorPrepare(accepted, prepare(b(3, 3)));
  assert.equal(step.reply.type, 'promise');
  assert.deepEqual(step.reply.type === 'promise' && step.reply.accepted, { ballot: b(2, 2), value: '1+1=2' });
  assert.deepEqual(step.state.accepted, { ballot: b(2, 2), value: '1+1=2' });
});

test('acceptor: the promise never decreases, under any sequence of requests', () => {
  const request = fc.record({
    kind: fc.constantFrom('prepare', 'accept'),
    round: fc.integer({ min: 1, max: 6 }),
    node: fc.integer({ min: 1, max: 3 }),
  });
  fc.assert(
    fc.property(fc.array(request, { maxLength: 40 }), (requests) => {
      let state = ACCEPTOR_STATE_INITIAL;
      for (const { kind, round, node } of requests) {
        const ballot = b(round, node);
        const step = kind === 'prepare' ? acceptorPrepare(state, prepare(ballot)) : acceptorAccept(state, accept(ballot, `v${ballot}`));
        assert.ok(step.state.promised >= state.promised);
        assert.ok(step.state.accepted === null || step.state.accepted.ballot <= step.state.promised);
        state = step.state;
      }
    }),
  );
  assert.throws(() => assertAcceptorTransition(promisedAt(b(3, 1)), promisedAt(b(2, 1))), InvariantError);
});

test('node: a promise leaves in the same Ready as its persist record (persist before send)', () => {
  const node = new PaxosNode(nodeConfig(1));
  node.step({ type: 'prepare', from: 2, to: 1, variable: 'x', ballot: b(1, 2) });
  const ready = node.ready();
  assert.deepEqual(ready.persist, [{ type: 'acceptor', variable: 'x', promised: b(1, 2), accepted: null }]);
  assert.equal(sentOfType(ready, 'promise').length, 1);
  assert.equal(node.hasReady(), false);
  const proposing = new PaxosNode(nodeConfig(2));
  proposing.propose('x', 'v');
  const proposal = proposing.ready();
  const prepares = sentOfType(proposal, 'prepare');
  assert.deepEqual(proposal.persist, [{ type: 'proposer', ballotUsedMax: prepares[0]?.ballot }]);
  assert.deepEqual(prepares.map((message) => message.to), [1, 2, 3], 'its own acceptor is reached by a message too');
});

test('harness: a node that sends before persisting is caught', () => {
  class ForgetfulNode extends PaxosNode {
    override ready(): Ready {
      return { ...super.ready(), persist: [] };
    }
  }
  const harness = new BasicHarness({ members: [1, 2, 3], createNode: (config) => new ForgetfulNode(config) });
  assert.throws(() => harness.submit(1, 'x', 'v'), /ballot durable before use/);
});

test('proposer: adopts the highest-ballot value reported in phase 1, not its own', () => {
  const node = PaxosNode.restore(nodeConfig(1), [{ type: 'proposer', ballotUsedMax: b(9, 1) }]);
  node.propose('x', 'mine');
  const ballot = sentOfType(node.ready(), 'prepare')[0]?.ballot;
  assert.equal(ballot, b(10, 1));
  node.step({ type: 'promise', from: 2, to: 1, variable: 'x', ballot: b(10, 1), accepted: { ballot: b(5, 3), value: 'higher' } });
  node.step({ type: 'promise', from: 3, to: 1, variable: 'x', ballot: b(10, 1), accepted: { ballot: b(3, 2), value: 'lower' } });
  const accepts = sentOfType(node.ready(), 'accept');
  assert.deepEqual(accepts.map((message) => [message.to, message.ballot, message.value]), [
    [1, b(10, 1), 'higher'],
    [2, b(10, 1), 'higher'],
    [3, b(10, 1), 'higher'],
  ]);
  node.step({ type: 'accepted', from: 2, to: 1, variable: 'x', ballot: b(10, 1) });
  node.step({ type: 'accepted', from: 1, to: 1, variable: 'x', ballot: b(9, 1) }); // Stale: ignored.
  assert.deepEqual(node.ready().results, []);
  node.step({ type: 'accepted', from: 3, to: 1, variable: 'x', ballot: b(10, 1) });
  assert.deepEqual(node.ready().results, [{ requestId: 1, variable: 'x', result: { ok: true, chosen: 'higher' } }]);
  assert.equal(node.chosenValue('x'), 'higher');
});

test('proposer: after a refusal it backs off, then jumps past the promised ballot', () => {
  const node = new PaxosNode(nodeConfig(1, { backoffTicksMin: 3, backoffTicksMax: 6 }));
  node.propose('x', 'v');
  const first = sentOfType(node.ready(), 'prepare')[0]?.ballot ?? BALLOT_ZERO;
  node.step({ type: 'nack', from: 2, to: 1, variable: 'x', ballot: first, promised: b(7, 3) });
  node.tick();
  node.tick();
  assert.equal(sentOfType(node.ready(), 'prepare').length, 0, 'no retry before backoffTicksMin');
  let retry: Ballot | undefined;
  for (let tick = 0; tick < 6 && retry === undefined; tick += 1) {
    node.tick();
    retry = sentOfType(node.ready(), 'prepare')[0]?.ballot;
  }
  assert.equal(retry, b(8, 1));
});

test('restore: a restarted node never reuses a ballot', () => {
  const records: Ready['persist'][number][] = [];
  const node = new PaxosNode(nodeConfig(1));
  node.propose('x', 'v');
  node.propose('y', 'w');
  const ready = node.ready();
  records.push(...ready.persist);
  const used = sentOfType(ready, 'prepare').map((message) => message.ballot);
  const restarted = PaxosNode.restore(nodeConfig(1), records);
  restarted.propose('x', 'v');
  const next = sentOfType(restarted.ready(), 'prepare')[0]?.ballot ?? BALLOT_ZERO;
  assert.ok(used.every((ballot) => next > ballot), `${next} is above ${used.join(', ')}`);
});

test('restore: the acceptor keeps its promise and its accepted value', () => {
  const node = new PaxosNode(nodeConfig(1));
  node.step({ type: 'accept', from: 2, to: 1, variable: 'x', ballot: b(2, 2), value: 'kept' });
  node.step({ type: 'prepare', from: 3, to: 1, variable: 'x', ballot: b(4, 3) });
  const restarted = PaxosNode.restore(nodeConfig(1), node.ready().persist);
  assert.deepEqual(restarted.acceptorState('x'), { promised: b(4, 3), accepted: { ballot: b(2, 2), value: 'kept' } });
  restarted.step({ type: 'prepare', from: 2, to: 1, variable: 'x', ballot: b(4, 3) });
  assert.equal(restarted.ready().send[0]?.type, 'nack');
});

test('proposer: retransmits to silent acceptors, and times out without a majority', () => {
  const node = new PaxosNode(nodeConfig(1, { retransmitTicks: 5, proposeTicksMax: 23 }));
  const requestId = node.propose('x', 'v');
  node.ready();
  for (let tick = 1; tick < 23; tick += 1) {
    node.tick();
    const ready = node.ready();
    const resent = sentOfType(ready, 'prepare').map((message) => message.to);
    assert.deepEqual(resent, tick % 5 === 0 ? [1, 2, 3] : [], `tick ${tick}`);
    assert.deepEqual(ready.results, []);
  }
  node.tick();
  assert.deepEqual(node.ready().results, [{ requestId, variable: 'x', result: { ok: false, error: 'timeout' } }]);
  assert.equal(node.isProposing('x'), false);
});

test('harness: lost accepts are retransmitted and the proposal still succeeds', () => {
  const harness = new BasicHarness({ members: [1, 2, 3], node: { retransmitTicks: 3 } });
  const request = harness.submit(1, 'x', 'v');
  harness.deliverWhile(matching({ type: ['prepare', 'promise'] }));
  assert.equal(harness.drop(matching({ type: 'accept', to: [2, 3] })), 2);
  harness.runUntil(() => request.result !== null, 20);
  assert.deepEqual(request.result, { ok: true, chosen: 'v' });
});

test('node: a learned value answers at once; a second propose joins the running one', () => {
  const harness = new BasicHarness({ members: [1, 2, 3] });
  const first = harness.submit(1, 'x', 'a');
  const joined = harness.submit(1, 'x', 'b');
  harness.deliverAll();
  assert.deepEqual(first.result, { ok: true, chosen: 'a' });
  assert.deepEqual(joined.result, { ok: true, chosen: 'a' });
  const late = harness.submit(1, 'x', 'c');
  assert.deepEqual(late.result, { ok: true, chosen: 'a' });
  assert.equal(harness.pending().length, 0, 'the learner sends nothing');
});

test('property: under loss, duplication, reordering and restarts, never two chosen values', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 0x7fffffff }),
      fc.integer({ min: 2, max: 5 }),
      fc.integer({ min: 0, max: 30 }),
      fc.integer({ min: 0, max: 30 }),
      fc.integer({ min: 1, max: 12 }),
      fc.boolean(),
      fc.boolean(),
      (seed, proposerCount, lossPercent, duplicatePercent, delayTicksMax, backoff, restarts) => {
        const report = runRandomTrial({
          seed,
          proposerCount,
          network: { delayTicksMin: 1, delayTicksMax, lossProbability: lossPercent / 100, duplicateProbability: duplicatePercent / 100 },
          node: { backoff, retransmitTicks: 2 * delayTicksMax + 2, proposeTicksMax: 400 },
          restartProbability: restarts ? 0.02 : 0,
          ticksMax: 600,
        });
        assert.deepEqual(report.violations, [], `seed ${seed}`);
        const okValues = new Set(report.outcomes.flatMap((outcome) => (outcome !== null && outcome.ok ? [outcome.chosen] : [])));
        assert.ok(okValues.size <= 1, `seed ${seed}: proposers returned ${[...okValues].join(', ')}`);
      },
    ),
    { numRuns: 300 },
  );
});

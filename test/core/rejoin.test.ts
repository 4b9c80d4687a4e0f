/**
 * The rejoin mode of the replica (a member whose durable state was lost), message by message:
 * it never votes, asks every peer for its promise, fences them above the highest, and votes again
 * only after applying a StartWorking above that bound. Peers answer with their promise before the
 * fence and raise it; a leader below the fence steps down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Ballot, makeBallot } from '../../src/core/ballot.js';
import { Prng } from '../../src/core/prng.js';
import { Configuration, StaticConfiguration } from '../../src/core/quorum/majority.js';
import { DEFAULT_REPLICA_OPTIONS, Replica, type ReplicaOptions } from '../../src/core/multipaxos/replica.js';
import type { Message, RejoinAckMessage, RejoinMessage } from '../../src/core/multipaxos/types.js';

function options(nodeId: number, overrides: Partial<ReplicaOptions> = {}): ReplicaOptions {
  return {
    ...DEFAULT_REPLICA_OPTIONS,
    nodeId,
    configuration: new StaticConfiguration(new Configuration([1, 2, 3])),
    random: new Prng(nodeId),
    ...overrides,
  };
}

const B = (round: number, node: number): Ballot => makeBallot(round, node);

function rejoinsOf(messages: readonly Message[]): RejoinMessage[] {
  return messages.filter((message): message is RejoinMessage => message.type === 'rejoin');
}

function ack(to: RejoinMessage, promised: Ballot): RejoinAckMessage {
  return { type: 'rejoin-ack', from: to.to, to: to.from, nonce: to.nonce, promised };
}

test('rejoin: the node asks every peer, and never votes, campaigns or takes proposals meanwhile', () => {
  const node = new Replica(options(3, { rejoin: true }));
  const first = rejoinsOf(node.ready().send);
  assert.deepEqual(first.map((message) => [message.to, message.fence]), [[1, 0], [2, 0]]);
  node.step({ type: 'prepare', from: 1, to: 3, ballot: B(5, 1), firstUnchosen: 1 });
  node.step({ type: 'accept', from: 1, to: 3, ballot: B(5, 1), entries: [{ slot: 1, value: { type: 'noop' } }], commitIndex: 1 });
  node.step({ type: 'heartbeat', from: 1, to: 3, ballot: B(5, 1), commitIndex: 1, readRound: 1 });
  const quiet = node.ready();
  assert.deepEqual(quiet.persist, [], 'no promise, no acceptance');
  assert.deepEqual(quiet.send, [], 'no promise, accepted, nack or heartbeat-ack');
  for (let tick = 0; tick < DEFAULT_REPLICA_OPTIONS.electionTicksMax * 5; tick += 1) node.tick();
  const later = node.ready();
  assert.equal(later.send.filter((message) => message.type === 'prepare').length, 0, 'never campaigns');
  assert.ok(rejoinsOf(later.send).length >= 2, 'asks again until every peer answers');
  node.campaign();
  assert.equal(node.status().role, 'follower');
  assert.deepEqual(node.propose({ clientId: 'c', seq: 1, payload: new Uint8Array(1) }), { ok: false, error: 'not_leader', leaderHint: 1 });
  assert.equal(node.status().rejoining, true);
});

test('rejoin: a peer answers with its promise before the fence, raises it durably, and a leader below the fence steps down', () => {
  const peer = new Replica(options(1));
  peer.campaign();
  const ballot = (peer.ready().send.find((message) => message.type === 'prepare') as Extract<Message, { type: 'prepare' }>).ballot;
  peer.persisted();
  peer.step({ type: 'promise', from: 2, to: 1, ballot, entries: [], maxSlot: 0 });
  peer.ready();
  assert.equal(peer.status().role, 'leader');
  peer.step({ type: 'rejoin', from: 3, to: 1, nonce: 7, fence: 0 as Ballot });
  const asked = peer.ready();
  assert.deepEqual(asked.persist, []);
  assert.deepEqual(asked.send, [{ type: 'rejoin-ack', from: 1, to: 3, nonce: 7, promised: ballot }]);
  assert.equal(peer.status().role, 'leader', 'a question alone changes nothing');
  const fence = B(9, 3);
  peer.step({ type: 'rejoin', from: 3, to: 1, nonce: 8, fence });
  const fenced = peer.ready();
  assert.deepEqual(fenced.persist, [{ type: 'promise', ballot: fence }], 'the raised promise is persisted before the answer leaves');
  assert.ok(fenced.send.some((message) => message.type === 'rejoin-ack' && message.promised === ballot && message.nonce === 8));
  assert.equal(peer.status().role, 'follower', 'a leader below the fence steps down');
  assert.equal(peer.status().promised, fence);
});

test('rejoin: a member that is rejoining itself does not answer another', () => {
  const node = new Replica(options(2, { rejoin: true }));
  node.ready();
  node.step({ type: 'rejoin', from: 3, to: 2, nonce: 1, fence: B(4, 3) });
  const ready = node.ready();
  assert.deepEqual(ready.send, []);
  assert.deepEqual(ready.persist, []);
});

test('rejoin: finishes only after applying a StartWorking above every peer\'s promise, then votes again', () => {
  const node = new Replica(options(3, { rejoin: true }));
  const round1 = rejoinsOf(node.ready().send);
  node.step({ ...ack(round1[0] as RejoinMessage, B(4, 1)), nonce: 12345 }); // a stale round: ignored
  node.step(ack(round1[0] as RejoinMessage, B(4, 1)));
  assert.equal(rejoinsOf(node.ready().send).length, 0, 'waits for every peer');
  node.step(ack(round1[1] as RejoinMessage, B(6, 2)));
  const round2 = rejoinsOf(node.ready().send);
  assert.equal(round2.length, 2);
  const fence = (round2[0] as RejoinMessage).fence;
  assert.ok(fence > B(6, 2), 'the fence is above the highest promise');
  assert.equal(fence % 1024, 3, 'the fence is a ballot of the rejoining node');
  for (const message of round2) node.step(ack(message, B(6, 2)));
  // A leader at the old ballot 6.2 (not above the bound) commits: learning it does not finish the rejoin.
  node.step({ type: 'heartbeat', from: 2, to: 3, ballot: B(6, 2), commitIndex: 2, readRound: 0 });
  assert.ok(node.ready().send.some((message) => message.type === 'learn'));
  node.step({ type: 'learned', from: 2, to: 3, entries: [{ slot: 1, ballot: B(6, 2), value: { type: 'start-working', epoch: B(6, 2) } }] });
  node.ready();
  assert.equal(node.status().rejoining, true, 'StartWorking 6.2 is not above the bound 6.2');
  // A leader elected above the fence commits its StartWorking at slot 3; the rejoining node learns 2..3.
  const epoch = B(10, 1);
  node.step({ type: 'heartbeat', from: 1, to: 3, ballot: epoch, commitIndex: 4, readRound: 0 });
  node.ready();
  node.step({
    type: 'learned', from: 1, to: 3,
    entries: [
      { slot: 2, ballot: B(6, 2), value: { type: 'noop' } },
      { slot: 3, ballot: epoch, value: { type: 'start-working', epoch } },
    ],
  });
  const finished = node.ready();
  assert.equal(node.status().rejoining, false);
  assert.deepEqual(finished.persist.filter((record) => record.type === 'promise'), [{ type: 'promise', ballot: epoch }]);
  assert.deepEqual(finished.apply.map((entry) => entry.slot), [2, 3]);
  // Now a normal acceptor: it accepts at the leader's ballot and refuses below its promise.
  node.step({ type: 'accept', from: 1, to: 3, ballot: epoch, entries: [{ slot: 4, value: { type: 'noop' } }], commitIndex: 4 });
  assert.ok(node.ready().send.some((message) => message.type === 'accepted'));
  node.step({ type: 'prepare', from: 2, to: 3, ballot: B(7, 2), firstUnchosen: 4 });
  assert.ok(node.ready().send.some((message) => message.type === 'nack'));
});

test('rejoin: a StartWorking above the bound that was applied before the answers came finishes at once', () => {
  const node = new Replica(options(3, { rejoin: true }));
  const round1 = rejoinsOf(node.ready().send);
  const epoch = B(8, 1);
  node.step({ type: 'heartbeat', from: 1, to: 3, ballot: epoch, commitIndex: 2, readRound: 0 });
  node.ready();
  node.step({ type: 'learned', from: 1, to: 3, entries: [{ slot: 1, ballot: epoch, value: { type: 'start-working', epoch } }] });
  node.ready();
  assert.equal(node.status().rejoining, true, 'no bound yet');
  for (const message of round1) node.step(ack(message, B(7, 2)));
  const ready = node.ready();
  assert.equal(node.status().rejoining, false);
  assert.deepEqual(ready.persist, [{ type: 'promise', ballot: epoch }]);
  assert.equal(rejoinsOf(ready.send).length, 0, 'no fence needed');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Ballot, makeBallot } from '../../src/core/ballot.js';
import type { Command } from '../../src/core/command.js';
import { Prng } from '../../src/core/prng.js';
import { Configuration, StaticConfiguration } from '../../src/core/quorum/majority.js';
import { DEFAULT_REPLICA_OPTIONS, Replica, entryBytes, type ReplicaOptions } from '../../src/core/multipaxos/replica.js';
import type { EntryValue, Message, PersistentState, Ready } from '../../src/core/multipaxos/types.js';
import { MemoryLogStore } from '../../src/storage/memory.js';

function options(nodeId: number, overrides: Partial<ReplicaOptions> = {}): ReplicaOptions {
  return {
    ...DEFAULT_REPLICA_OPTIONS,
    nodeId,
    configuration: new StaticConfiguration(new Configuration([1, 2, 3])),
    random: new Prng(nodeId),
    ...overrides,
  };
}

function command(seq: number, bytes = 10): Command {
  return { clientId: 'c', seq, payload: new Uint8Array(bytes) };
}

const B = (round: number, node: number): Ballot => makeBallot(round, node);

/** Makes replica 1 the serving leader of a 3-node cluster by answering its messages by hand. */
function electedLeader(overrides: Partial<ReplicaOptions> = {}): Replica {
  const leader = new Replica(options(1, overrides));
  leader.campaign();
  const prepares = leader.ready().send.filter((message) => message.type === 'prepare');
  const ballot = (prepares[0] as Extract<Message, { type: 'prepare' }>).ballot;
  leader.step({ type: 'promise', from: 2, to: 1, ballot, entries: [], maxSlot: 0 });
  const accepts = leader.ready().sendNow.filter((message) => message.type === 'accept');
  assert.ok(accepts.length > 0, 'the new leader proposes its StartWorking entry');
  leader.step({ type: 'accepted', from: 2, to: 1, ballot, slots: [1], firstUnchosen: 1 });
  assert.ok(!leader.isServing(), 'its own acceptance counts only once durable');
  leader.persisted();
  leader.ready();
  leader.persisted();
  assert.ok(leader.isServing());
  return leader;
}

test('acceptor refuses a prepare at or below its promise, and an accept below it', () => {
  const acceptor = new Replica(options(2));
  acceptor.step({ type: 'prepare', from: 3, to: 2, ballot: B(2, 3), firstUnchosen: 1 });
  const granted = acceptor.ready();
  assert.deepEqual(granted.persist, [{ type: 'promise', ballot: B(2, 3) }]);
  assert.equal(granted.send[0]?.type, 'promise');
  for (const ballot of [B(2, 3), B(1, 1), B(2, 1)]) {
    acceptor.step({ type: 'prepare', from: 1, to: 2, ballot, firstUnchosen: 1 });
    const refused = acceptor.ready();
    assert.equal(refused.persist.length, 0);
    assert.deepEqual(refused.send, [{ type: 'nack', from: 2, to: 1, ballot, promised: B(2, 3) }]);
  }
  const value: EntryValue = { type: 'noop' };
  acceptor.step({ type: 'accept', from: 1, to: 2, ballot: B(2, 1), entries: [{ slot: 1, value }], commitIndex: 1 });
  assert.equal(acceptor.ready().send[0]?.type, 'nack');
  assert.equal(acceptor.entry(1), undefined);
  // Equal to the promise: accepted (the promise holder's own phase 2).
  acceptor.step({ type: 'accept', from: 3, to: 2, ballot: B(2, 3), entries: [{ slot: 1, value }], commitIndex: 1 });
  const accepted = acceptor.ready();
  assert.deepEqual(accepted.persist, [{ type: 'accept', slot: 1, ballot: B(2, 3), value }]);
  assert.deepEqual(accepted.send, [{ type: 'accepted', from: 2, to: 3, ballot: B(2, 3), slots: [1], firstUnchosen: 1 }]);
});

test('a promise reports the accepted entries from the candidate\'s firstUnchosen and the max slot', () => {
  const state: PersistentState = {
    promised: B(1, 3),
    entries: [
      { slot: 1, ballot: B(1, 3), value: { type: 'noop' }, chosen: true },
      { slot: 2, ballot: B(1, 3), value: { type: 'noop' }, chosen: false },
      { slot: 5, ballot: B(1, 3), value: { type: 'start-working', epoch: B(1, 3) }, chosen: false },
    ],
  };
  const acceptor = new Replica(options(2), state);
  acceptor.ready(); // replays slot 1 to the state machine
  acceptor.step({ type: 'prepare', from: 1, to: 2, ballot: B(2, 1), firstUnchosen: 2 });
  const promise = acceptor.ready().send[0];
  assert.ok(promise !== undefined && promise.type === 'promise');
  assert.deepEqual(promise.entries.map((entry) => entry.slot), [2, 5]);
  assert.equal(promise.maxSlot, 5);
});

test('a campaign persists the candidate\'s own promise in the same Ready as its prepares', () => {
  const candidate = new Replica(options(1), { promised: B(4, 2), entries: [] });
  candidate.campaign();
  const ready = candidate.ready();
  assert.deepEqual(ready.persist, [{ type: 'promise', ballot: B(5, 1) }]);
  assert.deepEqual(ready.send.map((message) => [message.type, message.to]), [['prepare', 2], ['prepare', 3]]);
});

test('a new leader re-proposes the highest-ballot value, fills gaps with no-ops, then StartWorking', () => {
  const low: EntryValue = { type: 'commands', epoch: B(1, 2), commands: [command(1)] };
  const high: EntryValue = { type: 'commands', epoch: B(1, 3), commands: [command(2)] };
  // The candidate's own acceptor holds slot 1 at a higher ballot than peer 2 does.
  const leader = new Replica(options(1), { promised: B(1, 3), entries: [{ slot: 1, ballot: B(1, 3), value: high, chosen: false }] });
  leader.campaign();
  const ballot = (leader.ready().send[0] as Extract<Message, { type: 'prepare' }>).ballot;
  leader.step({
    type: 'promise', from: 2, to: 1, ballot, maxSlot: 3,
    entries: [{ slot: 1, ballot: B(1, 2), value: low, chosen: false }, { slot: 3, ballot: B(1, 2), value: low, chosen: false }],
  });
  assert.equal(leader.status().role, 'leader', 'self and node 2 are a majority');
  const accept = leader.ready().sendNow.find((message) => message.type === 'accept');
  assert.ok(accept !== undefined && accept.type === 'accept');
  assert.deepEqual(accept.entries, [
    { slot: 1, value: high },
    { slot: 2, value: { type: 'noop' } },
    { slot: 3, value: low },
    { slot: 4, value: { type: 'start-working', epoch: ballot } },
  ]);
});

test('only a serving leader takes proposals; others name the leader they know', () => {
  const follower = new Replica(options(2));
  assert.deepEqual(follower.propose(command(1)), { ok: false, error: 'not_leader', leaderHint: null });
  follower.step({ type: 'heartbeat', from: 3, to: 2, ballot: B(1, 3), commitIndex: 1 , readRound: 0});
  assert.deepEqual(follower.propose(command(1)), { ok: false, error: 'not_leader', leaderHint: 3 });
});

test('the leader batches queued commands per slot and bounds slots in flight', () => {
  const leader = electedLeader({ batchCountMax: 3, pipelineDepthMax: 2 });
  for (let seq = 1; seq <= 10; seq += 1) assert.deepEqual(leader.propose(command(seq)), { ok: true });
  const ready: Ready = leader.ready();
  const accepts = ready.sendNow.filter((message) => message.type === 'accept' && message.to === 2);
  const slots = accepts.flatMap((message) => (message.type === 'accept' ? message.entries : []));
  assert.equal(slots.length, 2, 'two slots in flight at most');
  for (const entry of slots) {
    assert.equal(entry.value.type, 'commands');
    if (entry.value.type === 'commands') assert.equal(entry.value.commands.length, 3);
  }
  // The leader's own acceptances are persisted in the same Ready; the accept requests leave at
  // once (sendNow) and the leader counts itself only after `persisted()`.
  assert.equal(ready.persist.filter((record) => record.type === 'accept').length, 2);
  leader.step({ type: 'accepted', from: 2, to: 1, ballot: leader.status().promised, slots: [2, 3], firstUnchosen: 2 });
  assert.equal(leader.status().firstUnchosen, 2, 'one follower alone is not a majority');
  leader.persisted();
  assert.equal(leader.status().firstUnchosen, 4, 'with the leader\'s durable acceptance both slots are chosen');
});

test('a full proposal queue answers overloaded and an oversized command too_large', () => {
  const leader = electedLeader({ proposalQueueMax: 2, batchBytesMax: 1024 });
  assert.equal(leader.propose(command(1)).ok, true);
  assert.equal(leader.propose(command(2)).ok, true);
  assert.deepEqual(leader.propose(command(3)), { ok: false, error: 'overloaded', leaderHint: 1 });
  assert.deepEqual(leader.propose(command(4, 4096)), { ok: false, error: 'too_large', leaderHint: 1 });
});

test('a follower confirms a slot only if it accepted it at the notifying leader\'s ballot', () => {
  const follower = new Replica(options(2));
  const value: EntryValue = { type: 'noop' };
  follower.step({ type: 'accept', from: 1, to: 2, ballot: B(1, 1), entries: [{ slot: 1, value }], commitIndex: 1 });
  follower.ready();
  follower.step({ type: 'heartbeat', from: 3, to: 2, ballot: B(2, 3), commitIndex: 2 , readRound: 0});
  const ready = follower.ready();
  assert.equal(ready.apply.length, 0, 'an entry of another ballot is not assumed chosen');
  assert.ok(ready.send.some((message) => message.type === 'learn' && message.slots.includes(1)));
  follower.step({ type: 'learned', from: 3, to: 2, entries: [{ slot: 1, ballot: B(2, 3), value }] });
  assert.deepEqual(follower.ready().apply, [{ slot: 1, value, skipped: false }]);
});

test('replay skips commands of an epoch older than a StartWorking before them', () => {
  const old: EntryValue = { type: 'commands', epoch: B(1, 1), commands: [command(1)] };
  const fresh: EntryValue = { type: 'commands', epoch: B(2, 2), commands: [command(2)] };
  const replica = new Replica(options(3), {
    promised: B(2, 2),
    entries: [
      { slot: 1, ballot: B(1, 1), value: old, chosen: true },
      { slot: 2, ballot: B(2, 2), value: { type: 'start-working', epoch: B(2, 2) }, chosen: true },
      { slot: 3, ballot: B(3, 1), value: old, chosen: true },
      { slot: 4, ballot: B(2, 2), value: fresh, chosen: true },
    ],
  });
  assert.deepEqual(replica.ready().apply.map((entry) => [entry.slot, entry.skipped]), [[1, false], [2, false], [3, true], [4, false]]);
});

test('messages from non-members are ignored', () => {
  const replica = new Replica(options(2));
  replica.step({ type: 'prepare', from: 9, to: 2, ballot: B(5, 9), firstUnchosen: 1 });
  const ready = replica.ready();
  assert.equal(ready.send.length + ready.persist.length, 0);
});

test('a leader whose followers form a quorum writes its acceptances lazily unless configured to sync them at once', () => {
  for (const lazy of [false, true]) {
    const leader = electedLeader(lazy ? {} : { eagerLeaderAcceptances: true });
    const ballot = leader.status().promised;
    // Node 2 answered during the election; node 3 now too: the followers alone are a quorum.
    leader.step({ type: 'accepted', from: 3, to: 1, ballot, slots: [1], firstUnchosen: 2 });
    leader.ready();
    assert.equal(leader.propose(command(1)).ok, true);
    const ready = leader.ready();
    assert.equal(ready.persist.filter((record) => record.type === 'accept').length, 1, `lazy=${lazy}: the leader accepts its proposal`);
    assert.equal(ready.sendNow.filter((message) => message.type === 'accept').length, 2, `lazy=${lazy}: the accept requests leave at once`);
    assert.equal(ready.durability, lazy ? 'lazy' : 'sync', `lazy=${lazy}`);
    // Either way the followers alone can choose the slot, and the leader's acceptance counts once durable.
    leader.step({ type: 'accepted', from: 2, to: 1, ballot, slots: [2], firstUnchosen: 2 });
    leader.step({ type: 'accepted', from: 3, to: 1, ballot, slots: [2], firstUnchosen: 2 });
    assert.equal(leader.status().firstUnchosen, 3, `lazy=${lazy}: chosen by the followers`);
  }
});

test('applied entries leave memory only once durable, keeping logRetainSlots; learn and prepare read them back', () => {
  const disk = new MemoryLogStore();
  let reads = 0;
  const follower = new Replica(options(2, { logRetainSlots: 2, readDurableEntry: (slot) => { reads += 1; return disk.entry(slot); } }));
  const ballot = B(1, 1);
  const value = (slot: number): EntryValue => ({ type: 'commands', epoch: ballot, commands: [command(slot)] });
  const unpersisted: Ready[] = [];
  // Slots 1..10 accepted; each accept's commit index says every earlier slot is chosen; the last chooses 10.
  for (let slot = 1; slot <= 11; slot += 1) {
    const entries = slot <= 10 ? [{ slot, value: value(slot) }] : [];
    follower.step({ type: 'accept', from: 1, to: 2, ballot, entries, commitIndex: slot });
    const ready = follower.ready();
    for (const record of ready.persist) disk.apply(record);
    unpersisted.push(ready);
  }
  assert.equal(follower.status().appliedThrough, 10);
  assert.equal(follower.status().logInMemoryFrom, 1, 'nothing leaves memory before the driver says it is durable');
  follower.persisted(unpersisted[4]);
  assert.equal(follower.status().logInMemoryFrom, 3, 'the fifth Ready applied through slot 4: durable, of which the last 2 stay');
  follower.persisted(unpersisted[unpersisted.length - 1]);
  assert.equal(follower.status().logInMemoryFrom, 9);
  assert.equal(reads, 0);
  // A lagging peer's learn, and a prepare from far behind, are answered from the disk.
  follower.step({ type: 'learn', from: 3, to: 2, slots: [1, 2, 9] });
  const learned = follower.ready().send[0];
  assert.ok(learned !== undefined && learned.type === 'learned');
  assert.deepEqual(learned.entries, [1, 2, 9].map((slot) => ({ slot, ballot, value: value(slot) })));
  // (From the leader itself: a follower that just heard from its leader refuses other candidates.)
  follower.step({ type: 'prepare', from: 1, to: 2, ballot: B(2, 1), firstUnchosen: 1 });
  const promise = follower.ready().send[0];
  assert.ok(promise !== undefined && promise.type === 'promise');
  assert.deepEqual(promise.entries.map((entry) => [entry.slot, entry.chosen]), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((slot) => [slot, true]));
  assert.equal(reads, 2 + 8, 'two for the learn, eight for the promise: slots 9 and 10 were still in memory');
  // A re-proposal of a compacted slot changes nothing (it is chosen).
  follower.step({ type: 'accept', from: 1, to: 2, ballot: B(2, 1), entries: [{ slot: 3, value: value(3) }], commitIndex: 1 });
  assert.equal(follower.ready().persist.filter((record) => record.type === 'accept').length, 0);
});

test('applied entries in memory also stay within logRetainBytes, whatever logRetainSlots allows', () => {
  const disk = new MemoryLogStore();
  const ballot = B(1, 1);
  const value = (slot: number): EntryValue => ({ type: 'commands', epoch: ballot, commands: [command(slot)] });
  const sizes = [1, 2, 3, 4, 5, 6, 7, 8].map((slot) => entryBytes(value(slot)));
  assert.ok(sizes.every((size) => size === sizes[0]) && (sizes[0] ?? 0) > 64, 'same-sized entries, payloads counted');
  // Room for two and a half entries: two stay.
  const budget = Math.floor((sizes[0] ?? 0) * 2.5);
  const follower = new Replica(options(2, { logRetainSlots: 100, logRetainBytes: budget, readDurableEntry: (slot) => disk.entry(slot) }));
  for (let slot = 1; slot <= 9; slot += 1) {
    const entries = slot <= 8 ? [{ slot, value: value(slot) }] : [];
    follower.step({ type: 'accept', from: 1, to: 2, ballot, entries, commitIndex: slot });
    for (const record of follower.ready().persist) disk.apply(record);
    follower.persisted();
    const applied = follower.status().appliedThrough;
    assert.equal(follower.status().logInMemoryFrom, Math.max(1, applied - 1), `after slot ${slot}: the last two applied entries stay`);
  }
  assert.equal(follower.status().appliedThrough, 8);
  // What left memory for its bytes is read back from the disk, whole.
  follower.step({ type: 'learn', from: 3, to: 2, slots: [1, 5, 8] });
  const learned = follower.ready().send[0];
  assert.ok(learned !== undefined && learned.type === 'learned');
  assert.deepEqual(learned.entries, [1, 5, 8].map((slot) => ({ slot, ballot, value: value(slot) })));
});

test('without readDurableEntry the whole log stays in memory', () => {
  const follower = new Replica(options(2, { logRetainSlots: 0 }));
  const ballot = B(1, 1);
  for (let slot = 1; slot <= 6; slot += 1) {
    follower.step({ type: 'accept', from: 1, to: 2, ballot, entries: slot <= 5 ? [{ slot, value: { type: 'noop' } }] : [], commitIndex: slot });
    follower.ready();
  }
  follower.persisted();
  assert.equal(follower.status().appliedThrough, 5);
  assert.equal(follower.status().logInMemoryFrom, 1);
  assert.equal(follower.entry(1)?.chosen, true);
});

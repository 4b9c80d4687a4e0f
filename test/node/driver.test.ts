import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BALLOT_ZERO, type NodeId } from '../../src/core/ballot.js';
import { Prng } from '../../src/core/prng.js';
import { Configuration, StaticConfiguration } from '../../src/core/quorum/majority.js';
import { DEFAULT_REPLICA_OPTIONS, Replica } from '../../src/core/multipaxos/replica.js';
import type { CommittedEntry, Message, PersistRecord, Ready } from '../../src/core/multipaxos/types.js';
import { KvStateMachine, encodeOperation } from '../../src/kv/index.js';
import { NodeDriver } from '../../src/node/driver.js';
import { MemoryStorage, type LogStorage } from '../../src/storage/adapter.js';
import { MemoryLogStore } from '../../src/storage/memory.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/transport.js';

const IDS: NodeId[] = [1, 2, 3];

interface TestNode {
  driver: NodeDriver;
  machine: KvStateMachine;
  readonly disk: MemoryLogStore;
  /** The slot each applied command (by seq) was chosen in. */
  readonly slotOfSeq: Map<number, number>;
}

function startNode(id: NodeId, network: MemoryNetwork, disk: MemoryLogStore): TestNode {
  const slotOfSeq = new Map<number, number>();
  const replica = new Replica(
    {
      ...DEFAULT_REPLICA_OPTIONS,
      nodeId: id,
      configuration: new StaticConfiguration(new Configuration(IDS)),
      random: new Prng(id * 7919),
    },
    disk.state(),
  );
  const machine = new KvStateMachine();
  const driver = new NodeDriver({
    replica,
    storage: new MemoryStorage(disk),
    transport: network.createTransport(id),
    tickMs: 5,
    onApply: (entry) => {
      if (entry.value.type !== 'commands' || entry.skipped) return;
      for (const command of entry.value.commands) {
        machine.apply(command, entry.slot);
        slotOfSeq.set(command.seq, entry.slot);
      }
    },
  });
  return { driver, machine, disk, slotOfSeq };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function leaderOf(nodes: Map<NodeId, TestNode>): TestNode | undefined {
  return [...nodes.values()].find((node) => node.driver.status().serving);
}

/** Starts a node per id into `nodes` (so the caller's finally stops them all) and waits for a leader. */
async function startCluster(nodes: Map<NodeId, TestNode>, network: MemoryNetwork): Promise<TestNode> {
  for (const id of IDS) nodes.set(id, startNode(id, network, new MemoryLogStore()));
  for (const node of nodes.values()) await node.driver.start();
  await until(() => leaderOf(nodes) !== undefined, 'a serving leader');
  return leaderOf(nodes) as TestNode;
}

test('three drivers on memory storage and transport elect a leader, replicate, and a restarted node catches up', async () => {
  const network = new MemoryNetwork({ drop: () => Math.random() < 0.05 });
  const nodes = new Map<NodeId, TestNode>();
  try {
    const leader = await startCluster(nodes, network);
    for (let seq = 1; seq <= 300; seq += 1) {
      const payload = encodeOperation({ type: 'put', key: `k${seq % 17}`, value: `v${seq}` });
      assert.deepEqual(leader.driver.propose({ clientId: 'test', seq, payload }), { ok: true });
    }
    await until(() => [...nodes.values()].every((node) => node.machine.revision === 300), 'every replica applying 300 puts');
    const stats = leader.driver.stats();
    assert.ok(stats.appends < 300, `group commit: ${stats.appends} appends for 300 commands`);

    // Restart a follower from its durable state: it replays, then catches up on what it missed.
    const follower = [...nodes.values()].find((node) => node !== leader) as TestNode;
    const followerId = [...nodes.entries()].find(([, node]) => node === follower)?.[0] as NodeId;
    await follower.driver.stop();
    network.remove(followerId);
    for (let seq = 301; seq <= 400; seq += 1) {
      const payload = encodeOperation({ type: 'put', key: `k${seq % 17}`, value: `v${seq}` });
      leader.driver.propose({ clientId: 'test', seq, payload });
    }
    const restarted = startNode(followerId, network, follower.disk);
    nodes.set(followerId, restarted);
    await restarted.driver.start();
    await until(() => [...nodes.values()].every((node) => node.machine.revision === 400), 'the restarted node catching up');
    const digests = new Set([...nodes.values()].map((node) => node.machine.digest()));
    assert.equal(digests.size, 1, 'replicas converge to one state');
  } finally {
    for (const node of nodes.values()) await node.driver.stop();
  }
});

test('commands proposed in one synchronous run share one slot (the first does not leave alone)', async () => {
  // A front end proposes the requests of one socket read one by one. Draining Readies after each
  // would send the first in a slot of its own with a one-slot window, and queue the rest behind it.
  const network = new MemoryNetwork();
  const nodes = new Map<NodeId, TestNode>();
  try {
    const leader = await startCluster(nodes, network);
    const put = (seq: number) => ({ clientId: 'burst', seq, payload: encodeOperation({ type: 'put', key: 'k', value: `v${seq}` }) });
    assert.deepEqual(leader.driver.propose(put(1)), { ok: true });
    await until(() => leader.slotOfSeq.has(1), 'the first command applied (the window is free again)');
    for (let seq = 2; seq <= 41; seq += 1) assert.deepEqual(leader.driver.propose(put(seq)), { ok: true });
    await until(() => leader.slotOfSeq.has(41), 'the burst applied');
    const slots = new Set(Array.from({ length: 40 }, (_, index) => leader.slotOfSeq.get(index + 2)));
    assert.equal(slots.size, 1, `the burst of 40 went out in ${slots.size} slots`);
  } finally {
    for (const node of nodes.values()) await node.driver.stop();
  }
});

test('a follower\'s Ready whose messages wait for its fsync sends them before it applies; later applies keep log order', async () => {
  // A follower's acknowledgement is what the leader and its clients wait for; applying the chosen
  // entries that ride in the same Ready is not, so it runs after the send.
  const events: string[] = [];
  const entry = (slot: number): CommittedEntry => ({ slot, value: { type: 'noop' }, skipped: false });
  const accepted = (slot: number): Message => ({ type: 'accepted', from: 2, to: 1, ballot: BALLOT_ZERO, slots: [slot], firstUnchosen: slot } as Message);
  const record = (slot: number): PersistRecord => ({ type: 'chosen', slot, ballot: BALLOT_ZERO });
  let seq = 0;
  const ready = (fields: Partial<Ready>): Ready => ({ seq: (seq += 1), durability: 'lazy', persist: [], sendNow: [], send: [], apply: [], reads: [], ...fields });
  const script: Ready[] = [];
  const replica = {
    hasReady: () => script.length > 0,
    ready: () => script.shift() as Ready,
    persisted: () => {},
    step: () => {},
    tick: () => {},
    campaign: () => {},
  };
  const storage: LogStorage = {
    append: (records) => {
      events.push(`append ${records.length}`);
      return Promise.resolve();
    },
    state: () => ({ promised: BALLOT_ZERO, entries: [] }),
    entry: () => undefined,
    close: () => Promise.resolve(),
    firstSlot: 1,
  };
  const transport = {
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    onMessage: () => {},
    send: (message: Message) => events.push(`send ${message.type}`),
  };
  const driver = new NodeDriver({
    replica: replica as unknown as Replica,
    storage,
    transport: transport as unknown as Transport,
    tickMs: 1_000,
    onApply: (applied) => events.push(`apply ${applied.slot}`),
    onReads: (reads) => events.push(`reads ${reads.map((read) => read.id).join(',')}`),
  });
  await driver.start();
  try {
    // Applied at once: nothing in it waits for a disk.
    script.push(ready({ apply: [entry(1)], persist: [record(1)] }));
    driver.campaign();
    assert.deepEqual(events.splice(0), ['apply 1', 'append 1']);
    // A follower's Ready: acknowledge (after the fsync) first, apply after; the lazy Ready behind
    // it applies after it, not before.
    script.push(ready({ durability: 'sync', apply: [entry(2)], reads: [{ id: 7, ok: true, index: 2 }], persist: [record(3)], send: [accepted(3)] }));
    script.push(ready({ apply: [entry(3)] }));
    driver.campaign();
    assert.deepEqual(events.splice(0), ['append 1'], 'nothing applied before the send');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events.splice(0), ['send accepted', 'apply 2', 'reads 7', 'apply 3']);
    // A leader's Ready that proposes (accept requests in sendNow) applies at once although its
    // send waits for its fsync: the clients of those entries are waiting.
    const accept = { type: 'accept', from: 1, to: 2, ballot: BALLOT_ZERO, entries: [], commitIndex: 4 } as unknown as Message;
    script.push(ready({ durability: 'sync', apply: [entry(4)], persist: [record(5)], sendNow: [accept], send: [accepted(5)] }));
    driver.campaign();
    assert.deepEqual(events.splice(0), ['apply 4', 'send accept', 'append 1']);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events.splice(0), ['send accepted']);
  } finally {
    await driver.stop();
  }
});

test('a replica input that throws (a log entry read back from a damaged disk) stops the node, not the process', async () => {
  const damage = new Error('storage corruption in wal-x.log at byte offset 4096: reading back slot 5: frame checksum mismatch');
  const replica = {
    hasReady: () => false,
    ready: () => assert.fail('no Ready'),
    persisted: () => {},
    step: () => {
      throw damage;
    },
    tick: () => {},
    campaign: () => {},
  };
  const storage: LogStorage = {
    append: () => Promise.resolve(),
    state: () => ({ promised: BALLOT_ZERO, entries: [] }),
    entry: () => undefined,
    close: () => Promise.resolve(),
    firstSlot: 1,
  };
  let deliver: (message: Message) => void = () => assert.fail('not started');
  const transport = {
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    onMessage: (handler: (message: Message) => void) => {
      deliver = handler;
    },
    send: () => {},
  };
  const fatal: unknown[] = [];
  const driver = new NodeDriver({
    replica: replica as unknown as Replica,
    storage,
    transport: transport as unknown as Transport,
    tickMs: 1_000,
    onApply: () => {},
    onReads: () => {},
    onFatal: (error) => fatal.push(error),
  });
  await driver.start();
  try {
    assert.doesNotThrow(() => deliver({ type: 'learn', from: 2, to: 1, slots: [5] } as Message));
    assert.equal(driver.hasFailed, true);
    assert.deepEqual(fatal, [damage]);
    assert.deepEqual(driver.propose({ clientId: 'c', seq: 1, payload: new Uint8Array(1) }), { ok: false, error: 'not_leader', leaderHint: null });
  } finally {
    await driver.stop();
  }
});

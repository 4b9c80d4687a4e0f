import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeId } from '../../src/core/ballot.js';
import { Prng } from '../../src/core/prng.js';
import { Configuration, StaticConfiguration } from '../../src/core/quorum/majority.js';
import { DEFAULT_REPLICA_OPTIONS, Replica } from '../../src/core/multipaxos/replica.js';
import { KvStateMachine, encodeOperation } from '../../src/kv/index.js';
import { NodeDriver } from '../../src/node/driver.js';
import { MemoryStorage } from '../../src/storage/adapter.js';
import { MemoryLogStore } from '../../src/storage/memory.js';
import { MemoryNetwork } from '../../src/transport/memory.js';

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

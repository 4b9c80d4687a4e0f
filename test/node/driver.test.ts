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
}

function startNode(id: NodeId, network: MemoryNetwork, disk: MemoryLogStore): TestNode {
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
      for (const command of entry.value.commands) machine.apply(command, entry.slot);
    },
  });
  return { driver, machine, disk };
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

test('three drivers on memory storage and transport elect a leader, replicate, and a restarted node catches up', async () => {
  const network = new MemoryNetwork({ drop: () => Math.random() < 0.05 });
  const nodes = new Map<NodeId, TestNode>();
  for (const id of IDS) nodes.set(id, startNode(id, network, new MemoryLogStore()));
  try {
    for (const node of nodes.values()) await node.driver.start();
    await until(() => leaderOf(nodes) !== undefined, 'a serving leader');
    const leader = leaderOf(nodes) as TestNode;
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

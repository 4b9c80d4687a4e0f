/**
 * Three SynodNodes in one process over real TCP and real files: election, writes, read-index and
 * log-mode reads, exactly-once retries, follower redirects, typed errors, status and metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeConfig, type MemberConfig } from '../../src/server/config.js';
import { SynodNode } from '../../src/server/node.js';
import type { ReadMode } from '../../src/server/service.js';
import { freePorts } from '../helpers/ports.js';

const SECRET = 'test-secret-0123456789abcdef';

/** Collects log lines (JSON) instead of printing them. */
class LogSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter((line) => line.length > 0));
    callback();
  }
}

async function startCluster(readMode: ReadMode = 'index', size = 3): Promise<{ nodes: SynodNode[]; dir: string; sink: LogSink }> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-node-'));
  const ports = await freePorts(size);
  const members: MemberConfig[] = ports.map((port, index) => ({
    id: index + 1,
    peer: { host: '127.0.0.1', port },
    client: { host: '127.0.0.1', port: 1 },
    http: { host: '127.0.0.1', port: 2 },
  }));
  const sink = new LogSink();
  const nodes = await Promise.all(
    members.map((member) =>
      SynodNode.start(
        makeConfig({ id: member.id, secret: SECRET, dataDir: join(dir, `node-${member.id}`), members, tickMs: 10, readMode, logLevel: 'info' }),
        { logStream: sink, processMetrics: false },
      ),
    ),
  );
  return { nodes, dir, sink };
}

async function leaderOf(nodes: readonly SynodNode[], timeoutMs = 5_000): Promise<SynodNode> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const leader = nodes.find((node) => node.status().serving);
    if (leader !== undefined) return leader;
    await sleep(10);
  }
  throw new Error('no serving leader');
}

async function stopAll(nodes: readonly SynodNode[], dir: string): Promise<void> {
  await Promise.all(nodes.map((node) => node.stop()));
  await rm(dir, { recursive: true, force: true });
}

for (const readMode of ['index', 'log'] as const) {
  test(`three nodes serve linearizable writes and reads (read mode ${readMode})`, async () => {
    const { nodes, dir, sink } = await startCluster(readMode);
    try {
      const leader = await leaderOf(nodes);
      const puts = await Promise.all(
        Array.from({ length: 200 }, (_, index) => leader.submit({ type: 'put', key: `k${index % 20}`, value: `v${index}` }, { clientId: `c${index}`, seq: 1 })),
      );
      assert.ok(puts.every((result) => result.ok), JSON.stringify(puts.find((result) => !result.ok)));
      const got = await leader.submit({ type: 'get', key: 'k7' });
      assert.ok(got.ok && got.type === 'get');
      assert.equal(got.value, 'v187');
      const listed = await leader.submit({ type: 'list', prefix: 'k1', limit: 100 });
      assert.ok(listed.ok && listed.type === 'list');
      assert.equal(listed.entries.length, 11); // k1, k10..k19
      // Exactly once: a retried put returns the original result and changes nothing.
      const first = await leader.submit({ type: 'put', key: 'once', value: 'a' }, { clientId: 'retry', seq: 1 });
      const again = await leader.submit({ type: 'put', key: 'once', value: 'a' }, { clientId: 'retry', seq: 1 });
      assert.deepEqual(again, first);
      // Every log line names the node and its ballot.
      const parsed = sink.lines.map((line) => JSON.parse(line) as { node?: number; ballot?: string });
      assert.ok(parsed.length > 0 && parsed.every((line) => typeof line.node === 'number' && typeof line.ballot === 'string'));
    } finally {
      await stopAll(nodes, dir);
    }
  });
}

test('a follower answers not_leader with the leader\'s endpoint; bad input gets typed errors', async () => {
  const { nodes, dir } = await startCluster();
  try {
    const leader = await leaderOf(nodes);
    await sleep(100); // followers hear the leader's heartbeats
    const follower = nodes.find((node) => node !== leader) as SynodNode;
    const refused = await follower.submit({ type: 'put', key: 'a', value: '1' });
    assert.equal(refused.ok, false);
    assert.ok(!refused.ok && refused.error === 'not_leader');
    assert.equal(refused.leader?.id, leader.config.id);
    assert.equal(refused.leader?.clientAddress, '127.0.0.1:1');
    const read = await follower.submit({ type: 'get', key: 'a' });
    assert.ok(!read.ok && read.error === 'not_leader');
    const big = await leader.submit({ type: 'put', key: 'big', value: 'x'.repeat((1 << 20) + 1) });
    assert.ok(!big.ok && big.error === 'too_large');
    const empty = await leader.submit({ type: 'put', key: '', value: 'x' });
    assert.ok(!empty.ok && empty.error === 'bad_request');
    const cas = await leader.submit({ type: 'cas', key: 'nope', value: 'x', expectedVersion: 3 });
    assert.ok(!cas.ok && cas.error === 'cas_failed');
    const status = leader.status();
    assert.equal(status.role, 'leader');
    assert.equal(status.peers.length, 2);
    const metrics = await leader.metrics();
    for (const name of ['synod_fsync_seconds', 'synod_proposals_total', 'synod_batch_commands', 'synod_peer_rtt_seconds', 'synod_leader_changes_total']) {
      assert.ok(metrics.includes(name), `metrics lack ${name}`);
    }
    // Requests are tallied outside prom-client; the exposition must read as its own would.
    const id = leader.config.id;
    assert.match(metrics, new RegExp(`^synod_requests_total\\{op="put",result="too_large",node="${id}"\\} 1$`, 'm'));
    assert.match(metrics, new RegExp(`^synod_requests_total\\{op="cas",result="cas_failed",node="${id}"\\} 1$`, 'm'));
    assert.match(metrics, /^# TYPE synod_request_seconds histogram$/m);
    assert.match(metrics, new RegExp(`^synod_request_seconds_bucket\\{le="\\+Inf",op="put",node="${id}"\\} 2$`, 'm'));
    assert.match(metrics, new RegExp(`^synod_request_seconds_count\\{op="put",node="${id}"\\} 2$`, 'm'));
    assert.match(metrics, new RegExp(`^synod_proposals_total\\{result="ok",node="${id}"\\} \\d+$`, 'm'));
    const buckets = [...metrics.matchAll(new RegExp(`^synod_request_seconds_bucket\\{le="([^"]+)",op="put",node="${id}"\\} (\\d+)$`, 'gm'))].map((match) => Number(match[2]));
    assert.equal(buckets.length, 16, 'fifteen bounds and +Inf');
    assert.ok(buckets.every((count, index) => index === 0 || count >= (buckets[index - 1] as number)), 'buckets are cumulative');
  } finally {
    await stopAll(nodes, dir);
  }
});

test('stopping the leader: the others elect a new one and every acknowledged write survives a full restart', async () => {
  let { nodes, dir } = await startCluster();
  const keep = dir;
  try {
    const leader = await leaderOf(nodes);
    for (let index = 0; index < 50; index += 1) {
      const result = await leader.submit({ type: 'put', key: `k${index}`, value: `v${index}` });
      assert.ok(result.ok);
    }
    await leader.stop();
    const others = nodes.filter((node) => node !== leader);
    const next = await leaderOf(others);
    const after = await next.submit({ type: 'put', key: 'after', value: 'yes' });
    assert.ok(after.ok);
    await Promise.all(others.map((node) => node.stop()));
    // Restart all three from their data directories.
    const members = nodes.map((node) => node.config);
    nodes = await Promise.all(members.map((config) => SynodNode.start(config, { logStream: new LogSink(), processMetrics: false })));
    dir = keep;
    const restarted = await leaderOf(nodes);
    for (let index = 0; index < 50; index += 1) {
      const got = await restarted.submit({ type: 'get', key: `k${index}` });
      assert.ok(got.ok && got.type === 'get' && got.value === `v${index}`, `k${index} lost`);
    }
    const got = await restarted.submit({ type: 'get', key: 'after' });
    assert.ok(got.ok && got.type === 'get' && got.value === 'yes');
  } finally {
    await stopAll(nodes, dir);
  }
});

test('without a quorum a write times out (outcome unknown), nothing stays pending, and a retry with the same id executes once', async () => {
  const { nodes, dir } = await startCluster();
  try {
    const leader = await leaderOf(nodes);
    const followers = nodes.filter((node) => node !== leader);
    await Promise.all(followers.map((node) => node.stop()));
    const id = { clientId: 'lonely', seq: 1 };
    const result = await leader.submit({ type: 'put', key: 'k', value: 'v' }, id, { timeoutMs: 50 });
    assert.ok(!result.ok && (result.error === 'timeout' || result.error === 'not_leader'), JSON.stringify(result));
    assert.match(await leader.metrics(), /synod_pending_requests\{node="\d+"\} 0/);
    // The followers come back from their disks; the same request id, retried, executes exactly once.
    const restarted = await Promise.all(followers.map((node) => SynodNode.start(node.config, { logStream: new LogSink(), processMetrics: false })));
    const all = [leader, ...restarted];
    let retried = await (await leaderOf(all)).submit({ type: 'put', key: 'k', value: 'v' }, id);
    for (let attempt = 0; !retried.ok && attempt < 50; attempt += 1) {
      await sleep(50);
      retried = await (await leaderOf(all)).submit({ type: 'put', key: 'k', value: 'v' }, id);
    }
    assert.ok(retried.ok && retried.type === 'put', JSON.stringify(retried));
    assert.equal(retried.version, 1, 'executed once');
    nodes.splice(0, nodes.length, ...all);
  } finally {
    await stopAll(nodes, dir);
  }
});

test('a single-node cluster serves writes and read-index reads at once', async () => {
  const { nodes, dir } = await startCluster('index', 1);
  try {
    const node = await leaderOf(nodes);
    await sleep(50); // the loop is idle: a read must still find its waiter
    assert.ok((await node.submit({ type: 'put', key: 'solo', value: '1' })).ok);
    await sleep(50);
    const got = await node.submit({ type: 'get', key: 'solo' }, undefined, { timeoutMs: 500 });
    assert.ok(got.ok && got.type === 'get' && got.value === '1', JSON.stringify(got));
  } finally {
    await stopAll(nodes, dir);
  }
});

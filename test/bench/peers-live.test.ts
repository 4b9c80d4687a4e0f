/**
 * The etcd and ZooKeeper benchmark peers against the real systems: start a 3-member cluster,
 * prepare keys, run put/get/cas through shared and unshared sessions, check that cas really
 * compares (successes equal the key's version increase, and some concurrent ones lose), and that
 * stop leaves no server running and no data directory behind.
 *
 * Long (a JVM ensemble takes seconds to form) and needs the Debian packages, so it runs only with
 * SYNOD_LONG=1 after `bench/peers/etcd.sh install` and `bench/peers/zookeeper.sh install`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { EtcdPeer } from '../../src/bench/peers/etcd.js';
import { PeerError } from '../../src/bench/peers/script-cluster.js';
import { ZookeeperPeer } from '../../src/bench/peers/zookeeper.js';
import type { BenchSession, BenchSystem } from '../../src/bench/system.js';

const LONG = process.env.SYNOD_LONG !== undefined && process.env.SYNOD_LONG !== '';

function installed(command: string): boolean {
  try {
    execFileSync('bash', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function skipReason(system: string, present: boolean): string | false {
  if (!LONG) return 'long test: set SYNOD_LONG=1';
  if (!present) return `${system} is not installed: run bench/peers/${system}.sh install`;
  return false;
}

/** The key's version as the system counts it, read through a client of the test's own. */
type VersionOf = (key: string) => Promise<number>;

async function exercise(system: BenchSystem, versionOf: VersionOf): Promise<void> {
  const value = new Uint8Array(100).fill(0x62);
  await system.prepare(8, value);
  const sessions: BenchSession[] = await system.sessions(6);
  assert.equal(sessions.length, 6);
  for (const session of sessions) {
    await session.put('key-1', value);
    await session.get('key-1');
  }
  const before = await versionOf('key-2');
  let won = 0;
  let lost = 0;
  for (let round = 0; round < 10; round += 1) {
    const results = await Promise.all(sessions.map((session) => session.cas('key-2', value)));
    won += results.filter(Boolean).length;
    lost += results.filter((result) => !result).length;
  }
  const after = await versionOf('key-2');
  await assert.rejects(sessions[0]!.cas('key-missing', value), (error: unknown) =>
    error instanceof PeerError && error.message.includes('key-missing'), 'a failure names the key');
  assert.equal(after - before, won, 'every successful cas, and only those, changed the key');
  assert.ok(won >= 10, 'at least one cas per round takes effect');
  assert.ok(lost > 0, 'concurrent cas on one key lose sometimes');
  await system.closeSessions();
}

async function lifecycle(system: BenchSystem, versionOf: (system: BenchSystem) => VersionOf): Promise<void> {
  await system.start();
  const pids = system.serverPids();
  try {
    assert.equal(pids.length, 3);
    assert.ok(pids.every(alive));
    await exercise(system, versionOf(system));
  } finally {
    await system.stop();
  }
  assert.ok(pids.every((pid) => !alive(pid)), 'no server left running');
}

for (const targetLeader of [true, false]) {
  test(`etcd peer (${targetLeader ? 'leader' : 'spread'}): start, prepare, put/get/cas over shared channels, stop`, {
    skip: skipReason('etcd', installed('etcd')),
    timeout: 120_000,
  }, async () => {
    const etcd = new EtcdPeer({ channels: 2, targetLeader });
    const { Etcd3 } = await import('etcd3');
    await lifecycle(etcd, () => async (key) => {
      const client = new Etcd3({ hosts: etcd.clientPorts().map((port) => `http://127.0.0.1:${port}`) });
      try {
        const response = await client.get(key).exec();
        return Number(response.kvs[0]?.version ?? Number.NaN);
      } finally {
        client.close();
      }
    });
  });
}

for (const placement of ['leader', 'spread'] as const) {
  test(`zookeeper peer (${placement}): start, prepare, put/get/cas with sessions shared by pipelining, stop`, {
    skip: skipReason('zookeeper', existsSync('/usr/share/java/zookeeper.jar') && installed('java')),
    timeout: 180_000,
  }, async () => {
    const zookeeper = new ZookeeperPeer({ sessionsMax: 4, placement });
    const { createClient } = await import('node-zookeeper-client');
    await lifecycle(zookeeper, () => async (key) => {
      const client = createClient(zookeeper.clientPorts().map((port) => `127.0.0.1:${port}`).join(','));
      await new Promise<void>((resolve) => {
        client.once('connected', () => resolve());
        client.connect();
      });
      try {
        return await new Promise<number>((resolve, reject) =>
          client.getData(`/${key}`, (error, _data, stat) => (error === null ? resolve(stat.version) : reject(error))));
      } finally {
        client.close();
      }
    });
  });
}

/**
 * The benchmark peer scripts (bench/peers/etcd.sh, zookeeper.sh) and ScriptCluster, run against
 * stand-in `etcd` and `java` executables put first on the PATH: small Node programs that listen on
 * the ports the scripts assign and answer their readiness probes (etcd's /health, ZooKeeper's
 * `srvr`). So the start/stop life cycle, the failure paths and "nothing left running" are tested
 * without installing either system. The real systems are exercised by peers-live.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeerError, ScriptCluster, defaultScriptsDir, pickPortBase } from '../../src/bench/peers/script-cluster.js';
import { encodeSyncRequest, syncRequest } from '../../src/bench/peers/zookeeper.js';

const SCRIPTS = defaultScriptsDir();

/** Stand-in etcd: serves /health on its client URL, listens on its peer URL, exits on SIGTERM. */
const FAKE_ETCD = `#!/usr/bin/env node
const http = require('node:http');
const net = require('node:net');
const args = process.argv.slice(2);
const flag = (name) => args[args.indexOf(name) + 1];
if (process.env.FAKE_FAIL_MEMBER === flag('--name')) {
  console.error('fake etcd ' + flag('--name') + ': refusing to start');
  process.exit(3);
}
const client = new URL(flag('--listen-client-urls'));
const peer = new URL(flag('--listen-peer-urls'));
http.createServer((request, response) => {
  response.end(request.url === '/health' ? '{"health":"true","reason":""}' : '{}');
}).listen(Number(client.port), client.hostname);
net.createServer(() => {}).listen(Number(peer.port), peer.hostname);
console.log('fake etcd ' + flag('--name') + ' serving ' + client + ', env ETCD_NAME=' + process.env.ETCD_NAME);
process.on('SIGTERM', () => process.exit(0));
`;

/** Stand-in java for QuorumPeerMain: reads zoo.cfg, answers srvr (member 1 leads), exits on SIGTERM. */
const FAKE_JAVA = `#!/usr/bin/env node
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const cfgPath = process.argv[process.argv.length - 1];
const cfg = Object.fromEntries(fs.readFileSync(cfgPath, 'utf8').split('\\n')
  .filter((line) => line.includes('=') && !line.startsWith('#')).map((line) => line.split('=')));
const myid = fs.readFileSync(path.join(cfg.dataDir, 'myid'), 'utf8').trim();
if (process.env.FAKE_FAIL_MEMBER === 'm' + myid) {
  console.error('fake zookeeper ' + myid + ': refusing to start');
  process.exit(3);
}
net.createServer((socket) => {
  socket.once('data', () => socket.end('Zookeeper version: fake\\nMode: ' + (myid === '1' ? 'leader' : 'follower') + '\\n'));
}).listen(Number(cfg.clientPort), cfg.clientPortAddress);
process.on('SIGTERM', () => process.exit(0));
`;

interface Fakes {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
}

async function makeFakes(): Promise<Fakes> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-fake-peers-'));
  await writeFile(join(dir, 'etcd'), FAKE_ETCD);
  await writeFile(join(dir, 'java'), FAKE_JAVA);
  await writeFile(join(dir, 'zookeeper.jar'), '');
  await chmod(join(dir, 'etcd'), 0o755);
  await chmod(join(dir, 'java'), 0o755);
  const env = { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}`, ZOOKEEPER_JAR: join(dir, 'zookeeper.jar'), ETCD_NAME: 'leaked' };
  return { dir, env };
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function script(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', [join(SCRIPTS, name), ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** True while `pid` is a live (not zombie) process. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function pidsOf(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const member of [1, 2, 3]) {
    const path = join(dir, `m${member}.pid`);
    if (existsSync(path)) pids.push(Number.parseInt(await readFile(path, 'utf8'), 10));
  }
  return pids;
}

for (const { name, span, clientOffsets, otherOffsets } of [
  { name: 'etcd.sh', span: 13, clientOffsets: [1, 2, 3], otherOffsets: [11, 12, 13] },
  { name: 'zookeeper.sh', span: 23, clientOffsets: [1, 2, 3], otherOffsets: [] as number[] },
]) {
  test(`${name}: start serves on the assigned ports, refuses a second start, stop leaves nothing running`, async () => {
    const fakes = await makeFakes();
    const dir = join(fakes.dir, 'cluster');
    const base = await pickPortBase(span);
    try {
      const started = await script(name, ['start', dir, String(base)], fakes.env);
      assert.equal(started.code, 0, started.stderr);
      assert.match(started.stdout, new RegExp(`serving on 127\\.0\\.0\\.1:${base + 1}-${base + 3}`));
      const pids = await pidsOf(dir);
      assert.equal(pids.length, 3);
      assert.ok(pids.every(alive));
      const listed = await script(name, ['pids', dir], fakes.env);
      assert.deepEqual(listed.stdout.trim().split('\n').map(Number), pids);
      for (const offset of [...clientOffsets, ...otherOffsets]) assert.ok(await listening(base + offset), `port +${offset}`);

      const again = await script(name, ['start', dir, String(base)], fakes.env);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already has a running member/);
      const elsewhere = await script(name, ['start', join(fakes.dir, 'other'), String(base)], fakes.env);
      assert.equal(elsewhere.code, 1);
      assert.match(elsewhere.stderr, new RegExp(`port ${base + 1} on 127\\.0\\.0\\.1 is already in use`));

      const stopped = await script(name, ['stop', dir], fakes.env);
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.match(stopped.stdout, /stopped 3 member\(s\)/);
      assert.ok(pids.every((pid) => !alive(pid)), 'every member exited');
      assert.deepEqual(await pidsOf(dir), [], 'pidfiles removed');
      const twice = await script(name, ['stop', dir], fakes.env);
      assert.equal(twice.code, 0);
      assert.match(twice.stdout, /stopped 0 member\(s\)/);
    } finally {
      await script(name, ['stop', dir], fakes.env);
      await rm(fakes.dir, { recursive: true, force: true });
    }
  });

  test(`${name}: a member that dies during start fails the start with its log; stop then ends the others`, async () => {
    const fakes = await makeFakes();
    const dir = join(fakes.dir, 'cluster');
    const base = await pickPortBase(span);
    try {
      const started = await script(name, ['start', dir, String(base)], { ...fakes.env, FAKE_FAIL_MEMBER: 'm2' });
      assert.equal(started.code, 1);
      assert.match(started.stderr, /member m2 exited while waiting for/);
      assert.match(started.stderr, /refusing to start/, 'the dead member\'s log tail is in the message');
      const pids = await pidsOf(dir);
      assert.equal(pids.length, 3);
      const stopped = await script(name, ['stop', dir], fakes.env);
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.match(stopped.stdout, /stopped 2 member\(s\)/);
      assert.ok(pids.every((pid) => !alive(pid)));
    } finally {
      await script(name, ['stop', dir], fakes.env);
      await rm(fakes.dir, { recursive: true, force: true });
    }
  });

  test(`${name}: bad arguments exit non-zero with a message`, async () => {
    const fakes = await makeFakes();
    try {
      const none = await script(name, [], fakes.env);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /usage: .* install \| start DIR PORT_BASE \| stop DIR \| pids DIR/);
      const word = await script(name, ['start', join(fakes.dir, 'x'), 'twelve'], fakes.env);
      assert.equal(word.code, 1);
      assert.match(word.stderr, /PORT_BASE must be a number, got 'twelve'/);
      const high = await script(name, ['start', join(fakes.dir, 'x'), '65530'], fakes.env);
      assert.equal(high.code, 1);
      assert.match(high.stderr, /PORT_BASE 65530 out of range/);
      const missing = await script(name, ['stop', join(fakes.dir, 'never-started')], fakes.env);
      assert.equal(missing.code, 0);
      assert.match(missing.stdout, /does not exist; nothing to stop/);
    } finally {
      await rm(fakes.dir, { recursive: true, force: true });
    }
  });
}

test('etcd.sh: members get one shared --initial-cluster and no ETCD_* setting from the environment', async () => {
  const fakes = await makeFakes();
  const dir = join(fakes.dir, 'cluster');
  const base = await pickPortBase(13);
  try {
    const started = await script('etcd.sh', ['start', dir, String(base)], fakes.env);
    assert.equal(started.code, 0, started.stderr);
    for (const member of [1, 2, 3]) {
      const pid = Number.parseInt(await readFile(join(dir, `m${member}.pid`), 'utf8'), 10);
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const cluster = args[args.indexOf('--initial-cluster') + 1];
      assert.equal(cluster, [1, 2, 3].map((id) => `m${id}=http://127.0.0.1:${base + 10 + id}`).join(','));
      assert.equal(args[args.indexOf('--data-dir') + 1], join(dir, `m${member}`));
      assert.match(await readFile(join(dir, `m${member}.log`), 'utf8'), /env ETCD_NAME=undefined/);
    }
  } finally {
    await script('etcd.sh', ['stop', dir], fakes.env);
    await rm(fakes.dir, { recursive: true, force: true });
  }
});

test('zookeeper.sh: each member gets a zoo.cfg with the ensemble, its myid, and default durability', async () => {
  const fakes = await makeFakes();
  const dir = join(fakes.dir, 'cluster');
  const base = await pickPortBase(23);
  try {
    const started = await script('zookeeper.sh', ['start', dir, String(base)], fakes.env);
    assert.equal(started.code, 0, started.stderr);
    for (const member of [1, 2, 3]) {
      const cfg = await readFile(join(dir, `m${member}`, 'zoo.cfg'), 'utf8');
      assert.match(cfg, new RegExp(`^clientPort=${base + member}$`, 'm'));
      assert.match(cfg, new RegExp(`^dataDir=${dir}/m${member}/data$`, 'm'));
      for (const id of [1, 2, 3]) {
        assert.match(cfg, new RegExp(`^server\\.${id}=127\\.0\\.0\\.1:${base + 10 + id}:${base + 20 + id}$`, 'm'));
      }
      assert.doesNotMatch(cfg, /forceSync|syncEnabled/, 'durability left at the defaults');
      assert.equal((await readFile(join(dir, `m${member}`, 'data', 'myid'), 'utf8')).trim(), String(member));
    }
  } finally {
    await script('zookeeper.sh', ['stop', dir], fakes.env);
    await rm(fakes.dir, { recursive: true, force: true });
  }
});

test('ScriptCluster: start reports the pids, stop ends them and removes the data directory', async () => {
  const fakes = await makeFakes();
  const savedPath = process.env.PATH;
  process.env.PATH = fakes.env.PATH;
  try {
    const cluster = new ScriptCluster('etcd', 13, { baseDir: fakes.dir });
    await cluster.start();
    const dir = cluster.dataDir;
    assert.ok(dir !== null && existsSync(dir));
    const pids = cluster.serverPids();
    assert.equal(pids.length, 3);
    assert.ok(pids.every(alive));
    assert.deepEqual(cluster.clientPorts(), [1, 2, 3].map((offset) => cluster.portBase + offset));
    await assert.rejects(cluster.start(), PeerError);
    await cluster.stop();
    assert.ok(pids.every((pid) => !alive(pid)));
    assert.equal(existsSync(dir), false);
    assert.equal(cluster.dataDir, null);
    await cluster.stop(); // idempotent
  } finally {
    process.env.PATH = savedPath;
    await rm(fakes.dir, { recursive: true, force: true });
  }
});

test('ScriptCluster: a failed start rejects with the script\'s message and leaves nothing behind', async () => {
  const fakes = await makeFakes();
  const saved = { PATH: process.env.PATH, FAKE_FAIL_MEMBER: process.env.FAKE_FAIL_MEMBER };
  process.env.PATH = fakes.env.PATH;
  process.env.FAKE_FAIL_MEMBER = 'm3';
  try {
    const cluster = new ScriptCluster('etcd', 13, { baseDir: fakes.dir });
    const error = await cluster.start().then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof PeerError);
    assert.match(error.message, /member m3 exited while waiting for every etcd member to report healthy/);
    assert.match(error.message, /refusing to start/);
    assert.equal(cluster.dataDir, null);
    assert.deepEqual(cluster.serverPids(), []);
    assert.deepEqual(await leftoverFakes(fakes.dir), [], 'no stand-in member still running');
  } finally {
    process.env.PATH = saved.PATH;
    if (saved.FAKE_FAIL_MEMBER === undefined) delete process.env.FAKE_FAIL_MEMBER;
    else process.env.FAKE_FAIL_MEMBER = saved.FAKE_FAIL_MEMBER;
    await rm(fakes.dir, { recursive: true, force: true });
  }
});

test('ScriptCluster: a port base with a taken port is refused by the script before anything starts', async () => {
  const fakes = await makeFakes();
  const savedPath = process.env.PATH;
  process.env.PATH = fakes.env.PATH;
  const base = await pickPortBase(13);
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(base + 12, '127.0.0.1', resolve));
  try {
    const cluster = new ScriptCluster('etcd', 13, { baseDir: fakes.dir, portBase: base });
    await assert.rejects(cluster.start(), (error: unknown) =>
      error instanceof PeerError && error.message.includes(`port ${base + 12} on 127.0.0.1 is already in use`));
    assert.deepEqual(await leftoverFakes(fakes.dir), []);
  } finally {
    process.env.PATH = savedPath;
    await new Promise((resolve) => blocker.close(resolve));
    await rm(fakes.dir, { recursive: true, force: true });
  }
});

test('ScriptCluster: stop during start (Ctrl-C) waits for the start, then leaves nothing running', async () => {
  const fakes = await makeFakes();
  const savedPath = process.env.PATH;
  process.env.PATH = fakes.env.PATH;
  try {
    const cluster = new ScriptCluster('zookeeper', 23, { baseDir: fakes.dir });
    const saved = process.env.ZOOKEEPER_JAR;
    process.env.ZOOKEEPER_JAR = fakes.env.ZOOKEEPER_JAR;
    try {
      const started = cluster.start();
      await cluster.stop();
      await started;
    } finally {
      if (saved === undefined) delete process.env.ZOOKEEPER_JAR;
      else process.env.ZOOKEEPER_JAR = saved;
    }
    assert.equal(cluster.dataDir, null);
    assert.deepEqual(await leftoverFakes(fakes.dir), []);
  } finally {
    process.env.PATH = savedPath;
    await rm(fakes.dir, { recursive: true, force: true });
  }
});

test('ScriptCluster: an unknown system is a PeerError naming the missing script', () => {
  assert.throws(() => new ScriptCluster('consul', 13, {}), (error: unknown) =>
    error instanceof PeerError && /consul\.sh not found/.test(error.message));
});

test('zookeeper sync shim: SYNC on the wire, parsed by the client as a bodiless reply, xid read at send time', () => {
  assert.deepEqual(
    [...encodeSyncRequest(7, '/key-1')],
    [0, 0, 0, 18, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 6, ...Buffer.from('/key-1')],
  );
  const request = syncRequest('/key-12');
  assert.equal(request.header.type, 2, 'labelled DELETE for the reply parser (no reply body)');
  assert.equal(request.payload, null);
  request.header.xid = 0x01020304; // what the connection manager does just before sending
  const bytes = request.toBuffer();
  assert.equal(bytes.readInt32BE(0), bytes.length - 4);
  assert.equal(bytes.readInt32BE(4), 0x01020304);
  assert.equal(bytes.readInt32BE(8), 9, 'OpCode.sync');
  assert.equal(bytes.subarray(16).toString(), '/key-12');
});

/** Pids of live processes whose command line mentions `dir` (stand-ins started under it). */
async function leftoverFakes(dir: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(dir) && alive(pid)) found.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

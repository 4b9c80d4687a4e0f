/**
 * Real node processes on loopback, driven through the TypeScript client, the HTTP API and raw
 * sockets: SIGKILL of the leader, catch-up of a restarted node, a full stop and restart, a peer
 * with the wrong secret, malformed frames and oversized values; and `synod cluster` with the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { SynodClient } from '../../src/client/index.js';
import { makeBallot } from '../../src/core/ballot.js';
import { encodeClientMessage, decodeServerMessage } from '../../src/protocol/wire.js';
import type { NodeStatusReport } from '../../src/server/service.js';
import { encodeFrame, FrameDecoder } from '../../src/transport/framing.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { freePorts } from '../helpers/ports.js';

const EXTENSION = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const CLI = fileURLToPath(new URL(`../../src/cli/main${EXTENSION}`, import.meta.url));
const SECRET = 'processes-test-secret-0123456789';

interface Cluster {
  readonly dir: string;
  readonly spec: string;
  readonly secretFile: string;
  readonly ports: { peer: number; client: number; http: number }[];
  readonly processes: Map<number, ChildProcess>;
  readonly endpoints: string[];
}

async function makeCluster(size = 3): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'synod-proc-'));
  const free = await freePorts(size * 3);
  const ports = Array.from({ length: size }, (_, index) => ({
    peer: free[index * 3] as number,
    client: free[index * 3 + 1] as number,
    http: free[index * 3 + 2] as number,
  }));
  const spec = ports.map((port, index) => `${index + 1}=127.0.0.1:${port.peer}:${port.client}:${port.http}`).join(',');
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, SECRET, { mode: 0o600 });
  return { dir, spec, secretFile, ports, processes: new Map(), endpoints: ports.map((port) => `127.0.0.1:${port.client}`) };
}

function startNode(cluster: Cluster, id: number, secretFile = cluster.secretFile): ChildProcess {
  const args = [...process.execArgv, CLI, 'start', '--id', String(id), '--peers', cluster.spec, '--data', join(cluster.dir, `node-${id}`), '--secret-file', secretFile, '--log-level', 'info'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => log.push(chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => log.push(chunk.toString('utf8')));
  (child as ChildProcess & { log: string[] }).log = log;
  cluster.processes.set(id, child);
  return child;
}

function logOf(child: ChildProcess): string {
  return ((child as ChildProcess & { log?: string[] }).log ?? []).join('');
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => child.once('exit', resolve));
}

async function kill(cluster: Cluster, id: number, signal: NodeJS.Signals): Promise<void> {
  const child = cluster.processes.get(id);
  if (child === undefined) return;
  child.kill(signal);
  await exited(child);
  cluster.processes.delete(id);
}

async function stopCluster(cluster: Cluster): Promise<void> {
  await Promise.all([...cluster.processes.keys()].map((id) => kill(cluster, id, 'SIGKILL')));
  await rm(cluster.dir, { recursive: true, force: true });
}

/** The impostor's prepares use this round; a real cluster in a test never gets near it. */
const FORGED_ROUND = 1_000_000;

async function statuses(client: SynodClient): Promise<NodeStatusReport[]> {
  const all = await client.statusAll();
  return all.flatMap((entry) => ('status' in entry ? [entry.status] : []));
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function servingLeader(client: SynodClient, among?: readonly number[]): Promise<NodeStatusReport> {
  return waitFor('a serving leader', async () =>
    (await statuses(client)).find((status) => status.serving && (among === undefined || among.includes(status.id))),
  );
}

async function putMany(client: SynodClient, keys: readonly string[], value: (key: string) => string): Promise<void> {
  const inFlight = 64;
  for (let start = 0; start < keys.length; start += inFlight) {
    await Promise.all(keys.slice(start, start + inFlight).map((key) => client.put(key, value(key))));
  }
}

async function assertAllReadable(client: SynodClient, keys: readonly string[], value: (key: string) => string): Promise<void> {
  for (let start = 0; start < keys.length; start += 100) {
    const results = await Promise.all(keys.slice(start, start + 100).map((key) => client.get(key)));
    results.forEach((result, index) => {
      const key = keys[start + index] as string;
      assert.equal(result.value, value(key), `acknowledged write of ${key} is not readable`);
    });
  }
}

test('SIGKILL the leader: a new one serves within 2 s, no acknowledged write is lost, the restarted node catches up; then a full restart loses nothing', { timeout: 120_000 }, async () => {
  const cluster = await makeCluster();
  const client = new SynodClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
  try {
    for (const id of [1, 2, 3]) startNode(cluster, id);
    const keys = Array.from({ length: 1000 }, (_, index) => `key-${index}`);
    const first = (key: string): string => `first-${key}`;
    await servingLeader(client);
    await putMany(client, keys, first);

    const leader = await servingLeader(client);
    const killedAt = performance.now();
    await kill(cluster, leader.id, 'SIGKILL');
    const survivors = [1, 2, 3].filter((id) => id !== leader.id);
    const next = await servingLeader(client, survivors);
    const failoverMs = performance.now() - killedAt;
    assert.ok(failoverMs < 2_000, `a new leader served after ${failoverMs.toFixed(0)} ms`);
    assert.notEqual(next.id, leader.id);
    await assertAllReadable(client, keys, first);

    // Writes while the old leader is down, then it restarts and must catch up.
    const more = keys.slice(0, 200);
    const second = (key: string): string => `second-${key}`;
    await putMany(client, more, second);
    startNode(cluster, leader.id);
    const caughtUp = await waitFor('the restarted node to catch up', async () => {
      const all = await statuses(client);
      const restarted = all.find((status) => status.id === leader.id);
      const current = all.find((status) => status.serving);
      if (restarted === undefined || current === undefined) return undefined;
      return restarted.appliedIndex === current.appliedIndex && restarted.revision === current.revision ? { restarted, current } : undefined;
    });
    assert.equal(caughtUp.restarted.keys, caughtUp.current.keys);
    assert.equal(caughtUp.restarted.revision, 1200);

    // Stop everything (SIGTERM: clean shutdown) and restart: nothing acknowledged is lost.
    for (const id of [1, 2, 3]) await kill(cluster, id, 'SIGTERM');
    for (const id of [1, 2, 3]) startNode(cluster, id);
    await servingLeader(client);
    const expected = (key: string): string => (more.includes(key) ? second(key) : first(key));
    await assertAllReadable(client, keys, expected);
  } finally {
    await client.close();
    await stopCluster(cluster);
  }
});

test('a peer without the secret is refused and injects nothing; malformed frames and oversized values get typed errors and the node keeps serving', { timeout: 60_000 }, async () => {
  const cluster = await makeCluster();
  const client = new SynodClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
  try {
    for (const id of [1, 2, 3]) startNode(cluster, id);
    const leader = await servingLeader(client);
    await client.put('before', 'x');

    // An impostor claiming to be node 2, with the wrong secret, tries to depose the leader.
    const target = cluster.ports[leader.id - 1] as { peer: number };
    const impostorId = leader.id === 2 ? 3 : 2;
    const impostor = new TcpTransport({
      nodeId: impostorId,
      clusterId: 'synod',
      secret: 'not-the-cluster-secret-at-all!!',
      listen: { host: '127.0.0.1', port: 0 },
      peers: new Map([[leader.id, { host: '127.0.0.1', port: target.peer }]]),
      reconnectDelayMsMax: 100,
    });
    await impostor.start();
    for (let attempt = 0; attempt < 20; attempt += 1) {
      impostor.send({ type: 'prepare', from: impostorId, to: leader.id, ballot: makeBallot(FORGED_ROUND, impostorId), firstUnchosen: 1 });
      await sleep(25);
    }
    await impostor.stop();
    await servingLeader(client);
    // No node promised the forged round. (Not "the leader is unchanged": a node that started late
    // may legitimately win an election under load; genuine rounds stay far below the forged one.)
    const after = await waitFor('every node to answer', async () => {
      const all = await statuses(client);
      return all.length === 3 ? all : undefined;
    });
    for (const status of after) {
      assert.ok(Number(status.ballot.split('.')[0]) < FORGED_ROUND, `node ${status.id} promised a forged ballot: ${status.ballot}`);
    }
    const leaderLog = logOf(cluster.processes.get(leader.id) as ChildProcess);
    assert.match(leaderLog, /peer refused: handshake failed/, leaderLog.split('\n').filter((line) => !line.includes('connection to peer failed')).join('\n'));

    // Raw bytes on the client port: a garbage frame gets one typed error frame, then the close.
    const clientPort = (cluster.ports[leader.id - 1] as { client: number }).client;
    const answer = await rawExchange(clientPort, encodeFrame(new Uint8Array([0xc1, 0xff, 0x00, 0x13])));
    assert.equal(answer.type, 'failure');
    assert.ok(answer.type === 'failure' && answer.failure.error === 'bad_request');
    // A hello, then a frame announcing more than the limit: too_large.
    const oversized = Buffer.alloc(4);
    oversized.writeUInt32BE(0x7fff_ffff, 0);
    const hello = encodeFrame(encodeClientMessage({ type: 'hello', version: 1, token: null }));
    const tooLarge = await rawExchange(clientPort, hello, 2, oversized);
    assert.ok(tooLarge.type === 'failure' && tooLarge.failure.error === 'too_large', JSON.stringify(tooLarge));
    // Garbage on the peer port: refused, nothing else happens.
    await new Promise<void>((resolve) => {
      const socket = connect((cluster.ports[leader.id - 1] as { peer: number }).peer, '127.0.0.1', () => socket.end(Buffer.from('GET / HTTP/1.1\r\n\r\n')));
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
      socket.resume();
    });

    // Oversized value through the client and through HTTP.
    await assert.rejects(client.put('big', 'x'.repeat((1 << 20) + 1)), (error: { code?: string }) => error.code === 'too_large');
    const httpPort = (cluster.ports[leader.id - 1] as { http: number }).http;
    const response = await fetch(`http://127.0.0.1:${httpPort}/v1/kv/big`, { method: 'PUT', body: 'x'.repeat((1 << 20) + 8192) });
    assert.equal(response.status, 413);
    assert.equal(response.headers.get('synod-error'), 'too_large');

    // Still serving, same leader.
    await client.put('after', 'y');
    assert.equal((await client.get('before')).value, 'x');
    assert.equal((await client.get('after')).value, 'y');
    assert.equal((await servingLeader(client)).id, leader.id);
  } finally {
    await client.close();
    await stopCluster(cluster);
  }
});

/**
 * Sends bytes to a client port and decodes the `index`-th frame the server answers (1-based);
 * `afterFirst` is sent once the first answer (the welcome to a hello) has arrived.
 */
async function rawExchange(port: number, bytes: Buffer, index = 1, afterFirst?: Buffer): Promise<ReturnType<typeof decodeServerMessage>> {
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder(64 * 1024 * 1024);
    let seen = 0;
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.on('data', (chunk) => {
      for (const frame of decoder.push(chunk)) {
        seen += 1;
        if (seen === 1 && afterFirst !== undefined) socket.write(afterFirst);
        if (seen === index) {
          resolve(decodeServerMessage(frame));
          socket.destroy();
        }
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed after ${seen} frame(s)`)));
  });
}

test('the built synod command is executable (npx synod runs it directly)', { skip: EXTENSION === '.ts' }, () => {
  assert.ok((statSync(CLI).mode & 0o111) !== 0, `${CLI} is not executable`);
});

test('synod cluster, then synod put and get from the CLI; Ctrl-C stops every node', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-cli-'));
  const base = 20_000 + Math.floor(Math.random() * 20_000);
  const cluster = spawn(process.execPath, [...process.execArgv, CLI, 'cluster', '--nodes', '3', '--data', dir, '--port-base', String(base)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  cluster.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  cluster.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const cli = (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [...process.execArgv, CLI, ...args, '--data', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  try {
    await waitFor('the cluster to report its leader', async () => (output.includes('ready') ? true : undefined), 30_000);
    const put = await cli('put', 'a', '1');
    assert.equal(put.code, 0, put.stderr);
    const get = await cli('get', 'a');
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout.trim(), '1');
    const missing = await cli('get', 'no-such-key');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);
    const status = await cli('status', '--json');
    assert.equal(status.code, 0, status.stderr);
    const nodes = (JSON.parse(status.stdout) as { nodes: { role: string }[] }).nodes;
    assert.equal(nodes.length, 3);
    const clusterFile = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as { endpoints: string };
    assert.equal(clusterFile.endpoints.split(',').length, 3);
    cluster.kill('SIGINT');
    await exited(cluster);
    assert.equal(cluster.exitCode, 0, output);
    assert.match(output, /stopping the cluster/);
  } finally {
    cluster.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

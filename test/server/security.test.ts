/**
 * Security of a real cluster, probed from outside its processes: impostors without the secret
 * (every member's name, every kind of message) change nothing; hand-driven handshakes with the
 * secret but a non-member id, or with forged senders and recipients, are refused or dropped, and
 * counted in /metrics and logged with the remote address; the client token is enforced on the
 * binary protocol, HTTP and the CLI and never logged; and `synod start` binds the client APIs to
 * loopback unless told otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SynodClient, SynodClientError } from '../../src/client/index.js';
import { makeBallot, type NodeId } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import { encodeOperation } from '../../src/kv/ops.js';
import type { NodeStatusReport } from '../../src/server/service.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { freePorts } from '../helpers/ports.js';
import { metricValue, runSynod, spawnSynod, stopProcess, waitFor, type Spawned } from '../helpers/processes.js';
import { RawPeer } from '../helpers/raw-peer.js';

const SECRET = 'security-test-secret-0123456789abcdef';
const TOKEN = 'security-test-client-token-0123456789';
const WRONG_SECRET = 'not-the-cluster-secret-but-long-enough';

/** Forged ballots use rounds from here up; a real cluster in a test never gets near. */
const FORGED_ROUND = 1_000_000;

/** The round of a ballot as the status report prints it ("round.node"). */
function roundOf(ballot: string): number {
  return Number(ballot.split('.')[0]);
}

interface Ports {
  readonly peer: number;
  readonly client: number;
  readonly http: number;
}

/** Every message type an impostor claiming `from` could use to move `to`: raise its promise, make it accept or learn a value, or vote. */
function forgeries(from: NodeId, to: NodeId): Message[] {
  const ballot = makeBallot(FORGED_ROUND, from);
  // A promise or an acceptance answers the recipient's ballot (the codec refuses any other).
  const theirs = makeBallot(FORGED_ROUND, to);
  const evil = { clientId: 'evil', seq: 1, payload: encodeOperation({ type: 'put', key: 'injected', value: 'evil' }) };
  const value = { type: 'commands' as const, epoch: ballot, commands: [evil] };
  return [
    { type: 'prepare', from, to, ballot, firstUnchosen: 1 },
    { type: 'accept', from, to, ballot, commitIndex: 1_000, entries: [1, 2, 3, 1_000].map((slot) => ({ slot, value })) },
    { type: 'promise', from, to, ballot: theirs, entries: [], maxSlot: 0 },
    { type: 'accepted', from, to, ballot: theirs, slots: [1, 2, 3], firstUnchosen: 1 },
    { type: 'heartbeat', from, to, ballot, commitIndex: 1_000, readRound: 1 },
    { type: 'learned', from, to, entries: [1, 2, 3].map((slot) => ({ slot, ballot, value })) },
  ];
}

test('a real cluster: no message without the secret, non-members and forgeries dropped and counted, the client token enforced and never logged', { timeout: 90_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-security-'));
  const free = await freePorts(9);
  const ports: Ports[] = [0, 1, 2].map((index) => ({ peer: free[index * 3] as number, client: free[index * 3 + 1] as number, http: free[index * 3 + 2] as number }));
  const spec = ports.map((port, index) => `${index + 1}=127.0.0.1:${port.peer}:${port.client}:${port.http}`).join(',');
  const secretFile = join(dir, 'secret');
  const tokenFile = join(dir, 'token');
  await writeFile(secretFile, SECRET, { mode: 0o600 });
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const nodes = new Map<number, Spawned>();
  for (const id of [1, 2, 3]) {
    nodes.set(id, spawnSynod(['start', '--id', String(id), '--peers', spec, '--data', join(dir, `node-${id}`), '--secret-file', secretFile, '--client-token-file', tokenFile]));
  }
  const endpoints = ports.map((port) => `127.0.0.1:${port.client}`);
  const client = new SynodClient({ endpoints, token: TOKEN, timeoutMs: 10_000 });
  const bearer = { authorization: `Bearer ${TOKEN}` };
  const metricsOf = async (id: number): Promise<string> => {
    const response = await fetch(`http://127.0.0.1:${(ports[id - 1] as Ports).http}/metrics`, { headers: bearer, signal: AbortSignal.timeout(5_000) });
    assert.equal(response.status, 200);
    return response.text();
  };
  const statuses = async (): Promise<NodeStatusReport[]> => (await client.statusAll()).flatMap((entry) => ('status' in entry ? [entry.status] : []));
  const logOf = (id: number): string => (nodes.get(id) as Spawned).output();
  const impostors: TcpTransport[] = [];
  try {
    // Steady state: every node answers, one serves, and all have promised its ballot (a node that
    // starts late may still win an election first). Generous: other tests share the two cores.
    const steady = async (): Promise<NodeStatusReport[] | undefined> => {
      const all = await statuses();
      const serving = all.find((status) => status.serving);
      return all.length === 3 && serving !== undefined && all.every((status) => status.ballot === serving.ballot) ? all : undefined;
    };
    await waitFor('a steady cluster', steady, 30_000);
    await client.put('before', 'x');
    const before = await waitFor('a steady cluster', steady, 30_000);
    const leader = before.find((status) => status.serving) as NodeStatusReport;

    // 1. Impostors without the secret, one per member name, dial every other node and send every
    // kind of message that could raise a promise, get a vote, or inject a value.
    impostors.push(...[1, 2, 3].map((id) => new TcpTransport({
      nodeId: id, clusterId: 'synod', secret: WRONG_SECRET, listen: { host: '127.0.0.1', port: 0 },
      peers: new Map([1, 2, 3].filter((peer) => peer !== id).map((peer) => [peer, { host: '127.0.0.1', port: (ports[peer - 1] as Ports).peer }])),
      reconnectDelayMsMin: 10, reconnectDelayMsMax: 50,
    })));
    const heard: Message[] = [];
    for (const impostor of impostors) impostor.onMessage((message) => heard.push(message));
    await Promise.all(impostors.map((impostor) => impostor.start()));
    for (let round = 0; round < 10; round += 1) {
      for (const impostor of impostors) for (const to of [1, 2, 3]) if (to !== impostor.nodeId) for (const message of forgeries(impostor.nodeId, to)) impostor.send(message);
      await sleep(50);
    }
    for (const impostor of impostors) for (const peer of impostor.stats().peers.values()) assert.equal(peer.sent, 0, 'an impostor never got a link up');
    await Promise.all(impostors.map((impostor) => impostor.stop()));
    assert.deepStrictEqual(heard, [], 'no node ever dialed an impostor');
    // A hand-driven dialer that answers the challenge with a guess.
    const guess = await RawPeer.handshake({ host: '127.0.0.1', port: (ports[leader.id - 1] as Ports).peer, clusterId: 'synod', from: leader.id === 1 ? 2 : 1, to: leader.id, secret: WRONG_SECRET });
    assert.equal(guess.outcome, 'closed-after-proof');
    assert.equal((await client.get('injected')).value, null, 'no forged value was applied');
    // Robust to a genuine election under load: legitimate rounds stay far below the forged ones.
    const after = await statuses();
    assert.equal(after.length, 3);
    for (const status of after) assert.ok(roundOf(status.ballot) < FORGED_ROUND, `node ${status.id} promised a forged ballot: ${status.ballot}`);
    assert.ok(before.every((status) => roundOf(status.ballot) < FORGED_ROUND));
    for (const id of [1, 2, 3]) {
      const metrics = await metricsOf(id);
      assert.ok(metricValue(metrics, 'synod_peer_auth_failures_total', { reason: 'handshake-abandoned' }) >= 1, `node ${id} counted the impostors:\n${metrics}`);
    }
    assert.ok(metricValue(await metricsOf(leader.id), 'synod_peer_auth_failures_total', { reason: 'bad-proof' }) >= 1);

    // 2. The secret, but a node id outside the configuration: refused at the hello, counted, logged with the address.
    const stranger = await RawPeer.handshake({ host: '127.0.0.1', port: (ports[leader.id - 1] as Ports).peer, clusterId: 'synod', from: 9, to: leader.id, secret: SECRET });
    assert.equal(stranger.outcome, 'closed-after-hello');
    assert.equal(metricValue(await metricsOf(leader.id), 'synod_peer_auth_failures_total', { reason: 'unknown-node' }), 1);
    await waitFor('the refusal in the log', () => logOf(leader.id).split('\n').find((line) => line.includes('"unknown-node"') && line.includes(`"remote":"${stranger.peer.localAddress}"`)));

    // 3. The secret and a member's id, then messages that lie about who sends or who receives.
    const follower = [1, 2, 3].find((id) => id !== leader.id) as number;
    const other = [1, 2, 3].find((id) => id !== leader.id && id !== follower) as number;
    const insider = await RawPeer.handshake({ host: '127.0.0.1', port: (ports[leader.id - 1] as Ports).peer, clusterId: 'synod', from: follower, to: leader.id, secret: SECRET });
    assert.equal(insider.outcome, 'welcome');
    insider.peer.send(
      { type: 'prepare', from: other, to: leader.id, ballot: makeBallot(FORGED_ROUND * 2, other), firstUnchosen: 1 },
      { type: 'prepare', from: 9, to: leader.id, ballot: makeBallot(FORGED_ROUND * 2, 9), firstUnchosen: 1 },
      { type: 'heartbeat', from: follower, to: other, ballot: makeBallot(FORGED_ROUND * 2, follower), commitIndex: 0, readRound: 0 },
    );
    const dropped = await waitFor('the forged messages counted', async () => {
      const metrics = await metricsOf(leader.id);
      const counts = {
        sender: metricValue(metrics, 'synod_peer_dropped_messages_total', { peer: String(follower), reason: 'wrong-sender' }),
        recipient: metricValue(metrics, 'synod_peer_dropped_messages_total', { peer: String(follower), reason: 'wrong-recipient' }),
      };
      return counts.sender === 2 && counts.recipient === 1 ? counts : undefined;
    });
    assert.deepStrictEqual(dropped, { sender: 2, recipient: 1 });
    insider.peer.close();
    const forgedLines = await waitFor('both forgeries in the log', () => {
      const lines = logOf(leader.id).split('\n').filter((line) => line.includes('message claims another sender'));
      return lines.length === 2 ? lines : undefined;
    });
    assert.ok(forgedLines.every((line) => line.includes(`"remote":"${insider.peer.localAddress}"`)), forgedLines.join('\n'));
    const promised = (await statuses()).find((status) => status.id === leader.id)?.ballot ?? '?';
    assert.ok(roundOf(promised) < FORGED_ROUND, `forged prepares raised the promise to ${promised}`);

    // 4. The client token: binary protocol, HTTP, CLI.
    const anonymous = new SynodClient({ endpoints, timeoutMs: 10_000 });
    try {
      await assert.rejects(anonymous.get('before'), (error: unknown) => error instanceof SynodClientError && error.code === 'unauthorized');
    } finally {
      await anonymous.close();
    }
    const http = `http://127.0.0.1:${(ports[leader.id - 1] as Ports).http}`;
    const refused = await fetch(`${http}/v1/kv/before`);
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /^Bearer /);
    await refused.body?.cancel();
    assert.equal((await fetch(`${http}/metrics`)).status, 401);
    assert.equal((await fetch(`${http}/healthz`)).status, 200);
    assert.equal(((await (await fetch(`${http}/v1/kv/before`, { headers: bearer })).json()) as { value: string }).value, 'x');
    const cli = await runSynod(['get', 'before', '--endpoints', endpoints.join(','), '--token-file', tokenFile]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout.trim(), 'x');
    const cliWithout = await runSynod(['get', 'before', '--endpoints', endpoints.join(','), '--timeout', '10000']);
    assert.equal(cliWithout.code, 1);
    assert.match(cliWithout.stderr, /unauthorized/);
    // The binary refusals happen at whichever node a client dialed first; the HTTP ones at the leader's port.
    const all = await Promise.all([1, 2, 3].map((id) => metricsOf(id)));
    const binaryRefusals = all.reduce((sum, text) => sum + metricValue(text, 'synod_client_auth_failures_total', { api: 'binary', reason: 'missing-token' }), 0);
    assert.ok(binaryRefusals >= 2, all.join('\n'));
    assert.ok(metricValue(all[leader.id - 1] as string, 'synod_client_auth_failures_total', { api: 'http', reason: 'missing-token' }) >= 2);
    for (const id of [1, 2, 3]) assert.ok(!logOf(id).includes(TOKEN) && !logOf(id).includes(SECRET), `node ${id} logged a secret`);
  } finally {
    await Promise.all(impostors.map((impostor) => impostor.stop()));
    await client.close();
    await Promise.all([...nodes.values()].map((node) => stopProcess(node.child)));
    await rm(dir, { recursive: true, force: true });
  }
});

test('synod start binds the client and HTTP APIs to 127.0.0.1 by default, whatever address the member entry advertises', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-bind-'));
  const [peer, clientPort, httpPort] = (await freePorts(3)) as [number, number, number];
  await writeFile(join(dir, 'secret'), SECRET, { mode: 0o600 });
  // The member advertises 127.0.0.2 (another loopback address, standing in for a LAN address).
  const node = spawnSynod(['start', '--id', '1', '--peers', `1=127.0.0.2:${peer}:${clientPort}:${httpPort}`, '--data', join(dir, 'data'), '--secret-file', join(dir, 'secret')]);
  const client = new SynodClient({ endpoints: [`127.0.0.1:${clientPort}`], timeoutMs: 10_000 });
  try {
    const serving = await waitFor('the serving line', () => node.output().split('\n').find((line) => line.includes('"msg":"serving"')), 20_000);
    const addresses = JSON.parse(serving) as { client: string; http: string; peer: string };
    assert.equal(addresses.client, `127.0.0.1:${clientPort}`);
    assert.equal(addresses.http, `127.0.0.1:${httpPort}`);
    assert.equal(addresses.peer, `127.0.0.2:${peer}`, 'the peer listener binds the advertised address');
    await client.put('k', 'v');
    assert.equal((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status, 200);
    for (const port of [clientPort, httpPort]) {
      const outcome = await new Promise<string>((resolve) => {
        const socket = connect(port, '127.0.0.2', () => {
          socket.destroy();
          resolve('connected');
        });
        socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      });
      assert.equal(outcome, 'ECONNREFUSED', `port ${port} must not be reachable on the advertised address`);
    }
  } finally {
    await client.close();
    await stopProcess(node.child);
    await rm(dir, { recursive: true, force: true });
  }
});

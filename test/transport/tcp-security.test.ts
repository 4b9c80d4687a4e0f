/**
 * The transport's defences, probed from outside: hand-driven handshakes (a non-member id with the
 * right secret, a wrong proof, forged senders and recipients on an authenticated link) and TLS
 * (plaintext dialers, untrusted certificates, mutual TLS), each checked for what was delivered,
 * what was counted and what was logged, with the remote address.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeBallot, type NodeId } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import { LimitedLogger } from '../../src/transport/log-limit.js';
import { TcpTransport, type PeerTlsOptions, type TcpAddress, type TcpTransportOptions } from '../../src/transport/tcp.js';
import type { TransportLogger } from '../../src/transport/transport.js';
import { makeCa, type CertFiles, type TestCa } from '../helpers/certs.js';
import { freePorts } from '../helpers/ports.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { runTransportConformance, waitFor } from './conformance.js';

const HOST = '127.0.0.1';
const CLUSTER = 'security-cluster';
const SECRET = 'the real cluster secret, 32 bytes';

class RecordingLogger implements TransportLogger {
  readonly lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
  warn(fields: object, message: string): void {
    this.lines.push({ level: 'warn', fields: { ...fields }, message });
  }
  info(fields: object, message: string): void {
    this.lines.push({ level: 'info', fields: { ...fields }, message });
  }
  warnings(): { fields: Record<string, unknown>; message: string }[] {
    return this.lines.filter((line) => line.level === 'warn');
  }
}

async function addressesFor(nodeIds: readonly NodeId[]): Promise<Map<NodeId, TcpAddress>> {
  const ports = await freePorts(nodeIds.length);
  return new Map(nodeIds.map((nodeId, index) => [nodeId, { host: HOST, port: ports[index] ?? 0 }]));
}

function makeNode(nodeId: NodeId, addresses: Map<NodeId, TcpAddress>, overrides: Partial<TcpTransportOptions> = {}): TcpTransport {
  const listen = addresses.get(nodeId);
  assert.ok(listen !== undefined);
  return new TcpTransport({
    nodeId, clusterId: CLUSTER, secret: SECRET, listen, peers: new Map([...addresses].filter(([peerId]) => peerId !== nodeId)),
    reconnectDelayMsMin: 10, reconnectDelayMsMax: 100, handshakeTimeoutMs: 2_000, ...overrides,
  });
}

function heartbeat(from: NodeId, to: NodeId, commitIndex = 0): Message {
  return { type: 'heartbeat', from, to, ballot: makeBallot(1, from), commitIndex, readRound: 0 };
}

/** Starts `node`, records what it delivers, runs `body`, stops it. */
async function withNode(node: TcpTransport, body: (inbox: Message[]) => Promise<void>): Promise<void> {
  const inbox: Message[] = [];
  node.onMessage((message) => inbox.push(message));
  await node.start();
  try {
    await body(inbox);
  } finally {
    await node.stop();
  }
}

test('tcp security: a peer with the secret but a non-member id is refused at its hello, counted, and logged with its address', async () => {
  const addresses = await addressesFor([1, 2]);
  const log = new RecordingLogger();
  const node = makeNode(2, addresses, { logger: log });
  await withNode(node, async (inbox) => {
    const address = addresses.get(2) as TcpAddress;
    const { peer, outcome } = await RawPeer.handshake({ ...address, clusterId: CLUSTER, from: 9, to: 2, secret: SECRET });
    await peer.closed;
    assert.equal(outcome, 'closed-after-hello', 'no challenge for a node id outside the configuration');
    assert.equal(node.stats().authFailuresByReason['unknown-node'], 1);
    const warning = log.warnings().find((line) => line.fields.reason === 'unknown-node');
    assert.ok(warning !== undefined, JSON.stringify(log.lines));
    assert.equal(warning.fields.remote, peer.localAddress);
    assert.deepStrictEqual(inbox, []);
  });
});

test('tcp security: a wrong proof is refused (bad-proof) and nothing it sends afterwards is delivered', async () => {
  const addresses = await addressesFor([1, 2]);
  const log = new RecordingLogger();
  const node = makeNode(2, addresses, { logger: log });
  await withNode(node, async (inbox) => {
    const address = addresses.get(2) as TcpAddress;
    const { peer, outcome } = await RawPeer.handshake({ ...address, clusterId: CLUSTER, from: 1, to: 2, secret: 'a guess at the secret, 32 bytes!' });
    peer.send({ type: 'prepare', from: 1, to: 2, ballot: makeBallot(99, 1), firstUnchosen: 1 });
    await peer.closed;
    assert.equal(outcome, 'closed-after-proof');
    assert.equal(node.stats().authFailuresByReason['bad-proof'], 1);
    assert.equal(log.warnings().find((line) => line.fields.reason === 'bad-proof')?.fields.remote, peer.localAddress);
    assert.deepStrictEqual(inbox, []);
    assert.equal(node.stats().peers.get(1)?.received, 0);
  });
});

test('tcp security: on an authenticated link, forged senders (member or not) and foreign recipients are dropped, counted per link and logged with the address', async () => {
  const addresses = await addressesFor([1, 2, 3]);
  const log = new RecordingLogger();
  const node = makeNode(2, addresses, { logger: log });
  await withNode(node, async (inbox) => {
    const address = addresses.get(2) as TcpAddress;
    const { peer, outcome } = await RawPeer.handshake({ ...address, clusterId: CLUSTER, from: 1, to: 2, secret: SECRET });
    assert.equal(outcome, 'welcome');
    try {
      peer.send(
        { type: 'prepare', from: 3, to: 2, ballot: makeBallot(50, 3), firstUnchosen: 1 }, // another member's name
        { type: 'prepare', from: 9, to: 2, ballot: makeBallot(50, 9), firstUnchosen: 1 }, // not a member at all
        heartbeat(1, 3), // for someone else
        heartbeat(1, 2, 4), // honest
      );
      await waitFor(() => inbox.length === 1, 'the honest message');
      assert.deepStrictEqual(inbox, [heartbeat(1, 2, 4)]);
      const stats = node.stats().peers.get(1);
      assert.equal(stats?.droppedByReason['wrong-sender'], 2);
      assert.equal(stats?.droppedByReason['wrong-recipient'], 1);
      const forged = log.warnings().filter((line) => line.message.includes('claims another sender'));
      assert.deepStrictEqual(forged.map((line) => line.fields.claimed), [3, 9]);
      for (const line of forged) assert.equal(line.fields.remote, peer.localAddress);
      assert.equal(log.warnings().find((line) => line.message.includes('addressed to another node'))?.fields.remote, peer.localAddress);
    } finally {
      peer.close();
    }
  });
});

test('tcp security: refusal logs are rate-limited per message; counters still count every refusal', async () => {
  const addresses = await addressesFor([1, 2]);
  const log = new RecordingLogger();
  const node = makeNode(2, addresses, { logger: log });
  await withNode(node, async () => {
    const address = addresses.get(2) as TcpAddress;
    const { peer } = await RawPeer.handshake({ ...address, clusterId: CLUSTER, from: 1, to: 2, secret: SECRET });
    try {
      peer.send(...Array.from({ length: 500 }, () => heartbeat(3, 2)));
      await waitFor(() => node.stats().peers.get(1)?.droppedByReason['wrong-sender'] === 500, 'every forged message counted');
      const lines = log.warnings().filter((line) => line.message.includes('claims another sender'));
      assert.ok(lines.length <= 20, `${lines.length} lines for 500 forged messages`);
    } finally {
      peer.close();
    }
  });
});

test('LimitedLogger: a burst per message per window, then the count of what was suppressed', () => {
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  let nowMs = 0;
  const logger = new LimitedLogger({ warn: (fields, message) => lines.push({ fields: { ...fields }, message }), info: () => {} }, { burst: 2, windowMs: 1_000, now: () => nowMs });
  for (let index = 0; index < 5; index += 1) logger.warn({ index }, 'a');
  logger.warn({}, 'b');
  logger.warn({ reason: 'other' }, 'a'); // another reason has its own budget
  assert.deepStrictEqual(lines.map((line) => line.message), ['a', 'a', 'b', 'a']);
  lines.pop();
  nowMs = 1_000;
  logger.warn({ index: 5 }, 'a');
  assert.deepStrictEqual(lines.at(-1), { fields: { index: 5, suppressed: 3 }, message: 'a' });
  logger.warn({ index: 6 }, 'a');
  assert.deepStrictEqual(lines.at(-1), { fields: { index: 6 }, message: 'a' });
});

// TLS.

let dir = '';
let ca: TestCa;
let nodeCert: CertFiles;
let rogueCa: TestCa;
let rogueCert: CertFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'synod-tls-transport-'));
  ca = await makeCa(dir, 'cluster-ca');
  rogueCa = await makeCa(dir, 'rogue-ca');
  [nodeCert, rogueCert] = await Promise.all([ca.issue('node'), rogueCa.issue('rogue')]);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function clusterTls(mutual: boolean): PeerTlsOptions {
  return { cert: nodeCert.cert, key: nodeCert.key, ca: ca.cert, mutual };
}

runTransportConformance('tcp+mutual-tls', async (nodeIds) => {
  const addresses = await addressesFor(nodeIds);
  const transports = new Map(nodeIds.map((nodeId) => [nodeId, makeNode(nodeId, addresses, { tls: clusterTls(true) })]));
  return {
    transports,
    cleanup: async () => {
      await Promise.all([...transports.values()].map((transport) => transport.stop()));
    },
  };
});

test('tls: two transports talk over TLS, and the HMAC handshake still runs inside it', async () => {
  const addresses = await addressesFor([1, 2]);
  const one = makeNode(1, addresses, { tls: clusterTls(true) });
  const two = makeNode(2, addresses, { tls: clusterTls(true) });
  assert.ok(one.tls && two.tls);
  await withNode(two, async (inbox) => {
    await withNode(one, async () => {
      one.send(heartbeat(1, 2, 3));
      await waitFor(() => inbox.length === 1, 'delivery over TLS');
    });
    // With the CA's certificate but the wrong secret, TLS succeeds and the HMAC proof still fails.
    const { peer, outcome } = await RawPeer.handshake({
      ...(addresses.get(2) as TcpAddress), clusterId: CLUSTER, from: 1, to: 2, secret: 'a guess at the secret, 32 bytes!',
      tls: { ca: ca.cert, cert: nodeCert.cert, key: nodeCert.key },
    });
    await peer.closed;
    assert.equal(outcome, 'closed-after-proof');
    assert.equal(two.stats().authFailuresByReason['bad-proof'], 1);
    assert.equal(inbox.length, 1);
  });
});

test('tls: a plaintext dialer with the right secret is refused at the TLS layer, counted and logged', async () => {
  const addresses = await addressesFor([1, 2]);
  const log = new RecordingLogger();
  const two = makeNode(2, addresses, { tls: clusterTls(false), logger: log });
  const plain = makeNode(1, addresses);
  await withNode(two, async (inbox) => {
    await withNode(plain, async () => {
      for (let index = 0; index < 5; index += 1) plain.send(heartbeat(1, 2, index));
      await waitFor(() => (two.stats().authFailuresByReason.tls ?? 0) >= 1, 'a TLS refusal');
    });
    assert.deepStrictEqual(inbox, []);
    assert.ok(log.warnings().some((line) => line.fields.reason === 'tls' && typeof line.fields.remote === 'string'), JSON.stringify(log.lines));
  });
});

test('tls: a dialer refuses a listener whose certificate its CA did not sign, and sends nothing', async () => {
  const addresses = await addressesFor([1, 2]);
  const log = new RecordingLogger();
  const impostor = makeNode(2, addresses, { tls: { cert: rogueCert.cert, key: rogueCert.key, ca: rogueCa.cert } });
  const one = makeNode(1, addresses, { tls: clusterTls(false), logger: log });
  await withNode(impostor, async (inbox) => {
    await withNode(one, async () => {
      one.send(heartbeat(1, 2));
      await waitFor(() => (one.stats().authFailuresByReason.tls ?? 0) >= 1, 'the dialer refusing the certificate');
      assert.equal(one.stats().peers.get(2)?.sent, 0);
      assert.ok(log.warnings().some((line) => line.fields.reason === 'tls' && line.fields.peerId === 2));
    });
    assert.deepStrictEqual(inbox, []);
  });
});

test('tls: under mutual TLS a dialer without a certificate from the cluster CA never reaches the HMAC handshake', async () => {
  const addresses = await addressesFor([1, 2]);
  const two = makeNode(2, addresses, { tls: clusterTls(true) });
  await withNode(two, async (inbox) => {
    for (const clientTls of [{ ca: ca.cert }, { ca: ca.cert, cert: rogueCert.cert, key: rogueCert.key }]) {
      const attempt = RawPeer.handshake({ ...(addresses.get(2) as TcpAddress), clusterId: CLUSTER, from: 1, to: 2, secret: SECRET, tls: clientTls });
      // TLS 1.3 completes the client's side before the server checks its certificate; the server
      // then closes without a challenge. Either way no welcome.
      const outcome = await attempt.then((result) => result.outcome, () => 'refused');
      assert.notEqual(outcome, 'welcome');
    }
    await waitFor(() => (two.stats().authFailuresByReason.tls ?? 0) >= 2, 'both TLS refusals counted');
    assert.equal(two.stats().authFailuresByReason['bad-proof'] ?? 0, 0);
    assert.deepStrictEqual(inbox, []);
  });
});

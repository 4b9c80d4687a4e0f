import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { makeBallot, type NodeId } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import { encodeMessage } from '../../src/transport/codec.js';
import { FrameDecoder, encodeFrame } from '../../src/transport/framing.js';
import { decodeChallenge, encodeHello, encodeProof, handshakeProof, makeNonce } from '../../src/transport/handshake.js';
import { TcpTransport, type TcpAddress, type TcpTransportOptions } from '../../src/transport/tcp.js';
import type { Transport, TransportLogger } from '../../src/transport/transport.js';
import { runTransportConformance, waitFor } from './conformance.js';

const HOST = '127.0.0.1';
const SECRET = 'a shared secret of enough bytes';

/** Ports the OS says are free right now (listen on 0, note the port, close). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server));
  })));
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** A logger that remembers warnings, so tests can check that refusals are logged with a reason. */
class RecordingLogger implements TransportLogger {
  readonly warnings: { fields: Record<string, unknown>; message: string }[] = [];
  warn(fields: object, message: string): void {
    this.warnings.push({ fields: { ...fields }, message });
  }
  info(): void {}
  reasons(): unknown[] {
    return this.warnings.map((warning) => warning.fields.reason);
  }
}

/** Addresses for `nodeIds` on fresh ports. */
async function addressesFor(nodeIds: readonly NodeId[]): Promise<Map<NodeId, TcpAddress>> {
  const ports = await freePorts(nodeIds.length);
  return new Map(nodeIds.map((nodeId, index) => [nodeId, { host: HOST, port: ports[index] ?? 0 }]));
}

/** A transport for `nodeId` that knows every other address in `addresses` as a peer. */
function makeNode(nodeId: NodeId, addresses: Map<NodeId, TcpAddress>, overrides: Partial<TcpTransportOptions> = {}): TcpTransport {
  const listen = addresses.get(nodeId);
  assert.ok(listen !== undefined);
  const peers = new Map([...addresses].filter(([peerId]) => peerId !== nodeId));
  return new TcpTransport({
    nodeId, clusterId: 'test-cluster', secret: SECRET, listen, peers,
    reconnectDelayMsMin: 10, reconnectDelayMsMax: 100, handshakeTimeoutMs: 1_000, ...overrides,
  });
}

function heartbeat(from: NodeId, to: NodeId, commitIndex = 0): Message {
  return { type: 'heartbeat', from, to, ballot: makeBallot(1, from), commitIndex, readRound: 0 };
}

/** Starts `transports` and returns what each receives; stops them all when `body` ends. */
async function withNodes(transports: TcpTransport[], body: (inboxes: [Message[], ...Message[][]]) => Promise<void>): Promise<void> {
  const inboxes: Message[][] = transports.map((transport) => {
    const inbox: Message[] = [];
    transport.onMessage((message) => inbox.push(message));
    return inbox;
  });
  try {
    await Promise.all(transports.map((transport) => transport.start()));
    const [first = [], ...rest] = inboxes;
    await body([first, ...rest]);
  } finally {
    await Promise.all(transports.map((transport) => transport.stop()));
  }
}

runTransportConformance('tcp', async (nodeIds) => {
  const addresses = await addressesFor(nodeIds);
  const transports = new Map<NodeId, Transport>(nodeIds.map((nodeId) => [nodeId, makeNode(nodeId, addresses)]));
  return {
    transports,
    cleanup: async () => {
      await Promise.all([...transports.values()].map((transport) => transport.stop()));
    },
  };
});

/** Runs a refused-handshake scenario: node 1 (with `dialerOverrides`) keeps dialing node 2. */
async function assertRefused(
  dialerOverrides: Partial<TcpTransportOptions>,
  reasonAtListener: string,
  dialerAddresses?: (addresses: Map<NodeId, TcpAddress>) => Map<NodeId, TcpAddress>,
): Promise<void> {
  const addresses = await addressesFor([1, 2]);
  const listenerLog = new RecordingLogger();
  const dialerNodeId = dialerOverrides.nodeId ?? 1;
  const dialerMap = dialerAddresses?.(addresses) ?? addresses;
  const dialer = makeNode(dialerNodeId, dialerMap, dialerOverrides);
  const listener = makeNode(2, addresses, { logger: listenerLog });
  await withNodes([dialer, listener], async ([, listenerInbox]) => {
    for (let index = 0; index < 5; index += 1) dialer.send(heartbeat(dialerNodeId, 2, index));
    await waitFor(() => listener.stats().authFailures >= 2, 'repeated refusals');
    assert.deepStrictEqual(listenerInbox, []);
    assert.ok(((listener.stats().authFailuresByReason as Record<string, number>)[reasonAtListener] ?? 0) >= 1);
    assert.ok(listenerLog.reasons().includes(reasonAtListener), `logged reasons: ${JSON.stringify(listenerLog.reasons())}`);
    assert.notEqual(dialer.stats().peers.get(2)?.state, 'connected');
    assert.equal(dialer.stats().peers.get(2)?.sent, 0);
  });
}

test('tcp: a dialer with the wrong secret is refused; both sides count it', async () => {
  await assertRefused({ secret: 'another secret, also long enough' }, 'bad-proof');
});

test('tcp: a dialer with the wrong cluster id is refused', async () => {
  await assertRefused({ clusterId: 'other-cluster' }, 'wrong-cluster');
});

test('tcp: a dialer claiming a node id the listener does not know is refused', async () => {
  await assertRefused({ nodeId: 9 }, 'unknown-node', (addresses) => new Map([...addresses, [9, { host: HOST, port: 1 }]]));
});

test('tcp: the dialer refuses a listener without the secret (mutual authentication)', async () => {
  const addresses = await addressesFor([1, 2]);
  const dialerLog = new RecordingLogger();
  const dialer = makeNode(1, addresses, { logger: dialerLog });
  const impostor = makeNode(2, addresses, { secret: 'the impostor does not know it!!' });
  await withNodes([dialer, impostor], async () => {
    dialer.send(heartbeat(1, 2));
    await waitFor(() => dialer.stats().authFailuresByReason['bad-proof'] !== undefined, 'dialer-side refusal');
    assert.ok(dialerLog.reasons().includes('bad-proof'));
    assert.equal(dialer.stats().peers.get(2)?.sent, 0);
  });
});

/** Opens a raw socket, writes `bytes`, and resolves when the node closes it. */
async function rawExchange(address: TcpAddress, bytes: Uint8Array): Promise<void> {
  const socket = net.connect(address.port, address.host);
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise<void>((resolve) => socket.on('connect', resolve));
  socket.write(bytes);
  await new Promise<void>((resolve) => socket.on('close', () => resolve()));
}

test('tcp: garbage, oversized prefixes and unauthenticated messages close the socket; the node keeps working', async () => {
  const addresses = await addressesFor([1, 2]);
  const one = makeNode(1, addresses);
  const two = makeNode(2, addresses);
  const address = addresses.get(2);
  assert.ok(address !== undefined);
  await withNodes([two], async ([inbox]) => {
    await rawExchange(address, new Uint8Array([0, 0, 0, 3, 0xc1, 0xc1, 0xc1]));
    await rawExchange(address, new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    await rawExchange(address, encodeFrame(encodeMessage(heartbeat(1, 2))));
    assert.deepStrictEqual(inbox, []);
    assert.equal(two.stats().authFailuresByReason['malformed-handshake'], 3);
    await withNodes([one], async () => {
      one.send(heartbeat(1, 2, 7));
      await waitFor(() => inbox.length === 1, 'delivery from the legitimate peer');
      assert.deepStrictEqual(inbox, [heartbeat(1, 2, 7)]);
    });
  });
});

test('tcp: reconnects after the peer restarts', async () => {
  const addresses = await addressesFor([1, 2]);
  const one = makeNode(1, addresses);
  const first = makeNode(2, addresses);
  const received: Message[] = [];
  first.onMessage((message) => received.push(message));
  await one.start();
  try {
    await first.start();
    one.send(heartbeat(1, 2, 1));
    await waitFor(() => received.length === 1, 'first delivery');
    await first.stop();
    const second = makeNode(2, addresses);
    second.onMessage((message) => received.push(message));
    await second.start();
    try {
      // Messages sent while the old connection dies may be lost; keep sending until one lands.
      let commitIndex = 2;
      await waitFor(() => {
        one.send(heartbeat(1, 2, commitIndex++));
        return received.length >= 2;
      }, 'delivery after restart');
      assert.ok((one.stats().peers.get(2)?.connections ?? 0) >= 2);
    } finally {
      await second.stop();
    }
  } finally {
    await Promise.all([one.stop(), first.stop()]);
  }
});

test('tcp: a full peer queue drops new messages and counts them', async () => {
  const addresses = await addressesFor([1, 2]);
  // Node 2 never starts, so nothing drains node 1's queue.
  const one = makeNode(1, addresses, { peerQueueBytesMax: 1_000 });
  await withNodes([one], async () => {
    for (let index = 0; index < 100; index += 1) one.send(heartbeat(1, 2, index));
    const stats = one.stats().peers.get(2);
    assert.ok(stats !== undefined);
    const frameBytes = encodeFrame(encodeMessage(heartbeat(1, 2, 0))).byteLength;
    const queued = Math.floor(1_000 / frameBytes);
    assert.equal(stats.queueBytes, queued * frameBytes);
    assert.equal(stats.droppedByReason['queue-full'], 100 - queued);
    assert.equal(stats.sent, 0);
  });
});

test('tcp: frames above frameBytesMax are not sent', async () => {
  const addresses = await addressesFor([1, 2]);
  const one = makeNode(1, addresses, { frameBytesMax: 64 });
  await withNodes([one], async () => {
    one.send({ type: 'learn', from: 1, to: 2, slots: Array.from({ length: 100 }, (_, index) => index + 1) });
    assert.equal(one.stats().peers.get(2)?.droppedByReason['too-large'], 1);
  });
});

/** A raw client that completes the handshake honestly, then lets the test write anything. */
async function authenticatedSocket(address: TcpAddress, dialerId: NodeId, listenerId: NodeId): Promise<net.Socket> {
  const socket = net.connect(address.port, address.host);
  socket.on('error', () => {});
  const decoder = new FrameDecoder(1024);
  const frames: Uint8Array[] = [];
  socket.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk)));
  await new Promise<void>((resolve) => socket.on('connect', resolve));
  const dialerNonce = makeNonce();
  socket.write(encodeFrame(encodeHello({ clusterId: 'test-cluster', from: dialerId, to: listenerId, nonce: dialerNonce })));
  await waitFor(() => frames.length === 1, 'challenge');
  const challenge = decodeChallenge(frames[0] ?? new Uint8Array(0));
  const context = { clusterId: 'test-cluster', dialerId, listenerId, dialerNonce, listenerNonce: challenge.nonce };
  socket.write(encodeFrame(encodeProof(handshakeProof(Buffer.from(SECRET), 'dialer', context))));
  await waitFor(() => frames.length === 2, 'welcome');
  return socket;
}

test('tcp: an authenticated peer that lies about the sender or recipient has those messages dropped', async () => {
  const addresses = await addressesFor([1, 2, 3]);
  const two = makeNode(2, addresses);
  const address = addresses.get(2);
  assert.ok(address !== undefined);
  await withNodes([two], async ([inbox]) => {
    const socket = await authenticatedSocket(address, 1, 2);
    try {
      socket.write(Buffer.concat([
        encodeFrame(encodeMessage(heartbeat(3, 2))), // claims to be node 3
        encodeFrame(encodeMessage(heartbeat(1, 3))), // addressed to node 3
        encodeFrame(encodeMessage(heartbeat(1, 2, 5))),
      ]));
      await waitFor(() => inbox.length === 1, 'the honest message');
      assert.deepStrictEqual(inbox, [heartbeat(1, 2, 5)]);
      const stats = two.stats().peers.get(1);
      assert.equal(stats?.droppedByReason['wrong-sender'], 1);
      assert.equal(stats?.droppedByReason['wrong-recipient'], 1);
      assert.equal(stats?.received, 1);
    } finally {
      socket.destroy();
    }
  });
});

test('tcp: a malformed message or oversized frame from an authenticated peer closes its connection', async () => {
  const addresses = await addressesFor([1, 2]);
  const two = makeNode(2, addresses, { frameBytesMax: 10_000 });
  const address = addresses.get(2);
  assert.ok(address !== undefined);
  await withNodes([two], async ([inbox]) => {
    for (const bytes of [encodeFrame(new Uint8Array([0x81, 0xa1, 0x78, 0x01])), Buffer.from([0, 1, 0, 0])]) {
      const socket = await authenticatedSocket(address, 1, 2);
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      // The message after the bad frame must not be delivered either.
      socket.write(Buffer.concat([bytes, encodeFrame(encodeMessage(heartbeat(1, 2)))]));
      await closed;
    }
    assert.deepStrictEqual(inbox, []);
    const stats = two.stats().peers.get(1);
    assert.equal(stats?.droppedByReason.malformed, 1);
    assert.equal(stats?.droppedByReason['frame-too-large'], 1);
    const one = makeNode(1, addresses);
    await withNodes([one], async () => {
      one.send(heartbeat(1, 2, 9));
      await waitFor(() => inbox.length === 1, 'delivery after the bad connections');
    });
  });
});

test('tcp: messages queued in one tick go out in one socket write', async () => {
  const addresses = await addressesFor([1, 2]);
  const one = makeNode(1, addresses);
  const two = makeNode(2, addresses);
  await withNodes([one, two], async (inboxes) => {
    const inbox = inboxes[1] ?? [];
    one.send(heartbeat(1, 2));
    await waitFor(() => inbox.length === 1, 'connection established');
    const write = net.Socket.prototype.write;
    let writes = 0;
    net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof write>) {
      writes += 1;
      return write.apply(this, args);
    } as typeof write;
    try {
      for (let index = 0; index < 200; index += 1) one.send(heartbeat(1, 2, index));
      await waitFor(() => inbox.length === 201, 'the burst');
    } finally {
      net.Socket.prototype.write = write;
    }
    assert.equal(writes, 1);
  });
});

/**
 * Fuzzing a real `TcpTransport` listener over loopback: seeded streams of garbage and mutated
 * frames, written in random chunks, before and after an honest handshake. Every such connection
 * must be closed by the node with a counted, typed refusal (an auth failure reason before the
 * handshake; a `malformed` or `frame-too-large` drop after it), within the handshake timeout at
 * worst, and the node must keep delivering a legitimate peer's messages afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { makeBallot, type NodeId } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import { decodeMessage, encodeMessage } from '../../src/transport/codec.js';
import { FrameDecoder, encodeFrame } from '../../src/transport/framing.js';
import { decodeChallenge, encodeHello, encodeProof, handshakeProof, makeNonce } from '../../src/transport/handshake.js';
import { TcpTransport, type TcpAddress } from '../../src/transport/tcp.js';
import type { TransportStats } from '../../src/transport/transport.js';
import { freePorts } from '../helpers/ports.js';
import { messageArbitrary } from './arbitraries.js';
import { applyEdits, byteEditsArbitrary, concat, fuzzScale, fuzzSeed, seededRandom } from './mutate.js';

const HOST = '127.0.0.1';
const CLUSTER = 'fuzz-cluster';
const SECRET = 'the fuzz cluster shared secret';
const HANDSHAKE_TIMEOUT_MS = 500;
const STREAMS = 24 * fuzzScale();

async function addresses(ids: readonly NodeId[]): Promise<Map<NodeId, TcpAddress>> {
  const ports = await freePorts(ids.length);
  return new Map(ids.map((id, index) => [id, { host: HOST, port: ports[index] ?? 0 }]));
}

/** Frames above this are refused by the fuzzed node (small, so a mutated length cannot stall it long). */
const FRAME_BYTES_MAX = 4096;

function node(id: NodeId, all: Map<NodeId, TcpAddress>): TcpTransport {
  const listen = all.get(id);
  assert.ok(listen !== undefined);
  return new TcpTransport({
    nodeId: id, clusterId: CLUSTER, secret: SECRET, listen, peers: new Map([...all].filter(([peer]) => peer !== id)),
    reconnectDelayMsMin: 10, reconnectDelayMsMax: 50, handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, frameBytesMax: FRAME_BYTES_MAX,
  });
}

/** Samples fast-check values from a seeded stream (deterministic, no property run). */
function sampler(seed: number): <T>(arbitrary: fc.Arbitrary<T>) => T {
  let next = seed;
  return (arbitrary) => {
    next += 1;
    const [value] = fc.sample(arbitrary, { seed: next, numRuns: 1 });
    if (value === undefined) throw new Error('fc.sample gave nothing');
    return value;
  };
}

/** Writes `bytes` in random chunks, yielding to the event loop between them. */
async function writeChunked(socket: net.Socket, bytes: Uint8Array, random: () => number): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength && !socket.destroyed) {
    const size = 1 + Math.floor(random() * 40);
    socket.write(bytes.subarray(offset, offset + size));
    offset += size;
    if (random() < 0.3) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Resolves when `socket` closes; rejects if that takes longer than `timeoutMs`. */
function closedWithin(socket: net.Socket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      resolve();
      return;
    }
    const timer = setTimeout(() => reject(new Error(`the node kept a fuzzed connection open for ${timeoutMs} ms`)), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function connect(address: TcpAddress): Promise<net.Socket> {
  const socket = net.connect(address.port, address.host);
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Completes an honest handshake as `dialerId`, then hands the socket over. */
async function authenticated(address: TcpAddress, dialerId: NodeId, listenerId: NodeId): Promise<net.Socket> {
  const socket = net.connect(address.port, address.host);
  socket.on('error', () => {});
  const decoder = new FrameDecoder(1024);
  const frames: Uint8Array[] = [];
  let wake: (() => void) | null = null;
  const onData = (chunk: Buffer): void => {
    frames.push(...decoder.push(chunk));
    wake?.();
  };
  socket.on('data', onData);
  const nextFrame = async (): Promise<Uint8Array> => {
    while (frames.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return frames.shift() ?? new Uint8Array(0);
  };
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const dialerNonce = makeNonce();
  socket.write(encodeFrame(encodeHello({ clusterId: CLUSTER, from: dialerId, to: listenerId, nonce: dialerNonce })));
  const challenge = decodeChallenge(await nextFrame());
  const context = { clusterId: CLUSTER, dialerId, listenerId, dialerNonce, listenerNonce: challenge.nonce };
  socket.write(encodeFrame(encodeProof(handshakeProof(Buffer.from(SECRET), 'dialer', context))));
  await nextFrame(); // the welcome
  socket.off('data', onData);
  socket.on('data', () => {});
  return socket;
}

function heartbeat(from: NodeId, to: NodeId, commitIndex: number): Message {
  return { type: 'heartbeat', from, to, ballot: makeBallot(1, from), commitIndex, readRound: 0 };
}

function dropped(stats: TransportStats, peer: NodeId): Record<string, number> {
  return { ...(stats.peers.get(peer)?.droppedByReason ?? {}) };
}

/**
 * Ends every post-handshake stream: a frame that is never a message (0xc1 is not MessagePack),
 * then enough 0xff bytes to complete any frame a mutated length left open and to read a length
 * prefix above the limit. Whatever state the stream left the decoder in, the connection closes
 * on a typed drop. (An authenticated peer that stops mid-frame keeps its one connection until it
 * redials: peers hold the cluster secret, and a redial replaces the old connection.)
 */
const STREAM_END = concat([encodeFrame(new Uint8Array([0xc1])), new Uint8Array(FRAME_BYTES_MAX + 16).fill(0xff)]);

test('peer tcp fuzz: garbage and mutated handshakes before authentication are each refused once, with a typed reason', async () => {
  const all = await addresses([1, 2, 3]);
  const two = node(2, all);
  const address = all.get(2);
  assert.ok(address !== undefined);
  const inbox: Message[] = [];
  two.onMessage((message) => inbox.push(message));
  await two.start();
  try {
    const random = seededRandom(fuzzSeed(4242));
    const sample = sampler(fuzzSeed(4242));
    for (let index = 0; index < STREAMS; index += 1) {
      const hello = encodeFrame(encodeHello({ clusterId: CLUSTER, from: 1 + (index % 3), to: 2, nonce: makeNonce() }));
      const kind = index % 4;
      let stream: Uint8Array;
      if (kind === 0) stream = sample(fc.uint8Array({ minLength: 1, maxLength: 600 }));
      else if (kind === 1) stream = applyEdits(hello, sample(byteEditsArbitrary));
      else if (kind === 2) stream = concat([hello, sample(fc.uint8Array({ minLength: 1, maxLength: 300 }))]);
      else stream = concat([hello, encodeFrame(encodeMessage(heartbeat(1, 2, index)))]);
      const before = two.stats().authFailures;
      const socket = await connect(address);
      await writeChunked(socket, stream, random);
      await closedWithin(socket, HANDSHAKE_TIMEOUT_MS + 2_000);
      // The refusal is counted once, when the node gives up on the connection (maybe on a timer).
      const deadline = Date.now() + 2_000;
      while (two.stats().authFailures === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(two.stats().authFailures, before + 1, `stream ${index} (kind ${kind}) refused exactly once`);
    }
    assert.deepStrictEqual(inbox, [], 'nothing from an unauthenticated connection is delivered');
    const reasons = two.stats().authFailuresByReason;
    assert.ok(Object.keys(reasons).length >= 2, `typed reasons: ${JSON.stringify(reasons)}`);
    const one = node(1, all);
    await one.start();
    try {
      one.send(heartbeat(1, 2, 99));
      const deadline = Date.now() + 5_000;
      while (inbox.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepStrictEqual(inbox, [heartbeat(1, 2, 99)], 'the node still takes a legitimate peer');
    } finally {
      await one.stop();
    }
  } finally {
    await two.stop();
  }
});

test('peer tcp fuzz: garbage and mutated messages after an honest handshake close the connection with a counted drop', async () => {
  const all = await addresses([1, 2, 3]);
  const two = node(2, all);
  const address = all.get(2);
  assert.ok(address !== undefined);
  const inbox: Message[] = [];
  two.onMessage((message) => inbox.push(message));
  await two.start();
  try {
    const random = seededRandom(fuzzSeed(777));
    const sample = sampler(fuzzSeed(777));
    let closures = 0;
    for (let index = 0; index < STREAMS; index += 1) {
      const dialer = index % 2 === 0 ? 1 : 3;
      const frames: Uint8Array[] = [];
      const count = 1 + Math.floor(random() * 5);
      for (let frame = 0; frame < count; frame += 1) {
        const message = sample(messageArbitrary(dialer, 2));
        const encoded = encodeFrame(encodeMessage(message));
        const choice = random();
        if (choice < 0.4) frames.push(encoded);
        else if (choice < 0.8) frames.push(applyEdits(encoded, sample(byteEditsArbitrary)));
        else frames.push(sample(fc.uint8Array({ minLength: 1, maxLength: 64 })));
      }
      frames.push(STREAM_END);
      const before = dropped(two.stats(), dialer);
      const socket = await authenticated(address, dialer, 2);
      await writeChunked(socket, concat(frames), random);
      await closedWithin(socket, 5_000);
      closures += 1;
      const after = dropped(two.stats(), dialer);
      const closing = (after.malformed ?? 0) - (before.malformed ?? 0) + (after['frame-too-large'] ?? 0) - (before['frame-too-large'] ?? 0);
      assert.equal(closing, 1, `stream ${index}: one typed drop closed it (${JSON.stringify(after)})`);
    }
    assert.equal(closures, STREAMS);
    for (const message of inbox) {
      assert.equal(message.to, 2);
      assert.deepStrictEqual(decodeMessage(encodeMessage(message)), message, 'delivered messages are well formed');
    }
    const one = node(1, all);
    await one.start();
    try {
      const delivered = inbox.length;
      one.send(heartbeat(1, 2, 12345));
      const deadline = Date.now() + 5_000;
      while (inbox.length === delivered && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepStrictEqual(inbox.at(-1), heartbeat(1, 2, 12345), 'the node still takes a legitimate peer');
    } finally {
      await one.stop();
    }
  } finally {
    await two.stop();
  }
});

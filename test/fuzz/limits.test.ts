/**
 * Every limit on untrusted input, one test each where no other suite already pins it (those are
 * listed in README, Fuzzing): key size on the binary protocol, batch bytes per slot, connections per
 * client address (binary and HTTP), requests in flight per HTTP connection and per node, and the
 * memory half-sent frames and slowloris connections may pin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Prng } from '../../src/core/prng.js';
import { Configuration, StaticConfiguration } from '../../src/core/quorum/majority.js';
import { DEFAULT_REPLICA_OPTIONS, Replica } from '../../src/core/multipaxos/replica.js';
import { KEY_BYTES_MAX } from '../../src/kv/ops.js';
import { PROTOCOL_VERSION, decodeServerMessage, encodeClientMessage, type ServerMessage } from '../../src/protocol/index.js';
import { ClientListener, type ClientListenerOptions } from '../../src/server/client-listener.js';
import { makeConfig, type MemberConfig } from '../../src/server/config.js';
import { HttpApi } from '../../src/server/http.js';
import { SynodNode } from '../../src/server/node.js';
import { SynodServer } from '../../src/server/server.js';
import { FrameDecoder, encodeFrame } from '../../src/transport/framing.js';
import { FakeKvService } from '../helpers/fake-service.js';
import { freePorts } from '../helpers/ports.js';

const HOST = '127.0.0.1';
/** Another loopback address: a different client as far as per-address limits go. */
const OTHER_HOST = '127.0.0.2';

/** A raw binary-protocol connection (from `localAddress`), reading every server frame. */
class Wire {
  readonly messages: ServerMessage[] = [];
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);

  private constructor(readonly socket: net.Socket) {
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const payload of this.decoder.push(chunk)) this.messages.push(decodeServerMessage(payload));
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async open(port: number, localAddress = HOST, hello = true): Promise<Wire> {
    const socket = net.connect({ host: HOST, port, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const wire = new Wire(socket);
    if (hello) {
      wire.socket.write(encodeFrame(encodeClientMessage({ type: 'hello', version: PROTOCOL_VERSION, token: null })));
      await wire.waitFor((messages) => messages.length >= 1, 'welcome');
    }
    return wire;
  }

  async waitFor(condition: (messages: readonly ServerMessage[]) => boolean, what: string, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition(this.messages)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(this.messages)}`);
      await sleep(3);
    }
  }
}

async function withListener(options: Partial<ClientListenerOptions>, body: (port: number, listener: ClientListener) => Promise<void>): Promise<void> {
  const listener = new ClientListener({ service: new FakeKvService(), host: HOST, port: 0, ...options });
  const { port } = await listener.start();
  try {
    await body(port, listener);
  } finally {
    await listener.stop();
  }
}

/** `promise`, or a failure after `timeoutMs`: a limit that stops working must fail its test, not hang it. */
async function within<T>(promise: Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(3);
  }
}

// Sizes.

test('limit: key size on the binary protocol: a key over KEY_BYTES_MAX is too_large for that request, the connection stays', () =>
  withListener({}, async (port) => {
    const wire = await Wire.open(port);
    const send = (reqId: number, key: string): void => {
      wire.socket.write(encodeFrame(encodeClientMessage({ type: 'request', reqId, clientId: 'c', seq: reqId, operation: { type: 'put', key, value: 'v' } })));
    };
    send(1, 'k'.repeat(KEY_BYTES_MAX + 1));
    send(2, 'k'.repeat(KEY_BYTES_MAX));
    await wire.waitFor((messages) => messages.length >= 3, 'two answers');
    const [, tooLarge, fine] = wire.messages;
    assert.ok(tooLarge?.type === 'failure' && tooLarge.reqId === 1 && tooLarge.failure.error === 'too_large', JSON.stringify(tooLarge));
    assert.ok(fine?.type === 'result' && fine.reqId === 2, JSON.stringify(fine));
    wire.socket.destroy();
  }));

test('limit: batch bytes: a leader never packs more than batchBytesMax of commands into one slot', () => {
  const replica = new Replica({
    ...DEFAULT_REPLICA_OPTIONS, nodeId: 1, configuration: new StaticConfiguration(new Configuration([1, 2, 3])), random: new Prng(1),
    batchBytesMax: 1_000, batchCountMax: 1_000, pipelineDepthMax: 1_000,
  });
  replica.campaign();
  replica.ready();
  replica.persisted();
  const ballot = replica.status().promised;
  replica.step({ type: 'promise', from: 2, to: 1, ballot, entries: [], maxSlot: 0 });
  replica.ready();
  replica.persisted();
  replica.step({ type: 'accepted', from: 2, to: 1, ballot, slots: [1], firstUnchosen: 1 });
  replica.ready();
  replica.persisted();
  assert.equal(replica.status().serving, true);
  for (let seq = 1; seq <= 50; seq += 1) {
    assert.ok(replica.propose({ clientId: 'c', seq, payload: new Uint8Array(150 + seq) }).ok);
  }
  const accepts = replica.ready().sendNow.filter((message) => message.type === 'accept' && message.to === 2);
  const batches = accepts.flatMap((message) => (message.type === 'accept' ? message.entries : []));
  let commands = 0;
  for (const { value } of batches) {
    assert.equal(value.type, 'commands');
    if (value.type !== 'commands') continue;
    const bytes = value.commands.reduce((sum, command) => sum + command.payload.byteLength + command.clientId.length + 16, 0);
    assert.ok(bytes <= 1_000, `a slot holds ${bytes} bytes`);
    commands += value.commands.length;
  }
  assert.equal(commands, 50, 'every command is in some slot');
  assert.ok(batches.length >= 9, `${batches.length} slots`);
});

// Connections per client address.

test('limit: connections per address on the binary protocol: over the cap one address is refused (typed, counted); another address still connects', async () => {
  const refusals: string[] = [];
  await withListener({ connectionsPerAddressMax: 3, onRefused: (reason) => refusals.push(reason) }, async (port, listener) => {
    const held = await Promise.all([1, 2, 3].map(() => Wire.open(port)));
    const refused = await Wire.open(port, HOST, false);
    await refused.waitFor((messages) => messages.length >= 1, 'the refusal');
    const [failure] = refused.messages;
    assert.ok(failure?.type === 'failure' && failure.reqId === 0 && failure.failure.error === 'overloaded', JSON.stringify(failure));
    assert.match(failure.failure.message, /3 client connections from 127\.0\.0\.1/);
    await within(refused.closed, 'the refused connection to close');
    assert.deepStrictEqual(refusals, ['per-address']);
    assert.equal(listener.stats().connectionsRefusedPerAddress, 1);
    const other = await Wire.open(port, OTHER_HOST);
    assert.equal(other.messages[0]?.type, 'welcome', 'another address is served');
    // A freed slot serves the first address again.
    held[0]?.socket.destroy();
    await within(held[0]?.closed ?? Promise.resolve(), 'the held connection to close');
    await until(() => listener.stats().connectionsOpen === 3, 'the freed slot');
    const again = await Wire.open(port);
    assert.equal(again.messages[0]?.type, 'welcome');
    for (const wire of [...held, other, again]) wire.socket.destroy();
  });
});

/** Reads one HTTP response head (and the connection state) from a raw socket. */
async function rawHttp(port: number, localAddress: string, request: string): Promise<{ head: string; socket: net.Socket }> {
  const socket = net.connect({ host: HOST, port, localAddress });
  socket.on('error', () => {});
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  if (request !== '') socket.write(request);
  await until(() => data.includes('\r\n\r\n') || socket.destroyed, 'an HTTP answer');
  return { head: data, socket };
}

test('limit: connections per address on HTTP: over the cap a connection gets a typed 429 and is closed; another address still works', async () => {
  const refusals: string[] = [];
  const api = new HttpApi({ service: new FakeKvService(), host: HOST, port: 0, connectionsPerAddressMax: 2, onRefused: (reason) => refusals.push(reason) });
  const { port } = await api.start();
  try {
    const held = await Promise.all([1, 2].map(() => rawHttp(port, HOST, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')));
    for (const { head } of held) assert.match(head, /^HTTP\/1\.1 200/);
    const refused = await rawHttp(port, HOST, '');
    assert.match(refused.head, /^HTTP\/1\.1 429 /);
    assert.match(refused.head, /synod-error: overloaded/);
    assert.match(refused.head, /connection: close/);
    assert.deepStrictEqual(refusals, ['per-address']);
    assert.equal(api.stats().connectionsRefusedPerAddress, 1);
    const fromOther = await rawHttp(port, OTHER_HOST, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(fromOther.head, /^HTTP\/1\.1 200/);
    for (const { socket } of [...held, refused, fromOther]) socket.destroy();
  } finally {
    await api.stop();
  }
});

// Requests in flight.

test('limit: requests in flight per HTTP connection: pipelined requests beyond inFlightMaxPerConnection get 429 and never reach the service', async () => {
  const service = new FakeKvService({ delayMs: 100 });
  const api = new HttpApi({ service, host: HOST, port: 0, inFlightMaxPerConnection: 4 });
  const { port } = await api.start();
  try {
    const socket = net.connect({ host: HOST, port });
    socket.on('error', () => {});
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let requests = '';
    for (let index = 0; index < 200; index += 1) requests += `GET /v1/kv/k${index} HTTP/1.1\r\nHost: x\r\n\r\n`;
    socket.write(requests);
    await until(() => (data.match(/^HTTP\/1\.1 /gm) ?? []).length === 200, 'an answer to every pipelined request');
    assert.ok(service.submitted.length <= 4 + 4, `${service.submitted.length} requests reached the service`);
    const refused = (data.match(/^HTTP\/1\.1 429 /gm) ?? []).length;
    assert.equal(refused + service.submitted.length, 200);
    assert.equal(api.stats().requestsRefusedInFlight, refused);
    // The connection is still usable once the pipeline drains.
    data = '';
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => data.includes('\r\n\r\nok'), 'the next request');
    socket.destroy();
  } finally {
    await api.stop();
  }
});

class Sink extends Writable {
  override _write(_chunk: Buffer, _encoding: string, callback: () => void): void {
    callback();
  }
}

test('limit: requests in flight per node: beyond pendingRequestsMax a request is answered overloaded at once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-limits-'));
  const ports = await freePorts(3);
  const members: MemberConfig[] = ports.map((port, index) => ({ id: index + 1, peer: { host: HOST, port }, client: null, http: null }));
  const nodes = await Promise.all(members.map((member) => SynodNode.start(
    makeConfig({ id: member.id, secret: 'limits-secret-0123456789', dataDir: join(dir, `n${member.id}`), members, tickMs: 10, pendingRequestsMax: 4, logLevel: 'silent' }),
    { logStream: new Sink(), processMetrics: false },
  )));
  try {
    await until(() => nodes.some((node) => node.status().serving), 'a leader', 10_000);
    const leader = nodes.find((node) => node.status().serving);
    assert.ok(leader !== undefined);
    // Without its followers the leader cannot commit: writes wait, up to the cap.
    await Promise.all(nodes.filter((node) => node !== leader).map((node) => node.stop()));
    const pending = Array.from({ length: 4 }, (_, index) => leader.submit({ type: 'put', key: `k${index}`, value: 'v' }, undefined, { timeoutMs: 500 }));
    const refused = await leader.submit({ type: 'put', key: 'one-too-many', value: 'v' }, undefined, { timeoutMs: 500 });
    assert.ok(!refused.ok && refused.error === 'overloaded', JSON.stringify(refused));
    for (const result of await Promise.all(pending)) assert.ok(!result.ok && result.error !== 'overloaded', JSON.stringify(result));
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await rm(dir, { recursive: true, force: true });
  }
});

// Memory: half-sent frames and slowloris.

test('limit: half-sent frames on many connections pin at most pendingFrameBytesMax, time out, and release everything', () =>
  withListener({ frameBytesMax: 64 * 1024, pendingFrameBytesMax: 256 * 1024, frameTimeoutMs: 400 }, async (port, listener) => {
    // 60 connections each announce a 60 KiB frame and send 20 KiB of it: 1.2 MiB if nothing bounded it.
    const wires: Wire[] = [];
    let peak = 0;
    for (let index = 0; index < 60; index += 1) {
      const wire = await Wire.open(port);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(60 * 1024, 0);
      wire.socket.write(Buffer.concat([header, Buffer.alloc(20 * 1024, 0x61)]));
      wires.push(wire);
      await sleep(2);
      peak = Math.max(peak, listener.stats().pendingFrameBytes);
    }
    assert.ok(peak <= 256 * 1024, `peak pending frame bytes ${peak}`);
    await within(Promise.all(wires.map((wire) => wire.closed)), 'every half-sent connection to close');
    const codes = wires.map((wire) => {
      const last = wire.messages.at(-1);
      return last?.type === 'failure' && last.reqId === 0 ? last.failure.error : 'none';
    });
    assert.ok(codes.every((code) => code === 'overloaded' || code === 'timeout'), JSON.stringify(codes));
    assert.ok(codes.includes('overloaded') && codes.includes('timeout'), 'both the budget and the timeout acted');
    assert.equal(listener.stats().pendingFrameBytes, 0);
    await until(() => listener.stats().connectionsOpen === 0, 'every connection released');
  }));

test('limit: a slowloris trickling a frame a byte at a time is cut off after frameTimeoutMs; an idle client between frames is not', () =>
  withListener({ frameTimeoutMs: 300 }, async (port) => {
    const idle = await Wire.open(port);
    const slow = await Wire.open(port);
    const frame = encodeFrame(encodeClientMessage({ type: 'status-request', reqId: 1 }));
    const started = Date.now();
    for (let index = 0; index < frame.length - 1 && !slow.socket.destroyed; index += 1) {
      slow.socket.write(frame.subarray(index, index + 1));
      await sleep(60);
    }
    await within(slow.closed, 'the slowloris to be cut off');
    const last = slow.messages.at(-1);
    assert.ok(last?.type === 'failure' && last.reqId === 0 && last.failure.error === 'timeout', JSON.stringify(last));
    assert.ok(Date.now() - started >= 250);
    // The idle connection held no partial frame: it is still served.
    idle.socket.write(frame);
    await idle.waitFor((messages) => messages.some((message) => message.type === 'status'), 'status');
    idle.socket.destroy();
  }));

test('limit: HTTP slowloris: headers trickled past the headers timeout get a typed 408 and a close', async () => {
  const api = new HttpApi({ service: new FakeKvService(), host: HOST, port: 0, requestTimeoutMs: 300 });
  const { port } = await api.start();
  try {
    const sockets = await Promise.all(Array.from({ length: 20 }, async () => {
      const socket = net.connect({ host: HOST, port });
      socket.on('error', () => {});
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      return { socket, closed, data: () => data };
    }));
    const text = 'GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nX-Slow: ';
    for (let index = 0; index < text.length + 40; index += 1) {
      for (const { socket } of sockets) if (!socket.destroyed) socket.write(index < text.length ? text[index] ?? 'x' : 'x');
      if (sockets.every(({ socket }) => socket.destroyed)) break;
      await sleep(30);
    }
    await within(Promise.all(sockets.map(({ closed }) => closed)), 'every slow HTTP connection to close');
    for (const { data } of sockets) {
      assert.match(data(), /^HTTP\/1\.1 408 /);
      assert.match(data(), /synod-error: timeout/);
    }
  } finally {
    await api.stop();
  }
});

test('limit: a node server counts refused client connections in synod_client_connections_refused_total, per front end and reason', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-limits-'));
  const [peerPort = 0, clientPort = 0, httpPort = 0] = await freePorts(3);
  const members: MemberConfig[] = [{ id: 1, peer: { host: HOST, port: peerPort }, client: { host: HOST, port: clientPort }, http: { host: HOST, port: httpPort } }];
  const config = makeConfig({ id: 1, secret: 'limits-secret-0123456789', dataDir: join(dir, 'n1'), members, tickMs: 10, connectionsPerAddressMax: 1, logLevel: 'silent' });
  const server = await SynodServer.start(config, { logStream: new Sink(), processMetrics: false });
  try {
    const held = await Wire.open(clientPort);
    const refused = await Wire.open(clientPort, HOST, false);
    await within(refused.closed, 'the refused connection to close');
    const heldHttp = await rawHttp(httpPort, HOST, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const refusedHttp = await rawHttp(httpPort, HOST, '');
    assert.match(refusedHttp.head, /^HTTP\/1\.1 429 /);
    const text = await server.node.metrics();
    for (const api of ['client', 'http']) {
      const line = text.split('\n').find((candidate) => candidate.startsWith('synod_client_connections_refused_total{') && candidate.includes(`api="${api}"`) && candidate.includes('reason="per-address"'));
      assert.ok(line?.endsWith(' 1'), `${api}: ${line ?? 'no line'}`);
    }
    for (const socket of [held.socket, heldHttp.socket, refusedHttp.socket]) socket.destroy();
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('limit: HTTP connections over connectionsMax are dropped by node:http and counted', async () => {
  const refusals: string[] = [];
  const api = new HttpApi({ service: new FakeKvService(), host: HOST, port: 0, connectionsMax: 1, onRefused: (reason) => refusals.push(reason) });
  const { port } = await api.start();
  try {
    const held = await rawHttp(port, HOST, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const dropped = await rawHttp(port, OTHER_HOST, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(dropped.head, '', 'closed unanswered');
    await until(() => refusals.length === 1, 'the drop to be counted');
    assert.deepStrictEqual(refusals, ['connections']);
    assert.equal(api.stats().connectionsRefused, 1);
    held.socket.destroy();
  } finally {
    await api.stop();
  }
});

/**
 * The link proxy with real sockets on loopback: a one-way cut stops bytes in one direction only,
 * a stall holds bytes and delivers them when it ends, a blackhole throws them away and resets the
 * broken connection when it ends, a delay never reorders and never delivers early.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Prng } from '../../src/core/prng.js';
import { LinkProxy } from '../../src/torture/proxy.js';

/** A listener that records what each accepted connection sent, and keeps the sockets to answer. */
interface Sink {
  readonly server: Server;
  readonly port: number;
  readonly received: Buffer[];
  readonly sockets: Socket[];
}

async function sink(): Promise<Sink> {
  const received: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port, received, sockets };
}

function text(chunks: readonly Buffer[]): string {
  return Buffer.concat(chunks).toString('utf8');
}

async function dial(port: number): Promise<{ socket: Socket; received: Buffer[]; closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received, closed };
}

async function until(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function proxyTo(port: number, seed = 1): Promise<LinkProxy> {
  const proxy = new LinkProxy({ targetHost: '127.0.0.1', targetPort: port, random: new Prng(seed) });
  await proxy.start();
  return proxy;
}

test('pass forwards bytes both ways', async () => {
  const target = await sink();
  const proxy = await proxyTo(target.port);
  try {
    const client = await dial(proxy.port);
    client.socket.write('hello');
    await until('the target receives', () => text(target.received) === 'hello');
    target.sockets[0]?.write('back');
    await until('the dialer receives the answer', () => text(client.received) === 'back');
    assert.deepEqual({ forward: proxy.stats().bytesForward, backward: proxy.stats().bytesBackward }, { forward: 5, backward: 4 });
    client.socket.destroy();
  } finally {
    await proxy.close();
    target.server.close();
  }
});

test('a one-way cut between two nodes stops bytes from a to b, while b to a still flows', async () => {
  // Node a dials b through proxy a→b; node b dials a through proxy b→a (as Synod nodes do).
  const a = await sink();
  const b = await sink();
  const aToB = await proxyTo(b.port);
  const bToA = await proxyTo(a.port);
  try {
    const fromA = await dial(aToB.port);
    const fromB = await dial(bToA.port);
    fromA.socket.write('a1');
    fromB.socket.write('b1');
    await until('both first messages arrive', () => text(b.received) === 'a1' && text(a.received) === 'b1');

    aToB.setMode({ kind: 'cut' });
    await fromA.closed; // the existing connection was reset
    const redial = connect({ host: '127.0.0.1', port: aToB.port });
    redial.on('error', () => {});
    redial.on('connect', () => redial.write('a2'));
    await new Promise((resolve) => redial.once('close', resolve)); // a new one is reset too
    fromB.socket.write('b2');
    await until('b to a still flows', () => text(a.received) === 'b1b2');
    assert.equal(text(b.received), 'a1', 'nothing from a reached b during the cut');
    assert.ok(aToB.stats().resets >= 2);

    aToB.setMode({ kind: 'pass' });
    const healed = await dial(aToB.port);
    healed.socket.write('a3');
    await until('a reaches b again after healing', () => text(b.received) === 'a1a3');
    healed.socket.destroy();
    fromB.socket.destroy();
  } finally {
    await Promise.all([aToB.close(), bToA.close()]);
    a.server.close();
    b.server.close();
  }
});

test('a stall holds bytes on an open connection and delivers them, in order, when it ends', async () => {
  const target = await sink();
  const proxy = await proxyTo(target.port);
  try {
    const client = await dial(proxy.port);
    client.socket.write('before.');
    await until('the first bytes arrive', () => text(target.received) === 'before.');
    proxy.setMode({ kind: 'stall' });
    client.socket.write('during.');
    client.socket.write('more.');
    await sleep(100);
    assert.equal(text(target.received), 'before.', 'nothing is delivered during a stall');
    proxy.setMode({ kind: 'pass' });
    client.socket.write('after.');
    await until('the held bytes arrive', () => text(target.received) === 'before.during.more.after.');
    assert.equal(target.sockets.length, 1, 'the same connection carried everything');
    client.socket.destroy();
  } finally {
    await proxy.close();
    target.server.close();
  }
});

test('a blackhole discards bytes, never connects new dialers, and resets its connections when it ends', async () => {
  const target = await sink();
  const proxy = await proxyTo(target.port);
  try {
    const client = await dial(proxy.port);
    client.socket.write('x');
    await until('the first byte arrives', () => text(target.received) === 'x');
    proxy.setMode({ kind: 'blackhole' });
    client.socket.write('lost');
    const late = await dial(proxy.port); // accepted, but never reaches the target
    late.socket.write('also lost');
    await until('the proxy discarded the bytes', () => proxy.stats().bytesDiscarded >= 'lost'.length + 'also lost'.length);
    assert.equal(text(target.received), 'x');
    assert.equal(target.sockets.length, 1, 'the dialer during the blackhole never reached the target');
    proxy.setMode({ kind: 'pass' });
    await Promise.all([client.closed, late.closed]); // broken streams are reset
    const fresh = await dial(proxy.port);
    fresh.socket.write('y');
    await until('a new connection works', () => text(target.received) === 'xy');
    fresh.socket.destroy();
  } finally {
    await proxy.close();
    target.server.close();
  }
});

test('a delay holds every chunk at least its delay minus jitter and never reorders', async () => {
  const target = await sink();
  const proxy = await proxyTo(target.port, 7);
  try {
    proxy.setMode({ kind: 'delay', delayMs: 40, jitterMs: 20 });
    const client = await dial(proxy.port);
    const sentAt = performance.now();
    const parts = Array.from({ length: 20 }, (_, index) => `${index};`);
    for (const part of parts) client.socket.write(part);
    await until('every chunk arrives', () => text(target.received) === parts.join(''));
    assert.ok(performance.now() - sentAt >= 20, 'delivered no earlier than the shortest delay');
    client.socket.destroy();
  } finally {
    await proxy.close();
    target.server.close();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { VALUE_BYTES_MAX, encodeOperation } from '../../src/kv/index.js';
import { REQUEST_FRAME_BYTES_MAX_DEFAULT, type ServerMessage } from '../../src/protocol/index.js';
import { encodeFrame } from '../../src/transport/framing.js';
import { FakeKvService } from '../helpers/fake-service.js';
import { HookedService, RawClient, never, request, startListener, waitFor, type RunningListener } from './harness.js';

const packer = new Packr({ useRecords: false });

/** Runs `body` with a listener over `service`, and always stops the listener. */
async function withListener(
  service: ConstructorParameters<typeof HookedService>[0] | HookedService,
  options: Parameters<typeof startListener>[1],
  body: (running: RunningListener) => Promise<void>,
): Promise<void> {
  const running = await startListener(service ?? new FakeKvService(), options);
  try {
    await body(running);
  } finally {
    await running.listener.stop();
  }
}

/** Asserts that `message` is a failure for `reqId` with `code`. */
function assertFailure(message: ServerMessage, reqId: number, code: string): void {
  assert.equal(message.type, 'failure', JSON.stringify(message));
  assert.ok(message.type === 'failure');
  assert.equal(message.reqId, reqId);
  assert.equal(message.failure.error, code);
}

/** A new connection still gets served: the listener survived whatever the test did. */
async function assertStillServing(port: number): Promise<void> {
  const client = await RawClient.connect(port);
  client.send(request(1, { type: 'get', key: 'alive' }));
  const answer = await client.next();
  assert.equal(answer.type, 'result');
  client.destroy();
  await client.closed;
}

test('listener: hello gets a welcome with the node id and frame limit; requests and status are answered', async () => {
  await withListener(new FakeKvService({ id: 7 }), {}, async ({ port, listener }) => {
    const client = await RawClient.connect(port, false);
    client.send({ type: 'hello', version: 3, token: 'reserved' });
    assert.deepStrictEqual(await client.next(), { type: 'welcome', version: 1, nodeId: 7, requestFrameBytesMax: REQUEST_FRAME_BYTES_MAX_DEFAULT });
    client.send(request(1, { type: 'put', key: 'k', value: 'v' }));
    client.send({ type: 'status-request', reqId: 2 });
    // The status is answered at once, the put when the service completes it: either may come first.
    const [put, status] = (await client.take(2)).sort((left, right) => (left.type === 'result' ? -1 : right.type === 'result' ? 1 : 0));
    assert.deepStrictEqual(put, { type: 'result', reqId: 1, result: { ok: true, type: 'put', revision: 1, version: 1, previous: null } });
    assert.ok(status?.type === 'status' && status.reqId === 2 && status.status.id === 7);
    assert.equal(listener.stats().requests, 2);
    assert.equal(listener.stats().connectionsOpen, 1);
    client.destroy();
    await client.closed;
    await waitFor(() => listener.stats().connectionsOpen === 0, 'the connection to be forgotten');
  });
});

test('listener: a request with a malformed body gets bad_request for its reqId; the connection stays', async () => {
  await withListener(undefined, {}, async ({ port }) => {
    const client = await RawClient.connect(port);
    const nonCanonical = new Uint8Array([0x92, 0x02, 0xd9, 0x01, 0x6b]); // get "k" with a str8 header
    client.write(encodeFrame(packer.pack([2, 5, 'c', 1, nonCanonical])));
    assertFailure(await client.next(), 5, 'bad_request');
    client.send(request(6, { type: 'put', key: '', value: 'v' })); // decodes, fails validation
    assertFailure(await client.next(), 6, 'bad_request');
    client.send(request(7, { type: 'get', key: 'k' }));
    assert.equal((await client.next()).type, 'result');
    client.destroy();
  });
});

test('listener: an oversized value is too_large per request; an oversized frame is too_large, then close', async () => {
  await withListener(undefined, {}, async ({ port, listener }) => {
    const client = await RawClient.connect(port);
    client.send(request(1, { type: 'put', key: 'k', value: 'x'.repeat(VALUE_BYTES_MAX + 1) }));
    assertFailure(await client.next(), 1, 'too_large');
    // A length prefix over the limit: refused before the payload is even sent.
    const header = Buffer.alloc(4);
    header.writeUInt32BE(REQUEST_FRAME_BYTES_MAX_DEFAULT + 1);
    client.write(header);
    assertFailure(await client.next(), 0, 'too_large');
    await client.closed;
    assert.equal(listener.stats().protocolErrors, 1);
    await assertStillServing(port);
  });
});

test('listener: before the hello only a small frame is read', async () => {
  await withListener(undefined, {}, async ({ port }) => {
    const client = await RawClient.connect(port, false);
    client.write(encodeFrame(packer.pack([2, 1, 'c', 1, encodeOperation({ type: 'put', key: 'k', value: 'x'.repeat(64 * 1024) })])));
    assertFailure(await client.next(), 0, 'too_large');
    await client.closed;
  });
});

test('listener: a malformed frame gets one bad_request with reqId 0, then close; others are unaffected', async () => {
  await withListener(undefined, {}, async ({ port }) => {
    const bystander = await RawClient.connect(port);
    const cases: Uint8Array[] = [
      encodeFrame(new Uint8Array([0xc1, 0x00])), // not MessagePack
      encodeFrame(packer.pack({ reqId: 1 })), // not an array
      encodeFrame(packer.pack([9, 1])), // unknown type
    ];
    for (const frame of cases) {
      const client = await RawClient.connect(port);
      client.write(frame);
      assertFailure(await client.next(), 0, 'bad_request');
      await client.closed;
    }
    bystander.send(request(1, { type: 'get', key: 'k' }));
    assert.equal((await bystander.next()).type, 'result');
    bystander.destroy();
  });
});

test('listener: protocol violations close the connection: request before hello, second hello, reqId reuse in flight', async () => {
  const service = new HookedService();
  await withListener(service, {}, async ({ port }) => {
    const early = await RawClient.connect(port, false);
    early.send(request(1, { type: 'get', key: 'k' }));
    assertFailure(await early.next(), 0, 'bad_request');
    await early.closed;

    const twice = await RawClient.connect(port);
    twice.send({ type: 'hello', version: 1, token: null });
    assertFailure(await twice.next(), 0, 'bad_request');
    await twice.closed;

    service.hook = () => never();
    const reuse = await RawClient.connect(port);
    reuse.send(request(4, { type: 'put', key: 'k', value: 'v' }));
    await waitFor(() => service.fake.submitted.length === 1, 'the first request to reach the service');
    reuse.send(request(4, { type: 'put', key: 'k', value: 'w' }));
    assertFailure(await reuse.next(), 0, 'bad_request');
    await reuse.closed;
  });
});

test('listener: over inFlightMaxPerConnection a request is answered overloaded at once', async () => {
  const service = new HookedService();
  const release: (() => void)[] = [];
  service.hook = (operation, id) => new Promise((resolve) => release.push(() => resolve(service.fake.submit(operation, id))));
  await withListener(service, { inFlightMaxPerConnection: 2 }, async ({ port, listener }) => {
    const client = await RawClient.connect(port);
    for (let reqId = 1; reqId <= 3; reqId += 1) client.send(request(reqId, { type: 'put', key: `k${reqId}`, value: 'v' }));
    assertFailure(await client.next(), 3, 'overloaded');
    await waitFor(() => release.length === 2, 'two requests at the service');
    for (const resolve of release) resolve();
    const answers = await client.take(2);
    assert.deepStrictEqual(answers.map((answer) => [answer.type, answer.type === 'result' ? answer.reqId : 0]).sort(), [['result', 1], ['result', 2]]);
    assert.equal(listener.stats().errors.overloaded, 1);
    client.destroy();
  });
});

test('listener: over connectionsMax a connection gets overloaded with reqId 0 and is closed', async () => {
  await withListener(undefined, { connectionsMax: 2 }, async ({ port, listener }) => {
    const first = await RawClient.connect(port);
    const second = await RawClient.connect(port);
    const third = await RawClient.connect(port, false);
    third.send({ type: 'hello', version: 1, token: null });
    assertFailure(await third.next(), 0, 'overloaded');
    await third.closed;
    assert.equal(listener.stats().connectionsRefused, 1);
    first.destroy();
    await first.closed;
    await waitFor(() => listener.stats().connectionsOpen === 1, 'the first connection to be forgotten');
    await assertStillServing(port);
    second.destroy();
  });
});

test('listener: 1000 pipelined requests are all answered, in fewer writes than responses', async () => {
  await withListener(undefined, {}, async ({ port, listener }) => {
    const client = await RawClient.connect(port);
    const count = 1000;
    for (let reqId = 1; reqId <= count; reqId += 1) client.send(request(reqId, { type: 'put', key: `k${reqId % 10}`, value: `${reqId}` }));
    const answers = await client.take(count);
    assert.deepStrictEqual(new Set(answers.map((answer) => (answer.type === 'result' ? answer.reqId : -1))).size, count);
    assert.ok(listener.stats().writes < count / 2, `writes ${listener.stats().writes}`);
    client.destroy();
  });
});

test('listener: responses complete out of order and keep their reqIds', async () => {
  const service = new HookedService();
  const held = new Map<string, () => void>();
  service.hook = (operation, id) => {
    if (operation.type !== 'get') return null;
    return new Promise((resolve) => held.set(operation.key, () => resolve(service.fake.submit(operation, id))));
  };
  await withListener(service, {}, async ({ port }) => {
    const client = await RawClient.connect(port);
    client.sendAll([1, 2, 3, 4].map((index) => request(index, { type: 'put', key: `${index}`, value: `value ${index}` })));
    await client.take(4);
    client.sendAll([1, 2, 3, 4].map((index) => request(10 + index, { type: 'get', key: `${index}` })));
    await waitFor(() => held.size === 4, 'four gets at the service');
    const answers: ServerMessage[] = [];
    for (const key of ['3', '1', '4', '2']) {
      held.get(key)?.();
      answers.push(await client.next());
    }
    assert.deepStrictEqual(answers.map((answer) => (answer.type === 'result' ? answer.reqId : 0)), [13, 11, 14, 12]);
    for (const answer of answers) {
      assert.ok(answer.type === 'result' && answer.result.type === 'get');
      assert.equal(answer.result.value, `value ${answer.reqId - 10}`);
    }
    client.destroy();
  });
});

test('listener: a client that does not read its answers stops being read until they drain', async () => {
  await withListener(undefined, {}, async ({ port, listener }) => {
    const client = await RawClient.connect(port);
    const value = 'v'.repeat(VALUE_BYTES_MAX);
    client.send(request(1, { type: 'put', key: 'big', value }));
    await client.next();
    client.pause();
    const count = 32;
    client.sendAll(Array.from({ length: count }, (_, index) => request(2 + index, { type: 'get', key: 'big' })));
    await waitFor(() => listener.stats().readPauses >= 1, 'the listener to pause reading');
    client.resume();
    const answers = await client.take(count);
    for (const answer of answers) assert.ok(answer.type === 'result' && answer.result.type === 'get' && answer.result.value === value);
    client.destroy();
  });
});

test('listener: a service that throws or rejects is answered unavailable; the listener keeps serving', async () => {
  const service = new HookedService();
  service.hook = (operation) => {
    if (operation.type !== 'put') return null;
    if (operation.key === 'throw') throw new Error('boom');
    return Promise.reject(new Error('rejected'));
  };
  const errors: string[] = [];
  const logger = { info: () => {}, warn: () => {}, error: (_fields: object, message: string) => void errors.push(message) };
  await withListener(service, { logger }, async ({ port }) => {
    const client = await RawClient.connect(port);
    client.send(request(1, { type: 'put', key: 'throw', value: 'v' }));
    client.send(request(2, { type: 'put', key: 'reject', value: 'v' }));
    const answers = await client.take(2);
    for (const answer of answers) assert.ok(answer.type === 'failure' && answer.failure.error === 'unavailable');
    assert.equal(errors.length, 2);
    client.destroy();
    await assertStillServing(port);
  });
});

test('listener: stop closes open connections and abandons requests in flight', async () => {
  const service = new HookedService();
  service.hook = () => never();
  const running = await startListener(service);
  const client = await RawClient.connect(running.port);
  client.send(request(1, { type: 'put', key: 'k', value: 'v' }));
  await waitFor(() => service.fake.submitted.length === 1, 'the request to reach the service');
  await running.listener.stop();
  await client.closed;
  assert.equal(running.listener.stats().connectionsOpen, 0);
});

test('listener: a hello that does not come in time closes the connection', async () => {
  await withListener(undefined, { helloTimeoutMs: 20 }, async ({ port }) => {
    const client = await RawClient.connect(port, false);
    assertFailure(await client.next(), 0, 'timeout');
    await client.closed;
  });
});

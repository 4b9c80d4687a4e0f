import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SynodClient, SynodClientError, parseEndpoint, type SynodClientOptions } from '../../src/client/index.js';
import { EndpointConnection } from '../../src/client/connection.js';
import { VALUE_BYTES_MAX } from '../../src/kv/index.js';
import type { KvService, ServiceResult } from '../../src/server/service.js';
import { FakeKvService } from '../helpers/fake-service.js';
import { HOST, HookedService, closedPort, never, startListener, waitFor, type RunningListener } from './harness.js';

/** Tracks what a test starts, so that everything is closed whatever the test's outcome. */
class Fixture {
  private readonly listeners: RunningListener[] = [];
  private readonly clients: SynodClient[] = [];

  async listen(service: KvService = new FakeKvService(), options: Parameters<typeof startListener>[1] = {}): Promise<RunningListener> {
    const running = await startListener(service, options);
    this.listeners.push(running);
    return running;
  }

  client(options: SynodClientOptions): SynodClient {
    const client = new SynodClient({ attemptTimeoutMs: 500, backoffMsMin: 1, backoffMsMax: 20, ...options });
    this.clients.push(client);
    return client;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close()));
    await Promise.all(this.listeners.map((running) => running.listener.stop()));
  }
}

async function withFixture(body: (fixture: Fixture) => Promise<void>): Promise<void> {
  const fixture = new Fixture();
  try {
    await body(fixture);
  } finally {
    await fixture.close();
  }
}

/** Awaits `promise`, which must reject with a SynodClientError of `code`; returns the error. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<SynodClientError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SynodClientError, `unexpected ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a ${code} failure`);
}

const overloaded: ServiceResult = { ok: false, error: 'overloaded', message: 'busy' };

test('client: every operation round-trips', async () => {
  await withFixture(async (fixture) => {
    const fake = new FakeKvService({ id: 4 });
    const { endpoint } = await fixture.listen(fake);
    const client = fixture.client({ endpoints: [endpoint] });
    assert.equal(client.leader(), null);
    assert.deepStrictEqual(await client.put('a/1', 'one'), { ok: true, type: 'put', revision: 1, version: 1, previous: null });
    assert.equal(client.leader(), endpoint);
    assert.deepStrictEqual(await client.get('a/1'), { ok: true, type: 'get', revision: 1, value: 'one', version: 1 });
    assert.deepStrictEqual(await client.cas('a/1', 'uno', { expectedValue: 'one' }), { ok: true, type: 'cas', revision: 2, version: 2, previous: 'one' });
    const failed = await rejectsWith(client.cas('a/1', 'eins', { expectedVersion: 1 }), 'cas_failed');
    assert.deepStrictEqual(failed.current, { value: 'uno', version: 2 });
    await client.put('a/2', 'two');
    await client.put('b/1', 'other');
    const listed = await client.list('a/', { limit: 1 });
    assert.deepStrictEqual(listed, { ok: true, type: 'list', revision: 4, entries: [{ key: 'a/1', value: 'uno', version: 2 }], more: true });
    assert.deepStrictEqual(await client.delete('a/1'), { ok: true, type: 'delete', revision: 5, previous: 'uno' });
    assert.deepStrictEqual(await client.get('a/1'), { ok: true, type: 'get', revision: 5, value: null, version: 0 });
    const status = await client.status();
    assert.equal(status.id, 4);
    assert.equal(status.revision, 5);
    const all = await client.statusAll();
    assert.deepStrictEqual(all.map((entry) => [entry.endpoint, 'status' in entry ? entry.status.id : null]), [[endpoint, 4]]);
  });
});

test('client: 1000 pipelined operations share one connection and come back matched', async () => {
  await withFixture(async (fixture) => {
    const { endpoint, listener } = await fixture.listen();
    const client = fixture.client({ endpoints: [endpoint] });
    const count = 1000;
    const puts = await Promise.all(Array.from({ length: count }, (_, index) => client.put(`key-${index}`, `value-${index}`)));
    assert.equal(puts.length, count);
    const gets = await Promise.all(Array.from({ length: count }, (_, index) => client.get(`key-${index}`)));
    gets.forEach((result, index) => assert.equal(result.value, `value-${index}`));
    const stats = listener.stats();
    assert.equal(stats.connectionsAccepted, 1);
    assert.equal(stats.requests, 2 * count);
    assert.ok(stats.writes < count, `writes ${stats.writes}`);
  });
});

test('client: responses that come back out of order reach the right callers', async () => {
  await withFixture(async (fixture) => {
    const service = new HookedService();
    const held: (() => void)[] = [];
    service.hook = (operation, id) => new Promise((resolve) => held.push(() => resolve(service.fake.submit(operation, id))));
    const { endpoint } = await fixture.listen(service);
    const client = fixture.client({ endpoints: [endpoint] });
    const puts = Array.from({ length: 20 }, (_, index) => client.put(`k${index}`, `v${index}`));
    await waitFor(() => held.length === 20, 'every put at the service');
    // Answer in a scrambled order: odd indexes backwards, then even ones forwards.
    const order = [...Array.from({ length: 10 }, (_, index) => 19 - 2 * index), ...Array.from({ length: 10 }, (_, index) => 2 * index)];
    for (const index of order) held[index]?.();
    const results = await Promise.all(puts);
    results.forEach((result) => assert.equal(result.type, 'put'));
    service.hook = null;
    for (let index = 0; index < 20; index += 1) assert.equal((await client.get(`k${index}`)).value, `v${index}`);
  });
});

test('client: lanes bound concurrency, and each lane numbers its requests 1, 2, 3, ...', async () => {
  await withFixture(async (fixture) => {
    const fake = new FakeKvService();
    const { endpoint } = await fixture.listen(fake);
    const client = fixture.client({ endpoints: [endpoint], lanes: 3, clientId: 'app' });
    await Promise.all(Array.from({ length: 30 }, (_, index) => client.put(`k${index}`, 'v')));
    const seqsByLane = new Map<string, number[]>();
    for (const { id } of fake.submitted) {
      assert.ok(id !== undefined);
      seqsByLane.set(id.clientId, [...(seqsByLane.get(id.clientId) ?? []), id.seq]);
    }
    assert.deepStrictEqual([...seqsByLane.keys()].sort(), ['app.0', 'app.1', 'app.2']);
    for (const seqs of seqsByLane.values()) assert.deepStrictEqual(seqs, seqs.map((_, index) => index + 1));
  });
});

test('client: not_leader with a leader endpoint redirects there, and the client remembers it', async () => {
  await withFixture(async (fixture) => {
    const leaderFake = new FakeKvService({ id: 2 });
    const leader = await fixture.listen(leaderFake);
    const follower = await fixture.listen(new FakeKvService({ id: 1, notLeader: { id: 2, clientAddress: leader.endpoint, httpAddress: null } }));
    const client = fixture.client({ endpoints: [follower.endpoint] });
    await client.put('k', 'v');
    assert.equal(client.leader(), leader.endpoint);
    assert.equal(leaderFake.submitted.length, 1);
    await client.get('k');
    assert.equal(follower.listener.stats().requests, 1, 'the second operation went straight to the leader');
    const all = await client.statusAll();
    assert.deepStrictEqual(all.map((entry) => entry.endpoint), [follower.endpoint, leader.endpoint]);
  });
});

test('client: not_leader without a leader tries the next endpoint', async () => {
  await withFixture(async (fixture) => {
    const follower = await fixture.listen(new FakeKvService({ id: 1, notLeader: null }));
    const leader = await fixture.listen(new FakeKvService({ id: 2 }));
    const client = fixture.client({ endpoints: [follower.endpoint, leader.endpoint] });
    await client.put('k', 'v');
    assert.equal(client.leader(), leader.endpoint);
  });
});

test('client: a connection lost mid-request is retried on the next endpoint with the same (clientId, seq)', async () => {
  await withFixture(async (fixture) => {
    const fake = new FakeKvService();
    const silent = new HookedService(fake); // records into the same fake, then never answers
    silent.hook = () => never();
    const first = await fixture.listen(silent);
    const second = await fixture.listen(fake);
    const client = fixture.client({ endpoints: [first.endpoint, second.endpoint], attemptTimeoutMs: 5000 });
    const put = client.put('k', 'v');
    await waitFor(() => fake.submitted.length === 1, 'the first attempt at the silent node');
    await first.listener.stop(); // drops the connection with the request in flight
    assert.equal((await put).version, 1);
    const ids = fake.submitted.map((entry) => entry.id);
    assert.equal(ids.length, 2);
    assert.deepStrictEqual(ids[0], ids[1]);
    assert.equal(client.leader(), second.endpoint);
  });
});

test('client: a write applied before its connection dropped is answered from the dedup table, not applied again', async () => {
  await withFixture(async (fixture) => {
    const fake = new FakeKvService();
    // Applies every request to the shared state, then goes silent: the answer is lost.
    const appliesSilently: KvService = {
      metricsContentType: fake.metricsContentType,
      submit: (operation, id, options) => {
        void fake.submit(operation, id, options);
        return never();
      },
      status: () => fake.status(),
      metrics: () => fake.metrics(),
    };
    const first = await fixture.listen(appliesSilently);
    const second = await fixture.listen(fake);
    const client = fixture.client({ endpoints: [first.endpoint, second.endpoint], attemptTimeoutMs: 5000 });
    await fake.submit({ type: 'put', key: 'k', value: 'before' });
    const put = client.put('k', 'v');
    await waitFor(() => fake.submitted.length === 2, 'the put to be applied at the silent node');
    await first.listener.stop();
    assert.deepStrictEqual(await put, { ok: true, type: 'put', revision: 2, version: 2, previous: 'before' });
    assert.equal(fake.machine.revision, 2, 'applied once');
    assert.deepStrictEqual(fake.submitted[1]?.id, fake.submitted[2]?.id);
  });
});

test('client: an attempt timeout moves to the next endpoint with the same (clientId, seq)', async () => {
  await withFixture(async (fixture) => {
    const fake = new FakeKvService();
    const silent = new HookedService(fake);
    silent.hook = () => never();
    const first = await fixture.listen(silent);
    const second = await fixture.listen(fake);
    const client = fixture.client({ endpoints: [first.endpoint, second.endpoint], attemptTimeoutMs: 50 });
    await client.put('k', 'v');
    assert.equal(fake.submitted.length, 2);
    assert.deepStrictEqual(fake.submitted[0]?.id, fake.submitted[1]?.id);
  });
});

test('client connection: attempts share one timeout timer, a shorter deadline still ends first, and an idle connection holds none', async () => {
  await withFixture(async (fixture) => {
    const silent = new HookedService();
    silent.hook = (operation) => (operation.type === 'get' ? never() : null);
    const { endpoint } = await fixture.listen(silent);
    const address = parseEndpoint(endpoint);
    assert.ok(address !== null);
    const connection = new EndpointConnection(endpoint, address, { token: null, connectTimeoutMs: 2000, tls: null });
    const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    try {
      const idle = timers();
      const request = (seq: number, type: 'get' | 'put') => ({
        type: 'request', clientId: 'c', seq, operation: type === 'get' ? { type, key: 'k' } : { type, key: 'k', value: 'v' },
      } as const);
      const long = connection.attempt(request(1, 'get'), 10_000);
      const started = performance.now();
      // Armed after the long one, due long before it: the timer must move up for it.
      const short = await connection.attempt(request(2, 'get'), 50);
      assert.equal(short.kind, 'timeout');
      assert.ok(performance.now() - started < 5_000, 'the short deadline did not wait for the long one');
      assert.equal(connection.inFlight, 1, 'the long attempt still waits');
      assert.equal((await connection.attempt(request(3, 'put'), 10_000)).kind, 'result');
      await connection.close();
      assert.equal((await long).kind, 'lost');
      assert.equal(timers(), idle, 'no timer left once nothing is in flight');
    } finally {
      await connection.close();
    }
  });
});

test('client: with no answer before the overall deadline the operation fails with timeout', async () => {
  await withFixture(async (fixture) => {
    const silent = new HookedService();
    silent.hook = () => never();
    const { endpoint } = await fixture.listen(silent);
    const client = fixture.client({ endpoints: [endpoint], timeoutMs: 150, attemptTimeoutMs: 40 });
    const error = await rejectsWith(client.put('k', 'v'), 'timeout');
    assert.match(error.message, /outcome is unknown/);
    // Every retry used the same exactly-once identity.
    assert.ok(silent.fake.submitted.length >= 2);
    assert.equal(new Set(silent.fake.submitted.map((entry) => JSON.stringify(entry.id))).size, 1);
  });
});

test('client: unreachable endpoints end in timeout too', async () => {
  await withFixture(async (fixture) => {
    const client = fixture.client({ endpoints: [`${HOST}:${await closedPort()}`, `${HOST}:${await closedPort()}`], timeoutMs: 100 });
    await rejectsWith(client.get('k'), 'timeout');
    const all = await client.statusAll();
    for (const entry of all) assert.ok('error' in entry && entry.error.code === 'unavailable');
  });
});

test('client: overloaded is retried with backoff, on the same node, with the same (clientId, seq)', async () => {
  await withFixture(async (fixture) => {
    const service = new HookedService();
    service.hook = (_operation, _id, call) => (call <= 3 ? Promise.resolve(overloaded) : null);
    const { endpoint, listener } = await fixture.listen(service);
    const client = fixture.client({ endpoints: [endpoint] });
    await client.put('k', 'v');
    assert.equal(service.fake.submitted.length, 4);
    assert.equal(new Set(service.fake.submitted.map((entry) => JSON.stringify(entry.id))).size, 1);
    assert.equal(listener.stats().errors.overloaded, 3);
  });
});

test('client: unavailable backs off and tries the next node', async () => {
  await withFixture(async (fixture) => {
    const down = await fixture.listen(new FakeKvService({ failWith: { ok: false, error: 'unavailable', message: 'no quorum' } }));
    const up = await fixture.listen(new FakeKvService());
    const client = fixture.client({ endpoints: [down.endpoint, up.endpoint] });
    await client.put('k', 'v');
    assert.equal(client.leader(), up.endpoint);
  });
});

test('client: invalid operations fail client side without a round trip', async () => {
  await withFixture(async (fixture) => {
    const fake = new FakeKvService();
    const { endpoint } = await fixture.listen(fake);
    const client = fixture.client({ endpoints: [endpoint] });
    await rejectsWith(client.put('k', 'x'.repeat(VALUE_BYTES_MAX + 1)), 'too_large');
    await rejectsWith(client.put('', 'v'), 'bad_request');
    await rejectsWith(client.cas('k', 'v', {}), 'bad_request');
    await rejectsWith(client.list('', { limit: 0 }), 'bad_request');
    assert.equal(fake.submitted.length, 0);
  });
});

test('client: a request over the node\'s announced frame limit fails too_large', async () => {
  await withFixture(async (fixture) => {
    const fake = new FakeKvService();
    const { endpoint } = await fixture.listen(fake, { frameBytesMax: 16 * 1024 });
    const client = fixture.client({ endpoints: [endpoint] });
    await rejectsWith(client.put('k', 'x'.repeat(32 * 1024)), 'too_large');
    assert.equal(fake.submitted.length, 0);
    await client.put('k', 'small');
  });
});

test('client: a node over connectionsMax is retried until it has room', async () => {
  await withFixture(async (fixture) => {
    const { endpoint, listener } = await fixture.listen(new FakeKvService(), { connectionsMax: 1 });
    const first = fixture.client({ endpoints: [endpoint] });
    await first.put('a', '1');
    const second = fixture.client({ endpoints: [endpoint] });
    const put = second.put('b', '2');
    await waitFor(() => listener.stats().connectionsRefused >= 1, 'the second client to be refused');
    await first.close();
    assert.equal((await put).type, 'put');
  });
});

test('client: close fails operations in flight with unavailable, and later calls too', async () => {
  await withFixture(async (fixture) => {
    const silent = new HookedService();
    silent.hook = () => never();
    const { endpoint } = await fixture.listen(silent);
    const client = fixture.client({ endpoints: [endpoint], lanes: 1 });
    const inFlight = rejectsWith(client.put('k', 'v'), 'unavailable');
    const queued = rejectsWith(client.put('k', 'w'), 'unavailable');
    await waitFor(() => silent.fake.submitted.length === 1, 'the first put at the service');
    await client.close();
    await inFlight;
    await queued;
    await rejectsWith(client.get('k'), 'unavailable');
  });
});

test('client: status of one node reports its failure', async () => {
  await withFixture(async (fixture) => {
    const { endpoint } = await fixture.listen(new FakeKvService({ id: 9 }));
    const client = fixture.client({ endpoints: [endpoint] });
    assert.equal((await client.status(endpoint)).id, 9);
    await rejectsWith(client.status(`${HOST}:${await closedPort()}`), 'unavailable');
  });
});

test('client: options are checked at construction', () => {
  const bad: SynodClientOptions[] = [
    { endpoints: [] },
    { endpoints: ['no-port'] },
    { endpoints: ['host:70000'] },
    { endpoints: ['h:1'], lanes: 0 },
    { endpoints: ['h:1'], timeoutMs: 0 },
    { endpoints: ['h:1'], clientId: '' },
    { endpoints: ['h:1'], clientId: 'x'.repeat(256) },
    { endpoints: ['h:1'], backoffMsMin: 10, backoffMsMax: 5 },
  ];
  for (const options of bad) assert.throws(() => new SynodClient(options), SynodClientError, JSON.stringify(options));
  assert.deepStrictEqual(parseEndpoint('[::1]:7001'), { host: '::1', port: 7001 });
  assert.deepStrictEqual(parseEndpoint('node-1.example:80'), { host: 'node-1.example', port: 80 });
  assert.equal(parseEndpoint('::1:80'), null);
});

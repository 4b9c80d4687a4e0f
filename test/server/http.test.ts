import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { KEY_BYTES_MAX, LIST_LIMIT_MAX, VALUE_BYTES_MAX } from '../../src/kv/ops.js';
import { HttpApi, type HttpApiLogger, type HttpApiOptions } from '../../src/server/http.js';
import type { NodeStatusReport, ServiceFailure } from '../../src/server/service.js';
import { FakeKvService, type FakeServiceOptions } from '../helpers/fake-service.js';

const HOST = '127.0.0.1';

/** Remembers every log line, so tests can check that failures are logged. */
class RecordingLogger implements HttpApiLogger {
  readonly lines: { level: string; fields: object; message: string }[] = [];
  info(fields: object, message: string): void {
    this.lines.push({ level: 'info', fields, message });
  }
  warn(fields: object, message: string): void {
    this.lines.push({ level: 'warn', fields, message });
  }
  error(fields: object, message: string): void {
    this.lines.push({ level: 'error', fields, message });
  }
}

interface Harness {
  readonly api: HttpApi;
  readonly service: FakeKvService;
  readonly logger: RecordingLogger;
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  readonly port: number;
}

/** Runs `body` against a started HttpApi over `service` (a fresh fake by default); always stops it. */
async function withApi(
  body: (harness: Harness) => Promise<void>,
  options: { service?: FakeKvService; api?: Partial<Omit<HttpApiOptions, 'service'>> } = {},
): Promise<void> {
  const service = options.service ?? new FakeKvService();
  const logger = new RecordingLogger();
  const api = new HttpApi({ service, host: HOST, port: 0, logger, ...options.api });
  const { port } = await api.start();
  try {
    await body({ api, service, logger, base: `http://${HOST}:${port}`, port });
  } finally {
    await api.stop();
  }
}

/** A fake whose every answer is `failure`. */
function failingService(failure: ServiceFailure, options: FakeServiceOptions = {}): FakeKvService {
  return new FakeKvService({ ...options, failWith: failure });
}

async function json(response: Response): Promise<Record<string, unknown>> {
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  return (await response.json()) as Record<string, unknown>;
}

function put(base: string, path: string, value: string | Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, { method: 'PUT', body: value, headers });
}

/** Checks an error answer: status, JSON code, and the Synod-Error header; returns the body. */
async function expectError(response: Response, status: number, code: string): Promise<Record<string, unknown>> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('synod-error'), code);
  const body = await json(response);
  assert.equal(body.error, code);
  assert.equal(typeof body.message, 'string');
  return body;
}

/** Sends raw bytes on a fresh connection and returns everything the server sends until it closes. */
function rawExchange(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST, () => socket.write(request));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

/** One request with `path` sent exactly as given (fetch would normalise it). */
function requestWithPath(port: number, method: string, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: HOST, port, method, path, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (data: Buffer) => chunks.push(data));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

// Routes.

test('PUT then GET then DELETE a key: shapes, versions, revisions, previous values', async () => {
  await withApi(async ({ base }) => {
    const created = await put(base, '/v1/kv/color', 'red');
    assert.equal(created.status, 200);
    assert.deepEqual(await json(created), { key: 'color', version: 1, revision: 1, previous: null });
    const replaced = await put(base, '/v1/kv/color', 'blue');
    assert.deepEqual(await json(replaced), { key: 'color', version: 2, revision: 2, previous: 'red' });
    const read = await fetch(`${base}/v1/kv/color`);
    assert.equal(read.status, 200);
    assert.equal(read.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await json(read), { key: 'color', value: 'blue', version: 2, revision: 2 });
    const removed = await fetch(`${base}/v1/kv/color`, { method: 'DELETE' });
    assert.equal(removed.status, 200);
    assert.deepEqual(await json(removed), { key: 'color', previous: 'blue', revision: 3 });
    const again = await fetch(`${base}/v1/kv/color`, { method: 'DELETE' });
    assert.deepEqual(await json(again), { key: 'color', previous: null, revision: 3 });
  });
});

test('GET of an absent key is a 404 with the success shape (value null, version 0), not an error', async () => {
  await withApi(async ({ base }) => {
    const response = await fetch(`${base}/v1/kv/nothing`);
    assert.equal(response.status, 404);
    assert.equal(response.headers.get('synod-error'), null);
    assert.deepEqual(await json(response), { key: 'nothing', value: null, version: 0, revision: 0 });
  });
});

test('HEAD answers like GET without a body', async () => {
  await withApi(async ({ base }) => {
    await put(base, '/v1/kv/k', 'value');
    const head = await fetch(`${base}/v1/kv/k`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    assert.equal(Number(head.headers.get('content-length')), Buffer.byteLength(`${JSON.stringify({ key: 'k', value: 'value', version: 1, revision: 1 })}\n`));
  });
});

test('keys are percent-decoded paths: slashes (raw or %2F), unicode, spaces and a literal +', async () => {
  await withApi(async ({ base, port, service }) => {
    const key = 'dir/sub dir/日本/ç+1';
    const encoded = key.split('/').map(encodeURIComponent).join('/');
    assert.equal((await put(base, `/v1/kv/${encoded}`, 'v')).status, 200);
    assert.deepEqual(service.submitted.at(-1)?.operation, { type: 'put', key, value: 'v' });
    const viaEscapedSlashes = await fetch(`${base}/v1/kv/${encodeURIComponent(key)}`);
    assert.deepEqual(await json(viaEscapedSlashes), { key, value: 'v', version: 1, revision: 1 });
    // fetch would normalise the dot segments itself; node:http sends the path as given.
    const literal = await requestWithPath(port, 'PUT', '/v1/kv/a+b//c/../d', 'w');
    assert.equal(literal.status, 200);
    assert.equal(JSON.parse(literal.body).key, 'a+b//c/../d', 'the path is not normalised and + is not a space');
  });
});

test('values are the raw UTF-8 body, byte for byte: empty, newlines, unicode, a leading BOM', async () => {
  await withApi(async ({ base }) => {
    for (const value of ['', 'line one\nline two\r\n', 'naïve 🌍 日本語', '\uFEFFbom first']) {
      assert.equal((await put(base, '/v1/kv/v', value)).status, 200);
      const read = await json(await fetch(`${base}/v1/kv/v`));
      assert.equal(read.value, value);
    }
  });
});

test('list: prefix, limit, more, and the default limit; /v1/kv/ lists too', async () => {
  await withApi(async ({ base, service }) => {
    for (const key of ['a/1', 'a/2', 'a/3', 'b/1', 'a+b']) await put(base, `/v1/kv/${key}`, `value of ${key}`);
    const page = await fetch(`${base}/v1/kv?prefix=a%2F&limit=2`);
    assert.equal(page.status, 200);
    assert.deepEqual(await json(page), {
      entries: [
        { key: 'a/1', value: 'value of a/1', version: 1 },
        { key: 'a/2', value: 'value of a/2', version: 1 },
      ],
      more: true,
      revision: 5,
    });
    const rest = await json(await fetch(`${base}/v1/kv/?prefix=a/&limit=3`));
    assert.equal((rest.entries as unknown[]).length, 3);
    assert.equal(rest.more, false);
    const all = await json(await fetch(`${base}/v1/kv`));
    assert.equal((all.entries as unknown[]).length, 5);
    assert.deepEqual(service.submitted.at(-1)?.operation, { type: 'list', prefix: '', limit: 1000 });
    const plus = await json(await fetch(`${base}/v1/kv?prefix=a%2Bb`));
    assert.deepEqual((plus.entries as { key: string }[]).map((entry) => entry.key), ['a+b']);
    await fetch(`${base}/v1/kv?prefix=a+b`);
    assert.deepEqual(service.submitted.at(-1)?.operation, { type: 'list', prefix: 'a b', limit: 1000 }, 'a query + is a space');
  });
});

test('list refuses a bad limit or unknown parameter with 400 before submitting', async () => {
  await withApi(async ({ base, service }) => {
    for (const query of ['limit=0', `limit=${LIST_LIMIT_MAX + 1}`, 'limit=x', 'limit=1.5', 'limit=-1', 'limit=', 'limit=1&limit=2', 'prefx=a']) {
      await expectError(await fetch(`${base}/v1/kv?${query}`), 400, 'bad_request');
    }
    assert.equal(service.submitted.length, 0);
    assert.equal((await fetch(`${base}/v1/kv?limit=${LIST_LIMIT_MAX}`)).status, 200);
  });
});

test('GET /v1/status returns the node status report', async () => {
  await withApi(async ({ base }) => {
    await put(base, '/v1/kv/k', 'v');
    const status = (await json(await fetch(`${base}/v1/status`))) as unknown as NodeStatusReport;
    assert.equal(status.id, 1);
    assert.equal(status.role, 'leader');
    assert.equal(status.serving, true);
    assert.equal(status.revision, 1);
    assert.equal(status.keys, 1);
    assert.equal(status.readMode, 'index');
  }, { service: new FakeKvService({ id: 1 }) });
});

test('GET /metrics uses the service exposition and its content type; /healthz says ok', async () => {
  await withApi(async ({ base, service }) => {
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.equal(metrics.headers.get('content-type'), service.metricsContentType);
    assert.match(await metrics.text(), /^synod_fake_requests 0$/m);
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok\n');
  });
});

test('unknown routes are 404 not_found; wrong methods are 405 with Allow', async () => {
  await withApi(async ({ base }) => {
    for (const path of ['/', '/v1', '/v1/kvx', '/v2/kv/a', '/v1/status/']) {
      await expectError(await fetch(`${base}${path}`), 404, 'not_found');
    }
    const post = await fetch(`${base}/v1/kv/a`, { method: 'POST', body: 'x' });
    await expectError(post, 405, 'method_not_allowed');
    assert.equal(post.headers.get('allow'), 'GET, HEAD, PUT, DELETE');
    for (const [method, path] of [['PUT', '/v1/status'], ['DELETE', '/metrics'], ['POST', '/healthz'], ['PUT', '/v1/kv']]) {
      const response = await fetch(`${base}${path}`, { method });
      await expectError(response, 405, 'method_not_allowed');
      assert.equal(response.headers.get('allow'), 'GET, HEAD');
    }
  });
});

test('an empty, malformed or oversized key is refused before submitting', async () => {
  await withApi(async ({ base, service }) => {
    await expectError(await put(base, '/v1/kv/', 'v'), 400, 'bad_request');
    await expectError(await fetch(`${base}/v1/kv/`, { method: 'DELETE' }), 400, 'bad_request');
    await expectError(await fetch(`${base}/v1/kv/bad%E0%A4`), 400, 'bad_request');
    await expectError(await fetch(`${base}/v1/kv/bad%FF`), 400, 'bad_request');
    await expectError(await fetch(`${base}/v1/kv/bad%zz`), 400, 'bad_request');
    await expectError(await fetch(`${base}/v1/kv/${'k'.repeat(KEY_BYTES_MAX + 1)}`), 413, 'too_large');
    await expectError(await fetch(`${base}/v1/kv/k?unexpected=1`), 400, 'bad_request');
    await expectError(await fetch(`${base}/v1/kv/k?x=1`, { method: 'DELETE' }), 400, 'bad_request');
    assert.equal(service.submitted.length, 0);
    assert.equal((await fetch(`${base}/v1/kv/${'k'.repeat(KEY_BYTES_MAX)}`)).status, 404);
  });
});

// Compare-and-set.

test('cas succeeds on ifVersion, ifValue, ifAbsent, and their combination', async () => {
  await withApi(async ({ base, service }) => {
    const created = await put(base, '/v1/kv/c?ifAbsent=true', 'one');
    assert.deepEqual(await json(created), { key: 'c', version: 1, revision: 1, previous: null });
    assert.deepEqual(service.submitted.at(-1)?.operation, { type: 'cas', key: 'c', value: 'one', expectedValue: null });
    assert.equal((await put(base, '/v1/kv/c?ifVersion=1', 'two')).status, 200);
    assert.deepEqual(service.submitted.at(-1)?.operation, { type: 'cas', key: 'c', value: 'two', expectedVersion: 1 });
    assert.equal((await put(base, `/v1/kv/c?ifValue=${encodeURIComponent('two')}`, 'three')).status, 200);
    const both = await put(base, '/v1/kv/c?ifVersion=3&ifValue=three', 'four');
    assert.deepEqual(await json(both), { key: 'c', version: 4, revision: 4, previous: 'three' });
    assert.equal((await put(base, '/v1/kv/fresh?ifVersion=0', 'x')).status, 200, 'version 0 means absent');
    await put(base, '/v1/kv/spaced', 'a b+c');
    assert.equal((await put(base, '/v1/kv/spaced?ifValue=a+b%2Bc', 'd')).status, 200, 'query + is a space, %2B a plus');
  });
});

test('cas failures are 409 cas_failed with the current value and version', async () => {
  await withApi(async ({ base }) => {
    await put(base, '/v1/kv/c', 'now');
    const cases: [string, unknown][] = [
      ['ifVersion=7', { value: 'now', version: 1 }],
      ['ifValue=before', { value: 'now', version: 1 }],
      ['ifAbsent=true', { value: 'now', version: 1 }],
      ['ifVersion=1&ifValue=other', { value: 'now', version: 1 }],
    ];
    for (const [query, current] of cases) {
      const body = await expectError(await put(base, `/v1/kv/c?${query}`, 'new'), 409, 'cas_failed');
      assert.deepEqual(body.current, current, query);
    }
    const absent = await expectError(await put(base, '/v1/kv/missing?ifVersion=1', 'new'), 409, 'cas_failed');
    assert.deepEqual(absent.current, { value: null, version: 0 });
    assert.equal((await json(await fetch(`${base}/v1/kv/c`))).value, 'now');
  });
});

test('malformed cas conditions are 400 and never submitted (a typo must not become a plain put)', async () => {
  await withApi(async ({ base, service }) => {
    for (const query of ['ifAbsent=false', 'ifAbsent=true&ifValue=x', 'ifVersion=abc', 'ifVersion=-1', 'ifVersion=1.0', 'ifVersion=', 'ifversion=1', 'ifVersion=1&ifVersion=2', 'ifValue=%E0']) {
      await expectError(await put(base, `/v1/kv/c?${query}`, 'v'), 400, 'bad_request');
    }
    assert.equal(service.submitted.length, 0);
  });
});

// Exactly-once.

test('Synod-Client-Id and Synod-Seq become the request id; a retry returns the original result', async () => {
  await withApi(async ({ base, service }) => {
    const id = { 'synod-client-id': 'client-7', 'synod-seq': '1' };
    const first = await json(await put(base, '/v1/kv/once', 'first', id));
    assert.deepEqual(service.submitted.at(-1)?.id, { clientId: 'client-7', seq: 1 });
    await put(base, '/v1/kv/once', 'other writer');
    const retry = await json(await put(base, '/v1/kv/once', 'first', id));
    assert.deepEqual(retry, first, 'the retry is answered from the session, not applied again');
    assert.equal((await json(await fetch(`${base}/v1/kv/once`))).value, 'other writer');
    const next = await json(await put(base, '/v1/kv/once', 'second', { ...id, 'synod-seq': '2' }));
    assert.deepEqual(next, { key: 'once', version: 3, revision: 3, previous: 'other writer' });
  });
});

test('exactly-once headers that are partial or malformed are 400', async () => {
  await withApi(async ({ base, service }) => {
    const cases: Record<string, string>[] = [
      { 'synod-client-id': 'c' },
      { 'synod-seq': '1' },
      { 'synod-client-id': 'c', 'synod-seq': '0' },
      { 'synod-client-id': 'c', 'synod-seq': '-1' },
      { 'synod-client-id': 'c', 'synod-seq': '1.5' },
      { 'synod-client-id': 'c', 'synod-seq': '01' },
      { 'synod-client-id': 'c', 'synod-seq': '9007199254740993' },
      { 'synod-client-id': 'c', 'synod-seq': 'one' },
      { 'synod-client-id': 'has space', 'synod-seq': '1' },
      { 'synod-client-id': 'x'.repeat(257), 'synod-seq': '1' },
    ];
    for (const headers of cases) await expectError(await put(base, '/v1/kv/k', 'v', headers), 400, 'bad_request');
    const repeated = new Headers({ 'synod-client-id': 'c' });
    repeated.append('synod-seq', '1');
    repeated.append('synod-seq', '2');
    await expectError(await put(base, '/v1/kv/k', 'v', Object.fromEntries(repeated)), 400, 'bad_request');
    assert.equal(service.submitted.length, 0);
  });
});

// Error mapping.

test('each service error maps to its status, JSON code and Synod-Error header', async () => {
  const cases: [ServiceFailure, number][] = [
    [{ ok: false, error: 'bad_request', message: 'no' }, 400],
    [{ ok: false, error: 'too_large', message: 'big' }, 413],
    [{ ok: false, error: 'cas_failed', message: 'moved', current: { value: 'x', version: 3 } }, 409],
    [{ ok: false, error: 'unavailable', message: 'no quorum' }, 503],
    [{ ok: false, error: 'overloaded', message: 'queue full' }, 429],
    [{ ok: false, error: 'timeout', message: 'slow' }, 504],
  ];
  for (const [failure, status] of cases) {
    await withApi(async ({ base }) => {
      const response = await put(base, '/v1/kv/k', 'v');
      const body = await expectError(response, status, failure.error);
      assert.equal(body.message, failure.message);
      if (failure.current !== undefined) assert.deepEqual(body.current, failure.current);
      const retryAfter = status === 429 || status === 503 ? '1' : null;
      assert.equal(response.headers.get('retry-after'), retryAfter, failure.error);
    }, { service: failingService(failure) });
  }
});

test('not_leader with a known leader HTTP address is a 307 to the same path and query there', async () => {
  const leader = { id: 2, clientAddress: null, httpAddress: '10.0.0.2:8080' };
  await withApi(async ({ base }) => {
    const path = '/v1/kv/a%2Fb/%E6%97%A5?ifVersion=3&ifValue=x+y';
    const response = await fetch(`${base}${path}`, { method: 'PUT', body: 'v', redirect: 'manual' });
    assert.equal(response.status, 307);
    assert.equal(response.headers.get('location'), `http://10.0.0.2:8080${path}`);
    assert.equal(response.headers.get('synod-leader'), '2');
    assert.equal(response.headers.get('synod-error'), 'not_leader');
    const body = await json(response);
    assert.equal(body.error, 'not_leader');
    assert.deepEqual(body.leader, leader);
    const list = await fetch(`${base}/v1/kv?prefix=p`, { redirect: 'manual' });
    assert.equal(list.headers.get('location'), 'http://10.0.0.2:8080/v1/kv?prefix=p');
  }, { service: new FakeKvService({ notLeader: leader }) });
});

test('not_leader brackets a bare IPv6 leader address and refuses an unsafe one', async () => {
  await withApi(async ({ base }) => {
    const response = await fetch(`${base}/v1/kv/k`, { redirect: 'manual' });
    assert.equal(response.headers.get('location'), 'http://[::1]:8080/v1/kv/k');
  }, { service: new FakeKvService({ notLeader: { id: 3, clientAddress: null, httpAddress: '::1:8080' } }) });
  await withApi(async ({ base }) => {
    const response = await fetch(`${base}/v1/kv/k`, { redirect: 'manual' });
    await expectError(response, 503, 'not_leader');
    assert.equal(response.headers.get('location'), null);
  }, { service: new FakeKvService({ notLeader: { id: 3, clientAddress: null, httpAddress: 'evil.example/x?y=' } }) });
});

test('not_leader without a leader HTTP address is 503 (Synod-Leader when the leader is known)', async () => {
  await withApi(async ({ base }) => {
    const response = await fetch(`${base}/v1/kv/k`, { redirect: 'manual' });
    await expectError(response, 503, 'not_leader');
    assert.equal(response.headers.get('synod-leader'), '4');
    assert.equal(response.headers.get('location'), null);
  }, { service: new FakeKvService({ notLeader: { id: 4, clientAddress: '10.0.0.4:7000', httpAddress: null } }) });
  await withApi(async ({ base }) => {
    const response = await fetch(`${base}/v1/kv/k`, { redirect: 'manual' });
    await expectError(response, 503, 'not_leader');
    assert.equal(response.headers.get('synod-leader'), null);
  }, { service: new FakeKvService({ notLeader: null }) });
});

test('a client following the 307 re-sends the PUT body to the leader', async () => {
  await withApi(async (leader) => {
    const endpoint = { id: 1, clientAddress: null, httpAddress: `${HOST}:${leader.port}` };
    await withApi(async (follower) => {
      const response = await put(follower.base, '/v1/kv/moved?ifAbsent=true', 'carried');
      assert.equal(response.status, 200);
      assert.deepEqual(await json(response), { key: 'moved', version: 1, revision: 1, previous: null });
      assert.equal(leader.service.machine.revision, 1);
      assert.equal((await json(await fetch(`${leader.base}/v1/kv/moved`))).value, 'carried');
    }, { service: new FakeKvService({ id: 2, notLeader: endpoint }) });
  });
});

test('an unexpected exception is a 500 internal error, logged, and the server keeps serving', async () => {
  class BrokenStatus extends FakeKvService {
    override status(): NodeStatusReport {
      throw new Error('status exploded');
    }
  }
  await withApi(async ({ base, logger }) => {
    await expectError(await fetch(`${base}/v1/status`), 500, 'internal');
    const logged = logger.lines.find((line) => line.level === 'error');
    assert.ok(logged !== undefined);
    assert.match(String((logged.fields as { err: Error }).err.message), /status exploded/);
    assert.equal((await put(base, '/v1/kv/k', 'still here')).status, 200);
  }, { service: new BrokenStatus() });
});

test('a reply that cannot be written (a bad header from the service) becomes a 500, logged', async () => {
  const service = Object.assign(new FakeKvService(), { metricsContentType: 'text/plain\r\nx-injected: 1' });
  await withApi(async ({ base, logger }) => {
    const response = await fetch(`${base}/metrics`);
    await expectError(response, 500, 'internal');
    assert.equal(response.headers.get('x-injected'), null);
    assert.ok(logger.lines.some((line) => line.level === 'error'));
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  }, { service });
});

// Bodies and limits.

test('invalid UTF-8 in a body is 400 and never submitted', async () => {
  await withApi(async ({ base, service }) => {
    for (const bytes of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0x61, 0xe2, 0x82]]) {
      await expectError(await put(base, '/v1/kv/k', new Uint8Array(bytes)), 400, 'bad_request');
    }
    assert.equal(service.submitted.length, 0);
  });
});

test('a declared body over the limit is 413 (connection closed) and the server keeps serving', async () => {
  await withApi(async ({ base, service }) => {
    const response = await put(base, '/v1/kv/big', 'x'.repeat(1500));
    await expectError(response, 413, 'too_large');
    assert.equal(response.headers.get('connection'), 'close');
    assert.equal(service.submitted.length, 0);
    assert.equal((await put(base, '/v1/kv/small', 'x'.repeat(1024))).status, 200);
  }, { api: { bodyBytesMax: 1024 } });
});

/** Starts a chunked PUT, writes `chunk` without ending, and resolves with the answer that arrives. */
function answerBeforeBodyEnds(port: number, chunk: Buffer, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string; continued: boolean }> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const request = http.request({ host: HOST, port, method: 'PUT', path: '/v1/kv/stream', headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (data: Buffer) => chunks.push(data));
      response.on('end', () => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), continued });
      });
    });
    request.on('continue', () => {
      continued = true;
    });
    request.on('error', reject);
    if (headers.expect === undefined) request.write(chunk);
    else request.flushHeaders();
  });
}

test('a streamed body is refused with 413 as soon as it crosses the limit, before the client finishes', async () => {
  await withApi(async ({ base, port, service }) => {
    const answer = await answerBeforeBodyEnds(port, Buffer.alloc(4096, 0x61));
    assert.equal(answer.status, 413);
    assert.equal(JSON.parse(answer.body).error, 'too_large');
    assert.equal(service.submitted.length, 0);
    assert.equal((await put(base, '/v1/kv/after', 'fine')).status, 200);
  }, { api: { bodyBytesMax: 1024 } });
});

test('Expect: 100-continue with a declared body over the limit is refused before the body is sent', async () => {
  await withApi(async ({ base, port }) => {
    const answer = await answerBeforeBodyEnds(port, Buffer.alloc(0), { expect: '100-continue', 'content-length': 4096 });
    assert.equal(answer.status, 413);
    assert.equal(answer.continued, false);
    assert.equal((await put(base, '/v1/kv/after', 'fine')).status, 200);
  }, { api: { bodyBytesMax: 1024 } });
});

test('Expect: 100-continue within the limit is told to continue and served', async () => {
  await withApi(async ({ port, service }) => {
    const answer = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const request = http.request(
        { host: HOST, port, method: 'PUT', path: '/v1/kv/ok', agent: false, headers: { expect: '100-continue', 'content-length': 5 } },
        (response) => {
          response.resume();
          response.on('end', () => resolve({ status: response.statusCode ?? 0, continued }));
        },
      );
      request.on('continue', () => {
        continued = true;
        request.end('hello');
      });
      request.on('error', reject);
      request.flushHeaders();
    });
    assert.deepEqual(answer, { status: 200, continued: true });
    assert.equal(service.machine.revision, 1);
  });
});

test('with the default body limit, a value just over VALUE_BYTES_MAX is 413 naming the value', async () => {
  await withApi(async ({ base, service }) => {
    const body = await expectError(await put(base, '/v1/kv/huge', 'v'.repeat(VALUE_BYTES_MAX + 1)), 413, 'too_large');
    assert.match(String(body.message), /value/);
    assert.equal(service.submitted.length, 0);
    assert.equal((await put(base, '/v1/kv/max', 'v'.repeat(VALUE_BYTES_MAX))).status, 200);
  });
});

test('unparseable requests and oversized headers get a JSON error and a closed connection', async () => {
  await withApi(async ({ base, port }) => {
    const garbage = await rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 /);
    assert.match(garbage, /synod-error: bad_request/);
    assert.match(garbage, /"error":"bad_request"/);
    const rawUnicode = await rawExchange(port, Buffer.from('GET /v1/kv/é HTTP/1.1\r\nHost: x\r\n\r\n', 'utf8'));
    assert.match(rawUnicode, /^HTTP\/1\.1 400 /);
    const huge = await rawExchange(port, `GET /v1/kv/k HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(2048)}\r\n\r\n`);
    assert.match(huge, /^HTTP\/1\.1 431 /);
    assert.match(huge, /"error":"too_large"/);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  }, { api: { headerBytesMax: 1024 } });
});

test('an absolute-form request target is served like its path', async () => {
  await withApi(async ({ port }) => {
    const answer = await rawExchange(port, 'GET http://example.test/v1/kv/a%2Fb?x=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /, 'the query is checked, so the path was parsed');
    const found = await rawExchange(port, 'GET http://example.test/v1/kv/a%2Fb HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n');
    assert.match(found, /^HTTP\/1\.1 404 /);
    assert.match(found, /"key":"a\/b"/);
  });
});

test('a request whose body does not arrive in time gets 408 timeout and a closed connection', async () => {
  await withApi(async ({ base, port, service }) => {
    const answer = await rawExchange(port, 'PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab');
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /"error":"timeout"/);
    assert.equal(service.submitted.length, 0);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  }, { api: { requestTimeoutMs: 100 } });
});

test('connections beyond connectionsMax are refused at accept; a freed slot serves again', async () => {
  await withApi(async ({ base, port }) => {
    const holder = net.connect(port, HOST);
    await once(holder, 'connect');
    const refused = net.connect(port, HOST);
    refused.on('error', () => {});
    refused.on('data', () => assert.fail('a refused connection gets no answer'));
    await once(refused, 'close');
    holder.destroy();
    let status = 0;
    for (let attempt = 0; attempt < 1000 && status !== 200; attempt += 1) {
      status = await fetch(`${base}/healthz`, { headers: { connection: 'close' } }).then((response) => response.status, () => 0);
    }
    assert.equal(status, 200);
  }, { api: { connectionsMax: 1 } });
});

// Lifecycle.

test('stop closes idle keep-alive connections, answers requests in progress with Connection: close, and is idempotent', async () => {
  const service = new FakeKvService({ delayMs: 30 });
  const api = new HttpApi({ service, host: HOST, port: 0 });
  const { port } = await api.start();
  const base = `http://${HOST}:${port}`;
  assert.equal((await fetch(`${base}/healthz`)).status, 200, 'leaves an idle keep-alive connection');
  const inProgress = put(base, '/v1/kv/k', 'v');
  while (service.submitted.length === 0) await new Promise((resolve) => setImmediate(resolve));
  await Promise.all([api.stop(), api.stop()]);
  const response = await inProgress;
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('connection'), 'close');
  await api.stop();
  await assert.rejects(fetch(`${base}/healthz`));
  await assert.rejects(api.start(), /start called twice or after stop/);
});

test('start rejects when the address is taken', async () => {
  await withApi(async ({ port, service }) => {
    const second = new HttpApi({ service, host: HOST, port });
    await assert.rejects(second.start(), /EADDRINUSE/);
    await second.stop();
  });
});

test('invalid options are refused at construction', () => {
  const service = new FakeKvService();
  for (const bad of [{ port: -1 }, { port: 70_000 }, { bodyBytesMax: 0 }, { requestTimeoutMs: 1.5 }, { connectionsMax: -3 }, { headerBytesMax: Number.NaN }]) {
    assert.throws(() => new HttpApi({ service, host: HOST, port: 0, ...bad }), RangeError);
  }
});

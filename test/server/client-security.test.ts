/**
 * The client APIs' defences in one process, over fake services: the client token on the binary
 * protocol, on HTTP and in the client library (typed `unauthorized`, counted, logged without the
 * token, checked before a body is read), and TLS on both listeners with certificates made by
 * openssl in the test (a client that trusts the CA works; one that does not, or that speaks
 * plaintext, is refused and counted, and the listener keeps serving).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynodClient, SynodClientError } from '../../src/client/index.js';
import { PROTOCOL_VERSION, type ServerMessage } from '../../src/protocol/index.js';
import { ClientAccess, bearerToken, clientTokenProblem, type ClientApi, type ClientRefusal } from '../../src/server/access.js';
import { HttpApi } from '../../src/server/http.js';
import { FakeKvService } from '../helpers/fake-service.js';
import { makeCa, type CertFiles, type TestCa } from '../helpers/certs.js';
import { HOST, RawClient, request, startListener, waitFor } from '../client/harness.js';

const TOKEN = 'client-token-0123456789-abcdef';

/** A logger that keeps every line as JSON text, to search for leaks. */
class TextLogger {
  readonly lines: string[] = [];
  info(fields: object, message: string): void {
    this.lines.push(JSON.stringify({ level: 'info', ...fields, message }));
  }
  warn(fields: object, message: string): void {
    this.lines.push(JSON.stringify({ level: 'warn', ...fields, message }));
  }
  error(fields: object, message: string): void {
    this.lines.push(JSON.stringify({ level: 'error', ...fields, message }));
  }
}

function accessWithToken(logger: TextLogger): { access: ClientAccess; refused: [ClientApi, ClientRefusal][] } {
  const refused: [ClientApi, ClientRefusal][] = [];
  const access = new ClientAccess({ token: TOKEN, logger, onRefused: (api, reason) => refused.push([api, reason]) });
  return { access, refused };
}

/** The server's first message on a fresh connection after a hello carrying `token`. */
async function helloAnswer(port: number, token: string | null): Promise<{ answer: ServerMessage; client: RawClient }> {
  const client = await RawClient.connect(port, false);
  client.send({ type: 'hello', version: PROTOCOL_VERSION, token });
  return { answer: await client.next(), client };
}

test('client token: bearer parsing and token rules', () => {
  assert.equal(bearerToken('Bearer abc'), 'abc');
  assert.equal(bearerToken('bearer   abc  '), 'abc');
  assert.equal(bearerToken('Basic abc'), null);
  assert.equal(bearerToken('Bearer'), null);
  assert.equal(bearerToken('Bearer a b'), null);
  assert.equal(bearerToken(undefined), null);
  assert.equal(clientTokenProblem(TOKEN), null);
  assert.match(clientTokenProblem('short') ?? '', /at least 16/);
  assert.match(clientTokenProblem('has a space in it, sadly') ?? '', /visible ASCII/);
  assert.throws(() => new ClientAccess({ token: 'short' }), RangeError);
});

test('client token: ClientAccess admits only the exact token and counts each refusal by api and reason', () => {
  const logger = new TextLogger();
  const { access, refused } = accessWithToken(logger);
  assert.ok(access.tokenRequired);
  assert.equal(access.admit('binary', TOKEN, 'here:1'), null);
  assert.equal(access.admit('binary', null, 'here:1'), 'missing-token');
  assert.equal(access.admit('http', '', 'here:1'), 'missing-token');
  assert.equal(access.admit('http', `${TOKEN}x`, 'here:1'), 'bad-token');
  assert.equal(access.admit('http', TOKEN.slice(0, -1), 'here:1'), 'bad-token');
  assert.deepStrictEqual(refused, [['binary', 'missing-token'], ['http', 'missing-token'], ['http', 'bad-token'], ['http', 'bad-token']]);
  assert.deepStrictEqual(access.stats(), { 'binary/missing-token': 1, 'http/missing-token': 1, 'http/bad-token': 2 });
  assert.ok(logger.lines.every((line) => !line.includes(TOKEN.slice(0, 12))), 'no token prefix in the log');
  const open = new ClientAccess({ token: null });
  assert.equal(open.admit('binary', null, 'here:1'), null);
});

test('client token on the binary protocol: a hello without it or with a wrong one gets unauthorized and the close; the right one a welcome', async () => {
  const logger = new TextLogger();
  const { access } = accessWithToken(logger);
  const { listener, port } = await startListener(new FakeKvService({ id: 4 }), { access, logger });
  try {
    for (const token of [null, 'not-the-token-but-long-enough']) {
      const { answer, client } = await helloAnswer(port, token);
      assert.ok(answer.type === 'failure' && answer.reqId === 0 && answer.failure.error === 'unauthorized', JSON.stringify(answer));
      await client.closed;
    }
    // Requests written right behind a refused hello are not executed.
    const eager = await RawClient.connect(port, false);
    eager.sendAll([{ type: 'hello', version: PROTOCOL_VERSION, token: null }, request(1, { type: 'put', key: 'sneaky', value: 'v' })]);
    assert.equal((await eager.next()).type, 'failure');
    await eager.closed;
    const { answer, client } = await helloAnswer(port, TOKEN);
    assert.equal(answer.type, 'welcome');
    client.send(request(1, { type: 'get', key: 'sneaky' }));
    const got = await client.next();
    assert.ok(got.type === 'result' && got.result.type === 'get' && got.result.value === null, 'the sneaky put never ran');
    client.destroy();
    assert.equal(listener.stats().errors.unauthorized, 3);
    assert.deepStrictEqual(access.stats(), { 'binary/missing-token': 2, 'binary/bad-token': 1 });
    const refusals = logger.lines.filter((line) => line.includes('client refused'));
    assert.equal(refusals.length, 3);
    assert.ok(refusals.every((line) => /"remote":"127\.0\.0\.1:\d+"/.test(line)), refusals.join('\n'));
    assert.ok(logger.lines.every((line) => !line.includes(TOKEN)), 'the token is never logged');
  } finally {
    await listener.stop();
  }
});

test('client token in the client library: without it every call fails at once with unauthorized (no retries); with it everything works', async () => {
  const { access } = accessWithToken(new TextLogger());
  const { listener, endpoint } = await startListener(new FakeKvService(), { access });
  const anonymous = new SynodClient({ endpoints: [endpoint], timeoutMs: 60_000 });
  const wrong = new SynodClient({ endpoints: [endpoint], timeoutMs: 60_000, token: 'a-wrong-token-of-enough-length' });
  const right = new SynodClient({ endpoints: [endpoint], token: TOKEN });
  try {
    const isUnauthorized = (error: unknown): boolean => error instanceof SynodClientError && error.code === 'unauthorized';
    await assert.rejects(anonymous.put('k', 'v'), isUnauthorized);
    await assert.rejects(wrong.get('k'), isUnauthorized);
    await assert.rejects(anonymous.status(), isUnauthorized);
    assert.equal(listener.stats().connectionsAccepted, 3, 'one connection per refused call: no retry loop');
    await right.put('k', 'v');
    assert.equal((await right.get('k')).value, 'v');
    assert.equal((await right.status()).id, 1);
  } finally {
    await Promise.all([anonymous.close(), wrong.close(), right.close()]);
    await listener.stop();
  }
});

/** Runs `body` against an HttpApi with the token required. */
async function withTokenApi(body: (base: string, service: FakeKvService, access: ClientAccess, logger: TextLogger) => Promise<void>): Promise<void> {
  const logger = new TextLogger();
  const { access } = accessWithToken(logger);
  const service = new FakeKvService();
  const api = new HttpApi({ service, host: HOST, port: 0, access, logger });
  const { port } = await api.start();
  try {
    await body(`http://${HOST}:${port}`, service, access, logger);
  } finally {
    await api.stop();
  }
}

test('client token on HTTP: 401 with WWW-Authenticate unless Authorization: Bearer is right; /healthz open, /metrics and /v1/status closed', async () => {
  await withTokenApi(async (base, service, access, logger) => {
    const bearer = { authorization: `Bearer ${TOKEN}` };
    const missing = await fetch(`${base}/v1/kv/a`);
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="synod"');
    assert.equal(missing.headers.get('synod-error'), 'unauthorized');
    assert.equal(((await missing.json()) as { error: string }).error, 'unauthorized');
    const wrong = await fetch(`${base}/v1/kv/a`, { headers: { authorization: 'Bearer not-the-token-at-all-really' } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('www-authenticate'), 'Bearer realm="synod", error="invalid_token"');
    await wrong.body?.cancel();
    const basic = await fetch(`${base}/v1/kv/a`, { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
    assert.equal(basic.status, 401);
    await basic.body?.cancel();
    const put = await fetch(`${base}/v1/kv/a`, { method: 'PUT', body: 'v', headers: bearer });
    assert.equal(put.status, 200);
    await put.body?.cancel();
    assert.equal(((await (await fetch(`${base}/v1/kv/a`, { headers: bearer })).json()) as { value: string }).value, 'v');
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    for (const path of ['/metrics', '/v1/status', '/v1/kv?prefix=', '/no-such-route']) {
      const closed = await fetch(`${base}${path}`);
      assert.equal(closed.status, 401, path);
      await closed.body?.cancel();
    }
    assert.equal((await fetch(`${base}/metrics`, { headers: bearer })).status, 200);
    assert.equal((await fetch(`${base}/v1/status`, { headers: bearer })).status, 200);
    assert.equal(service.submitted.length, 2, 'only the authorized put and get reached the service');
    assert.equal(access.stats()['http/missing-token'], 6); // none, Basic, and the four closed paths
    assert.equal(access.stats()['http/bad-token'], 1);
    assert.ok(logger.lines.every((line) => !line.includes(TOKEN)), 'the token is never logged');
  });
});

test('client token on HTTP: an unauthorized upload is refused before its body is read, and is not invited by 100-continue', async () => {
  await withTokenApi(async (base, service) => {
    const { port } = new URL(base);
    // The headers declare 600 KiB but only the headers are sent: a 401 must come without the body.
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), HOST, () => {
        socket.write(`PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: ${600 * 1024}\r\n\r\n`);
      });
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.includes('\r\n\r\n')) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 401 /);
    const expect = await new Promise<number>((resolve, reject) => {
      const outgoing = http.request(`${base}/v1/kv/big`, { method: 'PUT', headers: { expect: '100-continue', 'content-length': '10' } });
      outgoing.on('continue', () => reject(new Error('an unauthorized client was told to continue')));
      outgoing.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      outgoing.on('error', reject);
    });
    assert.equal(expect, 401);
    assert.equal(service.submitted.length, 0);
  });
});

// TLS on the client listeners.

let dir = '';
let ca: TestCa;
let serverCert: CertFiles;
let otherCa: TestCa;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'synod-client-tls-'));
  [ca, otherCa] = await Promise.all([makeCa(dir, 'client-ca'), makeCa(dir, 'other-ca')]);
  serverCert = await ca.issue('server');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('tls on the binary listener: a client trusting the CA is served; an untrusting or plaintext client is refused and counted; the listener keeps serving', async () => {
  const logger = new TextLogger();
  const access = new ClientAccess({ token: null, logger });
  const { listener, endpoint } = await startListener(new FakeKvService(), { access, logger, tls: { cert: serverCert.cert, key: serverCert.key } });
  const trusting = new SynodClient({ endpoints: [endpoint], tls: { ca: ca.cert } });
  // A status request is one attempt: it ends with the refusal itself, however slow the machine.
  const untrusting = new SynodClient({ endpoints: [endpoint], tls: { ca: otherCa.cert }, timeoutMs: 10_000, attemptTimeoutMs: 10_000 });
  const plaintext = new SynodClient({ endpoints: [endpoint], timeoutMs: 10_000, attemptTimeoutMs: 10_000 });
  // An operation retries until its deadline, so it ends in a timeout: only that it fails is checked.
  const hurried = new SynodClient({ endpoints: [endpoint], tls: { ca: otherCa.cert }, timeoutMs: 600, attemptTimeoutMs: 300 });
  try {
    await trusting.put('k', 'v');
    await assert.rejects(untrusting.status(), (error: unknown) => error instanceof SynodClientError && error.code === 'unavailable' && /certificate/i.test(error.message));
    await assert.rejects(plaintext.status(), (error: unknown) => error instanceof SynodClientError && error.code === 'unavailable');
    await assert.rejects(hurried.get('k'), SynodClientError);
    await waitFor(() => (access.stats()['binary/tls-handshake'] ?? 0) >= 2, 'the TLS refusals counted');
    assert.ok(logger.lines.some((line) => line.includes('client refused') && line.includes('tls-handshake')));
    assert.equal((await trusting.get('k')).value, 'v');
  } finally {
    await Promise.all([trusting.close(), untrusting.close(), plaintext.close(), hurried.close()]);
    await listener.stop();
  }
});

/** GET over HTTPS with `ca`; resolves with status and body, rejects on a TLS error. */
function httpsGet(url: string, options: https.RequestOptions): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = https.request(url, options, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

test('tls on HTTP: HTTPS with the CA works and redirects say https; untrusting and plaintext clients are refused and counted', async () => {
  const logger = new TextLogger();
  const access = new ClientAccess({ token: null, logger });
  const leader = { id: 2, clientAddress: '127.0.0.1:7002', httpAddress: '127.0.0.1:8002' };
  const follower = new FakeKvService({ notLeader: leader });
  const api = new HttpApi({ service: follower, host: HOST, port: 0, access, logger, tls: { cert: serverCert.cert, key: serverCert.key } });
  const { port } = await api.start();
  const base = `https://${HOST}:${port}`;
  try {
    const health = await httpsGet(`${base}/healthz`, { ca: ca.cert });
    assert.equal(health.status, 200);
    const redirect = await httpsGet(`${base}/v1/kv/a`, { ca: ca.cert });
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.location, 'https://127.0.0.1:8002/v1/kv/a');
    await assert.rejects(httpsGet(`${base}/healthz`, { ca: otherCa.cert }), /certificate/i);
    const plain = await fetch(`http://${HOST}:${port}/healthz`).then((response) => response.status, (error: unknown) => error);
    assert.ok(plain instanceof Error, `a plaintext request got ${String(plain)}`);
    await waitFor(() => (access.stats()['http/tls-handshake'] ?? 0) >= 2, 'the TLS refusals counted');
    assert.equal((await httpsGet(`${base}/healthz`, { ca: ca.cert })).status, 200);
  } finally {
    await api.stop();
  }
});

/**
 * Fuzzing the HTTP/JSON API over raw sockets: seeded requests with random and odd methods, paths
 * (percent-encoding good and bad, raw non-ASCII, dot segments, absolute form), query strings,
 * headers (duplicates, malformed exactly-once headers, bad Content-Length, Expect, Upgrade), bodies
 * and chunked encodings (bad sizes, extensions, trailers), cut short or split at random points.
 * Every request must get a complete HTTP answer within the request timeout (never a hang), never a
 * 5xx (the fake service is a healthy leader, so a 5xx can only be a crash), every error must be
 * typed (JSON `error` code and a `Synod-Error` header), and well-formed requests must still work
 * afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { HttpApi, type HttpApiLogger } from '../../src/server/http.js';
import { FakeKvService } from '../helpers/fake-service.js';
import { fuzzScale, fuzzSeed, seededRandom } from './mutate.js';

const HOST = '127.0.0.1';
const REQUEST_TIMEOUT_MS = 300;
const BODY_BYTES_MAX = 2_048;
const REQUESTS = 160 * fuzzScale();

/** Counts error-level log lines: an unexpected exception is logged at error. */
class CountingLogger implements HttpApiLogger {
  errors: string[] = [];
  info(): void {}
  warn(): void {}
  error(fields: object, message: string): void {
    this.errors.push(`${message} ${JSON.stringify(fields, (_key, value: unknown) => (value instanceof Error ? value.stack : value))}`);
  }
}

type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

const METHODS = ['GET', 'GET', 'GET', 'PUT', 'PUT', 'PUT', 'DELETE', 'HEAD', 'POST', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT', 'get', 'PURGE', 'M-SEARCH', 'GE T', 'BREW', '', '\u00e9T'];
const PREFIXES = ['/v1/kv/', '/v1/kv/', '/v1/kv/', '/v1/kv', '/v1/kv/?', '/v1/status', '/metrics', '/healthz', '/', '', '*', '/v1/kv//', '/v1/../v1/kv/', 'http://example.com/v1/kv/', 'https://x:1/v1/kv', '/V1/KV/', '//v1/kv/'];
const KEY_PIECES = ['a', 'key', '%41', '%2F', '/', '%', '%zz', '%C3%A9', '%C3%28', '%ED%A0%80', '%F4%90%80%80', '%00', '+', ' ', '%20', '..', '.', '#frag', '?', '&', '=', '\u00e9', '\u{1F600}', '%E2%82', '\\', '"', '<', '\t', '%25'];
const QUERY_NAMES = ['ifVersion', 'ifValue', 'ifAbsent', 'prefix', 'limit', 'x', '', 'ifversion', '%69fVersion', 'limit[]'];
const QUERY_VALUES = ['1', '0', '-1', '007', 'true', 'false', '', '99999999999999999999', '1e3', '%ZZ', 'a+b', '%C3%A9', '10001', '3.5', '\u00e9'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/1.1x', 'HTTP/0.9', ''];

function randomText(random: Random, maxLength: number): string {
  const length = Math.floor(random() * maxLength);
  let text = '';
  for (let index = 0; index < length; index += 1) text += pick(random, KEY_PIECES);
  return text;
}

function randomTarget(random: Random): string {
  let target = pick(random, PREFIXES);
  if (target.includes('/kv/')) target += randomText(random, 6);
  if (random() < 0.5) {
    const parts: string[] = [];
    const count = 1 + Math.floor(random() * 3);
    for (let index = 0; index < count; index += 1) {
      const name = pick(random, QUERY_NAMES);
      parts.push(random() < 0.15 ? name : `${name}=${pick(random, QUERY_VALUES)}`);
    }
    target += `?${parts.join(random() < 0.9 ? '&' : ';')}`;
  }
  if (random() < 0.05) target += 'x'.repeat(Math.floor(random() * 70_000)); // past the header limit, sometimes
  return target;
}

/** A body, and how it is framed (length, chunked good or bad, or neither). */
function randomBody(random: Random): { headers: string[]; body: Buffer } {
  const size = random() < 0.1 ? BODY_BYTES_MAX + Math.floor(random() * 4_000) : Math.floor(random() * 64);
  const content = Buffer.from(fc.sample(random() < 0.5 ? fc.string({ unit: 'binary', minLength: size, maxLength: size }) : fc.string({ minLength: size, maxLength: size }), { seed: Math.floor(random() * 2 ** 31), numRuns: 1 })[0] ?? '', 'utf8');
  const raw = random() < 0.15 ? Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 256))) : content;
  const framing = random();
  if (framing < 0.45) {
    const declared = random() < 0.8 ? String(raw.length) : pick(random, ['-1', '1e2', 'abc', '99999999999999999999', `${raw.length + 5}`, `${Math.max(0, raw.length - 3)}`, ` ${raw.length}`, `${raw.length}, ${raw.length}`]);
    return { headers: [`Content-Length: ${declared}`], body: raw };
  }
  if (framing < 0.75) {
    const chunks: Buffer[] = [];
    let offset = 0;
    while (offset < raw.length) {
      const take = 1 + Math.floor(random() * 40);
      const piece = raw.subarray(offset, offset + take);
      offset += take;
      const sizeText = random() < 0.9 ? piece.length.toString(16) : pick(random, ['zz', '-1', 'ffffffffffffffff', `${piece.length.toString(16)};ext=1`, `${piece.length.toString(16)} `, '']);
      chunks.push(Buffer.from(`${sizeText}\r\n`), piece, Buffer.from(random() < 0.95 ? '\r\n' : '\n'));
    }
    chunks.push(Buffer.from(random() < 0.9 ? '0\r\n\r\n' : pick(random, ['0\r\nX-Trailer: 1\r\n\r\n', '0\r\n', '', '00000\r\n\r\n'])));
    const encoding = random() < 0.9 ? 'chunked' : pick(random, ['gzip, chunked', 'chunked, gzip', 'identity', 'Chunked']);
    const headers = [`Transfer-Encoding: ${encoding}`];
    if (random() < 0.1) headers.push(`Content-Length: ${raw.length}`); // both: a smuggling shape
    return { headers, body: Buffer.concat(chunks) };
  }
  return { headers: [], body: random() < 0.8 ? Buffer.alloc(0) : raw };
}

function randomHeaders(random: Random): string[] {
  const headers: string[] = [];
  if (random() < 0.9) headers.push(`Host: ${pick(random, ['127.0.0.1', 'localhost:80', '', 'a b', 'x'.repeat(300)])}`);
  if (random() < 0.3) headers.push(`Synod-Client-Id: ${pick(random, ['c1', '', 'a b', '\u00e9', 'x'.repeat(300), 'ok-id'])}`);
  if (random() < 0.3) headers.push(`Synod-Seq: ${pick(random, ['1', '0', '-5', '1.5', '9007199254740993', 'abc', '', '42'])}`);
  if (random() < 0.05) headers.push('Synod-Seq: 2', 'Synod-Seq: 3');
  if (random() < 0.1) headers.push(`Expect: ${pick(random, ['100-continue', '100-continue', 'nonsense'])}`);
  if (random() < 0.05) headers.push('Connection: Upgrade', 'Upgrade: websocket');
  if (random() < 0.1) headers.push(`Connection: ${pick(random, ['close', 'keep-alive', 'nonsense'])}`);
  if (random() < 0.05) headers.push('Bad Header: x', 'NoColon', ':empty-name', 'X-Fold: a\r\n folded');
  if (random() < 0.05) headers.push(...Array.from({ length: 70 }, (_, index) => `X-Many-${index}: 1`));
  if (random() < 0.03) headers.push(`X-Huge: ${'h'.repeat(70_000)}`);
  if (random() < 0.05) headers.push(`X-Bytes: ${String.fromCharCode(0, 1, 0x7f, 0xff)}`);
  return headers;
}

/** One hostile request as bytes: anything goes, including cutting it short. */
function randomRequest(random: Random): { bytes: Buffer; method: string } {
  if (random() < 0.5) return plausibleRequest(random);
  const method = pick(random, METHODS);
  const { headers: bodyHeaders, body } = randomBody(random);
  const version = pick(random, VERSIONS);
  const line = version === '' ? `${method} ${randomTarget(random)}` : `${method} ${randomTarget(random)} ${version}`;
  const head = [line, ...randomHeaders(random), ...bodyHeaders].join(random() < 0.95 ? '\r\n' : '\n');
  let bytes = Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body]);
  if (random() < 0.1) bytes = bytes.subarray(0, Math.floor(random() * bytes.length)); // cut short
  if (random() < 0.05) bytes = Buffer.concat([bytes, Buffer.from('\r\n\r\nGARBAGE / HTTP/9\r\n\r\n')]);
  return { bytes, method };
}

const VALID_KEY_PIECES = ['a', 'b', 'key', '%41', '%2F', '/', '%C3%A9', '%F0%9F%98%80', '+', '%20', '-', '_', '.', '~', '%25'];
const WRITE_QUERIES = ['', '', '', '?ifVersion=0', '?ifVersion=1', '?ifAbsent=true', '?ifValue=x', '?ifValue=%C3%A9&ifVersion=2', '?ifVersion=1&ifAbsent=true'];
const LIST_QUERIES = ['', '?prefix=a&limit=3', '?limit=10000', '?prefix=%2F', '?prefix=%C3%A9&limit=1'];

/** A request that is mostly right: real routes, valid keys and framing, sometimes one thing off. */
function plausibleRequest(random: Random): { bytes: Buffer; method: string } {
  const method = pick(random, ['GET', 'PUT', 'PUT', 'DELETE', 'HEAD']);
  let key = '';
  const pieces = 1 + Math.floor(random() * 4);
  for (let index = 0; index < pieces; index += 1) key += pick(random, VALID_KEY_PIECES);
  const collection = method === 'GET' && random() < 0.2;
  const query = method === 'PUT' ? pick(random, WRITE_QUERIES) : '';
  const target = collection ? `/v1/kv${pick(random, ['', '/'])}${pick(random, LIST_QUERIES)}` : `/v1/kv/${key}${query}`;
  const headers = ['Host: 127.0.0.1'];
  if (random() < 0.3) headers.push(`Synod-Client-Id: fuzz-${Math.floor(random() * 3)}`, `Synod-Seq: ${1 + Math.floor(random() * 4)}`); // ids collide often
  let body = Buffer.alloc(0);
  if (method === 'PUT') {
    const value = fc.sample(fc.string({ unit: 'grapheme', maxLength: 40 }), { seed: Math.floor(random() * 2 ** 31), numRuns: 1 })[0] ?? '';
    body = Buffer.from(value, 'utf8');
    if (random() < 0.7) headers.push(`Content-Length: ${body.length}`);
    else {
      headers.push('Transfer-Encoding: chunked');
      body = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
    }
  }
  let bytes = Buffer.concat([Buffer.from(`${method} ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`, 'utf8'), body]);
  if (random() < 0.1) bytes = bytes.subarray(0, Math.floor(random() * bytes.length)); // cut short
  return { bytes, method };
}

interface RawResponse {
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: Buffer;
}

/**
 * Parses the first response in `data`: null while it is incomplete, unless the connection has
 * `ended` (then whatever arrived of it counts, so an answer without a length is still seen).
 */
function parseResponse(data: Buffer, headOnly: boolean, ended = false): RawResponse | null {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? '');
  assert.ok(match !== null, `bad status line ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string>();
  for (const header of lines.slice(1)) {
    const colon = header.indexOf(':');
    headers.set(header.slice(0, colon).trim().toLowerCase(), header.slice(colon + 1).trim());
  }
  const status = Number(match[1]);
  if (status === 100) return parseResponse(data.subarray(end + 4), headOnly, ended); // the final answer follows
  if (headOnly || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) };
  const length = headers.get('content-length');
  if (length === undefined) return ended ? { status, headers, body: data.subarray(end + 4) } : null;
  const bodyEnd = end + 4 + Number(length);
  if (data.length < bodyEnd) return ended ? { status, headers, body: data.subarray(end + 4) } : null;
  return { status, headers, body: data.subarray(end + 4, bodyEnd) };
}

/** Sends `bytes` in random chunks; resolves with the first response, or null if the server closed without one. */
async function exchange(port: number, bytes: Buffer, headOnly: boolean, random: Random, timeoutMs: number): Promise<{ response: RawResponse | null; raw: Buffer }> {
  const socket = net.connect(port, HOST);
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  let settle: (() => void) | null = null;
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    settle?.();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
    settle?.();
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  let offset = 0;
  while (offset < bytes.length && !closed) {
    const size = 1 + Math.floor(random() * (random() < 0.3 ? 4_000 : 64));
    socket.write(bytes.subarray(offset, offset + size));
    offset += size;
    if (random() < 0.2) await new Promise((resolve) => setImmediate(resolve));
  }
  const deadline = Date.now() + timeoutMs;
  try {
    while (true) {
      const data = Buffer.concat(chunks);
      const response = parseResponse(data, headOnly, closed);
      if (response !== null) return { response, raw: data };
      if (closed) return { response: null, raw: data };
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer within ${timeoutMs} ms to ${JSON.stringify(bytes.subarray(0, 200).toString('latin1'))}`);
      await new Promise<void>((resolve) => {
        settle = resolve;
        setTimeout(resolve, Math.min(left, 50));
      });
      settle = null;
    }
  } finally {
    socket.destroy();
  }
}

function assertTypedAnswer(response: RawResponse, method: string, request: Buffer): void {
  const what = `${response.status} to ${JSON.stringify(request.subarray(0, 160).toString('latin1'))}`;
  assert.ok(response.status < 500, `a 5xx is a crash here: ${what} ${response.body.toString('utf8')}`);
  if (response.status < 400) return;
  const code = response.headers.get('synod-error');
  if (response.status === 404 && code === undefined && (method === 'GET' || method === 'HEAD')) {
    // A get of an absent key: the success shape with value null, not an error.
    if (method === 'GET') assert.equal((JSON.parse(response.body.toString('utf8')) as { value?: unknown }).value, null);
    return;
  }
  assert.ok(code !== undefined && code.length > 0, `an error answer carries Synod-Error: ${what}`);
  if (method === 'HEAD' && response.body.length === 0) return;
  const body = JSON.parse(response.body.toString('utf8')) as { error?: unknown; message?: unknown };
  assert.equal(body.error, code, what);
  assert.equal(typeof body.message, 'string', what);
}

async function assertStillServing(port: number): Promise<void> {
  const put = await fetch(`http://${HOST}:${port}/v1/kv/after-fuzz`, { method: 'PUT', body: 'still here' });
  assert.equal(put.status, 200);
  const get = await fetch(`http://${HOST}:${port}/v1/kv/after-fuzz`);
  assert.equal(((await get.json()) as { value: string }).value, 'still here');
}

test('http fuzz: random requests over raw sockets get a typed answer in time, never a 5xx, and the API keeps serving', async () => {
  const service = new FakeKvService();
  const logger = new CountingLogger();
  const api = new HttpApi({ service, host: HOST, port: 0, logger, requestTimeoutMs: REQUEST_TIMEOUT_MS, bodyBytesMax: BODY_BYTES_MAX });
  const { port } = await api.start();
  const statuses = new Map<number, number>();
  let closedUnanswered = 0;
  const unanswered: string[] = [];
  try {
    const random = seededRandom(fuzzSeed(31_337));
    const requests = Array.from({ length: REQUESTS }, (_, index) => ({ ...randomRequest(random), index }));
    // Eight at a time: a request cut short waits for the request timeout, and many can wait at once.
    const queue = [...requests];
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const { bytes, method, index } = next;
        // The request timeout is checked once per interval; give it two, plus slack for a busy machine.
        const { response } = await exchange(port, bytes, method === 'HEAD', seededRandom(fuzzSeed(index)), 2 * REQUEST_TIMEOUT_MS + 3_000);
        if (response === null) {
          closedUnanswered += 1;
          unanswered.push(JSON.stringify(bytes.subarray(0, 300).toString('latin1')));
          continue;
        }
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        assertTypedAnswer(response, method, bytes);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    assert.deepStrictEqual(logger.errors, [], 'no unexpected exception was logged');
    await assertStillServing(port);
  } finally {
    await api.stop();
  }
  // Every request is answered, even one cut short (by the request timeout).
  assert.equal(closedUnanswered, 0, `${closedUnanswered} of ${REQUESTS} closed unanswered (${unanswered.slice(0, 3).join(', ')}); statuses ${JSON.stringify([...statuses])}`);
  assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, JSON.stringify([...statuses]));
});

/** Runs `body` against a fresh API over a fake leader; always stops it. */
async function withApi(body: (port: number) => Promise<void>): Promise<void> {
  const api = new HttpApi({ service: new FakeKvService(), host: HOST, port: 0, requestTimeoutMs: 2_000 });
  const { port } = await api.start();
  try {
    await body(port);
  } finally {
    await api.stop();
  }
}

/** Writes `request` at once and returns the first response (or null when the connection just closed). */
async function send(port: number, request: Buffer | string): Promise<RawResponse | null> {
  const bytes = typeof request === 'string' ? Buffer.from(request, 'latin1') : request;
  const { response } = await exchange(port, bytes, false, () => 0.99, 5_000);
  return response;
}

test('regression: an HTTP/1.1 request without Host gets a typed 400, not node\'s bare one', () => withApi(async (port) => {
  const response = await send(port, 'GET /v1/kv/a HTTP/1.1\r\n\r\n');
  assert.ok(response !== null);
  assert.equal(response.status, 400);
  assertTypedAnswer(response, 'GET', Buffer.alloc(0));
  const http10 = await send(port, 'GET /v1/kv/a HTTP/1.0\r\n\r\n');
  assert.equal(http10?.status, 404, 'HTTP/1.0 needs no Host');
}));

test('regression: CONNECT gets a typed 405 and a close, not a silent close', () => withApi(async (port) => {
  const response = await send(port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n');
  assert.ok(response !== null, 'answered');
  assert.equal(response.status, 405);
  assertTypedAnswer(response, 'CONNECT', Buffer.alloc(0));
}));

test('regression: an Expect other than 100-continue gets a typed 417', () => withApi(async (port) => {
  const response = await send(port, 'PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nv');
  assert.ok(response !== null);
  assert.equal(response.status, 417);
  assertTypedAnswer(response, 'PUT', Buffer.alloc(0));
}));

test('regression: a malformed request followed by more bytes gets its typed 400, not a connection reset', () => withApi(async (port) => {
  // Found by the HTTP fuzzer: the server closed right after its 400 while the client was still
  // sending, so the kernel reset the connection and the answer was lost.
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const request = Buffer.concat([Buffer.from('PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n'), Buffer.alloc(20_000, 0x61)]);
    // Trickled in small writes with pauses, as a client streaming a body does.
    let call = 0;
    const { response } = await exchange(port, request, false, () => ((call += 1) % 2 === 0 ? 0.1 : 0.5), 5_000);
    assert.ok(response !== null, `attempt ${attempt}: the 400 arrived`);
    assert.equal(response.status, 400);
    assertTypedAnswer(response, 'PUT', request);
  }
}));

test('regression: exactly-once headers reused for another kind of operation get a typed 400, not a 500', () => withApi(async (port) => {
  // Found by the HTTP fuzzer: the state machine answers a retried id with the original result, and
  // a put's result for a delete tripped the reply encoder's assertion.
  const headers = { 'synod-client-id': 'reuser', 'synod-seq': '7' };
  const put = await fetch(`http://${HOST}:${port}/v1/kv/a`, { method: 'PUT', body: 'v', headers });
  assert.equal(put.status, 200);
  const reused = await fetch(`http://${HOST}:${port}/v1/kv/a`, { method: 'DELETE', headers });
  assert.equal(reused.status, 400);
  assert.equal(reused.headers.get('synod-error'), 'bad_request');
  assert.match(((await reused.json()) as { message: string }).message, /already named a put/);
  const still = await fetch(`http://${HOST}:${port}/v1/kv/a`);
  assert.equal(((await still.json()) as { value: string }).value, 'v', 'the delete was not applied');
}));

test('regression: a declared body far over the limit, still being sent, gets its typed 413, not a connection reset', async () => {
  // Found by the HTTP fuzzer (seed 1): the refused body was drained only up to bodyBytesMax, then
  // the connection closed while the client kept sending, and the reset destroyed the 413.
  const api = new HttpApi({ service: new FakeKvService(), host: HOST, port: 0, bodyBytesMax: 1_024 });
  const { port } = await api.start();
  try {
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const request = Buffer.concat([Buffer.from('PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 12000\r\n\r\n'), Buffer.alloc(12_000, 0x62)]);
      let call = 0;
      const { response } = await exchange(port, request, false, () => ((call += 1) % 2 === 0 ? 0.1 : 0.5), 5_000);
      assert.ok(response !== null, `attempt ${attempt}: the 413 arrived`);
      assert.equal(response.status, 413);
      assertTypedAnswer(response, 'PUT', request);
    }
  } finally {
    await api.stop();
  }
});

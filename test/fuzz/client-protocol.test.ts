/**
 * Fuzzing of the binary client protocol: the pure decoders (both directions, and the operation and
 * result codecs they nest), then a real `ClientListener` over loopback fed seeded streams of valid,
 * mutated and random frames split at random points. The listener must answer only with frames
 * that decode, end every bad stream with one typed error frame (reqId 0) and a close, never throw,
 * never keep a connection it gave up on, and still serve a well-behaved client afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { SynodClient, SynodClientError } from '../../src/client/index.js';
import { KvDecodeError, decodeOperation, decodeResult, encodeOperation, encodeResult } from '../../src/kv/index.js';
import {
  HELLO_FRAME_BYTES_MAX,
  PROTOCOL_VERSION,
  ProtocolDecodeError,
  REQ_ID_MAX,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  type ClientMessage,
  type ServerMessage,
} from '../../src/protocol/index.js';
import { ClientListener } from '../../src/server/client-listener.js';
import { FrameDecoder, encodeFrame } from '../../src/transport/framing.js';
import { FakeKvService } from '../helpers/fake-service.js';
import { operationArbitrary } from '../kv/arbitraries.js';
import { clientMessageArbitrary, serverMessageArbitrary, successArbitrary } from '../protocol/arbitraries.js';
import { applyEdits, byteEditsArbitrary, concat, confuseEncoding, fuzzParameters, fuzzScale, fuzzSeed, kept, seededRandom, valueConfusionArbitrary } from './mutate.js';

/** Decodes untrusted bytes: a message that re-encodes to itself, or a typed error. */
function decodeOrReject<T>(bytes: Uint8Array, decode: (bytes: Uint8Array) => T, encode: (message: T) => Uint8Array, errorType: new (...args: never[]) => Error): T | null {
  let message: T;
  try {
    message = decode(bytes);
  } catch (error) {
    if (error instanceof errorType) return null;
    throw new Error(`decoder threw ${String(error)} instead of ${errorType.name}`, { cause: error });
  }
  assert.deepStrictEqual(decode(encode(message)), message);
  return message;
}

function checkClientBytes(bytes: Uint8Array): void {
  try {
    const message = decodeClientMessage(bytes);
    assert.deepStrictEqual(decodeClientMessage(encodeClientMessage(message)), message);
  } catch (error) {
    assert.ok(error instanceof ProtocolDecodeError, `unexpected ${String(error)}`);
    // A per-request error names a request id the server can answer; anything else closes.
    if (error.reqId !== null) assert.ok(Number.isSafeInteger(error.reqId) && error.reqId >= 1 && error.reqId <= REQ_ID_MAX);
  }
}

const decodeServer = (bytes: Uint8Array): void => void decodeOrReject(bytes, decodeServerMessage, encodeServerMessage, ProtocolDecodeError);

const clientEncoded = clientMessageArbitrary.map((message) => kept(encodeClientMessage(message)));
const requestEncoded = clientMessageArbitrary.filter((message) => message.type !== 'hello').map((message) => kept(encodeClientMessage(message)));
const serverEncoded = serverMessageArbitrary.map((message) => kept(encodeServerMessage(message)));

test('client protocol fuzz: byte mutations (flips, splices, length edits) of client frames decode or throw ProtocolDecodeError', () => {
  fc.assert(fc.property(clientEncoded, clientEncoded, byteEditsArbitrary, (bytes, donor, edits) => checkClientBytes(applyEdits(bytes, edits, donor))), fuzzParameters(4_000));
});

test('client protocol fuzz: MessagePack type confusion of client frames decodes or throws ProtocolDecodeError', () => {
  fc.assert(fc.property(clientEncoded, fc.array(valueConfusionArbitrary, { minLength: 1, maxLength: 3 }), (bytes, confusions) => {
    let mutated = bytes;
    for (const confusion of confusions) mutated = confuseEncoding(mutated, confusion);
    checkClientBytes(mutated);
  }), fuzzParameters(3_000));
});

test('client protocol fuzz: mutated and confused server frames decode or throw ProtocolDecodeError (the client side)', () => {
  fc.assert(fc.property(serverEncoded, serverEncoded, byteEditsArbitrary, (bytes, donor, edits) => decodeServer(applyEdits(bytes, edits, donor))), fuzzParameters(3_000));
  fc.assert(fc.property(serverEncoded, valueConfusionArbitrary, (bytes, confusion) => decodeServer(confuseEncoding(bytes, confusion))), fuzzParameters(2_000));
});

test('client protocol fuzz: mutated operations and results decode canonically or throw KvDecodeError', () => {
  const operations = operationArbitrary.map((operation) => kept(encodeOperation(operation)));
  const results = successArbitrary.map((result) => kept(encodeResult(result)));
  fc.assert(fc.property(operations, byteEditsArbitrary, fc.option(valueConfusionArbitrary, { nil: undefined }), (bytes, edits, confusion) => {
    const mutated = applyEdits(confusion === undefined ? bytes : confuseEncoding(bytes, confusion), edits);
    const operation = decodeOrReject(mutated, decodeOperation, encodeOperation, KvDecodeError);
    // Only the canonical encoding is accepted: whatever decodes came from exactly these bytes.
    if (operation !== null) assert.ok(Buffer.from(encodeOperation(operation)).equals(Buffer.from(mutated)), 'decoded from its canonical bytes');
  }), fuzzParameters(3_000));
  fc.assert(fc.property(results, byteEditsArbitrary, fc.option(valueConfusionArbitrary, { nil: undefined }), (bytes, edits, confusion) => {
    void decodeOrReject(applyEdits(confusion === undefined ? bytes : confuseEncoding(bytes, confusion), edits), decodeResult, encodeResult, KvDecodeError);
  }), fuzzParameters(2_000));
});

// Over a real socket.

const FRAME_BYTES_MAX = 8 * 1024;
const STREAMS = 40 * fuzzScale();

/** Reads a listener connection: every server frame must decode; notes how it ended. */
class Observer {
  readonly messages: ServerMessage[] = [];
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);

  constructor(readonly socket: net.Socket) {
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const payload of this.decoder.push(chunk)) this.messages.push(decodeServerMessage(payload));
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async connect(port: number): Promise<Observer> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    return new Observer(socket);
  }
}

/** The frames of one fuzzed stream: a mix of valid, mutated and random frames. */
function fuzzStream(random: () => number, sample: <T>(arbitrary: fc.Arbitrary<T>) => T): Uint8Array {
  const hello: ClientMessage = { type: 'hello', version: PROTOCOL_VERSION, token: null };
  const parts: Uint8Array[] = [];
  if (random() < 0.8) parts.push(encodeFrame(encodeClientMessage(hello)));
  const count = 1 + Math.floor(random() * 12);
  for (let index = 0; index < count; index += 1) {
    // Mostly requests: a second hello ends a stream at once.
    const payload = sample(random() < 0.95 ? requestEncoded : clientEncoded);
    const choice = random();
    // Mostly well-framed payloads (valid, mutated, confused), so streams get past their first
    // frame; sometimes a mutation that may hit the length prefix too, or plain garbage.
    if (choice < 0.7) parts.push(encodeFrame(payload));
    else if (choice < 0.85) parts.push(encodeFrame(applyEdits(payload, sample(byteEditsArbitrary))));
    else if (choice < 0.94) parts.push(encodeFrame(confuseEncoding(payload, sample(valueConfusionArbitrary))));
    else if (choice < 0.97) parts.push(applyEdits(encodeFrame(payload), sample(byteEditsArbitrary)));
    else parts.push(sample(fc.uint8Array({ minLength: 1, maxLength: 48 })));
  }
  return concat(parts);
}

/**
 * Ends every stream so the listener must give up on it: a frame that is not MessagePack, then
 * enough 0xff bytes to complete any frame a mutated length left open and to read a length above
 * the limit.
 */
const STREAM_END = concat([encodeFrame(new Uint8Array([0xc1])), new Uint8Array(FRAME_BYTES_MAX + 16).fill(0xff)]);

function sampler(seed: number): <T>(arbitrary: fc.Arbitrary<T>) => T {
  let next = seed;
  return (arbitrary) => {
    next += 1;
    const [value] = fc.sample(arbitrary, { seed: next, numRuns: 1 });
    if (value === undefined) throw new Error('fc.sample gave nothing');
    return value;
  };
}

async function writeChunked(socket: net.Socket, bytes: Uint8Array, random: () => number): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength && !socket.destroyed) {
    const size = 1 + Math.floor(random() * (random() < 0.1 ? 2_000 : 30));
    socket.write(bytes.subarray(offset, offset + size));
    offset += size;
    if (random() < 0.3) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Waits until the server has said nothing for a few milliseconds, or closed. */
async function quiet(observer: Observer): Promise<void> {
  let seen = -1;
  while (seen !== observer.messages.length && !observer.socket.destroyed) {
    seen = observer.messages.length;
    await new Promise((resolve) => setTimeout(resolve, 8));
  }
}

async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function assertServes(port: number): Promise<void> {
  const client = await Observer.connect(port);
  client.socket.write(Buffer.concat([
    encodeFrame(encodeClientMessage({ type: 'hello', version: PROTOCOL_VERSION, token: null })),
    encodeFrame(encodeClientMessage({ type: 'request', reqId: 1, clientId: 'well-behaved', seq: 1, operation: { type: 'put', key: 'k', value: 'v' } })),
  ]));
  const deadline = Date.now() + 5_000;
  while (client.messages.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(client.messages[0]?.type, 'welcome');
  const answer = client.messages[1];
  assert.ok(answer?.type === 'result' && answer.reqId === 1 && answer.result.type === 'put', JSON.stringify(answer));
  client.socket.destroy();
  await client.closed;
}

for (const delayMs of [0, 3]) {
  test(`client listener fuzz: mutated and random frame streams in random chunks get typed errors and a close (service delay ${delayMs} ms)`, async () => {
    const service = new FakeKvService({ delayMs });
    const listener = new ClientListener({ service, host: '127.0.0.1', port: 0, frameBytesMax: FRAME_BYTES_MAX, helloTimeoutMs: 2_000 });
    const { port } = await listener.start();
    try {
      const random = seededRandom(fuzzSeed(1000 + delayMs));
      const sample = sampler(fuzzSeed(1000 + delayMs));
      for (let index = 0; index < STREAMS; index += 1) {
        const protocolErrorsBefore = listener.stats().protocolErrors;
        const client = await Observer.connect(port);
        await writeChunked(client.socket, fuzzStream(random, sample), random);
        // Let the listener work through the stream before the trailer: frames that arrive in the
        // same read as a bad length prefix are dropped with it, which would hide them from the fuzz.
        await quiet(client);
        await writeChunked(client.socket, STREAM_END, random);
        await within(client.closed, 5_000, `stream ${index}`);
        const last = client.messages.at(-1);
        assert.ok(last !== undefined && last.type === 'failure' && last.reqId === 0, `stream ${index} ends with a reqId-0 failure: ${JSON.stringify(last)}`);
        assert.ok(['bad_request', 'too_large'].includes(last.failure.error), last.failure.error);
        assert.equal(client.messages.filter((message) => message.type === 'failure' && message.reqId === 0).length, 1, 'one fatal error frame');
        assert.equal(listener.stats().protocolErrors, protocolErrorsBefore + 1);
        for (const message of client.messages) {
          if (message.type === 'failure' && message.reqId > 0) assert.notEqual(message.failure.error, 'unavailable', 'no internal error for a bad request');
        }
      }
      const deadline = Date.now() + 5_000;
      while (listener.stats().connectionsOpen > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(listener.stats().connectionsOpen, 0, 'every fuzzed connection is forgotten');
      await assertServes(port);
    } finally {
      await listener.stop();
    }
  });
}

test('client listener fuzz: a stream cut off at any point (no trailer) never leaves the listener stuck', async () => {
  const service = new FakeKvService();
  const listener = new ClientListener({ service, host: '127.0.0.1', port: 0, frameBytesMax: FRAME_BYTES_MAX, helloTimeoutMs: 300 });
  const { port } = await listener.start();
  try {
    const random = seededRandom(fuzzSeed(55));
    const sample = sampler(fuzzSeed(55));
    for (let index = 0; index < 10 * fuzzScale(); index += 1) {
      const client = await Observer.connect(port);
      const stream = fuzzStream(random, sample);
      await writeChunked(client.socket, stream.subarray(0, Math.floor(random() * stream.byteLength)), random);
      // Half-close: the listener sees the end of the stream and closes its side (or has already).
      client.socket.end();
      await within(client.closed, 5_000, `cut stream ${index}`);
    }
    const deadline = Date.now() + 5_000;
    while (listener.stats().connectionsOpen > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(listener.stats().connectionsOpen, 0);
    await assertServes(port);
  } finally {
    await listener.stop();
  }
});

test('client protocol: hello frames stay below the pre-hello limit', () => {
  const longest = encodeClientMessage({ type: 'hello', version: Number.MAX_SAFE_INTEGER, token: 'x'.repeat(4096) });
  assert.ok(longest.byteLength <= HELLO_FRAME_BYTES_MAX);
});

test('client fuzz: a SynodClient talking to a server that sends mutated or random frames fails with SynodClientError, never a crash', async () => {
  const random = seededRandom(fuzzSeed(9_001));
  const sample = sampler(fuzzSeed(9_001));
  const welcome = encodeFrame(encodeServerMessage({ type: 'welcome', version: PROTOCOL_VERSION, nodeId: 1, requestFrameBytesMax: 1 << 20 }));
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const kind = random();
    // A welcome (sometimes mutated), then answers that are mutated server frames or noise.
    const answers = Array.from({ length: 1 + Math.floor(random() * 4) }, () =>
      random() < 0.7 ? encodeFrame(applyEdits(sample(serverEncoded), sample(byteEditsArbitrary))) : Buffer.from(sample(fc.uint8Array({ minLength: 1, maxLength: 40 }))));
    const first = kind < 0.3 ? Buffer.from(applyEdits(welcome, sample(byteEditsArbitrary))) : welcome;
    socket.once('data', () => socket.write(concat([first, ...answers])));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    for (let index = 0; index < 6 * fuzzScale(); index += 1) {
      const client = new SynodClient({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 200, attemptTimeoutMs: 60, backoffMsMin: 1, backoffMsMax: 5 });
      try {
        await client.put(`k${index}`, 'v');
        // A mutated frame can still be a valid answer to this request; then nothing is wrong.
      } catch (error) {
        assert.ok(error instanceof SynodClientError, `unexpected ${String(error)}`);
      } finally {
        await client.close();
      }
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

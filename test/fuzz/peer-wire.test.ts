/**
 * Fuzzing of the peer wire: the message codec, the length-prefixed framing and the handshake
 * records. Inputs are random bytes, and valid encodings (from fast-check arbitraries) after byte
 * mutations (bit flips, overwrites, truncation, insertion, deletion, duplication, splicing, u32
 * length-field edits) or MessagePack type confusion. The outcome must always be a valid message or
 * the codec's typed error; whatever decodes must re-encode to itself and satisfy the invariants our
 * encoder guarantees (the encoder re-checks them and asserts).
 *
 * Fixed seed by default; `SYNOD_FUZZ_RUNS=N` runs N times as many cases, `SYNOD_FUZZ_SEED` another seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvariantError } from '../../src/core/assert.js';
import { ballotNode, makeBallot, type NodeId } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import { Prng } from '../../src/core/prng.js';
import { Configuration, StaticConfiguration } from '../../src/core/quorum/majority.js';
import { DEFAULT_REPLICA_OPTIONS, Replica } from '../../src/core/multipaxos/replica.js';
import { decodeMessage, encodeMessage } from '../../src/transport/codec.js';
import { FRAME_BYTES_MAX_DEFAULT, FRAME_HEADER_BYTES, FrameDecoder, encodeFrame } from '../../src/transport/framing.js';
import {
  decodeChallenge,
  decodeHello,
  decodeProof,
  decodeWelcome,
  encodeChallenge,
  encodeHello,
  encodeProof,
  encodeWelcome,
  makeNonce,
} from '../../src/transport/handshake.js';
import { FrameTooLargeError, HandshakeError, WireDecodeError } from '../../src/transport/transport.js';
import { FUZZ_NODES, anyMessageArbitrary, messageArbitrary } from './arbitraries.js';
import { applyEdits, byteEditsArbitrary, confuseEncoding, fuzzPacker, fuzzParameters, kept, valueConfusionArbitrary } from './mutate.js';

/** Decodes untrusted bytes: a message that round-trips, or null for a WireDecodeError. Anything else fails. */
function decodeOrReject(bytes: Uint8Array): Message | null {
  let message: Message;
  try {
    message = decodeMessage(bytes);
  } catch (error) {
    if (error instanceof WireDecodeError) return null;
    throw new Error(`decodeMessage threw ${String(error)} instead of WireDecodeError`, { cause: error });
  }
  // encodeMessage re-validates (an InvariantError here means the decoder let through what the
  // encoder refuses); decoding again must give the same message.
  assert.deepStrictEqual(decodeMessage(encodeMessage(message)), message);
  assertMessageInvariants(message);
  return message;
}

/** The cross-field invariants our core keeps and relies on (see `src/transport/codec.ts`). */
function assertMessageInvariants(message: Message): void {
  const sender = ['prepare', 'accept', 'heartbeat'].includes(message.type);
  if ('ballot' in message) {
    assert.ok(message.ballot > 0, `${message.type} ballot is real`);
    assert.equal(ballotNode(message.ballot), sender ? message.from : message.to, `${message.type} ballot owner`);
  }
  const slots = 'entries' in message ? message.entries.map((entry) => entry.slot) : 'slots' in message ? message.slots : [];
  assert.equal(new Set(slots).size, slots.length, 'one entry per slot');
  for (const slot of slots) assert.ok(slot >= 1, 'slots start at 1');
  if (message.type === 'promise' && message.entries.length > 0) assert.equal(message.maxSlot, Math.max(...slots));
}

const encodedArbitrary = anyMessageArbitrary.map((message) => ({ message, bytes: kept(encodeMessage(message)) }));

/** The messages `encodeMessage` sends in a binary form (`accept-codec.ts`, `control-codec.ts`). */
const BINARY_TYPES: ReadonlySet<Message['type']> = new Set(['accept', 'accepted', 'heartbeat', 'heartbeat-ack']);

/**
 * The MessagePack form of a message, for confusions of MessagePack types. `encodeMessage` sends
 * some messages in a binary form (fuzzed by the byte mutations); the decoder also reads their
 * MessagePack form, whose field types are what these confusions attack.
 */
function messagePackForm({ message, bytes }: { message: Message; bytes: Uint8Array }): Uint8Array {
  return BINARY_TYPES.has(message.type) ? kept(fuzzPacker.pack(message)) : bytes;
}

test('peer wire fuzz: arbitrary well-formed messages round-trip exactly and satisfy the invariants', () => {
  fc.assert(fc.property(anyMessageArbitrary, (message) => {
    assertMessageInvariants(message);
    assert.deepStrictEqual(decodeMessage(encodeMessage(message)), message);
  }), fuzzParameters(1_500));
});

test('peer wire fuzz: random bytes decode to a valid message or throw WireDecodeError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => void decodeOrReject(bytes)), fuzzParameters(3_000));
});

test('peer wire fuzz: byte mutations of valid messages (flips, truncation, splices, length edits) never escape WireDecodeError', () => {
  fc.assert(fc.property(encodedArbitrary, encodedArbitrary, byteEditsArbitrary, ({ bytes }, donor, edits) => {
    void decodeOrReject(applyEdits(bytes, edits, donor.bytes));
  }), fuzzParameters(4_000));
});

test('peer wire fuzz: MessagePack type confusion of valid messages never escapes WireDecodeError', () => {
  let decoded = 0;
  fc.assert(fc.property(encodedArbitrary, fc.array(valueConfusionArbitrary, { minLength: 1, maxLength: 3 }), (encoded, confusions) => {
    let mutated = messagePackForm(encoded);
    for (const confusion of confusions) mutated = confuseEncoding(mutated, confusion);
    if (decodeOrReject(mutated) !== null) decoded += 1;
  }), fuzzParameters(4_000));
  // Confusions that keep a value's meaning (a map repeated under a new key is refused, but a
  // number replaced by an equal one is not) must still decode: the decoder is strict, not blind.
  assert.ok(decoded > 0, 'some confused messages still decode');
});

test('peer wire fuzz: decoded mutations stepped into replicas in every role never break an assertion', () => {
  // Trust boundary: a peer that passed the handshake holds the cluster secret and runs this code.
  // The decoder guarantees the per-message invariants; magnitudes (a slot 2^50 above the log, which
  // no real log reaches) are a semantic lie it cannot see, and are left out of this property.
  const plausible = (message: Message): boolean => {
    const numbers: number[] = [];
    JSON.stringify(message, (key, value: unknown) => {
      if (typeof value === 'number' && !['from', 'to', 'seq'].includes(key)) numbers.push(key === 'ballot' || key === 'epoch' || key === 'promised' ? value / 1024 : value);
      return value;
    });
    return numbers.every((value) => value <= 1_000_000);
  };
  fc.assert(fc.property(
    fc.array(fc.tuple(encodedArbitrary, fc.option(byteEditsArbitrary, { nil: undefined }), fc.option(valueConfusionArbitrary, { nil: undefined })), { minLength: 1, maxLength: 8 }),
    fc.constantFrom('follower' as const, 'candidate' as const, 'leader' as const),
    (inputs, role) => {
      const replica = replicaInRole(1, role);
      for (const [encoded, edits, confusion] of inputs) {
        let mutated = encoded.bytes;
        if (confusion !== undefined) mutated = confuseEncoding(messagePackForm(encoded), confusion);
        if (edits !== undefined) mutated = applyEdits(mutated, edits);
        const message = decodeOrReject(mutated);
        if (message === null || message.to !== 1 || !plausible(message)) continue;
        stepAndRun(replica, message);
      }
    },
  ), fuzzParameters(600));
});

test('regression: an accept or heartbeat whose ballot another node owns is refused at decode (it stopped the replica)', () => {
  // Found by the fuzzer: followLeader asserts that only a ballot's owner leads with it.
  for (const message of [
    { type: 'accept', from: 2, to: 1, ballot: makeBallot(3, 3), entries: [], commitIndex: 0 },
    { type: 'heartbeat', from: 2, to: 1, ballot: makeBallot(3, 3), commitIndex: 0, readRound: 0 },
    { type: 'prepare', from: 2, to: 1, ballot: makeBallot(3, 3), firstUnchosen: 1 },
    { type: 'prepare', from: 2, to: 1, ballot: 0, firstUnchosen: 1 },
    { type: 'promise', from: 2, to: 1, ballot: makeBallot(3, 2), entries: [], maxSlot: 0 },
    { type: 'accepted', from: 2, to: 1, ballot: makeBallot(3, 2), slots: [1], firstUnchosen: 1 },
    { type: 'nack', from: 2, to: 1, ballot: makeBallot(3, 2), promised: makeBallot(4, 3) },
    { type: 'heartbeat-ack', from: 2, to: 1, ballot: makeBallot(3, 2), firstUnchosen: 1, maxSlot: 0, readRound: 0 },
  ]) {
    assert.throws(() => decodeMessage(fuzzPacker.pack(message)), WireDecodeError, message.type);
  }
});

test('regression: entries at slot 0 or repeating a slot are refused at decode (they stopped the replica)', () => {
  // Found by the fuzzer: storeEntry asserts slots start at 1; two values for one slot in one accept
  // tripped "a ballot proposed two values for one slot", in one learned "chosen twice".
  const ballot = makeBallot(3, 2);
  for (const message of [
    { type: 'accept', from: 2, to: 1, ballot, entries: [{ slot: 0, value: { type: 'noop' } }], commitIndex: 0 },
    { type: 'accept', from: 2, to: 1, ballot, entries: [{ slot: 4, value: { type: 'noop' } }, { slot: 4, value: { type: 'start-working', epoch: ballot } }], commitIndex: 0 },
    { type: 'learned', from: 2, to: 1, entries: [{ slot: 0, ballot, value: { type: 'noop' } }] },
    { type: 'learned', from: 2, to: 1, entries: [{ slot: 4, ballot, value: { type: 'noop' } }, { slot: 4, ballot, value: { type: 'start-working', epoch: ballot } }] },
    { type: 'learned', from: 2, to: 1, entries: [{ slot: 4, ballot: 0, value: { type: 'noop' } }] },
    { type: 'learn', from: 2, to: 1, slots: [0] },
    { type: 'learn', from: 2, to: 1, slots: [3, 3] },
    { type: 'promise', from: 2, to: 1, ballot: makeBallot(3, 1), maxSlot: 9, entries: [{ slot: 4, ballot, value: { type: 'noop' }, chosen: true }] },
    { type: 'accept', from: 2, to: 1, ballot, entries: [{ slot: 4, value: { type: 'start-working', epoch: 0 } }], commitIndex: 0 },
  ]) {
    assert.throws(() => decodeMessage(fuzzPacker.pack(message)), WireDecodeError, JSON.stringify(message));
  }
});

test('regression: a promise claiming a max slot without listing entries is ignored (recovery would fill every slot up to it)', () => {
  // Found by the fuzzer: maxSlot 2^53 - 1 made the new leader build a recovery map until
  // "Map maximum size exceeded". An acceptor that lists no entries has none at or above the asked slot.
  const candidate = replicaInRole(1, 'candidate');
  const ballot = candidate.status().promised;
  candidate.step({ type: 'promise', from: 2, to: 1, ballot, entries: [], maxSlot: Number.MAX_SAFE_INTEGER });
  candidate.ready();
  assert.equal(candidate.status().role, 'candidate', 'the lying promise does not complete a quorum');
  candidate.step({ type: 'promise', from: 3, to: 1, ballot, entries: [], maxSlot: 0 });
  const ready = candidate.ready();
  assert.equal(candidate.status().role, 'leader');
  assert.ok(ready.sendNow.every((message) => message.type !== 'accept' || message.entries.length === 1), 'only StartWorking is proposed');
});

test('framing fuzz: any byte stream in any chunking yields frames or FrameTooLargeError, never buffering past one frame', () => {
  const frameBytesMax = 2_000;
  fc.assert(fc.property(
    fc.array(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((payload) => encodeFrame(payload)), fc.uint8Array({ maxLength: 64 })), { maxLength: 12 }),
    fc.option(byteEditsArbitrary, { nil: undefined }),
    fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }),
    (pieces, edits, cuts) => {
      let stream: Uint8Array = Buffer.concat(pieces);
      if (edits !== undefined) stream = applyEdits(stream, edits);
      const decoder = new FrameDecoder(frameBytesMax);
      let offset = 0;
      for (let index = 0; offset < stream.byteLength; index += 1) {
        const chunk = stream.subarray(offset, offset + (cuts[index % cuts.length] ?? 1));
        offset += chunk.byteLength;
        try {
          for (const frame of decoder.push(chunk)) assert.ok(frame.byteLength <= frameBytesMax);
        } catch (error) {
          assert.ok(error instanceof FrameTooLargeError, `unexpected ${String(error)}`);
          assert.equal(decoder.bufferedBytes, 0, 'a failed decoder drops what it held');
          return;
        }
        assert.ok(decoder.bufferedBytes < FRAME_HEADER_BYTES + frameBytesMax + chunk.byteLength, 'at most one frame plus one chunk is held');
      }
    },
  ), fuzzParameters(2_000));
});

test('framing: headers claiming huge lengths allocate nothing for them', () => {
  // 2,000 decoders each told a 16 MiB (allowed) frame follows and given one byte of it: the
  // decoder must buffer what arrived, not what was announced (that would be 32 GiB).
  const before = process.memoryUsage().arrayBuffers;
  const decoders: FrameDecoder[] = [];
  const header = Buffer.alloc(FRAME_HEADER_BYTES + 1);
  header.writeUInt32BE(FRAME_BYTES_MAX_DEFAULT, 0);
  for (let index = 0; index < 2_000; index += 1) {
    const decoder = new FrameDecoder();
    assert.deepStrictEqual(decoder.push(header), []);
    assert.equal(decoder.bufferedBytes, 1);
    decoders.push(decoder);
  }
  const grownBytes = process.memoryUsage().arrayBuffers - before;
  assert.ok(grownBytes < 64 * 1024 * 1024, `array buffers grew by ${grownBytes} bytes`);
  // And above the limit the prefix alone is refused.
  for (const claimed of [FRAME_BYTES_MAX_DEFAULT + 1, 0x7fff_ffff, 0xffff_ffff]) {
    const prefix = Buffer.alloc(FRAME_HEADER_BYTES);
    prefix.writeUInt32BE(claimed, 0);
    assert.throws(() => new FrameDecoder().push(prefix), FrameTooLargeError);
  }
  assert.equal(decoders.length, 2_000);
});

/** Valid encodings of each handshake record, with their decoders. */
function handshakeRecords(): { name: string; bytes: Uint8Array; decode: (bytes: Uint8Array) => unknown }[] {
  const nonce = makeNonce();
  return [
    { name: 'hello', bytes: kept(encodeHello({ clusterId: 'synod-test', from: 1, to: 2, nonce })), decode: decodeHello },
    { name: 'challenge', bytes: kept(encodeChallenge(nonce, makeNonce())), decode: decodeChallenge },
    { name: 'proof', bytes: kept(encodeProof(makeNonce())), decode: decodeProof },
    { name: 'welcome', bytes: kept(encodeWelcome()), decode: decodeWelcome },
  ];
}

test('handshake fuzz: random and mutated handshake records decode or throw HandshakeError(malformed-handshake)', () => {
  const records = handshakeRecords();
  const recordArbitrary = fc.constantFrom(...records);
  const decodeOrRefuse = (decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): void => {
    try {
      decode(bytes);
    } catch (error) {
      assert.ok(error instanceof HandshakeError, `unexpected ${String(error)}`);
      assert.equal(error.reason, 'malformed-handshake');
    }
  };
  fc.assert(fc.property(recordArbitrary, fc.uint8Array({ maxLength: 200 }), ({ decode }, bytes) => decodeOrRefuse(decode, bytes)), fuzzParameters(1_000));
  fc.assert(fc.property(recordArbitrary, recordArbitrary, byteEditsArbitrary, ({ decode, bytes }, donor, edits) => {
    for (const candidate of records) decodeOrRefuse(candidate.decode, applyEdits(bytes, edits, donor.bytes));
    decodeOrRefuse(decode, applyEdits(bytes, edits, donor.bytes));
  }), fuzzParameters(1_000));
  fc.assert(fc.property(recordArbitrary, valueConfusionArbitrary, ({ decode, bytes }, confusion) => {
    decodeOrRefuse(decode, confuseEncoding(bytes, confusion));
  }), fuzzParameters(1_000));
});

// Replicas for the step property.

function replicaOptions(nodeId: NodeId) {
  return {
    ...DEFAULT_REPLICA_OPTIONS,
    nodeId,
    configuration: new StaticConfiguration(new Configuration([...FUZZ_NODES])),
    random: new Prng(nodeId),
  };
}

/** Replica 1 as a fresh follower, a candidate that has sent its prepares, or a serving leader. */
function replicaInRole(nodeId: NodeId, role: 'follower' | 'candidate' | 'leader'): Replica {
  const replica = new Replica(replicaOptions(nodeId));
  if (role === 'follower') return replica;
  replica.campaign();
  replica.ready();
  replica.persisted();
  if (role === 'candidate') return replica;
  const ballot = replica.status().promised;
  const peer = FUZZ_NODES.find((node) => node !== nodeId) ?? 2;
  replica.step({ type: 'promise', from: peer, to: nodeId, ballot, entries: [], maxSlot: 0 });
  replica.ready();
  replica.persisted();
  replica.step({ type: 'accepted', from: peer, to: nodeId, ballot, slots: [1], firstUnchosen: 1 });
  replica.ready();
  replica.persisted();
  assert.equal(replica.status().role, 'leader');
  return replica;
}

/** Delivers `message`, then runs the replica for a while (persisting everything, ticking). */
function stepAndRun(replica: Replica, message: Message): void {
  try {
    replica.step(message);
    for (let tick = 0; tick < 25; tick += 1) {
      replica.ready();
      replica.persisted();
      replica.tick();
    }
    replica.ready();
    replica.persisted();
  } catch (error) {
    if (error instanceof InvariantError) {
      throw new Error(`replica assertion on a decoded ${message.type}: ${error.message}\n${JSON.stringify(message)}`, { cause: error });
    }
    throw error;
  }
}

test('peer wire fuzz: every message kind from every sender arbitrary round-trips', () => {
  for (const from of FUZZ_NODES) {
    for (const to of FUZZ_NODES) {
      if (from === to) continue;
      fc.assert(fc.property(messageArbitrary(from, to), (message) => {
        assert.deepStrictEqual(decodeMessage(encodeMessage(message)), message);
      }), fuzzParameters(100));
    }
  }
});

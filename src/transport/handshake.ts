/**
 * The connection handshake: mutual challenge–response over HMAC-SHA256 with the shared cluster
 * secret. The dialer (which will send messages) and the listener (which will receive them) each
 * contribute a random nonce and each prove knowledge of the secret:
 *
 *   dialer   → listener  hello     { clusterId, from: dialer, to: listener, nonce: Nd }
 *   listener → dialer    challenge { nonce: Nl, proof: HMAC(secret, "listener" ‖ context) }
 *   dialer   → listener  proof     { proof: HMAC(secret, "dialer" ‖ context) }
 *   listener → dialer    welcome   {}
 *
 * with context = clusterId ‖ dialer id ‖ listener id ‖ Nd ‖ Nl, every part length-prefixed so no
 * two contexts encode alike. The role label keeps one side's proof from being replayed as the
 * other's; both nonces keep a recorded handshake from being replayed; binding the ids means a
 * proof for one pair of nodes is worthless for another. Cluster id and node ids travel in clear so
 * that a misconfigured peer is refused with a precise, logged reason before any proof is checked.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isValidNodeId, type NodeId } from '../core/ballot.js';
import { decodeRecord, encodeRecord } from './codec.js';
import { HandshakeError, WireDecodeError } from './transport.js';

/**
 * The handshake version; a peer speaking another one is refused as malformed. It names the peer
 * message forms too: 2 added the binary `accepted`, `heartbeat` and `heartbeat-ack` layouts, which
 * a version 1 node cannot read, so mixed versions refuse each other at the handshake (a typed
 * `malformed-handshake` failure, logged and counted) instead of failing on every message.
 */
export const HANDSHAKE_VERSION = 2;
/** Bytes of each side's random nonce. */
export const NONCE_BYTES = 32;
/** Bytes of an HMAC-SHA256 proof. */
export const PROOF_BYTES = 32;
/** The largest frame accepted before authentication: handshake records are small. */
export const HANDSHAKE_FRAME_BYTES_MAX = 1024;
/** The longest cluster id, in UTF-8 bytes. */
export const CLUSTER_ID_BYTES_MAX = 256;
/** The shortest shared secret accepted, in bytes. */
export const SECRET_BYTES_MIN = 16;

/** The fields both proofs bind. */
export interface HandshakeContext {
  readonly clusterId: string;
  readonly dialerId: NodeId;
  readonly listenerId: NodeId;
  readonly dialerNonce: Uint8Array;
  readonly listenerNonce: Uint8Array;
}

/** The first record, from dialer to listener. */
export interface Hello {
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly nonce: Uint8Array;
}

/** A fresh random nonce. */
export function makeNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** The proof that `role` knows `secret`, bound to `context`. */
export function handshakeProof(secret: Uint8Array, role: 'dialer' | 'listener', context: HandshakeContext): Buffer {
  const hmac = createHmac('sha256', secret);
  const parts: Uint8Array[] = [
    Buffer.from(`synod-transport-v${HANDSHAKE_VERSION}/${role}`, 'utf8'),
    Buffer.from(context.clusterId, 'utf8'),
    Buffer.from(String(context.dialerId), 'utf8'),
    Buffer.from(String(context.listenerId), 'utf8'),
    context.dialerNonce,
    context.listenerNonce,
  ];
  for (const part of parts) {
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(part.byteLength, 0);
    hmac.update(length);
    hmac.update(part);
  }
  return hmac.digest();
}

/** Compares a received proof with the expected one in constant time. */
export function proofMatches(received: Uint8Array, expected: Uint8Array): boolean {
  // timingSafeEqual throws on unequal lengths; the length itself is public (always PROOF_BYTES).
  return received.byteLength === expected.byteLength && timingSafeEqual(received, expected);
}

/** Encodes the hello record. */
export function encodeHello(hello: Hello): Uint8Array {
  return encodeRecord({ kind: 'hello', version: HANDSHAKE_VERSION, clusterId: hello.clusterId, from: hello.from, to: hello.to, nonce: hello.nonce });
}

/** Encodes the listener's challenge. */
export function encodeChallenge(nonce: Uint8Array, proof: Uint8Array): Uint8Array {
  return encodeRecord({ kind: 'challenge', nonce, proof });
}

/** Encodes the dialer's proof. */
export function encodeProof(proof: Uint8Array): Uint8Array {
  return encodeRecord({ kind: 'proof', proof });
}

/** Encodes the listener's acceptance. */
export function encodeWelcome(): Uint8Array {
  return encodeRecord({ kind: 'welcome' });
}

/** Decodes a hello; throws `HandshakeError('malformed-handshake')` on any shape error. */
export function decodeHello(bytes: Uint8Array): Hello {
  const fields = decodeHandshakeRecord(bytes, 'hello', ['kind', 'version', 'clusterId', 'from', 'to', 'nonce']);
  if (fields.version !== HANDSHAKE_VERSION) throw malformed('unsupported handshake version');
  if (typeof fields.clusterId !== 'string' || Buffer.byteLength(fields.clusterId, 'utf8') > CLUSTER_ID_BYTES_MAX) throw malformed('bad cluster id');
  if (!isValidNodeId(fields.from) || !isValidNodeId(fields.to)) throw malformed('bad node id');
  return { clusterId: fields.clusterId, from: fields.from, to: fields.to, nonce: readBytes(fields.nonce, NONCE_BYTES, 'nonce') };
}

/** Decodes a challenge into its nonce and proof. */
export function decodeChallenge(bytes: Uint8Array): { nonce: Uint8Array; proof: Uint8Array } {
  const fields = decodeHandshakeRecord(bytes, 'challenge', ['kind', 'nonce', 'proof']);
  return { nonce: readBytes(fields.nonce, NONCE_BYTES, 'nonce'), proof: readBytes(fields.proof, PROOF_BYTES, 'proof') };
}

/** Decodes the dialer's proof. */
export function decodeProof(bytes: Uint8Array): Uint8Array {
  const fields = decodeHandshakeRecord(bytes, 'proof', ['kind', 'proof']);
  return readBytes(fields.proof, PROOF_BYTES, 'proof');
}

/** Checks that `bytes` is the welcome record. */
export function decodeWelcome(bytes: Uint8Array): void {
  decodeHandshakeRecord(bytes, 'welcome', ['kind']);
}

function decodeHandshakeRecord(bytes: Uint8Array, kind: string, keys: readonly string[]): Readonly<Record<string, unknown>> {
  let fields: Readonly<Record<string, unknown>>;
  try {
    fields = decodeRecord(bytes, keys, kind);
  } catch (error) {
    if (error instanceof WireDecodeError) throw malformed(`${kind}: ${error.message}`);
    throw error;
  }
  if (fields.kind !== kind) throw malformed(`expected ${kind}`);
  return fields;
}

function readBytes(value: unknown, bytes: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.byteLength !== bytes) throw malformed(`${what} must be ${bytes} bytes`);
  return new Uint8Array(value);
}

function malformed(message: string): HandshakeError {
  return new HandshakeError('malformed-handshake', message);
}

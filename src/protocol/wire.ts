/**
 * The binary client protocol: how `SynodClient` talks to a node's `ClientListener`.
 *
 * Transport. One TCP connection carries a stream of frames, each `[u32 big-endian length]
 * [payload]` (`transport/framing.ts`). Every payload is one MessagePack array led by an integer
 * tag; byte strings are MessagePack bin. Unknown tags, wrong types, out-of-range integers,
 * missing or extra fields are all rejected with `ProtocolDecodeError`.
 *
 * Client to server:
 *
 *   hello    [1, "synod", version, token | nil]
 *   request  [2, reqId, clientId, seq, opBytes]
 *   status   [3, reqId]
 *
 * Server to client:
 *
 *   welcome  [1, version, nodeId, requestFrameBytesMax]
 *   result   [2, reqId, resultBytes]
 *   failure  [3, reqId, code, message, current | nil, leader | nil]
 *   status   [4, reqId, [id, role, serving, leader | nil, ballot, firstUnchosen, appliedIndex,
 *                        maxSlot, revision, keys, [peerId, connected, lag | nil, rttMs | nil, ...],
 *                        readMode, uptimeMs]]
 *
 * where `leader` is `[nodeId, clientAddress | nil, httpAddress | nil]` (a `NodeEndpoint`) and
 * `current` is `[value | nil, version]` (a `KvCurrent`).
 *
 * Handshake. The client's first frame is `hello` (at most `HELLO_FRAME_BYTES_MAX` bytes: the
 * server does not buffer more from a stranger). `version` is the highest protocol version the
 * client speaks; `token` is the client token, required when the node is configured with one. The
 * server answers `welcome` with the version both will speak (the lower of the two; a client that
 * cannot speak it closes), its node id and the largest request frame it accepts; or it answers a
 * `failure` with reqId 0 (`overloaded` when it has too many connections, `unauthorized` when the
 * token is missing or wrong) and closes. A client
 * sends requests after the welcome.
 *
 * Requests. `reqId` is chosen by the client, at least 1 and unique among its requests in flight
 * on this connection; it only matches responses to requests. Many requests may be in flight
 * (pipelining) and responses come back in any order. `(clientId, seq)` is the exactly-once
 * identity the state machine deduplicates on (`server/service.ts` `RequestId`); a retry on
 * another connection reuses it with a new reqId. `opBytes` are exactly `encodeOperation(op)`:
 * the server decodes them with `decodeOperation`, which accepts only that canonical encoding.
 *
 * Responses. `result` carries the `encodeResult` bytes of a `KvSuccess`. `failure` carries a
 * `ServiceErrorCode` as text, a human-readable message, `current` for `cas_failed`, and for
 * `not_leader` the leader's endpoint when known: the redirect. `status` answers a status request
 * with the node's `NodeStatusReport`.
 *
 * Errors. A request whose envelope (tag and reqId) decodes but whose other fields do not is
 * answered with `bad_request` for that reqId; the connection stays up. A frame that is not a
 * message at all, a frame above the limit (`too_large`), or a protocol violation (a request
 * before the hello, a reqId already in flight) is answered with one `failure` with reqId 0, and
 * the server closes the connection.
 */
import { NOT_CANONICAL, canonicalWriter, isWritableString, isWritableUint, readCanonical } from '../codec/canonical.js';
import { exceedsBytes } from '../codec/text.js';
import { assert, assertNever } from '../core/assert.js';
import {
  KEY_BYTES_MAX,
  KvDecodeError,
  VALUE_BYTES_MAX,
  decodeOperation,
  decodeResult,
  encodeOperation,
  encodeResult,
  isWritableOperation,
  isWritableResult,
  readCanonicalOperation,
  readCanonicalResult,
  writeOperation,
  writeResult,
} from '../kv/ops.js';
import type { KvCurrent, KvOperation, KvSuccess } from '../kv/ops.js';
import { CLIENT_ID_BYTES_MAX } from '../kv/state-machine.js';
import { SERVICE_ERROR_CODES } from '../server/service.js';
import type { NodeStatusReport, ServiceFailure } from '../server/service.js';
import { FRAME_HEADER_BYTES, encodeFrame } from '../transport/framing.js';
import { WireReader, packFrameFields, unpackFrameFields } from './reader.js';
import { endpointFromFields, endpointToFields, readNodeId, statusFromFields, statusToFields } from './status.js';

/** The protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;
/** The first field of a hello: tells a server that the peer speaks this protocol at all. */
export const PROTOCOL_MAGIC = 'synod';
/** Largest authentication token, in UTF-8 bytes. */
export const TOKEN_BYTES_MAX = 4096;
/** Largest frame a server reads before the hello: a hello with the largest token fits. */
export const HELLO_FRAME_BYTES_MAX = TOKEN_BYTES_MAX + 1024;
/** Largest failure message, in UTF-8 bytes (encoders truncate long messages well below it). */
export const MESSAGE_BYTES_MAX = 16 * 1024;
/**
 * The default largest request frame: the largest valid operation (a cas with a maximal value
 * and a maximal expected value, and a maximal key) with the largest client id, plus room for the
 * MessagePack headers and integers around them.
 */
export const REQUEST_FRAME_BYTES_MAX_DEFAULT = 2 * VALUE_BYTES_MAX + KEY_BYTES_MAX + CLIENT_ID_BYTES_MAX + 1024;
/**
 * Largest response frame. A list answer can exceed any fixed size; a server replaces a larger
 * answer with `too_large` rather than send a frame the client would refuse.
 */
export const RESPONSE_FRAME_BYTES_MAX = 64 * 1024 * 1024;
/** Largest request id: reqIds are connection-local counters and never get near it. */
export const REQ_ID_MAX = Number.MAX_SAFE_INTEGER;

/** Characters of a failure message an encoder keeps. */
const MESSAGE_CHARS_ENCODED_MAX = 1024;
const CLIENT_TAG = { hello: 1, request: 2, status: 3 } as const;
const SERVER_TAG = { welcome: 1, result: 2, failure: 3, status: 4 } as const;

/** The client's first frame. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly version: number;
  /** The client token (`Authorization` of this protocol); null when the client has none. */
  readonly token: string | null;
}

/** One key-value operation, with its exactly-once identity. */
export interface RequestMessage {
  readonly type: 'request';
  readonly reqId: number;
  readonly clientId: string;
  readonly seq: number;
  readonly operation: KvOperation;
}

/** Asks for the node's status report. */
export interface StatusRequestMessage {
  readonly type: 'status-request';
  readonly reqId: number;
}

/** Every frame a client sends, discriminated on `type`. */
export type ClientMessage = HelloMessage | RequestMessage | StatusRequestMessage;

/** The server's answer to a hello it accepts. */
export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly version: number;
  readonly nodeId: number;
  /** The largest request frame payload this server reads; larger ones close the connection. */
  readonly requestFrameBytesMax: number;
}

/** A request succeeded. */
export interface ResultMessage {
  readonly type: 'result';
  readonly reqId: number;
  readonly result: KvSuccess;
}

/** A request failed; reqId 0 for a failure of the connection itself (then the server closes). */
export interface FailureMessage {
  readonly type: 'failure';
  readonly reqId: number;
  readonly failure: ServiceFailure;
}

/** The answer to a status request. */
export interface StatusMessage {
  readonly type: 'status';
  readonly reqId: number;
  readonly status: NodeStatusReport;
}

/** Every frame a server sends, discriminated on `type`. */
export type ServerMessage = WelcomeMessage | ResultMessage | FailureMessage | StatusMessage;

// Client messages.

/** Encodes a client frame payload. Inputs come from our own code; reqIds are asserted. */
export function encodeClientMessage(message: ClientMessage): Uint8Array {
  return framePayload(encodeClientFrame(message));
}

/**
 * Encodes a whole client frame, length prefix included. A request is written in one pass into
 * one buffer (envelope, operation and prefix); anything else, and a request the fast writer does
 * not take (see `isWritableOperation`), is packed from its fields. Both give the same bytes.
 */
export function encodeClientFrame(message: ClientMessage): Buffer {
  if (message.type === 'request') return encodeRequestFrame(message.reqId, message.clientId, message.seq, message.operation);
  return encodeFrame(packFrameFields(clientMessageFields(message)));
}

/** `encodeClientFrame` of a request, from its fields (no message object needed). */
export function encodeRequestFrame(reqId: number, clientId: string, seq: number, operation: KvOperation): Buffer {
  assertReqId(reqId, 1);
  if (!isWritableString(clientId) || !isWritableUint(seq) || !isWritableOperation(operation)) {
    return encodeFrame(packFrameFields([CLIENT_TAG.request, reqId, clientId, seq, encodeOperation(operation)]));
  }
  const writer = canonicalWriter.begin(FRAME_HEADER_BYTES).arrayHeader(5).uint(CLIENT_TAG.request).uint(reqId).string(clientId).uint(seq);
  const mark = writer.beginBin();
  return writeOperation(writer, operation).endBin(mark).finishFrame();
}

/** The fields `encodeClientMessage` packs on its general path (and tests compare the fast one with). */
export function clientMessageFields(message: ClientMessage): unknown[] {
  switch (message.type) {
    case 'hello':
      return [CLIENT_TAG.hello, PROTOCOL_MAGIC, message.version, message.token];
    case 'request':
      assertReqId(message.reqId, 1);
      return [CLIENT_TAG.request, message.reqId, message.clientId, message.seq, encodeOperation(message.operation)];
    case 'status-request':
      assertReqId(message.reqId, 1);
      return [CLIENT_TAG.status, message.reqId];
    default:
      return assertNever(message, 'client message');
  }
}

/**
 * Decodes and validates a client frame payload. Throws `ProtocolDecodeError`, with `reqId` set
 * when only the request's body (identity or operation) is malformed.
 */
export function decodeClientMessage(bytes: Uint8Array): ClientMessage {
  return readCanonicalRequest(bytes) ?? decodeClientMessageGeneral(bytes);
}

/**
 * A request read straight from canonical bytes with a valid body; null for anything else (another
 * message type, a wider header than needed, a body the general path must judge), which
 * `decodeClientMessageGeneral` then decides, so this never accepts more nor reads differently.
 */
export function readCanonicalRequest(bytes: Uint8Array): RequestMessage | null {
  return readCanonical(bytes, (reader) => {
    if (reader.arrayHeader() !== 5 || reader.uint() !== CLIENT_TAG.request) throw NOT_CANONICAL;
    const reqId = reader.uint();
    const clientId = reader.string();
    const seq = reader.uint();
    const operation = readCanonicalOperation(reader.bytes());
    if (reqId < 1 || reqId > REQ_ID_MAX || clientId.length === 0 || exceedsBytes(clientId, CLIENT_ID_BYTES_MAX)) throw NOT_CANONICAL;
    if (operation === null) throw NOT_CANONICAL;
    return { type: 'request', reqId, clientId, seq, operation };
  });
}

/** `decodeClientMessage` through msgpackr: every message type, every error. */
export function decodeClientMessageGeneral(bytes: Uint8Array): ClientMessage {
  const reader = new WireReader(unpackFrameFields(bytes, 'client message'), 'client message');
  const tag = reader.integer('type', 0);
  let message: ClientMessage;
  if (tag === CLIENT_TAG.hello) {
    message = helloFromFields(reader);
  } else if (tag === CLIENT_TAG.request) {
    message = requestFromFields(reader);
  } else if (tag === CLIENT_TAG.status) {
    message = { type: 'status-request', reqId: reader.integer('reqId', 1, REQ_ID_MAX) };
  } else {
    throw reader.fail(`client message type ${tag} is unknown`);
  }
  reader.end();
  return message;
}

function helloFromFields(reader: WireReader): HelloMessage {
  const magic = reader.string('magic', PROTOCOL_MAGIC.length);
  if (magic !== PROTOCOL_MAGIC) throw reader.fail('hello does not start with the protocol magic');
  const version = reader.integer('version', 1);
  const token = reader.stringOrNull('token', TOKEN_BYTES_MAX);
  return { type: 'hello', version, token };
}

function requestFromFields(reader: WireReader): RequestMessage {
  const reqId = reader.integer('reqId', 1, REQ_ID_MAX);
  reader.setReqId(reqId);
  const clientId = reader.string('clientId', CLIENT_ID_BYTES_MAX);
  if (clientId.length === 0) throw reader.fail('request field clientId must not be empty');
  const seq = reader.integer('seq', 0);
  const operationBytes = reader.bytes('operation');
  let operation: KvOperation;
  try {
    operation = decodeOperation(operationBytes);
  } catch (error) {
    if (!(error instanceof KvDecodeError)) throw error;
    throw reader.fail(`request operation is malformed: ${error.message}`, error);
  }
  return { type: 'request', reqId, clientId, seq, operation };
}

// Server messages.

/**
 * Encodes a server frame payload. A failure keeps only the fields its code may carry, and its
 * message is truncated and made well-formed, so that whatever the service says the client can
 * decode it. Throws `InvariantError` for a malformed status report (a bug in the service).
 */
export function encodeServerMessage(message: ServerMessage): Uint8Array {
  return framePayload(encodeServerFrame(message));
}

/**
 * Encodes a whole server frame, length prefix included: a result in one pass into one buffer
 * (as `encodeClientFrame` does a request), anything else packed from its fields. Same bytes.
 */
export function encodeServerFrame(message: ServerMessage): Buffer {
  if (message.type === 'result' && isWritableResult(message.result)) {
    assertReqId(message.reqId, 1);
    assert(message.result.ok, 'a result message carries a success');
    const writer = canonicalWriter.begin(FRAME_HEADER_BYTES).arrayHeader(3).uint(SERVER_TAG.result).uint(message.reqId);
    const mark = writer.beginBin();
    return writeResult(writer, message.result).endBin(mark).finishFrame();
  }
  return encodeFrame(packFrameFields(serverMessageFields(message)));
}

/** The fields `encodeServerMessage` packs on its general path (and tests compare the fast one with). */
export function serverMessageFields(message: ServerMessage): unknown[] {
  switch (message.type) {
    case 'welcome':
      return [SERVER_TAG.welcome, message.version, message.nodeId, message.requestFrameBytesMax];
    case 'result':
      assertReqId(message.reqId, 1);
      assert(message.result.ok, 'a result message carries a success');
      return [SERVER_TAG.result, message.reqId, encodeResult(message.result)];
    case 'failure':
      assertReqId(message.reqId, 0);
      return [SERVER_TAG.failure, message.reqId, ...failureFields(message.failure)];
    case 'status':
      assertReqId(message.reqId, 1);
      return [SERVER_TAG.status, message.reqId, checkedStatusFields(message.status)];
    default:
      return assertNever(message, 'server message');
  }
}

function failureFields(failure: ServiceFailure): unknown[] {
  assert(SERVICE_ERROR_CODES.includes(failure.error), 'a failure carries a known error code');
  const current = failure.error === 'cas_failed' && failure.current !== undefined ? [failure.current.value, failure.current.version] : null;
  const leader = failure.error === 'not_leader' && failure.leader !== undefined ? endpointToFields(failure.leader) : null;
  return [failure.error, sanitizeMessage(failure.message), current, leader];
}

/** Truncates a message and replaces lone surrogates (which have no UTF-8 form). */
export function sanitizeMessage(message: string): string {
  const text = typeof message === 'string' ? message : String(message);
  return text.slice(0, MESSAGE_CHARS_ENCODED_MAX).replace(/\p{Surrogate}/gu, '\uFFFD');
}

/** Status fields, checked by decoding them: a malformed report is caught here, not by the client. */
function checkedStatusFields(status: NodeStatusReport): unknown[] {
  const fields = statusToFields(status);
  try {
    statusFromFields(new WireReader(fields, 'status'));
  } catch (error) {
    assert(false, `malformed status report: ${String(error)}`);
  }
  return fields;
}

/**
 * Decodes and validates a server frame payload. Throws `ProtocolDecodeError`; a client treats
 * any such error as a broken connection.
 */
export function decodeServerMessage(bytes: Uint8Array): ServerMessage {
  return readCanonicalResultMessage(bytes) ?? decodeServerMessageGeneral(bytes);
}

/** A result message read straight from canonical bytes; null for anything else (see `readCanonicalRequest`). */
export function readCanonicalResultMessage(bytes: Uint8Array): ResultMessage | null {
  return readCanonical(bytes, (reader) => {
    if (reader.arrayHeader() !== 3 || reader.uint() !== SERVER_TAG.result) throw NOT_CANONICAL;
    const reqId = reader.uint();
    const result = readCanonicalResult(reader.bytes());
    if (reqId < 1 || reqId > REQ_ID_MAX || result === null || !result.ok) throw NOT_CANONICAL;
    return { type: 'result', reqId, result };
  });
}

/** `decodeServerMessage` through msgpackr: every message type, every error. */
export function decodeServerMessageGeneral(bytes: Uint8Array): ServerMessage {
  const reader = new WireReader(unpackFrameFields(bytes, 'server message'), 'server message');
  const tag = reader.integer('type', 0);
  let message: ServerMessage;
  if (tag === SERVER_TAG.welcome) {
    message = welcomeFromFields(reader);
  } else if (tag === SERVER_TAG.result) {
    message = resultFromFields(reader);
  } else if (tag === SERVER_TAG.failure) {
    message = failureFromFields(reader);
  } else if (tag === SERVER_TAG.status) {
    const reqId = reader.integer('reqId', 1, REQ_ID_MAX);
    reader.setReqId(reqId);
    message = { type: 'status', reqId, status: statusFromFields(reader.nested(reader.array('status', 1), 'status')) };
  } else {
    throw reader.fail(`server message type ${tag} is unknown`);
  }
  reader.end();
  return message;
}

function welcomeFromFields(reader: WireReader): WelcomeMessage {
  const version = reader.integer('version', 1);
  const nodeId = readNodeId(reader, 'nodeId');
  const requestFrameBytesMax = reader.integer('requestFrameBytesMax', HELLO_FRAME_BYTES_MAX, 0xffff_ffff);
  return { type: 'welcome', version, nodeId, requestFrameBytesMax };
}

function resultFromFields(reader: WireReader): ResultMessage {
  const reqId = reader.integer('reqId', 1, REQ_ID_MAX);
  reader.setReqId(reqId);
  const bytes = reader.bytes('result');
  let result;
  try {
    result = decodeResult(bytes);
  } catch (error) {
    if (!(error instanceof KvDecodeError)) throw error;
    throw reader.fail(`result is malformed: ${error.message}`, error);
  }
  if (!result.ok) throw reader.fail('a result message must carry a success');
  return { type: 'result', reqId, result };
}

function failureFromFields(reader: WireReader): FailureMessage {
  const reqId = reader.integer('reqId', 0, REQ_ID_MAX);
  if (reqId > 0) reader.setReqId(reqId);
  const error = reader.oneOf('code', SERVICE_ERROR_CODES);
  const message = reader.string('message', MESSAGE_BYTES_MAX);
  const currentFields = reader.arrayOrNull('current', 2);
  const leaderFields = reader.arrayOrNull('leader', 1);
  if (currentFields !== null && error !== 'cas_failed') throw reader.fail('only cas_failed carries current');
  if (leaderFields !== null && error !== 'not_leader') throw reader.fail('only not_leader carries a leader');
  const failure: { -readonly [K in keyof ServiceFailure]: ServiceFailure[K] } = { ok: false, error, message };
  if (currentFields !== null) failure.current = currentFromFields(reader.nested(currentFields, 'current'));
  if (leaderFields !== null) failure.leader = endpointFromFields(reader.nested(leaderFields, 'leader'));
  return { type: 'failure', reqId, failure };
}

function currentFromFields(reader: WireReader): KvCurrent {
  const value = reader.stringOrNull('value', VALUE_BYTES_MAX);
  const version = reader.integer('version', 0);
  reader.end();
  if ((value === null) !== (version === 0)) throw reader.fail('failure current value and version disagree on presence');
  return { value, version };
}

/** The payload of a frame, as a plain Uint8Array view (as `packFrameFields` returns). */
function framePayload(frame: Buffer): Uint8Array {
  return new Uint8Array(frame.buffer, frame.byteOffset + FRAME_HEADER_BYTES, frame.byteLength - FRAME_HEADER_BYTES);
}



function assertReqId(reqId: number, minimum: number): void {
  assert(Number.isSafeInteger(reqId) && reqId >= minimum, 'reqId must be a safe integer in range');
}

export { ProtocolDecodeError } from './reader.js';

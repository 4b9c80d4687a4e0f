/**
 * fast-check generators for client protocol messages, built on the key-value generators.
 * Import-safe (no tests here).
 */
import fc from 'fast-check';
import type { KvSuccess } from '../../src/kv/index.js';
import type { ClientMessage, ServerMessage } from '../../src/protocol/index.js';
import { SERVICE_ERROR_CODES, type NodeEndpoint, type NodeStatusReport, type ServiceFailure } from '../../src/server/service.js';
import { keyArbitrary, operationArbitrary, valueArbitrary } from '../kv/arbitraries.js';

const reqIdArbitrary = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER));
const countArbitrary = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const nodeIdArbitrary = fc.integer({ min: 1, max: 1023 });
const addressArbitrary = fc.option(fc.constantFrom('127.0.0.1:7001', '[::1]:80', 'node-3.example:7443'), { nil: null });

/** A `NodeEndpoint` with any combination of addresses. */
export const endpointArbitrary: fc.Arbitrary<NodeEndpoint> = fc
  .tuple(nodeIdArbitrary, addressArbitrary, addressArbitrary)
  .map(([id, clientAddress, httpAddress]) => ({ id, clientAddress, httpAddress }));

/** Any client frame. */
export const clientMessageArbitrary: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 5 }), fc.option(fc.string({ maxLength: 20 }), { nil: null }))
    .map(([version, token]): ClientMessage => ({ type: 'hello', version, token })),
  fc.tuple(reqIdArbitrary, fc.string({ minLength: 1, maxLength: 20 }), countArbitrary, operationArbitrary)
    .map(([reqId, clientId, seq, operation]): ClientMessage => ({ type: 'request', reqId, clientId, seq, operation })),
  reqIdArbitrary.map((reqId): ClientMessage => ({ type: 'status-request', reqId })),
);

const previousArbitrary = fc.option(valueArbitrary, { nil: null });

/** Any successful result (well-shaped: a present value has a version of at least 1). */
export const successArbitrary: fc.Arbitrary<KvSuccess> = fc.oneof(
  fc.tuple(fc.constantFrom('put' as const, 'cas' as const), fc.integer({ min: 1, max: 1e9 }), fc.integer({ min: 1, max: 50 }), previousArbitrary)
    .map(([type, revision, version, previous]): KvSuccess => ({ ok: true, type, revision, version, previous })),
  fc.tuple(countArbitrary, fc.option(fc.tuple(valueArbitrary, fc.integer({ min: 1, max: 50 })), { nil: null }))
    .map(([revision, present]): KvSuccess => ({ ok: true, type: 'get', revision, value: present?.[0] ?? null, version: present?.[1] ?? 0 })),
  fc.tuple(countArbitrary, previousArbitrary).map(([revision, previous]): KvSuccess => ({ ok: true, type: 'delete', revision, previous })),
  fc.tuple(countArbitrary, fc.boolean(), fc.array(fc.tuple(keyArbitrary, valueArbitrary, fc.integer({ min: 1, max: 9 })), { maxLength: 4 }))
    .map(([revision, more, entries]): KvSuccess => ({
      ok: true, type: 'list', revision, more, entries: entries.map(([key, value, version]) => ({ key, value, version })),
    })),
);

/** Any failure in the form a decoder returns it (current only on cas_failed, leader only on not_leader). */
export const failureArbitrary: fc.Arbitrary<ServiceFailure> = fc
  .tuple(
    fc.constantFrom(...SERVICE_ERROR_CODES),
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.option(fc.tuple(valueArbitrary, fc.integer({ min: 1, max: 9 })), { nil: null }),
    fc.option(endpointArbitrary, { nil: undefined }),
  )
  .map(([error, message, present, leader]) => {
    const failure: { -readonly [K in keyof ServiceFailure]: ServiceFailure[K] } = { ok: false, error, message };
    if (error === 'cas_failed') failure.current = { value: present?.[0] ?? null, version: present?.[1] ?? 0 };
    if (error === 'not_leader' && leader !== undefined) failure.leader = leader;
    return failure;
  });

/** Any well-formed status report. */
export const statusArbitrary: fc.Arbitrary<NodeStatusReport> = fc
  .tuple(
    nodeIdArbitrary,
    fc.constantFrom('follower' as const, 'candidate' as const, 'leader' as const),
    fc.boolean(),
    fc.option(endpointArbitrary, { nil: null }),
    fc.array(countArbitrary, { minLength: 5, maxLength: 5 }),
    fc.array(fc.tuple(nodeIdArbitrary, fc.boolean(), fc.option(fc.nat(), { nil: null }), fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }), { nil: null })), { maxLength: 6 }),
    fc.constantFrom('index' as const, 'log' as const),
    fc.double({ min: 0, max: 1e12, noNaN: true }),
  )
  .map(([id, role, serving, leader, [firstUnchosen, appliedIndex, maxSlot, revision, keys], peers, readMode, uptimeMs]) => ({
    id, role, serving, leader, ballot: `3.${id}`, firstUnchosen: firstUnchosen ?? 0, appliedIndex: appliedIndex ?? 0,
    maxSlot: maxSlot ?? 0, revision: revision ?? 0, keys: keys ?? 0,
    peers: peers.map(([peerId, connected, lag, rttMs]) => ({ id: peerId, connected, lag, rttMs })), readMode, uptimeMs,
  }));

/** Any server frame. */
export const serverMessageArbitrary: fc.Arbitrary<ServerMessage> = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 5 }), nodeIdArbitrary, fc.integer({ min: 8192, max: 1 << 24 }))
    .map(([version, nodeId, requestFrameBytesMax]): ServerMessage => ({ type: 'welcome', version, nodeId, requestFrameBytesMax })),
  fc.tuple(reqIdArbitrary, successArbitrary).map(([reqId, result]): ServerMessage => ({ type: 'result', reqId, result })),
  fc.tuple(fc.oneof(fc.constant(0), reqIdArbitrary), failureArbitrary).map(([reqId, failure]): ServerMessage => ({ type: 'failure', reqId, failure })),
  fc.tuple(reqIdArbitrary, statusArbitrary).map(([reqId, status]): ServerMessage => ({ type: 'status', reqId, status })),
);

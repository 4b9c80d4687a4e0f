/**
 * The wire form of the records the service hands its front ends besides results: a node's client
 * endpoint (the redirect target of `not_leader`) and its status report. Both are flat arrays, in
 * the field order documented in `wire.ts`.
 */
import { NODE_ID_LIMIT } from '../core/ballot.js';
import type { NodeEndpoint, NodeStatusReport, PeerStatus, ReadMode } from '../server/service.js';
import { WireReader } from './reader.js';

/** Largest `host:port` address, in UTF-8 bytes (a DNS name is at most 253). */
export const ADDRESS_BYTES_MAX = 512;
/** Largest ballot text ("round.node"), in UTF-8 bytes. */
export const BALLOT_TEXT_BYTES_MAX = 64;
/** Most peers a status report may list: one per possible node id. */
export const STATUS_PEERS_MAX = 1024;

const ROLES: readonly NodeStatusReport['role'][] = ['follower', 'candidate', 'leader'];
const READ_MODES: readonly ReadMode[] = ['index', 'log'];
const PEER_FIELDS = 4;

/** `[id, clientAddress | nil, httpAddress | nil]`. */
export function endpointToFields(endpoint: NodeEndpoint): unknown[] {
  return [endpoint.id, endpoint.clientAddress, endpoint.httpAddress];
}

/** The inverse of `endpointToFields`. */
export function endpointFromFields(reader: WireReader): NodeEndpoint {
  const id = readNodeId(reader, 'id');
  const clientAddress = reader.stringOrNull('clientAddress', ADDRESS_BYTES_MAX);
  const httpAddress = reader.stringOrNull('httpAddress', ADDRESS_BYTES_MAX);
  reader.end();
  return { id, clientAddress, httpAddress };
}

/** A status report as the flat array the status response carries. */
export function statusToFields(status: NodeStatusReport): unknown[] {
  const peers: unknown[] = [];
  for (const peer of status.peers) peers.push(peer.id, peer.connected, peer.lag, peer.rttMs);
  return [
    status.id, status.role, status.serving, status.leader === null ? null : endpointToFields(status.leader), status.ballot,
    status.firstUnchosen, status.appliedIndex, status.maxSlot, status.revision, status.keys, peers, status.readMode, status.uptimeMs,
  ];
}

/** The inverse of `statusToFields`; every field checked. */
export function statusFromFields(reader: WireReader): NodeStatusReport {
  const id = readNodeId(reader, 'id');
  const role = reader.oneOf('role', ROLES);
  const serving = reader.boolean('serving');
  const leaderFields = reader.arrayOrNull('leader', 1);
  const leader = leaderFields === null ? null : endpointFromFields(reader.nested(leaderFields, 'leader'));
  const ballot = reader.string('ballot', BALLOT_TEXT_BYTES_MAX);
  const firstUnchosen = reader.integer('firstUnchosen', 0);
  const appliedIndex = reader.integer('appliedIndex', 0);
  const maxSlot = reader.integer('maxSlot', 0);
  const revision = reader.integer('revision', 0);
  const keys = reader.integer('keys', 0);
  const peers = peersFromFields(reader.nested(reader.array('peers', PEER_FIELDS), 'peer'));
  const readMode = reader.oneOf('readMode', READ_MODES);
  const uptimeMs = reader.number('uptimeMs', 0);
  reader.end();
  return { id, role, serving, leader, ballot, firstUnchosen, appliedIndex, maxSlot, revision, keys, peers, readMode, uptimeMs };
}

function peersFromFields(reader: WireReader): PeerStatus[] {
  const peers: PeerStatus[] = [];
  // Bounded: each iteration reads PEER_FIELDS fields, and the count is checked against the cap.
  while (reader.hasMore()) {
    if (peers.length >= STATUS_PEERS_MAX) throw reader.fail(`status lists more than ${STATUS_PEERS_MAX} peers`);
    const id = readNodeId(reader, 'id');
    const connected = reader.boolean('connected');
    const lag = reader.integerOrNull('lag', 0);
    const rttMs = reader.numberOrNull('rttMs', 0);
    peers.push({ id, connected, lag, rttMs });
  }
  reader.end();
  return peers;
}

/** A node id: an integer in [1, NODE_ID_LIMIT). */
export function readNodeId(reader: WireReader, name: string): number {
  return reader.integer(name, 1, NODE_ID_LIMIT - 1);
}

/**
 * Proposal numbers ("ballots"): unique and totally ordered, made of (round, nodeId) as the seeds
 * require — two proposers never use the same number because the node id breaks ties, and a
 * proposer never reuses a round because its round is persisted before use.
 *
 * Encoded as one safe integer `round * NODE_ID_LIMIT + nodeId` so that comparison is `<` and the
 * value can key maps cheaply. Ballot 0 means "nothing promised / accepted yet".
 */
import { assert } from './assert.js';

export type NodeId = number;
export type Ballot = number & { readonly __brand: 'Ballot' };

/** Node ids are in [1, NODE_ID_LIMIT). */
export const NODE_ID_LIMIT = 1024;
/** The ballot below every real ballot. */
export const BALLOT_ZERO = 0 as Ballot;

export function makeBallot(round: number, nodeId: NodeId): Ballot {
  assert(Number.isInteger(round) && round >= 0, 'ballot round must be a non-negative integer');
  assert(Number.isInteger(nodeId) && nodeId >= 0 && nodeId < NODE_ID_LIMIT, 'node id out of range');
  const ballot = round * NODE_ID_LIMIT + nodeId;
  assert(Number.isSafeInteger(ballot), 'ballot overflow');
  return ballot as Ballot;
}

export function ballotRound(ballot: Ballot): number {
  return Math.floor(ballot / NODE_ID_LIMIT);
}

export function ballotNode(ballot: Ballot): NodeId {
  return ballot % NODE_ID_LIMIT;
}

/** The smallest ballot of `nodeId` that is greater than `above`. */
export function nextBallot(above: Ballot, nodeId: NodeId): Ballot {
  const round = Math.max(ballotRound(above), 1); // round 0 is never used: ballots read 1.n, 2.n, ...
  const candidate = makeBallot(round, nodeId);
  return candidate > above ? candidate : makeBallot(round + 1, nodeId);
}

/** Human form used in traces and logs: `round.node`, e.g. `3.2`. */
export function formatBallot(ballot: Ballot): string {
  return ballot === BALLOT_ZERO ? '0' : `${ballotRound(ballot)}.${ballotNode(ballot)}`;
}

export function isValidNodeId(nodeId: unknown): nodeId is NodeId {
  return typeof nodeId === 'number' && Number.isInteger(nodeId) && nodeId >= 1 && nodeId < NODE_ID_LIMIT;
}

/**
 * The conformance suite every `Transport` implementation passes (automerge-repo style). This file
 * only exports: `npm test` loads every compiled test file, so importing it must register nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BALLOT_ZERO, makeBallot, type NodeId } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import type { Transport } from '../../src/transport/transport.js';

/** A started-or-not set of transports plus how to release everything they hold. */
export interface TransportCluster {
  /** One transport per node id; not yet started (the suite starts them). */
  readonly transports: Map<NodeId, Transport>;
  /** Stops every transport and releases ports, timers and sockets. Idempotent. */
  cleanup(): Promise<void>;
}

/** Builds a cluster whose nodes all know each other. */
export type MakeCluster = (nodeIds: readonly NodeId[]) => Promise<TransportCluster>;

/** Polls `condition` every few milliseconds until it holds or `timeoutMs` passes. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * One message of every type from `from` to `to`, with edge-case contents. Requests carry the
 * sender's ballot, answers the recipient's (the decoder insists, as the core always does).
 */
export function sampleMessages(from: NodeId, to: NodeId): Message[] {
  const ballot = makeBallot(7, from);
  const answered = makeBallot(7, to);
  const epoch = makeBallot(3, to);
  const commands = [
    { clientId: 'client-α', seq: 0, payload: new Uint8Array([0, 1, 2, 255]) },
    { clientId: '', seq: Number.MAX_SAFE_INTEGER, payload: new Uint8Array(0) },
    { clientId: 'big', seq: 42, payload: new Uint8Array(70_000).fill(7) },
  ];
  return [
    { type: 'prepare', from, to, ballot, firstUnchosen: 1 },
    {
      type: 'promise', from, to, ballot: answered, maxSlot: 5,
      entries: [
        { slot: 3, ballot: epoch, value: { type: 'noop' }, chosen: true },
        { slot: 4, ballot: epoch, value: { type: 'start-working', epoch }, chosen: false },
        { slot: 5, ballot: epoch, value: { type: 'commands', epoch, commands }, chosen: false },
      ],
    },
    { type: 'accept', from, to, ballot, commitIndex: 5, entries: [{ slot: 6, value: { type: 'commands', epoch, commands } }] },
    { type: 'accepted', from, to, ballot: answered, slots: [6, 7, 2 ** 40], firstUnchosen: 6 },
    { type: 'nack', from, to, ballot: answered, promised: makeBallot(9, to) },
    { type: 'heartbeat', from, to, ballot, commitIndex: 0 , readRound: 0},
    { type: 'heartbeat-ack', from, to, ballot: answered, firstUnchosen: 6, maxSlot: 7 , readRound: 0},
    { type: 'learn', from, to, slots: [] },
    { type: 'learned', from, to, entries: [{ slot: 1, ballot: epoch, value: { type: 'commands', epoch, commands: [] } }] },
    { type: 'rejoin', from, to, nonce: 2 ** 31 - 1, fence: BALLOT_ZERO },
    { type: 'rejoin-ack', from, to, nonce: 1, promised: makeBallot(9, to) },
  ];
}

/** Orders messages deterministically so received sets compare regardless of arrival order. */
function byTypeAndSender(left: Message, right: Message): number {
  return left.type.localeCompare(right.type) || left.from - right.from;
}

/** Starts every transport and records what each receives. */
async function startRecording(cluster: TransportCluster): Promise<Map<NodeId, Message[]>> {
  const received = new Map<NodeId, Message[]>();
  for (const [nodeId, transport] of cluster.transports) {
    const inbox: Message[] = [];
    received.set(nodeId, inbox);
    transport.onMessage((message) => inbox.push(message));
  }
  await Promise.all([...cluster.transports.values()].map((transport) => transport.start()));
  return received;
}

function transportOf(cluster: TransportCluster, nodeId: NodeId): Transport {
  const transport = cluster.transports.get(nodeId);
  assert.ok(transport !== undefined, `no transport for node ${nodeId}`);
  return transport;
}

/** Registers the conformance tests for one transport implementation. */
export function runTransportConformance(name: string, makeCluster: MakeCluster): void {
  test(`${name}: every message type round-trips with exact contents`, async () => {
    const cluster = await makeCluster([1, 2, 3]);
    try {
      const received = await startRecording(cluster);
      const toTwo = [...sampleMessages(1, 2), ...sampleMessages(3, 2)];
      const toOne = sampleMessages(2, 1);
      for (const message of toTwo) transportOf(cluster, message.from).send(message);
      for (const message of toOne) transportOf(cluster, 2).send(message);
      await waitFor(() => received.get(2)?.length === toTwo.length && received.get(1)?.length === toOne.length, 'sample messages');
      assert.deepStrictEqual([...(received.get(2) ?? [])].sort(byTypeAndSender), [...toTwo].sort(byTypeAndSender));
      assert.deepStrictEqual([...(received.get(1) ?? [])].sort(byTypeAndSender), [...toOne].sort(byTypeAndSender));
      assert.equal(received.get(3)?.length, 0);
      const payload = (received.get(1) ?? []).find((message) => message.type === 'accept');
      assert.ok(payload?.type === 'accept' && payload.entries[0]?.value.type === 'commands');
      assert.equal(Object.getPrototypeOf(payload.entries[0].value.commands[0]?.payload), Uint8Array.prototype);
      const stats = transportOf(cluster, 2).stats();
      assert.equal(stats.peers.get(1)?.received, sampleMessages(1, 2).length);
      assert.equal(stats.peers.get(1)?.sent, toOne.length);
    } finally {
      await cluster.cleanup();
    }
  });

  test(`${name}: many messages all arrive on a healthy link`, async () => {
    const cluster = await makeCluster([1, 2]);
    try {
      const received = await startRecording(cluster);
      const count = 2_000;
      for (let index = 0; index < count; index += 1) {
        transportOf(cluster, 1).send({ type: 'accepted', from: 1, to: 2, ballot: makeBallot(1, 2), slots: [index + 1], firstUnchosen: 0 });
        transportOf(cluster, 2).send({ type: 'learn', from: 2, to: 1, slots: [index + 1] });
      }
      await waitFor(() => received.get(1)?.length === count && received.get(2)?.length === count, 'all messages');
      const slotsAtTwo = (received.get(2) ?? []).map((message) => (message.type === 'accepted' ? message.slots[0] : -1));
      assert.deepStrictEqual([...slotsAtTwo].sort((left, right) => (left ?? 0) - (right ?? 0)), [...Array(count).keys()].map((index) => index + 1));
      assert.equal(transportOf(cluster, 1).stats().peers.get(2)?.dropped ?? 0, 0);
    } finally {
      await cluster.cleanup();
    }
  });

  test(`${name}: sending to a stopped peer does not throw, others still receive`, async () => {
    const cluster = await makeCluster([1, 2, 3]);
    try {
      const received = await startRecording(cluster);
      await transportOf(cluster, 3).stop();
      for (let index = 0; index < 20; index += 1) {
        transportOf(cluster, 1).send({ type: 'heartbeat', from: 1, to: 3, ballot: makeBallot(1, 1), commitIndex: index , readRound: 0});
      }
      transportOf(cluster, 1).send({ type: 'heartbeat', from: 1, to: 2, ballot: makeBallot(1, 1), commitIndex: 1 , readRound: 0});
      await waitFor(() => received.get(2)?.length === 1, 'message to the live peer');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(received.get(3)?.length, 0);
    } finally {
      await cluster.cleanup();
    }
  });

  test(`${name}: stop is clean and idempotent; send after stop drops without throwing`, async () => {
    const cluster = await makeCluster([1, 2]);
    try {
      await startRecording(cluster);
      await Promise.all([...cluster.transports.values()].map((transport) => transport.stop()));
      await transportOf(cluster, 1).stop();
      transportOf(cluster, 1).send({ type: 'learn', from: 1, to: 2, slots: [1] });
      const stats = transportOf(cluster, 1).stats();
      assert.equal(stats.peers.get(2)?.droppedByReason.stopped, 1);
    } finally {
      await cluster.cleanup();
    }
  });
}

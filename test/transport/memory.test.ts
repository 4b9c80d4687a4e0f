import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeId } from '../../src/core/ballot.js';
import type { Message } from '../../src/core/multipaxos/types.js';
import { MemoryNetwork } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/transport.js';
import { runTransportConformance, waitFor } from './conformance.js';

runTransportConformance('memory', async (nodeIds) => {
  const network = new MemoryNetwork();
  const transports = new Map<NodeId, Transport>();
  for (const nodeId of nodeIds) transports.set(nodeId, network.createTransport(nodeId));
  return {
    transports,
    cleanup: async () => {
      await Promise.all([...transports.values()].map((transport) => transport.stop()));
    },
  };
});

test('memory: the drop predicate loses exactly the messages it selects', async () => {
  const network = new MemoryNetwork({ drop: (message) => message.type === 'learn' && message.slots[0] === 1 });
  const one = network.createTransport(1);
  const two = network.createTransport(2);
  const received: Message[] = [];
  two.onMessage((message) => received.push(message));
  await Promise.all([one.start(), two.start()]);
  one.send({ type: 'learn', from: 1, to: 2, slots: [1] });
  one.send({ type: 'learn', from: 1, to: 2, slots: [2] });
  one.send({ type: 'learn', from: 1, to: 9, slots: [3] });
  await waitFor(() => received.length === 1, 'the undropped message');
  assert.deepStrictEqual(received, [{ type: 'learn', from: 1, to: 2, slots: [2] }]);
  assert.equal(one.stats().droppedUnknownPeer, 1);
  await Promise.all([one.stop(), two.stop()]);
});

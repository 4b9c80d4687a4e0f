/**
 * The peer decoder refuses messages that break the invariants the core relies on (see
 * `src/transport/codec.ts`). That is only safe if the core itself never sends such a message: this
 * suite runs the simulator (all faults on, so elections, recoveries, catch-up and retransmissions
 * all happen) with replicas whose every outgoing message must survive encode and decode unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/core/multipaxos/types.js';
import { Replica } from '../../src/core/multipaxos/replica.js';
import { simulate } from '../../src/sim/simulation.js';
import { decodeMessage, encodeMessage } from '../../src/transport/codec.js';
import { fuzzScale, fuzzSeed } from './mutate.js';

const SEEDS_3_NODES = 40 * fuzzScale();
const SEEDS_5_NODES = 10 * fuzzScale();

/** A replica whose outgoing messages are checked against the wire decoder. */
class CheckedReplica extends Replica {
  static checked = 0;

  override ready(): ReturnType<Replica['ready']> {
    const ready = super.ready();
    for (const message of [...ready.sendNow, ...ready.send]) CheckedReplica.check(message);
    return ready;
  }

  static check(message: Message): void {
    // encodeMessage asserts the message passes the decoder's checks; decoding must give it back
    // (compared as bytes: the simulator's payloads are Buffers, the decoder's plain Uint8Arrays).
    const encoded = encodeMessage(message);
    const again = encodeMessage(decodeMessage(encoded));
    assert.ok(Buffer.from(encoded).equals(Buffer.from(again)), `${message.type} from ${message.from} changed in a round trip`);
    CheckedReplica.checked += 1;
  }
}

function sweepChecked(seeds: number, nodeCount: number, start: number): void {
  for (let seed = start; seed < start + seeds; seed += 1) {
    const result = simulate(seed, { nodeCount, replicaFactory: (options, state) => new CheckedReplica(options, state) });
    assert.deepStrictEqual(result.violations, [], `seed ${seed}`);
    assert.equal(result.livenessFailure, null, `seed ${seed}`);
  }
}

test('peer invariants: every message the core sends in simulated runs with all faults passes the strict decoder', () => {
  const before = CheckedReplica.checked;
  sweepChecked(SEEDS_3_NODES, 3, fuzzSeed(9_000));
  sweepChecked(SEEDS_5_NODES, 5, fuzzSeed(9_500) + SEEDS_3_NODES);
  assert.ok(CheckedReplica.checked - before > 10_000, `only ${CheckedReplica.checked - before} messages checked`);
});

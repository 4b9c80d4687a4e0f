/**
 * The nemesis schedule: the same seed gives the same plan; seeds differ; only enabled kinds run,
 * within the run; leaders are targeted more often than other nodes; turning one kind off leaves
 * the others' schedules alone; and the partition shapes cut the links they say.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAULT_KINDS, parseFaultKinds, planFaults, shapeLinks, type FaultEpisode, type NodeTarget } from '../../src/torture/nemesis.js';

const ALL = [...FAULT_KINDS];

test('the same seed gives the same schedule; another seed gives another', () => {
  for (const nodes of [3, 5]) {
    const one = planFaults({ seed: 42, nodes, durationMs: 120_000, kinds: ALL });
    const again = planFaults({ seed: 42, nodes, durationMs: 120_000, kinds: ALL });
    assert.deepEqual(again, one);
    assert.ok(one.length > 40, `a two-minute run has many faults (${one.length})`);
    assert.notDeepEqual(planFaults({ seed: 43, nodes, durationMs: 120_000, kinds: ALL }), one);
  }
});

test('episodes lie inside the run, are sorted, and use only the enabled kinds', () => {
  for (let seed = 0; seed < 50; seed += 1) {
    const kinds = parseFaultKinds(seed % 2 === 0 ? 'kill,partition' : 'pause,disk,clock');
    const plan = planFaults({ seed, nodes: 5, durationMs: 30_000, kinds });
    let previous = 0;
    for (const episode of plan) {
      assert.ok(kinds.includes(episode.spec.kind), `${episode.spec.kind} is enabled`);
      assert.ok(episode.startMs >= previous && episode.startMs >= 0);
      assert.ok(episode.durationMs > 0 && episode.startMs + episode.durationMs <= 30_000);
      previous = episode.startMs;
    }
    assert.ok(new Set(plan.map((episode) => episode.spec.kind)).size >= 2, `seed ${seed} mixes kinds`);
  }
  assert.deepEqual(planFaults({ seed: 1, nodes: 3, durationMs: 60_000, kinds: [] }), []);
});

test('kills and pauses target the leader more often than any one node', () => {
  let leader = 0;
  let total = 0;
  for (let seed = 0; seed < 200; seed += 1) {
    for (const episode of planFaults({ seed, nodes: 3, durationMs: 60_000, kinds: ['kill', 'pause'] })) {
      if (episode.spec.kind !== 'kill' && episode.spec.kind !== 'pause') continue;
      const first = episode.spec.targets[0] as NodeTarget;
      total += 1;
      if (first.kind === 'leader') leader += 1;
    }
  }
  assert.ok(leader / total > 0.5 && leader / total < 0.7, `leader share ${(leader / total).toFixed(2)}`);
});

test('turning one fault kind off leaves the schedules of the others unchanged', () => {
  const of = (plan: FaultEpisode[], kind: string): FaultEpisode[] => plan.filter((episode) => episode.spec.kind === kind);
  const all = planFaults({ seed: 9, nodes: 5, durationMs: 60_000, kinds: ALL });
  const noClock = planFaults({ seed: 9, nodes: 5, durationMs: 60_000, kinds: ['kill', 'pause', 'partition', 'disk'] });
  assert.deepEqual(of(noClock, 'partition'), of(all, 'partition'));
  assert.deepEqual(of(noClock, 'disk'), of(all, 'disk'));
  assert.equal(of(noClock, 'clock').length, 0);
});

test('partition shapes cut the links they describe', () => {
  const resolve = (target: NodeTarget): number => (target.kind === 'node' ? target.index : 2);
  const key = (links: { from: number; to: number }[]): string[] => links.map((link) => `${link.from}>${link.to}`).sort();
  // Isolating node 2 of 3 cuts both directions of its two links.
  assert.deepEqual(key(shapeLinks({ kind: 'isolate', target: { kind: 'leader', fallback: 0 } }, 3, resolve, 2)), ['0>2', '1>2', '2>0', '2>1']);
  // One-way: only what the target receives, or only what it sends.
  assert.deepEqual(key(shapeLinks({ kind: 'one-way', target: { kind: 'node', index: 0 }, direction: 'inbound' }, 3, resolve, null)), ['1>0', '2>0']);
  assert.deepEqual(key(shapeLinks({ kind: 'one-way', target: { kind: 'node', index: 0 }, direction: 'outbound' }, 3, resolve, null)), ['0>1', '0>2']);
  // A 2/3 split with the leader (4) in the minority, completed from the order.
  const split = shapeLinks({ kind: 'split', minoritySize: 2, withLeader: true, order: [1, 4, 0, 2, 3] }, 5, resolve, 4);
  assert.equal(split.length, 2 * 2 * 3);
  assert.ok(split.every((link) => [1, 4].includes(link.from) !== [1, 4].includes(link.to)));
  // A bridge of five: {3,1} and {4,0} cannot talk; 2 in the middle talks to everyone.
  const bridge = shapeLinks({ kind: 'bridge', order: [3, 1, 2, 4, 0] }, 5, resolve, null);
  assert.equal(bridge.length, 8);
  assert.ok(bridge.every((link) => link.from !== 2 && link.to !== 2));
});

test('unknown fault kinds are refused by name', () => {
  assert.deepEqual(parseFaultKinds('kill, pause,kill'), ['kill', 'pause']);
  assert.throws(() => parseFaultKinds('kill,meteor'), /unknown fault kind "meteor"/);
});

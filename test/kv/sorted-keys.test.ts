import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SortedKeys, compareKeys } from '../../src/kv/sorted-keys.js';

/** The reference order: compare the UTF-8 bytes. */
function compareBytes(left: string, right: string): number {
  return Buffer.compare(Buffer.from(left, 'utf8'), Buffer.from(right, 'utf8'));
}

test('compareKeys orders by UTF-8 bytes, not UTF-16 units', () => {
  // U+1F600 is above U+FFFD in bytes (F0 ... > EF ...), though its first UTF-16 unit (D83D) is below.
  assert.ok(compareKeys('\u{1F600}', '\uFFFD') > 0);
  assert.ok('\u{1F600}' < '\uFFFD');
  assert.ok(compareKeys('a', 'ab') < 0);
  assert.ok(compareKeys('ab', 'b') < 0);
  assert.equal(compareKeys('same', 'same'), 0);
});

test('property: compareKeys agrees with byte comparison', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 6 }), (left, right) => {
      assert.equal(Math.sign(compareKeys(left, right)), Math.sign(compareBytes(left, right)));
    }),
    { numRuns: 2000 },
  );
});

test('property: SortedKeys matches a sorted-array model through splits and removals', () => {
  const key = fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'é', '\u{1F600}'), minLength: 1, maxLength: 6 });
  const action = fc.record({ insert: fc.boolean(), key });
  fc.assert(
    fc.property(fc.array(action, { maxLength: 3000 }), key, fc.nat({ max: 50 }), (actions, prefix, limit) => {
      const index = new SortedKeys();
      const model = new Set<string>();
      for (const { insert, key: target } of actions) {
        if (insert && !model.has(target)) {
          index.insert(target);
          model.add(target);
        } else if (!insert && model.has(target)) {
          index.remove(target);
          model.delete(target);
        }
      }
      const sorted = [...model].sort(compareBytes);
      assert.equal(index.size, sorted.length);
      assert.deepEqual([...index], sorted);
      const matching = sorted.filter((candidate) => candidate.startsWith(prefix));
      const scan = index.scanPrefix(prefix, limit);
      assert.deepEqual(scan.keys, matching.slice(0, limit));
      assert.equal(scan.more, matching.length > limit);
      assert.deepEqual([...SortedKeys.fromSorted(sorted)], sorted);
    }),
    { numRuns: 100 },
  );
});

test('SortedKeys keeps order over many keys (chunk splits) and empties cleanly', () => {
  const index = new SortedKeys();
  const keys = Array.from({ length: 5000 }, (_, position) => `key/${(position * 7919) % 5000}`);
  for (const key of keys) index.insert(key);
  const sorted = [...keys].sort(compareBytes);
  assert.deepEqual([...index], sorted);
  assert.deepEqual(index.scanPrefix('key/499', 3).keys, ['key/499', 'key/4990', 'key/4991']);
  for (const key of keys) index.remove(key);
  assert.equal(index.size, 0);
  assert.deepEqual([...index], []);
  assert.deepEqual(index.scanPrefix('', 10), { keys: [], more: false });
});

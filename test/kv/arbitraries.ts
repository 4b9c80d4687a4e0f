/**
 * fast-check generators shared by the key-value tests. Keys come from a tiny alphabet so that
 * random sequences hit the same keys often (overwrites, cas on existing keys, prefix overlaps),
 * and include characters above U+FFFF, whose byte order differs from UTF-16 order.
 */
import fc from 'fast-check';
import type { KvCasOperation, KvOperation } from '../../src/kv/index.js';

/** `fc.record` with ordinary prototypes, so that `deepStrictEqual` compares with decoded objects. */
export function plainRecord<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}

/** Short keys over an alphabet with ASCII, a 2-byte, a 3-byte and a 4-byte character. */
export const keyArbitrary = fc.string({ unit: fc.constantFrom('a', 'b', '/', 'é', '\uFFFD', '\u{1F600}'), minLength: 1, maxLength: 3 });

/** Short values over all of Unicode (well-formed). */
export const valueArbitrary = fc.string({ unit: 'binary', maxLength: 6 });

/** A cas with any combination of expectations (including none, which validation rejects). */
export const casArbitrary: fc.Arbitrary<KvCasOperation> = fc
  .tuple(
    keyArbitrary,
    valueArbitrary,
    fc.option(fc.option(fc.oneof(valueArbitrary, fc.constantFrom('x', 'y')), { nil: null }), { nil: undefined }),
    fc.option(fc.nat({ max: 4 }), { nil: undefined }),
  )
  .map(([key, value, expectedValue, expectedVersion]) => {
    const operation: { -readonly [K in keyof KvCasOperation]: KvCasOperation[K] } = { type: 'cas', key, value };
    if (expectedValue !== undefined) operation.expectedValue = expectedValue;
    if (expectedVersion !== undefined) operation.expectedVersion = expectedVersion;
    return operation;
  });

/** Any operation over the small key space. */
export const operationArbitrary: fc.Arbitrary<KvOperation> = fc.oneof(
  plainRecord({ type: fc.constant('put' as const), key: keyArbitrary, value: fc.constantFrom('x', 'y', 'z') }),
  plainRecord({ type: fc.constant('get' as const), key: keyArbitrary }),
  plainRecord({ type: fc.constant('delete' as const), key: keyArbitrary }),
  casArbitrary,
  plainRecord({ type: fc.constant('list' as const), prefix: fc.oneof(fc.constant(''), keyArbitrary), limit: fc.integer({ min: 1, max: 5 }) }),
);

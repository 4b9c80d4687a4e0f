/**
 * Assertions that stay on in production (TigerBeetle style). A failed assertion means a broken
 * invariant: the process must stop loudly rather than continue with corrupt state. Expected
 * failures (bad input, timeouts, lost races) are returned as typed values, never asserted.
 */

/** Thrown when an invariant of the protocol or of a data structure does not hold. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

/** Asserts one condition; `message` names the invariant that broke. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}

/** Marks a switch as exhaustive: the compiler rejects a missing case, the runtime rejects junk. */
export function assertNever(value: never, what = 'value'): never {
  throw new InvariantError(`unexpected ${what}: ${JSON.stringify(value)}`);
}

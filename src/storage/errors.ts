/**
 * Typed storage errors. Corruption and misuse are expected failures of the environment or the
 * caller, so they are errors a driver can catch and report; broken invariants inside the storage
 * code itself still throw `InvariantError` from `src/core/assert.ts`.
 */

/**
 * The log on disk cannot be trusted: a bad checksum, header or record somewhere other than the
 * torn tail of the last segment. Never skipped silently, because skipping could drop records the
 * node acknowledged (a promise or an accept other replicas counted on).
 */
export class StorageCorruptionError extends Error {
  override readonly name = 'StorageCorruptionError';

  constructor(
    /** The segment file (full path) holding the bad bytes. */
    readonly file: string,
    /** Byte offset of the bad frame or header within `file`. */
    readonly offset: number,
    reason: string,
  ) {
    super(`storage corruption in ${file} at byte offset ${offset}: ${reason}`);
  }
}

/** The bytes of one record payload do not decode to a `PersistRecord`. */
export class StorageDecodeError extends Error {
  override readonly name = 'StorageDecodeError';
}

/** An append or option the storage refuses: a closed adapter, a slot below `firstSlot`, a limit. */
export class StorageUsageError extends Error {
  override readonly name = 'StorageUsageError';
}

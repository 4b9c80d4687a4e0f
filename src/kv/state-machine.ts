/**
 * The key-value state machine: every replica applies the chosen commands of the log, in slot
 * order, to one of these, and must reach the same state. Like etcd's mvcc store without history:
 * a store-wide revision counts successful mutations, and each key keeps its version (writes since
 * creation), create revision and modification revision.
 *
 * Determinism is the contract: the state after a sequence of `apply` calls depends only on that
 * sequence (no clock, no randomness, no iteration over unordered structures).
 *
 * Exactly-once: a client retries a command with the same `seq` until it hears back, so the log may
 * hold one command several times. Each client session remembers the last `seq` applied and its
 * result; a retry gets that result back without executing again.
 */
import { createHash } from 'node:crypto';
import { assert, assertNever } from '../core/assert.js';
import type { Command } from '../core/command.js';
import { FieldReader, KvDecodeError, bytesEqual, isWellFormed, packFields, unpackFields } from './codec.js';
import {
  KEY_BYTES_MAX,
  VALUE_BYTES_MAX,
  decodeOperation,
  encodeOperation,
  isReadOperation,
  kvFailure,
  resultFromFields,
  resultToFields,
  validateOperation,
  type KvCasOperation,
  type KvFailure,
  type KvListResult,
  type KvOperation,
  type KvReadOperation,
  type KvResult,
} from './ops.js';
import { SortedKeys, compareKeys } from './sorted-keys.js';

/** Default bound on the client sessions kept for exactly-once. */
export const CLIENT_SESSIONS_MAX_DEFAULT = 100_000;
/** Largest client id, in UTF-8 bytes (it is stored in every session). */
export const CLIENT_ID_BYTES_MAX = 256;

/** Thrown by `KvStateMachine.restore` when snapshot bytes are corrupt or not canonical. */
export class KvSnapshotError extends Error {
  override readonly name = 'KvSnapshotError';
}

/** Construction options. Every replica of a group must use the same ones. */
export interface KvStateMachineOptions {
  /** Sessions kept for exactly-once; beyond it the least recently applied is forgotten. */
  readonly clientSessionsMax?: number;
}

/** Size statistics. */
export interface KvStateMachineSize {
  /** Keys stored. */
  readonly keys: number;
  /** UTF-8 bytes of all keys and values. */
  readonly bytes: number;
  /** Client sessions remembered for exactly-once. */
  readonly sessions: number;
}

/** A key's stored state. Mutable inside the state machine only. */
interface KeyRecord {
  value: string;
  valueBytes: number;
  version: number;
  readonly createRevision: number;
  modRevision: number;
}

/**
 * A client's last applied command. `result` is null when that command was a read: a read is
 * executed again on retry rather than stored, because a list answer can be large and a fresh
 * answer to a retried read is still linearizable (it reflects the state at a point between the
 * first attempt and the response).
 */
interface ClientSession {
  readonly seq: number;
  readonly slot: number;
  readonly result: KvResult | null;
}

const SNAPSHOT_FORMAT = 'synod-kv/1';
const KEY_RECORD_FIELDS = 5;
const SESSION_FIELDS = 4;

/** The replicated key-value store. */
export class KvStateMachine {
  /** The sessions bound this instance enforces. */
  readonly clientSessionsMax: number;
  private readonly records = new Map<string, KeyRecord>();
  private index = new SortedKeys();
  /** Insertion-ordered: re-inserted on every execution, so the first entry is the least recent. */
  private readonly sessions = new Map<string, ClientSession>();
  private revisionCurrent = 0;
  private appliedSlotLast = 0;
  private dataBytes = 0;
  /**
   * Valid operations this replica encoded itself (`encodePayload`), by payload, until applied:
   * applying one of those very payloads skips decoding it (see `encodePayload`).
   */
  private readonly encoded = new WeakMap<Uint8Array, KvOperation>();

  constructor(options: KvStateMachineOptions = {}) {
    const clientSessionsMax = options.clientSessionsMax ?? CLIENT_SESSIONS_MAX_DEFAULT;
    assert(Number.isSafeInteger(clientSessionsMax) && clientSessionsMax >= 1, 'clientSessionsMax must be a positive integer');
    this.clientSessionsMax = clientSessionsMax;
  }

  /** The store revision: the number of successful mutations so far. */
  get revision(): number {
    return this.revisionCurrent;
  }

  /** The last slot applied (0 before any). The state reflects every slot up to it. */
  get appliedSlot(): number {
    return this.appliedSlotLast;
  }

  /**
   * Encodes `operation` as a command payload to propose, and remembers the pair when the
   * operation is valid, so that applying this same payload here later (a leader applying its own
   * proposal) reuses the operation instead of decoding the bytes again (the canonical decode
   * re-encodes them, and was the largest cost of apply at a leader). Every other replica, and
   * this one after a restart, decodes the bytes; both give the same result, because a valid
   * operation (well-formed strings, safe integers) decodes from its encoding to an equal one.
   * An invalid operation is not remembered: its bytes may not decode at all (a lone surrogate),
   * and every replica must then answer alike. The caller must not modify `operation` afterwards.
   */
  encodePayload(operation: KvOperation): Uint8Array {
    const payload = encodeOperation(operation);
    if (validateOperation(operation) === null) this.encoded.set(payload, operation);
    return payload;
  }

  /**
   * Applies one chosen command from `slot`. Slots never decrease; several commands may share a
   * slot (a batch), applied in batch order. Never throws on bad payloads: a payload that does not
   * decode yields `bad_request`. A retry (same `seq` as the client's last) returns the stored
   * result; an older `seq` is refused as stale; a newer one executes and becomes the last.
   */
  apply(command: Command, slot: number): KvResult {
    assert(Number.isSafeInteger(slot) && slot >= 1, 'kv apply: slot must be a positive integer');
    assert(slot >= this.appliedSlotLast, 'kv apply: slots must be applied in order');
    this.appliedSlotLast = slot;
    const identityFailure = validateIdentity(command);
    if (identityFailure !== null) return identityFailure;
    const session = this.sessions.get(command.clientId);
    if (session !== undefined && command.seq === session.seq) return session.result ?? this.retryRead(command);
    if (session !== undefined && command.seq < session.seq) return kvFailure('bad_request', 'stale sequence number');
    const operation = this.takeEncoded(command.payload) ?? decodePayload(command.payload);
    const result = operation === null ? kvFailure('bad_request', 'malformed operation payload') : this.execute(operation);
    const stored = operation !== null && isReadOperation(operation) ? null : result;
    this.recordSession(command.clientId, { seq: command.seq, slot, result: stored });
    return result;
  }

  /**
   * Records that `slot` carried no client command (a noop or a leader's start entry), so that
   * `appliedSlot` keeps naming the log prefix the state reflects.
   */
  applyNoop(slot: number): void {
    assert(Number.isSafeInteger(slot) && slot >= 1, 'kv apply: slot must be a positive integer');
    assert(slot >= this.appliedSlotLast, 'kv apply: slots must be applied in order');
    this.appliedSlotLast = slot;
  }

  /**
   * Serves a read from the current state, outside the log (for read-index reads: the caller must
   * first make sure this replica has applied everything chosen before the read arrived).
   */
  read(operation: KvReadOperation): KvResult {
    return validateOperation(operation) ?? this.executeRead(operation);
  }

  /** Sizes, for metrics and for deciding when to snapshot. */
  stateMachineSize(): KvStateMachineSize {
    return { keys: this.records.size, bytes: this.dataBytes, sessions: this.sessions.size };
  }

  /**
   * A fingerprint of the whole state (applied slot, revision, keys with values, versions and
   * revisions, and the sessions in eviction order): the SHA-256, in hex, of the canonical snapshot.
   * Replicas that applied the same log prefix have equal digests.
   */
  digest(): string {
    return createHash('sha256').update(this.snapshot()).digest('hex');
  }

  /**
   * The whole state as canonical bytes: keys in byte order, sessions in eviction order. Equal
   * states give equal bytes. Take it between slots, not in the middle of a slot's batch.
   */
  snapshot(): Uint8Array {
    const keyFields: unknown[] = [];
    for (const key of this.index) {
      const record = this.records.get(key);
      assert(record !== undefined, 'kv snapshot: indexed key has no record');
      keyFields.push(key, record.value, record.version, record.createRevision, record.modRevision);
    }
    const sessionFields: unknown[] = [];
    for (const [clientId, session] of this.sessions) {
      sessionFields.push(clientId, session.seq, session.slot, session.result === null ? null : resultToFields(session.result));
    }
    return packFields([SNAPSHOT_FORMAT, this.appliedSlotLast, this.revisionCurrent, keyFields, sessionFields]);
  }

  /**
   * Rebuilds a state machine from `snapshot()` bytes. Throws `KvSnapshotError` unless the bytes
   * are exactly a snapshot this version would write: every field is checked, keys must be in
   * strictly increasing order, revisions consistent, sessions within `clientSessionsMax`.
   */
  static restore(bytes: Uint8Array, options: KvStateMachineOptions = {}): KvStateMachine {
    const machine = new KvStateMachine(options);
    try {
      machine.load(unpackFields(bytes, 'snapshot'));
    } catch (error) {
      if (error instanceof KvDecodeError) throw new KvSnapshotError(error.message, { cause: error });
      throw error;
    }
    // A final guard: whatever slipped past the field checks (a non-minimal integer encoding,
    // invalid UTF-8 that a decoder repaired) would make the rebuilt state differ from the bytes.
    if (!bytesEqual(machine.snapshot(), bytes)) throw new KvSnapshotError('snapshot is not canonically encoded');
    return machine;
  }

  private load(fields: readonly unknown[]): void {
    const reader = new FieldReader(fields, 'snapshot');
    const format = reader.string('format');
    if (format !== SNAPSHOT_FORMAT) throw new KvDecodeError(`snapshot format ${JSON.stringify(format)} is unknown`);
    this.appliedSlotLast = reader.integer('appliedSlot', 0);
    this.revisionCurrent = reader.integer('revision', 0);
    this.loadKeys(reader.array('keys', KEY_RECORD_FIELDS));
    this.loadSessions(reader.array('sessions', SESSION_FIELDS));
    reader.end();
  }

  private loadKeys(fields: readonly unknown[]): void {
    const reader = new FieldReader(fields, 'snapshot key');
    const keys: string[] = [];
    for (let index = 0; index < fields.length; index += KEY_RECORD_FIELDS) {
      const key = reader.string('key');
      const value = reader.string('value');
      const version = reader.integer('version', 1);
      const createRevision = reader.integer('createRevision', 1);
      const modRevision = reader.integer('modRevision', createRevision);
      checkSnapshotKey(key, keys[keys.length - 1]);
      const valueBytes = Buffer.byteLength(value, 'utf8');
      if (valueBytes > VALUE_BYTES_MAX) throw new KvDecodeError('snapshot value is too large');
      // Each write of the key took its own revision, so versions cannot outrun revisions.
      if (modRevision > this.revisionCurrent || version > modRevision - createRevision + 1) {
        throw new KvDecodeError(`snapshot key ${JSON.stringify(key)} has inconsistent revisions`);
      }
      this.records.set(key, { value, valueBytes, version, createRevision, modRevision });
      this.dataBytes += Buffer.byteLength(key, 'utf8') + valueBytes;
      keys.push(key);
    }
    reader.end();
    this.index = SortedKeys.fromSorted(keys);
  }

  private loadSessions(fields: readonly unknown[]): void {
    const reader = new FieldReader(fields, 'snapshot session');
    let slotPrevious = 0;
    for (let index = 0; index < fields.length; index += SESSION_FIELDS) {
      const clientId = reader.string('clientId');
      const seq = reader.integer('seq', 0);
      const slot = reader.integer('slot', slotPrevious);
      const resultFields = reader.arrayOrNull('result', 1);
      if (validateIdentity({ clientId, seq, payload: new Uint8Array(0) }) !== null) {
        throw new KvDecodeError('snapshot session has an invalid client id');
      }
      if (this.sessions.has(clientId)) throw new KvDecodeError('snapshot sessions repeat a client id');
      if (slot < 1 || slot > this.appliedSlotLast) throw new KvDecodeError('snapshot session slot is out of range');
      const result = resultFields === null ? null : resultFromFields(resultFields);
      this.sessions.set(clientId, { seq, slot, result });
      slotPrevious = slot;
    }
    reader.end();
    if (this.sessions.size > this.clientSessionsMax) {
      // Evicting here would make this replica diverge from ones restored with a larger bound.
      throw new KvDecodeError(`snapshot holds ${this.sessions.size} sessions, over clientSessionsMax ${this.clientSessionsMax}`);
    }
  }

  /** The operation `encodePayload` remembered for `payload`, forgotten now (it applies once). */
  private takeEncoded(payload: Uint8Array): KvOperation | undefined {
    const operation = this.encoded.get(payload);
    if (operation !== undefined) this.encoded.delete(payload);
    return operation;
  }

  /** A retry of a read: executed again, but only if it is still a read (a client bug otherwise). */
  private retryRead(command: Command): KvResult {
    const operation = decodePayload(command.payload);
    if (operation === null || !isReadOperation(operation)) {
      return kvFailure('bad_request', 'sequence number reused for a different operation');
    }
    return this.read(operation);
  }

  private recordSession(clientId: string, session: ClientSession): void {
    this.sessions.delete(clientId);
    this.sessions.set(clientId, session);
    if (this.sessions.size > this.clientSessionsMax) {
      const { value: oldest } = this.sessions.keys().next();
      assert(oldest !== undefined, 'kv sessions: over the bound but empty');
      this.sessions.delete(oldest);
    }
  }

  private execute(operation: KvOperation): KvResult {
    const failure = validateOperation(operation);
    if (failure !== null) return failure;
    switch (operation.type) {
      case 'put': {
        const { previous, version } = this.write(operation.key, operation.value);
        return { ok: true, type: 'put', revision: this.revisionCurrent, version, previous };
      }
      case 'cas':
        return this.compareAndSet(operation);
      case 'delete':
        return this.remove(operation.key);
      case 'get':
      case 'list':
        return this.executeRead(operation);
      default:
        return assertNever(operation, 'kv operation');
    }
  }

  private executeRead(operation: KvReadOperation): KvResult {
    switch (operation.type) {
      case 'get': {
        const record = this.records.get(operation.key);
        const value = record?.value ?? null;
        return { ok: true, type: 'get', revision: this.revisionCurrent, value, version: record?.version ?? 0 };
      }
      case 'list':
        return this.list(operation.prefix, operation.limit);
      default:
        return assertNever(operation, 'kv read operation');
    }
  }

  private compareAndSet(operation: KvCasOperation): KvResult {
    const record = this.records.get(operation.key);
    const current = { value: record?.value ?? null, version: record?.version ?? 0 };
    const { expectedValue, expectedVersion } = operation;
    if (expectedValue !== undefined && expectedValue !== current.value) {
      return kvFailure('cas_failed', 'current value differs from expectedValue', current);
    }
    if (expectedVersion !== undefined && expectedVersion !== current.version) {
      return kvFailure('cas_failed', `current version ${current.version} differs from expectedVersion ${expectedVersion}`, current);
    }
    const { previous, version } = this.write(operation.key, operation.value);
    return { ok: true, type: 'cas', revision: this.revisionCurrent, version, previous };
  }

  /** Writes a key, taking a new revision. */
  private write(key: string, value: string): { previous: string | null; version: number } {
    this.revisionCurrent += 1;
    const valueBytes = Buffer.byteLength(value, 'utf8');
    const record = this.records.get(key);
    if (record === undefined) {
      const revision = this.revisionCurrent;
      this.records.set(key, { value, valueBytes, version: 1, createRevision: revision, modRevision: revision });
      this.index.insert(key);
      this.dataBytes += Buffer.byteLength(key, 'utf8') + valueBytes;
      return { previous: null, version: 1 };
    }
    const previous = record.value;
    this.dataBytes += valueBytes - record.valueBytes;
    record.value = value;
    record.valueBytes = valueBytes;
    record.version += 1;
    record.modRevision = this.revisionCurrent;
    return { previous, version: record.version };
  }

  /** Deletes a key; an absent key is a successful no-op that takes no revision (as in etcd). */
  private remove(key: string): KvResult {
    const record = this.records.get(key);
    if (record === undefined) return { ok: true, type: 'delete', revision: this.revisionCurrent, previous: null };
    this.revisionCurrent += 1;
    this.records.delete(key);
    this.index.remove(key);
    this.dataBytes -= Buffer.byteLength(key, 'utf8') + record.valueBytes;
    return { ok: true, type: 'delete', revision: this.revisionCurrent, previous: record.value };
  }

  private list(prefix: string, limit: number): KvListResult {
    const scan = this.index.scanPrefix(prefix, limit);
    const entries = scan.keys.map((key) => {
      const record = this.records.get(key);
      assert(record !== undefined, 'kv list: indexed key has no record');
      return { key, value: record.value, version: record.version };
    });
    return { ok: true, type: 'list', revision: this.revisionCurrent, entries, more: scan.more };
  }
}

/** Decodes a payload, or null when it is malformed (the reason is not kept: see `unpackFields`). */
function decodePayload(payload: Uint8Array): KvOperation | null {
  try {
    return decodeOperation(payload);
  } catch (error) {
    if (error instanceof KvDecodeError) return null;
    throw error;
  }
}

/** Checks a command's client id and sequence number; these come from the log, not the payload. */
function validateIdentity(command: Command): KvFailure | null {
  const { clientId, seq } = command;
  if (typeof clientId !== 'string' || clientId.length === 0) return kvFailure('bad_request', 'clientId must not be empty');
  if (Buffer.byteLength(clientId, 'utf8') > CLIENT_ID_BYTES_MAX || !isWellFormed(clientId)) {
    return kvFailure('bad_request', `clientId must be well-formed and at most ${CLIENT_ID_BYTES_MAX} bytes`);
  }
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    return kvFailure('bad_request', 'seq must be a non-negative integer');
  }
  return null;
}

/** Checks a snapshot key's limits and that it sorts strictly after the key before it. */
function checkSnapshotKey(key: string, keyPrevious: string | undefined): void {
  if (key.length === 0 || Buffer.byteLength(key, 'utf8') > KEY_BYTES_MAX) {
    throw new KvDecodeError('snapshot key is empty or too large');
  }
  if (keyPrevious !== undefined && compareKeys(keyPrevious, key) >= 0) {
    throw new KvDecodeError('snapshot keys are not in strictly increasing order');
  }
}

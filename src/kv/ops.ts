/**
 * Key-value operations and results, their validation, and their binary encoding.
 *
 * An operation travels as a command payload through the replicated log; its result travels back
 * to the client. Both are flat MessagePack arrays led by a small integer tag:
 *
 *   put    [1, key, value]                 get  [2, key]       delete [3, key]
 *   cas    [4, key, value, flags, expectedValue | nil, expectedVersion | nil]
 *   list   [5, prefix, limit]
 *
 *   failure [0, errorTag, message, current: [value | nil, version] | nil]
 *   put     [1, revision, version, previous | nil]   get    [2, revision, value | nil, version]
 *   delete  [3, revision, previous | nil]            cas    [4, revision, version, previous | nil]
 *   list    [5, revision, more, [key, value, version, key, value, version, ...]]
 *
 * Payloads are untrusted: `decodeOperation` checks every field and accepts only the canonical
 * encoding (the bytes `encodeOperation` would produce), so that every replica, whatever MessagePack
 * decoder it runs, derives the same operation from the same bytes (invalid UTF-8 is read
 * differently by different decoders; the canonical check rejects it).
 */
import { assertNever } from '../core/assert.js';
import { type CanonicalReader, type CanonicalWriter, NOT_CANONICAL, canonicalWriter, isWritableString, isWritableUint, readCanonical } from '../codec/canonical.js';
import { FieldReader, KvDecodeError, bytesEqual, exceedsBytes, isWellFormed, packFields, unpackFields } from './codec.js';

export { KvDecodeError } from './codec.js';

/** Largest key (and list prefix), in UTF-8 bytes. */
export const KEY_BYTES_MAX = 4096;
/** Largest value (and cas expected value), in UTF-8 bytes. */
export const VALUE_BYTES_MAX = 1 << 20;
/** Largest number of entries one list may ask for. */
export const LIST_LIMIT_MAX = 10_000;

/** Sets `key` to `value`, creating it if absent. */
export interface KvPutOperation {
  readonly type: 'put';
  readonly key: string;
  readonly value: string;
}

/** Reads `key`. */
export interface KvGetOperation {
  readonly type: 'get';
  readonly key: string;
}

/** Removes `key`; removing an absent key succeeds and changes nothing. */
export interface KvDeleteOperation {
  readonly type: 'delete';
  readonly key: string;
}

/**
 * Sets `key` to `value` only if every given expectation holds. At least one must be given.
 * - `expectedValue`: the current value; `null` means the key must be absent.
 * - `expectedVersion`: the current per-key version; `0` means the key must be absent.
 */
export interface KvCasOperation {
  readonly type: 'cas';
  readonly key: string;
  readonly value: string;
  readonly expectedValue?: string | null;
  readonly expectedVersion?: number;
}

/** Lists up to `limit` keys starting with `prefix` (empty: all keys), in UTF-8 byte order. */
export interface KvListOperation {
  readonly type: 'list';
  readonly prefix: string;
  readonly limit: number;
}

/** Every key-value operation, discriminated on `type`. */
export type KvOperation = KvPutOperation | KvGetOperation | KvDeleteOperation | KvCasOperation | KvListOperation;

/** The operations that do not change state: they may be served outside the log (read index). */
export type KvReadOperation = KvGetOperation | KvListOperation;

/** Why an operation failed. */
export type KvErrorCode = 'cas_failed' | 'too_large' | 'bad_request';

/** A key's current value (`null`: absent) and version (`0`: absent), as a failed cas reports it. */
export interface KvCurrent {
  readonly value: string | null;
  readonly version: number;
}

/** A failed operation. Nothing changed. `current` is set for `cas_failed`. */
export interface KvFailure {
  readonly ok: false;
  readonly error: KvErrorCode;
  readonly message: string;
  readonly current?: KvCurrent;
}

/**
 * Fields every success carries. `revision` is the store revision after the operation: for a
 * mutation, the revision it created (the key's new modification revision); for a read or a
 * no-op delete, the revision the answer reflects.
 */
interface KvSuccessBase {
  readonly ok: true;
  readonly revision: number;
}

/** A successful put: the key's new version and its value before (`null`: it was created). */
export interface KvPutResult extends KvSuccessBase {
  readonly type: 'put';
  readonly version: number;
  readonly previous: string | null;
}

/** A successful get: `value` is `null` and `version` is `0` when the key is absent. */
export interface KvGetResult extends KvSuccessBase {
  readonly type: 'get';
  readonly value: string | null;
  readonly version: number;
}

/** A successful delete: the value removed, `null` if the key was absent (then nothing changed). */
export interface KvDeleteResult extends KvSuccessBase {
  readonly type: 'delete';
  readonly previous: string | null;
}

/** A successful cas: as a put. */
export interface KvCasResult extends KvSuccessBase {
  readonly type: 'cas';
  readonly version: number;
  readonly previous: string | null;
}

/** One key of a list answer. */
export interface KvListEntry {
  readonly key: string;
  readonly value: string;
  readonly version: number;
}

/** A successful list; `more` says that keys with the prefix were left out by the limit. */
export interface KvListResult extends KvSuccessBase {
  readonly type: 'list';
  readonly entries: readonly KvListEntry[];
  readonly more: boolean;
}

/** Every successful result, discriminated on `type` (the operation's). */
export type KvSuccess = KvPutResult | KvGetResult | KvDeleteResult | KvCasResult | KvListResult;

/** The result of applying one operation. */
export type KvResult = KvSuccess | KvFailure;

/** A failure result; `current` only for cas. */
export function kvFailure(error: KvErrorCode, message: string, current?: KvCurrent): KvFailure {
  return current === undefined ? { ok: false, error, message } : { ok: false, error, message, current };
}

/** Whether an operation only reads. */
export function isReadOperation(operation: KvOperation): operation is KvReadOperation {
  return operation.type === 'get' || operation.type === 'list';
}

// Validation.

/**
 * Checks an operation against the limits and field rules; null when it is valid. Returns
 * `too_large` for a key, prefix, value or limit over its maximum and `bad_request` for anything
 * else malformed (empty key, lone surrogate, negative version, cas without expectation, ...).
 */
export function validateOperation(operation: KvOperation): KvFailure | null {
  switch (operation.type) {
    case 'put':
      return validateKey(operation.key, 'key') ?? validateValue(operation.value, 'value');
    case 'get':
    case 'delete':
      return validateKey(operation.key, 'key');
    case 'cas':
      return validateKey(operation.key, 'key') ?? validateValue(operation.value, 'value') ?? validateExpectations(operation);
    case 'list':
      return validatePrefix(operation.prefix) ?? validateLimit(operation.limit);
    default:
      return assertNever(operation, 'kv operation');
  }
}

function validateKey(key: unknown, name: string): KvFailure | null {
  if (typeof key !== 'string') return kvFailure('bad_request', `${name} must be a string`);
  if (key.length === 0) return kvFailure('bad_request', `${name} must not be empty`);
  return validateText(key, name, KEY_BYTES_MAX);
}

function validateValue(value: unknown, name: string): KvFailure | null {
  if (typeof value !== 'string') return kvFailure('bad_request', `${name} must be a string`);
  return validateText(value, name, VALUE_BYTES_MAX);
}

function validateText(text: string, name: string, limitBytes: number): KvFailure | null {
  if (exceedsBytes(text, limitBytes)) return kvFailure('too_large', `${name} is over ${limitBytes} bytes`);
  if (!isWellFormed(text)) return kvFailure('bad_request', `${name} must be well-formed UTF-16 (no lone surrogate)`);
  return null;
}

function validateExpectations(operation: KvCasOperation): KvFailure | null {
  const { expectedValue, expectedVersion } = operation;
  if (expectedValue === undefined && expectedVersion === undefined) {
    return kvFailure('bad_request', 'cas needs expectedValue or expectedVersion');
  }
  if (expectedValue !== undefined && expectedValue !== null) {
    const failure = validateValue(expectedValue, 'expectedValue');
    if (failure !== null) return failure;
  }
  if (expectedVersion !== undefined && !isNonNegativeInteger(expectedVersion)) {
    return kvFailure('bad_request', 'expectedVersion must be a non-negative integer');
  }
  return null;
}

function validatePrefix(prefix: unknown): KvFailure | null {
  if (typeof prefix !== 'string') return kvFailure('bad_request', 'prefix must be a string');
  return validateText(prefix, 'prefix', KEY_BYTES_MAX);
}

function validateLimit(limit: unknown): KvFailure | null {
  if (!isNonNegativeInteger(limit) || limit < 1) return kvFailure('bad_request', 'limit must be a positive integer');
  if (limit > LIST_LIMIT_MAX) return kvFailure('too_large', `limit is over ${LIST_LIMIT_MAX}`);
  return null;
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// Operation codec.

const OPERATION_TAG = { put: 1, get: 2, delete: 3, cas: 4, list: 5 } as const;
const CAS_HAS_EXPECTED_VALUE = 1;
const CAS_HAS_EXPECTED_VERSION = 2;

/**
 * Encodes an operation as a command payload. Does not validate: a client should call
 * `validateOperation` first to fail fast, and the state machine validates again anyway.
 */
export function encodeOperation(operation: KvOperation): Uint8Array {
  if (!isWritableOperation(operation)) return packFields(operationFields(operation));
  return plainView(writeOperation(canonicalWriter.begin(), operation).finish());
}

/**
 * Whether `writeOperation` encodes this operation exactly as msgpackr does: every string
 * well-formed, every number a non-negative safe integer. Anything else (only a caller that skipped
 * validation sends it) takes the general path, so its bytes stay what they always were.
 */
export function isWritableOperation(operation: KvOperation): boolean {
  switch (operation.type) {
    case 'put':
      return isWritableString(operation.key) && isWritableString(operation.value);
    case 'get':
    case 'delete':
      return isWritableString(operation.key);
    case 'cas': {
      const { expectedValue, expectedVersion } = operation;
      return (
        isWritableString(operation.key) &&
        isWritableString(operation.value) &&
        (expectedValue === undefined || expectedValue === null || isWritableString(expectedValue)) &&
        (expectedVersion === undefined || isWritableUint(expectedVersion))
      );
    }
    case 'list':
      return isWritableString(operation.prefix) && isWritableUint(operation.limit);
    default:
      return false;
  }
}

/** Writes the bytes of `encodeOperation` with `writer`; the operation must be `isWritableOperation`. */
export function writeOperation(writer: CanonicalWriter, operation: KvOperation): CanonicalWriter {
  switch (operation.type) {
    case 'put':
      return writer.arrayHeader(3).uint(OPERATION_TAG.put).string(operation.key).string(operation.value);
    case 'get':
      return writer.arrayHeader(2).uint(OPERATION_TAG.get).string(operation.key);
    case 'delete':
      return writer.arrayHeader(2).uint(OPERATION_TAG.delete).string(operation.key);
    case 'cas': {
      const { expectedValue, expectedVersion } = operation;
      writer.arrayHeader(6).uint(OPERATION_TAG.cas).string(operation.key).string(operation.value).uint(casFlags(operation));
      writer.stringOrNull(expectedValue ?? null);
      return expectedVersion === undefined ? writer.nil() : writer.uint(expectedVersion);
    }
    case 'list':
      return writer.arrayHeader(3).uint(OPERATION_TAG.list).string(operation.prefix).uint(operation.limit);
    default:
      return assertNever(operation, 'kv operation');
  }
}

/** The fields `encodeOperation` packs on its general path (and tests compare the fast one with). */
export function operationFields(operation: KvOperation): unknown[] {
  switch (operation.type) {
    case 'put':
      return [OPERATION_TAG.put, operation.key, operation.value];
    case 'get':
      return [OPERATION_TAG.get, operation.key];
    case 'delete':
      return [OPERATION_TAG.delete, operation.key];
    case 'cas':
      return casFields(operation);
    case 'list':
      return [OPERATION_TAG.list, operation.prefix, operation.limit];
    default:
      return assertNever(operation, 'kv operation');
  }
}

/** Cas carries flags so that "no expectation" and "expect absent" (both would be nil) differ. */
function casFields(operation: KvCasOperation): unknown[] {
  return [OPERATION_TAG.cas, operation.key, operation.value, casFlags(operation), operation.expectedValue ?? null, operation.expectedVersion ?? null];
}

/** Which expectations a cas carries, as the flags field of its encoding. */
function casFlags({ expectedValue, expectedVersion }: KvCasOperation): number {
  return (expectedValue === undefined ? 0 : CAS_HAS_EXPECTED_VALUE) | (expectedVersion === undefined ? 0 : CAS_HAS_EXPECTED_VERSION);
}

/**
 * Decodes a command payload. Throws `KvDecodeError` when the bytes are not one canonical,
 * well-shaped operation. The result has the right field types but is not yet validated against
 * the limits (`validateOperation`), so that an oversize value yields `too_large` rather than a
 * decode error.
 */
export function decodeOperation(bytes: Uint8Array): KvOperation {
  return readCanonicalOperation(bytes) ?? decodeOperationGeneral(bytes);
}

/**
 * `decodeOperation` through msgpackr and a canonical re-encoding: decides every input the fast
 * reader gives up on, and words its errors.
 */
export function decodeOperationGeneral(bytes: Uint8Array): KvOperation {
  const operation = operationFromFields(unpackFields(bytes, 'operation'));
  if (!bytesEqual(encodeOperation(operation), bytes)) {
    throw new KvDecodeError('operation is not canonically encoded');
  }
  return operation;
}

/**
 * The operation in `bytes` when they are its canonical encoding and well-shaped; null for anything
 * else, which `decodeOperationGeneral` then decides (it accepts exactly the canonical encodings
 * of well-shaped operations, so this never accepts more, nor reads differently).
 */
export function readCanonicalOperation(bytes: Uint8Array): KvOperation | null {
  return readCanonical(bytes, readOperationFrom);
}

function readOperationFrom(reader: CanonicalReader): KvOperation {
  const count = reader.arrayHeader();
  const tag = reader.uint();
  if (tag === OPERATION_TAG.put && count === 3) return { type: 'put', key: reader.string(), value: reader.string() };
  if (tag === OPERATION_TAG.get && count === 2) return { type: 'get', key: reader.string() };
  if (tag === OPERATION_TAG.delete && count === 2) return { type: 'delete', key: reader.string() };
  if (tag === OPERATION_TAG.list && count === 3) return { type: 'list', prefix: reader.string(), limit: reader.uint() };
  if (tag !== OPERATION_TAG.cas || count !== 6) throw NOT_CANONICAL;
  const key = reader.string();
  const value = reader.string();
  const flags = reader.uint();
  if ((flags & ~(CAS_HAS_EXPECTED_VALUE | CAS_HAS_EXPECTED_VERSION)) !== 0) throw NOT_CANONICAL;
  const expectedValue = reader.stringOrNull();
  const expectedVersion = reader.uintOrNull();
  if (((flags & CAS_HAS_EXPECTED_VERSION) !== 0) !== (expectedVersion !== null)) throw NOT_CANONICAL;
  const hasExpectedValue = (flags & CAS_HAS_EXPECTED_VALUE) !== 0;
  if (!hasExpectedValue && expectedValue !== null) throw NOT_CANONICAL;
  const operation: { -readonly [K in keyof KvCasOperation]: KvCasOperation[K] } = { type: 'cas', key, value };
  if (hasExpectedValue) operation.expectedValue = expectedValue;
  if (expectedVersion !== null) operation.expectedVersion = expectedVersion;
  return operation;
}

function operationFromFields(fields: readonly unknown[]): KvOperation {
  const reader = new FieldReader(fields, 'operation');
  const tag = reader.integer('type', 0);
  let operation: KvOperation;
  if (tag === OPERATION_TAG.put) {
    operation = { type: 'put', key: reader.string('key'), value: reader.string('value') };
  } else if (tag === OPERATION_TAG.get) {
    operation = { type: 'get', key: reader.string('key') };
  } else if (tag === OPERATION_TAG.delete) {
    operation = { type: 'delete', key: reader.string('key') };
  } else if (tag === OPERATION_TAG.cas) {
    operation = casFromFields(reader);
  } else if (tag === OPERATION_TAG.list) {
    operation = { type: 'list', prefix: reader.string('prefix'), limit: reader.integer('limit', 0) };
  } else {
    throw new KvDecodeError(`operation type ${tag} is unknown`);
  }
  reader.end();
  return operation;
}

function casFromFields(reader: FieldReader): KvCasOperation {
  const key = reader.string('key');
  const value = reader.string('value');
  const flags = reader.integer('flags', 0);
  if ((flags & ~(CAS_HAS_EXPECTED_VALUE | CAS_HAS_EXPECTED_VERSION)) !== 0) {
    throw new KvDecodeError(`operation field flags has unknown bits: ${flags}`);
  }
  const expectedValue = reader.stringOrNull('expectedValue');
  const expectedVersion = reader.integerOrNull('expectedVersion', 0);
  const hasExpectedValue = (flags & CAS_HAS_EXPECTED_VALUE) !== 0;
  const hasExpectedVersion = (flags & CAS_HAS_EXPECTED_VERSION) !== 0;
  if (hasExpectedVersion !== (expectedVersion !== null)) {
    throw new KvDecodeError('operation field expectedVersion disagrees with flags');
  }
  if (!hasExpectedValue && expectedValue !== null) {
    throw new KvDecodeError('operation field expectedValue disagrees with flags');
  }
  const operation: { -readonly [K in keyof KvCasOperation]: KvCasOperation[K] } = { type: 'cas', key, value };
  if (hasExpectedValue) operation.expectedValue = expectedValue;
  if (expectedVersion !== null) operation.expectedVersion = expectedVersion;
  return operation;
}

// Result codec.

const RESULT_TAG = { failure: 0, put: 1, get: 2, delete: 3, cas: 4, list: 5 } as const;
const ERROR_TAG: Readonly<Record<KvErrorCode, number>> = { cas_failed: 1, too_large: 2, bad_request: 3 };
const ERROR_CODES: readonly KvErrorCode[] = ['cas_failed', 'too_large', 'bad_request'];

/** Encodes a result for the client (and for the state machine's snapshot of its sessions). */
export function encodeResult(result: KvResult): Uint8Array {
  if (!isWritableResult(result)) return packFields(resultToFields(result));
  return plainView(writeResult(canonicalWriter.begin(), result).finish());
}

/** Whether `writeResult` encodes this result exactly as msgpackr does (see `isWritableOperation`). */
export function isWritableResult(result: KvResult): boolean {
  if (!result.ok) {
    const { current } = result;
    if (!(result.error in ERROR_TAG) || !isWritableString(result.message)) return false;
    return current === undefined || ((current.value === null || isWritableString(current.value)) && isWritableUint(current.version));
  }
  if (!isWritableUint(result.revision)) return false;
  switch (result.type) {
    case 'put':
    case 'cas':
      return isWritableUint(result.version) && (result.previous === null || isWritableString(result.previous));
    case 'get':
      return isWritableUint(result.version) && (result.value === null || isWritableString(result.value));
    case 'delete':
      return result.previous === null || isWritableString(result.previous);
    case 'list':
      return (
        typeof result.more === 'boolean' &&
        result.entries.every((entry) => isWritableString(entry.key) && isWritableString(entry.value) && isWritableUint(entry.version))
      );
    default:
      return false;
  }
}

/** Writes the bytes of `encodeResult` with `writer`; the result must be `isWritableResult`. */
export function writeResult(writer: CanonicalWriter, result: KvResult): CanonicalWriter {
  if (!result.ok) {
    writer.arrayHeader(4).uint(RESULT_TAG.failure).uint(ERROR_TAG[result.error]).string(result.message);
    if (result.current === undefined) return writer.nil();
    return writer.arrayHeader(2).stringOrNull(result.current.value).uint(result.current.version);
  }
  switch (result.type) {
    case 'put':
      return writer.arrayHeader(4).uint(RESULT_TAG.put).uint(result.revision).uint(result.version).stringOrNull(result.previous);
    case 'get':
      return writer.arrayHeader(4).uint(RESULT_TAG.get).uint(result.revision).stringOrNull(result.value).uint(result.version);
    case 'delete':
      return writer.arrayHeader(3).uint(RESULT_TAG.delete).uint(result.revision).stringOrNull(result.previous);
    case 'cas':
      return writer.arrayHeader(4).uint(RESULT_TAG.cas).uint(result.revision).uint(result.version).stringOrNull(result.previous);
    case 'list': {
      writer.arrayHeader(4).uint(RESULT_TAG.list).uint(result.revision).boolean(result.more).arrayHeader(result.entries.length * 3);
      for (const entry of result.entries) writer.string(entry.key).string(entry.value).uint(entry.version);
      return writer;
    }
    default:
      return assertNever(result, 'kv result');
  }
}

/** Decodes a result; throws `KvDecodeError` when the bytes are not one well-shaped result. */
export function decodeResult(bytes: Uint8Array): KvResult {
  return readCanonicalResult(bytes) ?? decodeResultGeneral(bytes);
}

/** `decodeResult` through msgpackr: decides what the fast reader gives up on, and words errors. */
export function decodeResultGeneral(bytes: Uint8Array): KvResult {
  return resultFromFields(unpackFields(bytes, 'result'));
}

/**
 * The result in `bytes` when they are canonical and the result well-shaped; null for anything
 * else, which `decodeResultGeneral` decides (the fast reader accepts a subset of what it does,
 * and reads the same values).
 */
export function readCanonicalResult(bytes: Uint8Array): KvResult | null {
  return readCanonical(bytes, readResultFrom);
}

function readResultFrom(reader: CanonicalReader): KvResult {
  const count = reader.arrayHeader();
  const tag = reader.uint();
  if ((tag === RESULT_TAG.put || tag === RESULT_TAG.cas) && count === 4) {
    const revision = atLeast(reader.uint(), 1);
    const version = atLeast(reader.uint(), 1);
    return { ok: true, type: tag === RESULT_TAG.put ? 'put' : 'cas', revision, version, previous: reader.stringOrNull() };
  }
  if (tag === RESULT_TAG.get && count === 4) {
    const revision = reader.uint();
    const value = reader.stringOrNull();
    const version = reader.uint();
    if ((value === null) !== (version === 0)) throw NOT_CANONICAL;
    return { ok: true, type: 'get', revision, value, version };
  }
  if (tag === RESULT_TAG.delete && count === 3) return { ok: true, type: 'delete', revision: reader.uint(), previous: reader.stringOrNull() };
  if (tag === RESULT_TAG.list && count === 4) {
    const revision = reader.uint();
    const more = reader.boolean();
    const fields = reader.arrayHeader();
    if (fields % 3 !== 0) throw NOT_CANONICAL;
    const entries: KvListEntry[] = [];
    for (let index = 0; index < fields; index += 3) {
      entries.push({ key: reader.string(), value: reader.string(), version: atLeast(reader.uint(), 1) });
    }
    return { ok: true, type: 'list', revision, entries, more };
  }
  if (tag !== RESULT_TAG.failure || count !== 4) throw NOT_CANONICAL;
  const error = ERROR_CODES[atLeast(reader.uint(), 1) - 1];
  if (error === undefined) throw NOT_CANONICAL;
  const message = reader.string();
  if (reader.nil()) return kvFailure(error, message);
  if (reader.arrayHeader() !== 2) throw NOT_CANONICAL;
  const value = reader.stringOrNull();
  return kvFailure(error, message, { value, version: reader.uint() });
}

function atLeast(value: number, minimum: number): number {
  if (value < minimum) throw NOT_CANONICAL;
  return value;
}



/**
 * A plain Uint8Array over a Buffer's bytes, as `packFields` returns: equal payloads then compare
 * equal under deep equality whichever path encoded them.
 */
function plainView(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** A result as the array of fields that `encodeResult` packs (snapshots nest these). */
export function resultToFields(result: KvResult): unknown[] {
  if (!result.ok) {
    const current = result.current === undefined ? null : [result.current.value, result.current.version];
    return [RESULT_TAG.failure, ERROR_TAG[result.error], result.message, current];
  }
  switch (result.type) {
    case 'put':
      return [RESULT_TAG.put, result.revision, result.version, result.previous];
    case 'get':
      return [RESULT_TAG.get, result.revision, result.value, result.version];
    case 'delete':
      return [RESULT_TAG.delete, result.revision, result.previous];
    case 'cas':
      return [RESULT_TAG.cas, result.revision, result.version, result.previous];
    case 'list':
      return [RESULT_TAG.list, result.revision, result.more, listEntriesToFields(result.entries)];
    default:
      return assertNever(result, 'kv result');
  }
}

function listEntriesToFields(entries: readonly KvListEntry[]): unknown[] {
  const fields: unknown[] = [];
  for (const entry of entries) fields.push(entry.key, entry.value, entry.version);
  return fields;
}

/** The inverse of `resultToFields`; throws `KvDecodeError` on a wrong shape. */
export function resultFromFields(fields: readonly unknown[]): KvResult {
  const reader = new FieldReader(fields, 'result');
  const tag = reader.integer('type', 0);
  let result: KvResult;
  if (tag === RESULT_TAG.failure) {
    result = failureFromFields(reader);
  } else if (tag === RESULT_TAG.put || tag === RESULT_TAG.cas) {
    const revision = reader.integer('revision', 1);
    const version = reader.integer('version', 1);
    const previous = reader.stringOrNull('previous');
    result = { ok: true, type: tag === RESULT_TAG.put ? 'put' : 'cas', revision, version, previous };
  } else if (tag === RESULT_TAG.get) {
    result = getFromFields(reader);
  } else if (tag === RESULT_TAG.delete) {
    result = { ok: true, type: 'delete', revision: reader.integer('revision', 0), previous: reader.stringOrNull('previous') };
  } else if (tag === RESULT_TAG.list) {
    const revision = reader.integer('revision', 0);
    const more = reader.boolean('more');
    const entries = listEntriesFromFields(reader.array('entries', 3));
    result = { ok: true, type: 'list', revision, entries, more };
  } else {
    throw new KvDecodeError(`result type ${tag} is unknown`);
  }
  reader.end();
  return result;
}

function failureFromFields(reader: FieldReader): KvFailure {
  const errorTag = reader.integer('error', 1);
  const error = ERROR_CODES[errorTag - 1];
  if (error === undefined) throw new KvDecodeError(`result error ${errorTag} is unknown`);
  const message = reader.string('message');
  const currentFields = reader.arrayOrNull('current', 2);
  if (currentFields === null) return kvFailure(error, message);
  const currentReader = new FieldReader(currentFields, 'result current');
  const current = { value: currentReader.stringOrNull('value'), version: currentReader.integer('version', 0) };
  currentReader.end();
  return kvFailure(error, message, current);
}

function getFromFields(reader: FieldReader): KvGetResult {
  const revision = reader.integer('revision', 0);
  const value = reader.stringOrNull('value');
  const version = reader.integer('version', 0);
  if ((value === null) !== (version === 0)) throw new KvDecodeError('result value and version disagree on presence');
  return { ok: true, type: 'get', revision, value, version };
}

function listEntriesFromFields(fields: readonly unknown[]): KvListEntry[] {
  const reader = new FieldReader(fields, 'result entry');
  const entries: KvListEntry[] = [];
  for (let index = 0; index < fields.length; index += 3) {
    entries.push({ key: reader.string('key'), value: reader.string('value'), version: reader.integer('version', 1) });
  }
  reader.end();
  return entries;
}

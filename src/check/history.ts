/**
 * Client histories for the linearizability checker: what each client asked, what it was told,
 * and when (by its own clock, in nanoseconds). A history is stored as JSON lines, one operation
 * per line:
 *
 *   {"client":1,"op":"put","key":"x","value":"a","ok":true,"call":100,"return":250}
 *
 * The outcome of an operation is one of three things, and the checker must respect each:
 * - `ok: true` with a `return` time: it took effect, at one instant between `call` and `return`.
 * - `ok: false`: it certainly had no effect, except for a `cas` without `error`, whose compare
 *   failed: that cas did happen, as a read that saw a value other than `expected`.
 * - `ok: null`, or no `return` time: unknown (timeout, lost connection). It may have taken
 *   effect at any instant after `call`, or never.
 *
 * Values are arbitrary JSON (in practice strings); `null` as a value, `output` or `expected`
 * means "the key is absent". Values are compared by their canonical JSON text (see
 * `canonicalJson`), so `{"a":1,"b":2}` equals `{"b":2,"a":1}`.
 */

import { assertNever } from '../core/assert.js';

/** Any value JSON can carry. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** The operation kinds a client can issue against the key-value store. */
export const OPERATION_KINDS = ['get', 'put', 'cas', 'delete', 'append'] as const;

/** One operation kind: read, overwrite, compare-and-set, remove, or string append. */
export type OperationKind = (typeof OPERATION_KINDS)[number];

/**
 * One client operation with its outcome and its real-time interval. Fields that do not apply to
 * the operation kind are absent (`value` only on put/cas/append, `expected` only on cas, `output`
 * only on get).
 */
export interface HistoryOp {
  /** The client (session) that issued the operation; for diagnostics only. */
  readonly client: number;
  /** What the client asked for. */
  readonly op: OperationKind;
  /** The key the operation reads or writes; keys are independent registers. */
  readonly key: string;
  /** put: the new value; cas: the value to set if the compare holds; append: the suffix (a string). */
  readonly value?: JsonValue;
  /** cas only: the value the key must hold for the set to happen (`null` = absent). */
  readonly expected?: JsonValue;
  /** true: took effect; false: no effect (or a failed compare, see the module comment); null: unknown. */
  readonly ok: boolean | null;
  /** get with `ok: true`: the value read (`null` = key absent). */
  readonly output?: JsonValue;
  /** Why the operation failed or timed out, when the client knows. */
  readonly error?: string;
  /** When the client sent the request (integer nanoseconds). */
  readonly call: number;
  /** When the client got the answer (integer nanoseconds), or null if it never did. */
  readonly return: number | null;
}

/** Bad input: a history line or operation that does not follow the format above. */
export class HistoryFormatError extends Error {
  override readonly name = 'HistoryFormatError';

  /**
   * @param detail what is wrong with the operation.
   * @param line 1-based line number in the parsed text, or null for an operation given as an object.
   * @param index 0-based position of the operation in the history.
   */
  constructor(
    readonly detail: string,
    readonly line: number | null,
    readonly index: number,
  ) {
    super(line === null ? `history operation ${index}: ${detail}` : `history line ${line}: ${detail}`);
  }
}

/**
 * Parses a JSON-lines history. Blank lines are skipped; any other malformed line throws a
 * `HistoryFormatError` naming its line number, because silently skipping or guessing would make
 * the checker judge a different history than the one recorded.
 */
export function parseHistory(text: string): HistoryOp[] {
  const ops: HistoryOp[] = [];
  const lines = text.split('\n');
  for (const [lineIndex, rawLine] of lines.entries()) {
    const line = rawLine.trim();
    if (line === '') continue;
    const location = { line: lineIndex + 1, index: ops.length };
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new HistoryFormatError(`not valid JSON (${reason})`, location.line, location.index);
    }
    ops.push(decodeHistoryOp(parsed, location, { allowExtraFields: false }));
  }
  return ops;
}

/** Formats a history as JSON lines (one operation per line, newline-terminated), the inverse of `parseHistory`. */
export function formatHistory(ops: readonly HistoryOp[]): string {
  return ops.map((op) => formatHistoryOp(op) + '\n').join('');
}

/** One operation as one JSON line (without the newline), fields in a fixed order for readable diffs. */
export function formatHistoryOp(op: HistoryOp): string {
  const record: Record<string, unknown> = { client: op.client, op: op.op, key: op.key };
  if (op.value !== undefined) record['value'] = op.value;
  if (op.expected !== undefined) record['expected'] = op.expected;
  record['ok'] = op.ok;
  if (op.output !== undefined) record['output'] = op.output;
  if (op.error !== undefined) record['error'] = op.error;
  record['call'] = op.call;
  record['return'] = op.return;
  return JSON.stringify(record);
}

/** Where an operation came from, for error messages. */
export interface HistoryLocation {
  /** 1-based line number in a parsed text, or null for an in-memory operation. */
  readonly line: number | null;
  /** 0-based position in the history. */
  readonly index: number;
}

const KNOWN_FIELDS = new Set(['client', 'op', 'key', 'value', 'expected', 'ok', 'output', 'error', 'call', 'return']);

/**
 * Validates one operation (from JSON or from memory) and returns it normalised: fields that do
 * not apply to its kind dropped, a missing `return` made null. Throws `HistoryFormatError`.
 * `allowExtraFields` is off for parsed text, where an unknown field is most likely a typo (a
 * misspelt "return" would silently turn a completed operation into an unknown one), and on for
 * in-memory records, which may carry extra diagnostics of their producer.
 */
export function decodeHistoryOp(
  raw: unknown,
  location: HistoryLocation,
  options: { allowExtraFields: boolean },
): HistoryOp {
  const fail = (detail: string): never => {
    throw new HistoryFormatError(detail, location.line, location.index);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('expected a JSON object');
  const record = raw as Record<string, unknown>;
  if (!options.allowExtraFields) {
    for (const field of Object.keys(record)) {
      if (!KNOWN_FIELDS.has(field)) fail(`unknown field "${field}"`);
    }
  }
  const op = decodeKind(record['op'], fail);
  const ok = decodeOk(record['ok'], fail);
  const times = decodeTimes(record['call'], record['return'], fail);
  const decoded: { -readonly [Field in keyof HistoryOp]: HistoryOp[Field] } = {
    client: decodeClient(record['client'], fail),
    op,
    key: decodeKey(record['key'], fail),
    ok,
    call: times.call,
    return: times.return,
  };
  decodePayload(decoded, record, fail);
  const error = record['error'];
  if (error !== undefined) {
    if (typeof error !== 'string') fail('"error" must be a string');
    if (ok === true) fail('"error" on an operation with ok:true');
    decoded.error = error as string;
  }
  return decoded;
}

type Fail = (detail: string) => never;

function decodeKind(value: unknown, fail: Fail): OperationKind {
  const kind = OPERATION_KINDS.find((candidate) => candidate === value);
  return kind ?? fail(`"op" must be one of ${OPERATION_KINDS.join(', ')}, got ${JSON.stringify(value)}`);
}

function decodeOk(value: unknown, fail: Fail): boolean | null {
  if (value === true || value === false || value === null) return value;
  return fail('"ok" must be true, false or null');
}

function decodeClient(value: unknown, fail: Fail): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  return fail('"client" must be an integer');
}

function decodeKey(value: unknown, fail: Fail): string {
  if (typeof value === 'string') return value;
  return fail('"key" must be a string');
}

function decodeTimes(call: unknown, returned: unknown, fail: Fail): { call: number; return: number | null } {
  // Integers only, but not necessarily safe integers: wall-clock nanoseconds exceed 2^53.
  if (typeof call !== 'number' || !Number.isInteger(call)) return fail('"call" must be an integer (nanoseconds)');
  if (returned === undefined || returned === null) return { call, return: null };
  if (typeof returned !== 'number' || !Number.isInteger(returned)) {
    return fail('"return" must be an integer (nanoseconds) or null');
  }
  if (returned < call) fail(`"return" (${returned}) is before "call" (${call})`);
  return { call, return: returned };
}

/** Checks and copies `value`, `expected` and `output`, which depend on the operation kind. */
function decodePayload(
  decoded: { value?: JsonValue; expected?: JsonValue; output?: JsonValue; op: OperationKind; ok: boolean | null },
  record: Record<string, unknown>,
  fail: Fail,
): void {
  const uses = payloadFields(decoded.op);
  for (const field of ['value', 'expected', 'output'] as const) {
    const present = field in record && record[field] !== undefined;
    if (!uses[field]) {
      // A writer with one flat record type may emit `null` for fields that do not apply.
      if (present && record[field] !== null) fail(`"${field}" does not apply to ${decoded.op}`);
      continue;
    }
    if (!present) {
      if (field === 'output' && decoded.ok !== true) continue;
      fail(`${decoded.op}${field === 'output' ? ' with ok:true' : ''} needs "${field}"`);
    }
    decoded[field] = decodeJson(record[field], field, fail);
  }
  if (decoded.op === 'append' && typeof decoded.value !== 'string') fail('append "value" must be a string');
}

function payloadFields(kind: OperationKind): { value: boolean; expected: boolean; output: boolean } {
  switch (kind) {
    case 'get':
      return { value: false, expected: false, output: true };
    case 'put':
    case 'append':
      return { value: true, expected: false, output: false };
    case 'cas':
      return { value: true, expected: true, output: false };
    case 'delete':
      return { value: false, expected: false, output: false };
    default:
      return assertNever(kind, 'operation kind');
  }
}

function decodeJson(value: unknown, field: string, fail: Fail): JsonValue {
  try {
    canonicalJson(value);
  } catch (error) {
    if (error instanceof TypeError) fail(`"${field}" is not a JSON value (${error.message})`);
    throw error;
  }
  return value as JsonValue;
}

/**
 * The canonical JSON text of a value: object keys sorted, no whitespace. Two values are equal
 * for the checker exactly when their canonical texts are equal. Throws TypeError on anything
 * JSON cannot represent (undefined, functions, NaN, bigint, ...), so in-memory histories get the
 * same scrutiny as parsed ones.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`non-finite number ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item: unknown) => canonicalJson(item)).join(',')}]`;
  if (typeof value === 'object' && isPlainObject(value)) {
    const record = value as Record<string, unknown>;
    const fields = Object.keys(record)
      .sort()
      .map((field) => `${JSON.stringify(field)}:${canonicalJson(record[field])}`);
    return `{${fields.join(',')}}`;
  }
  throw new TypeError(`${typeof value} is not JSON`);
}

function isPlainObject(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

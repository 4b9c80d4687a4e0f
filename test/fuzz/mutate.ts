/**
 * Mutation fuzzing helpers shared by the fuzz suites: how many cases to run (fixed seed by
 * default, more on demand), byte-level mutations of valid encodings (bit flips, overwrites,
 * truncation, insertion, deletion, duplication, splicing with another encoding, u32 length-field
 * edits) and MessagePack type confusion (a decoded value with one node swapped for a value of
 * another type, re-packed). Import-safe: no tests here.
 *
 *   SYNOD_FUZZ_RUNS=N   multiplies every property's case count by N (default 1)
 *   SYNOD_FUZZ_SEED=S   the fast-check seed (default fixed, so `npm test` is deterministic)
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';

/** The fast-check seed of every fuzz property unless `SYNOD_FUZZ_SEED` says otherwise. */
export const FUZZ_SEED_DEFAULT = 20_261_123;

function envInteger(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be an integer, got ${JSON.stringify(text)}`);
  return value;
}

/** Case-count multiplier for long campaigns (`SYNOD_FUZZ_RUNS`). */
export function fuzzScale(): number {
  return Math.max(1, envInteger('SYNOD_FUZZ_RUNS', 1));
}

/**
 * fast-check parameters: `runs` cases (times `SYNOD_FUZZ_RUNS`) from the fixed seed or
 * `SYNOD_FUZZ_SEED`. A failure prints the seed and path that replay it.
 */
export function fuzzParameters<T>(runs: number): fc.Parameters<T> {
  return { numRuns: runs * fuzzScale(), seed: envInteger('SYNOD_FUZZ_SEED', FUZZ_SEED_DEFAULT), endOnFailure: true };
}

/**
 * The seed of a fuzz loop outside fast-check (socket streams, request lists, simulated runs):
 * `base` by default, moved by `SYNOD_FUZZ_SEED` so a campaign over seeds covers new inputs.
 */
export function fuzzSeed(base: number): number {
  const offset = envInteger('SYNOD_FUZZ_SEED', FUZZ_SEED_DEFAULT) - FUZZ_SEED_DEFAULT;
  return (base + offset * 7_919) >>> 0;
}

/** A deterministic PRNG (mulberry32) for fuzz loops outside fast-check (socket streams). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** One edit of a byte string. Positions are taken modulo the length when applied. */
export type ByteEdit =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly byte: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'duplicate'; readonly at: number; readonly length: number; readonly to: number }
  | { readonly kind: 'splice'; readonly at: number; readonly donorAt: number }
  | { readonly kind: 'u32'; readonly at: number; readonly value: number; readonly littleEndian: boolean };

/** Interesting 32-bit values for length fields: off by one, zero, huge, sign bit. */
const U32_VALUES = [0, 1, 2, 3, 4, 5, 7, 8, 255, 256, 1023, 1024, 1025, 4096, 65_535, 65_536, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];

export const byteEditArbitrary: fc.Arbitrary<ByteEdit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x00, 0x7f, 0x80, 0x90, 0xc0, 0xc1, 0xc2, 0xc4, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff)) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }), to: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), donorAt: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('u32' as const), at: fc.nat(),
      value: fc.oneof(fc.constantFrom(...U32_VALUES), fc.integer({ min: 0, max: 0xffff_ffff })), littleEndian: fc.boolean(),
    }),
  },
);

/** One to four edits. */
export const byteEditsArbitrary: fc.Arbitrary<ByteEdit[]> = fc.array(byteEditArbitrary, { minLength: 1, maxLength: 4 });

/** Applies `edit` to `bytes` (never in place). `donor` feeds splices: our prefix, its suffix. */
export function applyEdit(bytes: Uint8Array, edit: ByteEdit, donor: Uint8Array = bytes): Uint8Array {
  const length = bytes.byteLength;
  const position = (at: number, extra = 0): number => (length + extra === 0 ? 0 : at % (length + extra));
  switch (edit.kind) {
    case 'flip': {
      if (length === 0) return bytes;
      const out = Uint8Array.from(bytes);
      const at = position(edit.at);
      out[at] = (out[at] ?? 0) ^ (1 << edit.bit);
      return out;
    }
    case 'set': {
      if (length === 0) return bytes;
      const out = Uint8Array.from(bytes);
      out[position(edit.at)] = edit.byte;
      return out;
    }
    case 'truncate':
      return bytes.slice(0, position(edit.at, 1));
    case 'insert': {
      const at = position(edit.at, 1);
      return concat([bytes.subarray(0, at), edit.bytes, bytes.subarray(at)]);
    }
    case 'delete': {
      const at = position(edit.at, 1);
      return concat([bytes.subarray(0, at), bytes.subarray(at + edit.length)]);
    }
    case 'duplicate': {
      const at = position(edit.at, 1);
      const copied = bytes.subarray(at, at + edit.length);
      const to = position(edit.to, 1);
      return concat([bytes.subarray(0, to), copied, bytes.subarray(to)]);
    }
    case 'splice': {
      const at = position(edit.at, 1);
      const donorAt = donor.byteLength === 0 ? 0 : edit.donorAt % (donor.byteLength + 1);
      return concat([bytes.subarray(0, at), donor.subarray(donorAt)]);
    }
    case 'u32': {
      if (length < 4) return bytes;
      const out = Uint8Array.from(bytes);
      const at = edit.at % (length - 3);
      new DataView(out.buffer).setUint32(at, edit.value, edit.littleEndian);
      return out;
    }
  }
}

/** Applies every edit in order. */
export function applyEdits(bytes: Uint8Array, edits: readonly ByteEdit[], donor?: Uint8Array): Uint8Array {
  let out = bytes;
  for (const edit of edits) out = applyEdit(out, edit, donor);
  return out;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/** Values of every MessagePack type (and a few JavaScript ones msgpackr maps onto them). */
const confusionValues: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1, 0.5, -0.0, Number.NaN, Infinity, 2 ** 53, -(2 ** 63), 2 ** 64 - 1, '', 'x', 'noop', 'commands', 'accept', 'hello'),
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.string({ maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.uint8Array({ maxLength: 8 }),
  fc.constant([]),
  fc.constant({}),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.date({ noInvalidDate: true }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2, noNullPrototype: true }),
);

/** Which node of a decoded value to replace (an index into a depth-first walk) and with what. */
export interface ValueConfusion {
  readonly node: number;
  readonly replacement: unknown;
  /** Instead of replacing: delete the node (an array element or map field), or duplicate it. */
  readonly action: 'replace' | 'remove' | 'repeat';
}

export const valueConfusionArbitrary: fc.Arbitrary<ValueConfusion> = fc.record({
  node: fc.nat(),
  replacement: confusionValues,
  action: fc.constantFrom('replace' as const, 'replace' as const, 'replace' as const, 'remove' as const, 'repeat' as const),
});

/** Containers (array or plain object) in depth-first order, each with its keys. */
function containers(value: unknown, out: { holder: unknown[] | Record<string, unknown>; key: string | number }[] = []) {
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      out.push({ holder: value, key: index });
      containers(item, out);
    });
  } else if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && !(value instanceof Date)) {
    for (const key of Object.keys(value)) {
      const record = value as Record<string, unknown>;
      out.push({ holder: record, key });
      containers(record[key], out);
    }
  }
  return out;
}

/**
 * Returns `value` (a freshly decoded, mutable MessagePack value) with one node replaced, removed
 * or repeated, or the replacement itself when `value` has no children.
 */
export function confuseValue(value: unknown, confusion: ValueConfusion): unknown {
  const slots = containers(value);
  const slot = slots[confusion.node % Math.max(1, slots.length)];
  if (slot === undefined) return confusion.replacement;
  const { holder, key } = slot;
  if (Array.isArray(holder)) {
    const index = key as number;
    if (confusion.action === 'remove') holder.splice(index, 1);
    else if (confusion.action === 'repeat') holder.splice(index, 0, holder[index]);
    else holder[index] = confusion.replacement;
  } else {
    const name = key as string;
    if (confusion.action === 'remove') delete holder[name];
    else if (confusion.action === 'repeat') holder[`${name}2`] = holder[name];
    else holder[name] = confusion.replacement;
  }
  return value;
}

/** The packer the fuzzers re-pack confused values with (no records: plain maps and arrays). */
export const fuzzPacker = new Packr({ useRecords: false, moreTypes: true });

/** Decodes `bytes`, applies `confusion`, re-packs (a copy); `bytes` must be valid MessagePack. */
export function confuseEncoding(bytes: Uint8Array, confusion: ValueConfusion): Uint8Array {
  const value: unknown = fuzzPacker.unpack(bytes);
  return Uint8Array.from(fuzzPacker.pack(confuseValue(value, confusion)));
}

/**
 * A stable copy of an encoder's output. msgpackr packs into a buffer it reuses, so bytes kept
 * across later encodings (generated values, fixtures) must be copied or they change under us.
 */
export function kept(bytes: Uint8Array): Uint8Array {
  return Uint8Array.from(bytes);
}

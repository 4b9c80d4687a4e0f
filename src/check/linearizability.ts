/**
 * Linearizability checker for key-value client histories (see `history.ts` for the format).
 *
 * A history is linearizable when every operation can be given one instant between its call and
 * its return such that, replayed in that order, a single-copy store answers every read as the
 * clients saw. The search is Wing & Gong's, with Lowe's improvements ("Testing for
 * linearizability", 2017): the call and return events sit in a doubly linked list; the search
 * repeatedly linearizes ("lifts") a pending operation whose call precedes the first remaining
 * return, and backtracks when it reaches a return whose operation it could not place. A cache of
 * (set of linearized operations, register state) already explored makes the search skip
 * configurations it has seen, which turns the exponential worst case into something that is
 * usually close to linear.
 *
 * Linearizability is compositional (Herlihy & Wing): a history is linearizable exactly when its
 * restriction to each key is. So each key is checked independently, as a register, which keeps
 * the search space small.
 *
 * Unknown outcomes (`ok: null`, or no return time) get a return time of +infinity: they may take
 * effect at any instant after their call. The search stops as soon as every operation with a
 * known outcome is linearized, so an unknown write may also never take effect. Operations with
 * no possible observable effect (unknown reads, certain failures) are dropped before the search.
 *
 * Unknown writes would make the search exponential (any subset of them may have happened), so
 * the search only looks for linearizations in a normal form: an unknown operation is placed
 * only immediately before an operation that observes its result (a read, cas or append). This
 * loses nothing: in any linearization, an unknown operation followed by a blind write (put,
 * delete) or by nothing can be removed, since no one saw its effect; repeating that yields the
 * normal form. Timed-out writes whose value nobody read are then never even tried.
 */
import { assert, assertNever } from '../core/assert.js';
import { canonicalJson, decodeHistoryOp, formatHistoryOp, type HistoryOp } from './history.js';

/** Explored (linearized set, state) configurations per key before the checker gives up with 'unknown'. */
export const DEFAULT_MAX_STATES_PER_KEY = 5_000_000;

/** Tuning of `checkLinearizability`. */
export interface CheckOptions {
  /**
   * Search budget: configurations explored per key before giving up with 'unknown'. Each one
   * costs a cache entry (tens of bytes), so the default bounds memory at a few hundred MB.
   */
  readonly maxStatesPerKey?: number;
}

/** The verdict of `checkLinearizability`. */
export interface CheckResult {
  /** true: linearizable; false: certainly not; 'unknown': a key exhausted the search budget. */
  readonly linearizable: boolean | 'unknown';
  /** The key that is not linearizable (or, for 'unknown', whose search ran out of budget). */
  readonly failedKey?: string;
  /** Number of operations in the history given. */
  readonly ops: number;
  /** For a verdict other than true: what went wrong, naming the key and the operations involved. */
  readonly explanation?: string;
}

/**
 * Checks that `history` is linearizable with respect to a map of independent registers
 * supporting get, put, cas, delete and append. Throws `HistoryFormatError` on a malformed
 * operation. Keys are checked in sorted order, so the verdict and explanation are deterministic.
 */
export function checkLinearizability(history: readonly HistoryOp[], options: CheckOptions = {}): CheckResult {
  const maxStates = options.maxStatesPerKey ?? DEFAULT_MAX_STATES_PER_KEY;
  assert(Number.isSafeInteger(maxStates) && maxStates > 0, 'maxStatesPerKey must be a positive integer');
  const byKey = partitionByKey(history);
  let unknown: CheckResult | null = null;
  for (const key of [...byKey.keys()].sort()) {
    const keyOps = byKey.get(key);
    assert(keyOps !== undefined, 'partition lists every key it returns');
    const outcome = checkKey(key, keyOps, maxStates);
    switch (outcome.kind) {
      case 'linearizable':
        break;
      case 'not-linearizable':
        return { linearizable: false, failedKey: key, ops: history.length, explanation: outcome.explanation };
      case 'budget-exhausted':
        // Keep going: another key may still prove the history wrong, a stronger verdict.
        unknown ??= { linearizable: 'unknown', failedKey: key, ops: history.length, explanation: outcome.explanation };
        break;
      default:
        assertNever(outcome, 'key outcome');
    }
  }
  return unknown ?? { linearizable: true, ops: history.length };
}

/** Validates every operation and groups them by key, keeping history order within a key. */
function partitionByKey(history: readonly HistoryOp[]): Map<string, HistoryOp[]> {
  const byKey = new Map<string, HistoryOp[]>();
  for (const [index, raw] of history.entries()) {
    const op = decodeHistoryOp(raw, { line: null, index }, { allowExtraFields: true });
    const keyOps = byKey.get(op.key);
    if (keyOps === undefined) byKey.set(op.key, [op]);
    else keyOps.push(op);
  }
  return byKey;
}

type KeyOutcome =
  | { readonly kind: 'linearizable' }
  | { readonly kind: 'not-linearizable'; readonly explanation: string }
  | { readonly kind: 'budget-exhausted'; readonly explanation: string };

function checkKey(key: string, ops: readonly HistoryOp[], maxStates: number): KeyOutcome {
  const states = new RegisterStates();
  const searchOps = toSearchOps(ops, states);
  const search = new LinearizationSearch(searchOps, states, maxStates);
  const result = search.run();
  switch (result) {
    case 'linearizable':
      return { kind: 'linearizable' };
    case 'not-linearizable':
      return { kind: 'not-linearizable', explanation: explainFailure(key, ops.length, search, states) };
    case 'budget-exhausted':
      return {
        kind: 'budget-exhausted',
        explanation:
          `key ${JSON.stringify(key)}: gave up after exploring ${maxStates} configurations of its ` +
          `${searchOps.length} operations (raise maxStatesPerKey, or record fewer concurrent or ` +
          'unknown-outcome operations)',
      };
    default:
      return assertNever(result, 'search result');
  }
}

// ---------------------------------------------------------------------------------------------
// The register model.

/** A register state: an interned canonical JSON text. State 0 is "absent" (canonical `null`). */
type StateId = number;

const ABSENT: StateId = 0;
const NOT_APPLICABLE = -1;

/**
 * Interns register values as small integers, so that applying an operation is an integer
 * comparison and a cache key holds a number instead of a value of arbitrary size.
 */
class RegisterStates {
  private readonly ids = new Map<string, StateId>();
  private readonly texts: string[] = [];

  constructor() {
    const absent = this.intern('null');
    assert(absent === ABSENT, 'the absent state is interned first');
  }

  /** The id of a canonical JSON text, allocating one on first sight. */
  intern(canonical: string): StateId {
    const existing = this.ids.get(canonical);
    if (existing !== undefined) return existing;
    const id = this.texts.length;
    this.texts.push(canonical);
    this.ids.set(canonical, id);
    return id;
  }

  /** The canonical JSON text of a state. */
  text(state: StateId): string {
    const text = this.texts[state];
    assert(text !== undefined, 'state ids come from intern');
    return text;
  }

  /** The state after appending `suffix`, or NOT_APPLICABLE if the value is not a string. */
  append(state: StateId, suffix: string): StateId {
    if (state === ABSENT) return this.intern(JSON.stringify(suffix));
    const current: unknown = JSON.parse(this.text(state));
    if (typeof current !== 'string') return NOT_APPLICABLE;
    return this.intern(JSON.stringify(current + suffix));
  }
}

/** What an operation does to the register, once its outcome is taken into account. */
type Action =
  | { readonly kind: 'read'; readonly value: StateId }
  | { readonly kind: 'read-not'; readonly value: StateId }
  | { readonly kind: 'write'; readonly value: StateId }
  | { readonly kind: 'cas'; readonly expected: StateId; readonly value: StateId }
  | { readonly kind: 'append'; readonly suffix: string };

/** The state after `action` takes effect in `state`, or NOT_APPLICABLE if it cannot take effect there. */
function applyAction(states: RegisterStates, state: StateId, action: Action): StateId {
  switch (action.kind) {
    case 'read':
      return state === action.value ? state : NOT_APPLICABLE;
    case 'read-not':
      return state !== action.value ? state : NOT_APPLICABLE;
    case 'write':
      return action.value;
    case 'cas':
      return state === action.expected ? action.value : NOT_APPLICABLE;
    case 'append':
      return states.append(state, action.suffix);
    default:
      return assertNever(action, 'register action');
  }
}

/** An operation as the search sees it. */
interface SearchOp {
  readonly source: HistoryOp;
  readonly action: Action;
  readonly call: number;
  /** +Infinity for an unknown outcome. */
  readonly return: number;
  /** Known to have happened, so it must be linearized; an unknown outcome may be left out. */
  readonly required: boolean;
}

/** Turns one key's operations into search operations, dropping those without observable effect; sorted by call. */
function toSearchOps(ops: readonly HistoryOp[], states: RegisterStates): SearchOp[] {
  const searchOps: SearchOp[] = [];
  for (const op of ops) {
    const unknown = op.ok === null || op.return === null;
    const action = actionOf(op, unknown, states);
    if (action === null) continue;
    // An unknown outcome may take effect after the client stopped waiting, even if it recorded a return.
    const returned = unknown || op.return === null ? Infinity : op.return;
    searchOps.push({ source: op, action, call: op.call, return: returned, required: !unknown });
  }
  // Operation i is bit i of the linearized set: required operations first, so that their fully
  // linearized prefix stays dense (unknown ones may never be linearized), each group by call.
  return searchOps.sort((left, right) => Number(right.required) - Number(left.required) || left.call - right.call);
}

/** A write that ignores the current value, so it hides whatever the operation before it wrote. */
function isBlindWrite(action: Action): boolean {
  return action.kind === 'write';
}

/** An action that leaves the value as it is. */
function isRead(action: Action): boolean {
  return action.kind === 'read' || action.kind === 'read-not';
}

/** The register action of an operation, or null when it cannot have had an observable effect. */
function actionOf(op: HistoryOp, unknown: boolean, states: RegisterStates): Action | null {
  const intern = (value: unknown): StateId => states.intern(canonicalJson(value ?? null));
  switch (op.op) {
    case 'get':
      // An unknown read constrains nothing; a failed read did not happen.
      return op.ok === true && !unknown ? { kind: 'read', value: intern(op.output) } : null;
    case 'put':
      return op.ok === false ? null : { kind: 'write', value: intern(op.value) };
    case 'delete':
      return op.ok === false ? null : { kind: 'write', value: ABSENT };
    case 'append':
      assert(typeof op.value === 'string', 'decodeHistoryOp checked the append suffix');
      return op.ok === false ? null : { kind: 'append', suffix: op.value };
    case 'cas':
      if (op.ok !== false) return { kind: 'cas', expected: intern(op.expected), value: intern(op.value) };
      // A failed compare is a read that saw something other than `expected`. With an error, or
      // without a return time, it may not have happened at all, so it constrains nothing.
      return op.error === undefined && !unknown ? { kind: 'read-not', value: intern(op.expected) } : null;
    default:
      return assertNever(op.op, 'operation kind');
  }
}

// ---------------------------------------------------------------------------------------------
// The search.

type SearchResult = 'linearizable' | 'not-linearizable' | 'budget-exhausted';

/** The deepest point the search reached before backtracking, kept to explain a failure. */
interface DeepestFailure {
  /** Operations linearized, in order. */
  readonly prefix: readonly number[];
  /** Register state after the prefix. */
  readonly state: StateId;
  /** The operation whose return the search reached without being able to linearize it. */
  readonly blocked: number;
}

/**
 * Lowe's WGL search over the call/return events of one key's operations. Nodes of the linked
 * list: 0 is the head sentinel, 1 + 2i and 2 + 2i are the call and return of operation i (in
 * event order, not necessarily adjacent), and 2n + 1 is the tail sentinel.
 */
class LinearizationSearch {
  private readonly count: number;
  private readonly next: Int32Array;
  private readonly previous: Int32Array;
  /** Operation of each event node. */
  private readonly nodeOp: Int32Array;
  private readonly tail: number;
  private readonly requiredCount: number;
  private readonly linearized: OperationSet;
  private readonly cache = new Set<string>();
  /** Which operations not yet linearized could observe which values. */
  private readonly observers = new PendingObservers();
  deepest: DeepestFailure | null = null;

  constructor(
    readonly ops: readonly SearchOp[],
    private readonly states: RegisterStates,
    private readonly maxStates: number,
  ) {
    this.count = ops.length;
    this.tail = 2 * this.count + 1;
    this.next = new Int32Array(this.tail + 1);
    this.previous = new Int32Array(this.tail + 1);
    this.nodeOp = new Int32Array(this.tail + 1).fill(-1);
    this.requiredCount = ops.filter((op) => op.required).length;
    for (const [index, op] of ops.entries()) {
      assert(op.required === index < this.requiredCount, 'required operations come first');
      // Unknown reads are dropped, so every unknown operation changes the value (or may).
      assert(op.required || !isRead(op.action), 'unknown operations are writes');
    }
    this.linearized = new OperationSet(this.requiredCount, this.count - this.requiredCount);
    for (const op of ops) this.observers.add(op.action);
    this.linkEvents();
  }

  private static callNode(op: number): number {
    return 1 + 2 * op;
  }

  private static returnNode(op: number): number {
    return 2 + 2 * op;
  }

  private static isCall(node: number): boolean {
    return node % 2 === 1;
  }

  /** Builds the event list in time order. */
  private linkEvents(): void {
    const nodes: number[] = [];
    for (let op = 0; op < this.count; op += 1) {
      nodes.push(LinearizationSearch.callNode(op), LinearizationSearch.returnNode(op));
      this.nodeOp[LinearizationSearch.callNode(op)] = op;
      this.nodeOp[LinearizationSearch.returnNode(op)] = op;
    }
    nodes.sort((left, right) => this.compareEvents(left, right));
    let last = 0;
    for (const node of [...nodes, this.tail]) {
      this.next[last] = node;
      this.previous[node] = last;
      last = node;
    }
  }

  /**
   * Time order. At equal times a call comes before a return, so operations that merely touch
   * count as concurrent: clocks are not precise enough to order them, and treating them as
   * ordered could report a violation that did not happen.
   */
  private compareEvents(left: number, right: number): number {
    const leftTime = this.eventTime(left);
    const rightTime = this.eventTime(right);
    if (leftTime !== rightTime) return leftTime < rightTime ? -1 : 1;
    const leftIsCall = LinearizationSearch.isCall(left);
    if (leftIsCall !== LinearizationSearch.isCall(right)) return leftIsCall ? -1 : 1;
    return left - right;
  }

  private eventTime(node: number): number {
    const op = this.ops[this.opOf(node)];
    assert(op !== undefined, 'event nodes belong to operations');
    return LinearizationSearch.isCall(node) ? op.call : op.return;
  }

  private opOf(node: number): number {
    const op = this.nodeOp[node];
    assert(op !== undefined && op >= 0, 'only event nodes have operations');
    return op;
  }

  private searchOp(index: number): SearchOp {
    const op = this.ops[index];
    assert(op !== undefined, 'operation index in range');
    return op;
  }

  /** Runs the search to a verdict; every loop iteration pushes, pops, or advances along the list. */
  run(): SearchResult {
    const stack: SearchFrame[] = [];
    let state: StateId = ABSENT;
    // The last operation placed is an unknown one, so the next must observe its result (normal form).
    let awaitingObserver = false;
    let linearizedRequired = 0;
    let entry = this.next[0] ?? this.tail;
    // Pushes and pops are bounded by the cache size; between two of them the scan advances at
    // most once per list node. The bound turns a bug into an assertion instead of a hang.
    const stepLimit = (2 * this.maxStates + 2) * (2 * this.count + 2);
    for (let step = 0; ; step += 1) {
      assert(step <= stepLimit, 'linearization search exceeded its step bound');
      if (linearizedRequired === this.requiredCount) return 'linearizable';
      assert(entry !== this.tail, 'a pending call is always followed by its return');
      const op = this.opOf(entry);
      if (LinearizationSearch.isCall(entry)) {
        const candidate = this.searchOp(op);
        const stateAfter = this.tryApply(state, candidate, awaitingObserver);
        if (stateAfter !== NOT_APPLICABLE && this.markNew(op, stateAfter, !candidate.required)) {
          if (this.cache.size > this.maxStates) return 'budget-exhausted';
          stack.push({ callNode: entry, stateBefore: state, awaitingObserverBefore: awaitingObserver });
          state = stateAfter;
          awaitingObserver = !candidate.required;
          if (candidate.required) linearizedRequired += 1;
          this.lift(entry);
          entry = this.next[0] ?? this.tail;
        } else {
          entry = this.next[entry] ?? this.tail;
        }
        continue;
      }
      // The first remaining return: its operation had to be linearized by now and was not.
      // Unknown operations return at +infinity, after every required one, so this is required.
      assert(this.searchOp(op).required, 'only required operations have returns the scan can reach');
      this.noteDeadEnd(stack, state, op);
      const top = stack.pop();
      if (top === undefined) return 'not-linearizable';
      const undone = this.opOf(top.callNode);
      this.linearized.remove(undone);
      this.unlift(top.callNode);
      if (this.searchOp(undone).required) linearizedRequired -= 1;
      state = top.stateBefore;
      awaitingObserver = top.awaitingObserverBefore;
      entry = this.next[top.callNode] ?? this.tail;
    }
  }

  /**
   * The state after placing `candidate` next, or NOT_APPLICABLE if the model forbids it or the
   * normal form (see the module comment) makes it pointless: a blind write right after an
   * unknown operation, or an unknown operation whose result no pending operation could observe.
   */
  private tryApply(state: StateId, candidate: SearchOp, awaitingObserver: boolean): StateId {
    if (awaitingObserver && isBlindWrite(candidate.action)) return NOT_APPLICABLE;
    const stateAfter = applyAction(this.states, state, candidate.action);
    if (stateAfter === NOT_APPLICABLE || candidate.required) return stateAfter;
    return this.observers.anyOtherCouldObserve(stateAfter, candidate.action) ? stateAfter : NOT_APPLICABLE;
  }

  /** Marks `op` linearized; keeps it so and returns true if the configuration after it is new to the cache. */
  private markNew(op: number, stateAfter: StateId, awaitingObserver: boolean): boolean {
    this.linearized.add(op);
    const key = `${stateAfter}:${awaitingObserver ? 1 : 0}:${this.linearized.key()}`;
    if (!this.cache.has(key)) {
      this.cache.add(key);
      return true;
    }
    this.linearized.remove(op);
    return false;
  }

  /** Removes an operation's call and return from the list (it is now linearized). */
  private lift(callNode: number): void {
    this.unlink(callNode);
    this.unlink(callNode + 1);
    this.observers.remove(this.searchOp(this.opOf(callNode)).action);
  }

  /** Puts back what `lift` removed, in reverse order, so the neighbours' links are restored exactly. */
  private unlift(callNode: number): void {
    this.relink(callNode + 1);
    this.relink(callNode);
    this.observers.add(this.searchOp(this.opOf(callNode)).action);
  }

  private unlink(node: number): void {
    const before = this.previous[node] ?? 0;
    const after = this.next[node] ?? this.tail;
    this.next[before] = after;
    this.previous[after] = before;
  }

  private relink(node: number): void {
    this.next[this.previous[node] ?? 0] = node;
    this.previous[this.next[node] ?? this.tail] = node;
  }

  /** Remembers the deepest dead end: its prefix is the longest partial linearization found. */
  private noteDeadEnd(stack: readonly { readonly callNode: number }[], state: StateId, blocked: number): void {
    if (this.deepest !== null && this.deepest.prefix.length >= stack.length) return;
    this.deepest = { prefix: stack.map((frame) => this.opOf(frame.callNode)), state, blocked };
  }
}

/** What the search must restore when it backtracks over one placed operation. */
interface SearchFrame {
  readonly callNode: number;
  readonly stateBefore: StateId;
  readonly awaitingObserverBefore: boolean;
}

/**
 * Counts the operations not yet linearized that could observe the register's value: exactly
 * one value (a read, a cas's compare) or nearly any (a failed compare, an append). An unknown
 * operation is only worth placing if one of them remains; a timed-out write whose value nobody
 * read is then never tried, which keeps histories with many timeouts cheap to check.
 */
class PendingObservers {
  private readonly exact = new Map<StateId, number>();
  private wildcard = 0;

  add(action: Action): void {
    this.count(action, 1);
  }

  remove(action: Action): void {
    this.count(action, -1);
  }

  /** Whether some pending operation other than `self` (itself still pending) could observe `state`. */
  anyOtherCouldObserve(state: StateId, self: Action): boolean {
    const observed = observedValue(self);
    const exactOthers = (this.exact.get(state) ?? 0) - (observed === state ? 1 : 0);
    const wildcardOthers = this.wildcard - (observed === ANY_VALUE ? 1 : 0);
    return exactOthers > 0 || wildcardOthers > 0;
  }

  private count(action: Action, delta: 1 | -1): void {
    const observed = observedValue(action);
    if (observed === ANY_VALUE) this.wildcard += delta;
    else if (observed !== NO_VALUE) this.exact.set(observed, (this.exact.get(observed) ?? 0) + delta);
    assert(this.wildcard >= 0 && (this.exact.get(observed) ?? 0) >= 0, 'observer counts stay non-negative');
  }
}

const ANY_VALUE = -2;
const NO_VALUE = -3;

/** The value an action's outcome depends on: one state, ANY_VALUE (depends on most), or NO_VALUE. */
function observedValue(action: Action): StateId {
  switch (action.kind) {
    case 'read':
      return action.value;
    case 'cas':
      return action.expected;
    case 'read-not':
    case 'append':
      return ANY_VALUE;
    case 'write':
      return NO_VALUE;
    default:
      return assertNever(action, 'register action');
  }
}

/**
 * The set of linearized operations of one key, as a bitset with a compact, exact string key.
 * Operations [0, required) are required, in call order, and the search linearizes them roughly
 * in that order, so most of them sit in a fully set prefix that the key stores as a number.
 * Unknown operations get their own words, so one that is never linearized does not stop the
 * prefix from growing.
 */
class OperationSet {
  private readonly words: Uint32Array;
  private readonly requiredWords: number;
  /** Every required operation below this index is in the set. */
  private densePrefix = 0;

  constructor(
    private readonly required: number,
    unknown: number,
  ) {
    this.requiredWords = Math.ceil(required / 32);
    this.words = new Uint32Array(this.requiredWords + Math.ceil(unknown / 32));
  }

  add(op: number): void {
    const bit = this.bitOf(op);
    const word = bit >>> 5;
    this.words[word] = (this.words[word] ?? 0) | (1 << (bit & 31));
    while (this.densePrefix < this.required && this.has(this.densePrefix)) this.densePrefix += 1;
  }

  remove(op: number): void {
    const bit = this.bitOf(op);
    const word = bit >>> 5;
    this.words[word] = (this.words[word] ?? 0) & ~(1 << (bit & 31));
    if (op < this.densePrefix) this.densePrefix = op;
  }

  has(op: number): boolean {
    const bit = this.bitOf(op);
    return ((this.words[bit >>> 5] ?? 0) & (1 << (bit & 31))) !== 0;
  }

  /**
   * The set as a string: the dense prefix length, then the required words from the prefix to
   * the last non-zero one (their count first, so the split is unambiguous), then the unknown
   * words up to the last non-zero one, two UTF-16 units per word. Distinct sets, distinct keys.
   */
  key(): string {
    const requiredEnd = this.lastNonZero(0, this.requiredWords);
    const requiredStart = Math.min(this.densePrefix >>> 5, requiredEnd);
    const unknownEnd = this.lastNonZero(this.requiredWords, this.words.length);
    return (
      `${this.densePrefix}:${requiredEnd - requiredStart}:` +
      this.wordsText(requiredStart, requiredEnd) +
      this.wordsText(this.requiredWords, Math.max(unknownEnd, this.requiredWords))
    );
  }

  /** Bit of an operation: required ones from bit 0, unknown ones from the next whole word. */
  private bitOf(op: number): number {
    return op < this.required ? op : this.requiredWords * 32 + (op - this.required);
  }

  /** One past the last non-zero word in [start, end), or start if all are zero. */
  private lastNonZero(start: number, end: number): number {
    let last = end;
    while (last > start && this.words[last - 1] === 0) last -= 1;
    return last;
  }

  private wordsText(start: number, end: number): string {
    let text = '';
    for (let word = start; word < end; word += 1) {
      const bits = this.words[word] ?? 0;
      text += String.fromCharCode(bits & 0xffff, bits >>> 16);
    }
    return text;
  }
}

// ---------------------------------------------------------------------------------------------
// Explanations.

/** Operations listed at most per section of an explanation, to keep it readable. */
const EXPLANATION_OPS_LIMIT = 12;

function explainFailure(key: string, keyOpCount: number, search: LinearizationSearch, states: RegisterStates): string {
  const deepest = search.deepest;
  assert(deepest !== null, 'a failed search reached at least one dead end');
  const blocked = search.ops[deepest.blocked];
  assert(blocked !== undefined, 'the blocked operation is in range');
  const prefixOps = deepest.prefix.map((index) => search.ops[index]?.source);
  const placed = new Set(deepest.prefix);
  // The other candidates at the dead end: not placed, called before the blocked one returned.
  const concurrent = search.ops.filter(
    (op, index) => !placed.has(index) && index !== deepest.blocked && op.call <= blocked.return,
  );
  return [
    `key ${JSON.stringify(key)}: its ${keyOpCount} operations are not linearizable.`,
    `Longest linearizable prefix found (${prefixOps.length} operations${omitted(prefixOps.length, 'last')}):`,
    ...listOps(prefixOps.slice(-EXPLANATION_OPS_LIMIT)),
    `after which the value is ${states.text(deepest.state)}; no order of the pending operations lets ` +
      'this one take effect before it returned:',
    `  ${formatHistoryOp(blocked.source)}`,
    concurrent.length === 0
      ? 'No other operation was pending then.'
      : `Other operations pending then (${concurrent.length}${omitted(concurrent.length, 'first')}):`,
    ...listOps(concurrent.slice(0, EXPLANATION_OPS_LIMIT).map((op) => op.source)),
  ].join('\n');
}

function omitted(count: number, which: 'first' | 'last'): string {
  return count > EXPLANATION_OPS_LIMIT ? `, ${which} ${EXPLANATION_OPS_LIMIT} shown` : '';
}

function listOps(ops: readonly (HistoryOp | undefined)[]): string[] {
  return ops.map((op) => {
    assert(op !== undefined, 'listed operations are in range');
    return `  ${formatHistoryOp(op)}`;
  });
}

/**
 * The nemesis: a seeded schedule of faults (`planFaults`, pure and deterministic) and its
 * execution against a real cluster (`Nemesis`).
 *
 * A plan is a list of fault episodes in four independent categories, each a sequence of
 * episodes separated by quiet gaps: process faults (SIGKILL + restart, SIGSTOP + SIGCONT),
 * network faults (partitions of several shapes, cut / stalled / blackholed, some flapping; slow
 * links), slow disk, and clock jumps. Categories overlap in time, so a leader can be killed
 * while the network is split and its disk is slow. Each category draws from its own generator
 * forked from the seed in a fixed order, so turning one fault kind off leaves the others'
 * schedules unchanged.
 *
 * Targets are abstract in the plan: "the leader" is resolved when the episode starts (with a
 * pre-drawn node as fallback when no leader is known), so the same seed gives the same plan
 * even though which node leads depends on the run. Leaders are chosen more often than other
 * nodes: faults there exercise failover, recovery and stale leaders.
 */
import { assert, assertNever } from '../core/assert.js';
import { Prng } from '../core/prng.js';
import type { TortureCluster } from './cluster.js';
import type { Link } from './network.js';
import { PASS, describeMode, type LinkMode } from './proxy.js';

export const FAULT_KINDS = ['kill', 'pause', 'partition', 'disk', 'clock'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** "The leader at the time" (or `fallback` when none is known), or a fixed node slot (0-based). */
export type NodeTarget = { readonly kind: 'leader'; readonly fallback: number } | { readonly kind: 'node'; readonly index: number };

/** How a partitioned link fails: connections reset and refused, held silently, or bytes thrown away. */
export type CutMode = 'cut' | 'stall' | 'blackhole';

export type NetworkShape =
  /** Every link to and from the target. */
  | { readonly kind: 'isolate'; readonly target: NodeTarget }
  /** A minority against a majority; `withLeader`: the leader is in the minority. `order` picks the rest. */
  | { readonly kind: 'split'; readonly minoritySize: number; readonly withLeader: boolean; readonly order: readonly number[] }
  /** Only the links into the target (it sends, hears nothing), or only those out of it. */
  | { readonly kind: 'one-way'; readonly target: NodeTarget; readonly direction: 'inbound' | 'outbound' }
  /** Two halves that cannot talk to each other, both connected to one node in the middle. */
  | { readonly kind: 'bridge'; readonly order: readonly number[] }
  /** Every link slow (delayed, jittered) rather than cut. */
  | { readonly kind: 'slow'; readonly delayMs: number; readonly jitterMs: number };

export type FaultSpec =
  | { readonly kind: 'kill'; readonly targets: readonly NodeTarget[] }
  | { readonly kind: 'pause'; readonly targets: readonly NodeTarget[] }
  | { readonly kind: 'partition'; readonly shape: NetworkShape; readonly mode: CutMode; readonly flapMs: number | null }
  | { readonly kind: 'disk'; readonly targets: readonly NodeTarget[] | 'all'; readonly delayMs: number }
  | { readonly kind: 'clock'; readonly targets: readonly NodeTarget[] | 'all'; readonly offsetMs: number };

/** One fault: it starts at `startMs` after the workload starts, and is undone `durationMs` later. */
export interface FaultEpisode {
  readonly startMs: number;
  readonly durationMs: number;
  readonly spec: FaultSpec;
}

export interface PlanOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly durationMs: number;
  readonly kinds: readonly FaultKind[];
}

/** Chance that a targeted fault picks the leader rather than any node. */
const LEADER_BIAS = 0.6;
/** Episodes never start in the last moments of a run: they would have no time to act. */
const EPISODE_MS_MIN = 200;

type Category = 'process' | 'network' | 'disk' | 'clock';
const CATEGORIES: readonly Category[] = ['process', 'network', 'disk', 'clock'];

/** The faults of a run, sorted by start time. Same options, same plan. */
export function planFaults(options: PlanOptions): FaultEpisode[] {
  assert(Number.isInteger(options.nodes) && options.nodes >= 1, 'node count');
  assert(options.durationMs > 0, 'a run lasts some time');
  const root = new Prng(options.seed);
  // Forked in a fixed order whatever is enabled: one category's plan never depends on another's.
  const generators = new Map(CATEGORIES.map((category) => [category, root.fork()]));
  const enabled = new Set(options.kinds);
  const episodes: FaultEpisode[] = [];
  for (const category of CATEGORIES) {
    const random = generators.get(category) as Prng;
    const draw = drawerFor(category, enabled, options.nodes);
    if (draw === null) continue;
    let at = uniform(random, 1_000, 3_000);
    // Bounded: every episode advances `at` by at least its gap (>= 300 ms).
    while (at < options.durationMs - EPISODE_MS_MIN) {
      const { spec, durationMs, gapMs } = draw(random);
      const duration = Math.round(Math.min(durationMs, options.durationMs - at));
      episodes.push({ startMs: Math.round(at), durationMs: duration, spec });
      at += duration + gapMs;
    }
  }
  return episodes.sort((a, b) => a.startMs - b.startMs);
}

type Draw = (random: Prng) => { spec: FaultSpec; durationMs: number; gapMs: number };

function drawerFor(category: Category, enabled: ReadonlySet<FaultKind>, nodes: number): Draw | null {
  switch (category) {
    case 'process':
      if (!enabled.has('kill') && !enabled.has('pause')) return null;
      return (random) => drawProcessFault(random, enabled, nodes);
    case 'network':
      if (!enabled.has('partition') || nodes < 2) return null;
      return (random) => drawNetworkFault(random, nodes);
    case 'disk':
      if (!enabled.has('disk')) return null;
      return (random) => ({
        spec: { kind: 'disk', targets: drawTargets(random, nodes, 0.25), delayMs: Math.round(logUniform(random, 5, 250)) },
        durationMs: uniform(random, 1_000, 8_000),
        gapMs: uniform(random, 1_000, 5_000),
      });
    case 'clock':
      if (!enabled.has('clock')) return null;
      return (random) => ({
        // From a second to about ten days, either way.
        spec: { kind: 'clock', targets: drawTargets(random, nodes, 0.25), offsetMs: Math.round((random.chance(0.5) ? -1 : 1) * logUniform(random, 1_000, 1e9)) },
        durationMs: uniform(random, 1_000, 8_000),
        gapMs: uniform(random, 1_000, 5_000),
      });
    default:
      return assertNever(category, 'fault category');
  }
}

function drawProcessFault(random: Prng, enabled: ReadonlySet<FaultKind>, nodes: number): ReturnType<Draw> {
  const kill = enabled.has('kill') && (!enabled.has('pause') || random.chance(0.5));
  const minority = Math.floor((nodes - 1) / 2);
  // Mostly one node; sometimes a whole minority; rarely a majority (no quorum for a while).
  let count = 1;
  const roll = random.next();
  if (roll < 0.07) count = minority + 1;
  else if (roll < 0.3 && minority >= 2) count = random.int(2, minority + 1);
  count = Math.min(count, nodes);
  const targets = [drawTarget(random, nodes), ...permutation(random, nodes).slice(0, count - 1).map((index): NodeTarget => ({ kind: 'node', index }))];
  return {
    spec: kill ? { kind: 'kill', targets } : { kind: 'pause', targets },
    durationMs: kill ? uniform(random, 500, 5_000) : uniform(random, 300, 4_000),
    gapMs: uniform(random, 500, 3_000),
  };
}

function drawNetworkFault(random: Prng, nodes: number): ReturnType<Draw> {
  const roll = random.next();
  let shape: NetworkShape;
  if (roll < 0.25) shape = { kind: 'isolate', target: drawTarget(random, nodes) };
  else if (roll < 0.5) {
    const minoritySize = Math.max(1, random.int(1, Math.floor((nodes - 1) / 2) + 1));
    shape = { kind: 'split', minoritySize, withLeader: random.chance(0.5), order: permutation(random, nodes) };
  } else if (roll < 0.7) shape = { kind: 'one-way', target: drawTarget(random, nodes), direction: random.chance(0.5) ? 'inbound' : 'outbound' };
  else if (roll < 0.8 && nodes >= 3) shape = { kind: 'bridge', order: permutation(random, nodes) };
  else {
    const delayMs = Math.round(logUniform(random, 2, 80));
    shape = { kind: 'slow', delayMs, jitterMs: Math.round(delayMs * random.next() * 0.9) };
  }
  const modeRoll = random.next();
  const mode: CutMode = modeRoll < 0.6 ? 'cut' : modeRoll < 0.8 ? 'stall' : 'blackhole';
  const flapMs = shape.kind !== 'slow' && random.chance(0.2) ? uniform(random, 100, 600) : null;
  return { spec: { kind: 'partition', shape, mode, flapMs }, durationMs: uniform(random, 500, 5_000), gapMs: uniform(random, 500, 3_000) };
}

function drawTarget(random: Prng, nodes: number): NodeTarget {
  const leader = random.chance(LEADER_BIAS);
  const index = random.int(0, nodes);
  return leader ? { kind: 'leader', fallback: index } : { kind: 'node', index };
}

/** One target (often the leader), or every node with probability `allChance`. */
function drawTargets(random: Prng, nodes: number, allChance: number): readonly NodeTarget[] | 'all' {
  return random.chance(allChance) ? 'all' : [drawTarget(random, nodes)];
}

function uniform(random: Prng, min: number, max: number): number {
  return Math.round(min + random.next() * (max - min));
}

function logUniform(random: Prng, min: number, max: number): number {
  return Math.exp(Math.log(min) + random.next() * (Math.log(max) - Math.log(min)));
}

function permutation(random: Prng, count: number): number[] {
  const order = Array.from({ length: count }, (_, index) => index);
  for (let index = count - 1; index > 0; index -= 1) {
    const other = random.int(0, index + 1);
    [order[index], order[other]] = [order[other] as number, order[index] as number];
  }
  return order;
}

// ---------------------------------------------------------------------------------------------
// Resolving a plan against the cluster.

/** The directed links a shape cuts, given the nodes' slots and the current leader. */
export function shapeLinks(shape: Exclude<NetworkShape, { kind: 'slow' }>, nodes: number, resolve: (target: NodeTarget) => number, leader: number | null): Link[] {
  const all: Link[] = [];
  for (let from = 0; from < nodes; from += 1) for (let to = 0; to < nodes; to += 1) if (from !== to) all.push({ from, to });
  switch (shape.kind) {
    case 'isolate': {
      const target = resolve(shape.target);
      return all.filter((link) => link.from === target || link.to === target);
    }
    case 'one-way': {
      const target = resolve(shape.target);
      return all.filter((link) => (shape.direction === 'inbound' ? link.to === target : link.from === target));
    }
    case 'split': {
      const first = shape.withLeader && leader !== null ? [leader] : [];
      const minority = new Set([...first, ...shape.order.filter((index) => !first.includes(index))].slice(0, shape.minoritySize));
      return all.filter((link) => minority.has(link.from) !== minority.has(link.to));
    }
    case 'bridge': {
      const half = Math.floor((nodes - 1) / 2);
      const left = new Set(shape.order.slice(0, half));
      const right = new Set(shape.order.slice(half + 1));
      return all.filter((link) => (left.has(link.from) && right.has(link.to)) || (right.has(link.from) && left.has(link.to)));
    }
    default:
      return assertNever(shape, 'network shape');
  }
}

/** A one-line description of an episode's fault, for logs. */
export function describeSpec(spec: FaultSpec): string {
  const target = (t: NodeTarget): string => (t.kind === 'leader' ? 'leader' : `node ${t.index + 1}`);
  const targets = (ts: readonly NodeTarget[] | 'all'): string => (ts === 'all' ? 'all nodes' : ts.map(target).join(', '));
  switch (spec.kind) {
    case 'kill':
    case 'pause':
      return `${spec.kind} ${targets(spec.targets)}`;
    case 'partition': {
      const shape = spec.shape;
      const flap = spec.flapMs === null ? '' : `, flapping every ${spec.flapMs} ms`;
      switch (shape.kind) {
        case 'isolate':
          return `isolate ${target(shape.target)} (${spec.mode}${flap})`;
        case 'one-way':
          return `one-way ${shape.direction} ${target(shape.target)} (${spec.mode}${flap})`;
        case 'split':
          return `split ${shape.minoritySize}/${shape.order.length - shape.minoritySize}${shape.withLeader ? ' leader in minority' : ''} (${spec.mode}${flap})`;
        case 'bridge':
          return `bridge (${spec.mode}${flap})`;
        case 'slow':
          return `slow network ${shape.delayMs}±${shape.jitterMs} ms`;
        default:
          return assertNever(shape, 'network shape');
      }
    }
    case 'disk':
      return `slow disk +${spec.delayMs} ms/fsync on ${targets(spec.targets)}`;
    case 'clock':
      return `clock ${spec.offsetMs >= 0 ? '+' : ''}${(spec.offsetMs / 1000).toFixed(1)} s on ${targets(spec.targets)}`;
    default:
      return assertNever(spec, 'fault spec');
  }
}

/** Runs a plan against a cluster; `stop` cuts it short, `healAll` undoes every fault. */
export class Nemesis {
  /** Episodes started, per fault kind. */
  readonly started = new Map<FaultKind, number>(FAULT_KINDS.map((kind) => [kind, 0]));
  private stopped = false;
  private readonly wakers = new Set<() => void>();
  private origin = 0;

  constructor(
    private readonly cluster: TortureCluster,
    private readonly plan: readonly FaultEpisode[],
    private readonly log: (line: string) => void,
  ) {}

  get faults(): number {
    let total = 0;
    for (const count of this.started.values()) total += count;
    return total;
  }

  /** Runs every episode at its time (relative to now); resolves when all are done or `stop` was called. */
  async run(): Promise<void> {
    this.origin = performance.now();
    const byCategory = new Map<Category, FaultEpisode[]>();
    for (const episode of this.plan) {
      const category = categoryOf(episode.spec.kind);
      byCategory.set(category, [...(byCategory.get(category) ?? []), episode]);
    }
    await Promise.all([...byCategory.values()].map((episodes) => this.runCategory(episodes)));
  }

  /** Stops starting episodes and ends the running ones early. */
  stop(): void {
    this.stopped = true;
    for (const wake of this.wakers) wake();
    this.wakers.clear();
  }

  /** Heals everything: every link passes, paused nodes continue, dead ones restart, disks and clocks are normal. */
  async healAll(): Promise<void> {
    this.cluster.network.heal();
    const indices = Array.from({ length: this.cluster.size }, (_, index) => index);
    for (const index of indices) this.cluster.resume(index);
    await Promise.all(indices.map((index) => this.cluster.start(index)));
    await Promise.all(indices.map((index) => this.cluster.control(index, { type: 'fsync-delay', ms: 0 })));
    await Promise.all(indices.map((index) => this.cluster.control(index, { type: 'clock-offset', ms: 0 })));
  }

  private async runCategory(episodes: readonly FaultEpisode[]): Promise<void> {
    for (const episode of episodes) {
      await this.sleepUntil(episode.startMs);
      if (this.stopped) return;
      this.started.set(episode.spec.kind, (this.started.get(episode.spec.kind) ?? 0) + 1);
      await this.execute(episode);
    }
  }

  private async execute(episode: FaultEpisode): Promise<void> {
    const end = episode.startMs + episode.durationMs;
    const spec = episode.spec;
    switch (spec.kind) {
      case 'kill': {
        const targets = await this.resolveAll(spec.targets);
        const killed: number[] = [];
        for (const index of targets) if (await this.cluster.kill(index)) killed.push(index);
        this.note(`kill ${names(killed)}${this.leaderNote(spec.targets)}, down for ${episode.durationMs} ms`);
        await this.sleepUntil(end);
        await Promise.all(killed.map((index) => this.cluster.start(index)));
        this.note(`restarted ${names(killed)}`);
        return;
      }
      case 'pause': {
        const targets = await this.resolveAll(spec.targets);
        const paused = targets.filter((index) => this.cluster.pause(index));
        this.note(`SIGSTOP ${names(paused)}${this.leaderNote(spec.targets)} for ${episode.durationMs} ms`);
        await this.sleepUntil(end);
        for (const index of paused) this.cluster.resume(index);
        this.note(`SIGCONT ${names(paused)}`);
        return;
      }
      case 'partition':
        await this.partition(spec, end);
        return;
      case 'disk': {
        const targets = spec.targets === 'all' ? this.allNodes() : await this.resolveAll(spec.targets);
        await Promise.all(targets.map((index) => this.cluster.control(index, { type: 'fsync-delay', ms: spec.delayMs })));
        this.note(`slow disk +${spec.delayMs} ms per fsync on ${names(targets)} for ${episode.durationMs} ms`);
        await this.sleepUntil(end);
        await Promise.all(targets.map((index) => this.cluster.control(index, { type: 'fsync-delay', ms: 0 })));
        this.note(`disk normal on ${names(targets)}`);
        return;
      }
      case 'clock': {
        const targets = spec.targets === 'all' ? this.allNodes() : await this.resolveAll(spec.targets);
        await Promise.all(targets.map((index) => this.cluster.control(index, { type: 'clock-offset', ms: spec.offsetMs })));
        this.note(`clock jump ${spec.offsetMs >= 0 ? '+' : ''}${(spec.offsetMs / 1000).toFixed(1)} s on ${names(targets)} for ${episode.durationMs} ms`);
        await this.sleepUntil(end);
        await Promise.all(targets.map((index) => this.cluster.control(index, { type: 'clock-offset', ms: 0 })));
        this.note(`clock back on ${names(targets)}`);
        return;
      }
      default:
        assertNever(spec, 'fault spec');
    }
  }

  private async partition(spec: Extract<FaultSpec, { kind: 'partition' }>, end: number): Promise<void> {
    const network = this.cluster.network;
    const shape = spec.shape;
    let modeOf: (link: Link) => LinkMode;
    let description: string;
    if (shape.kind === 'slow') {
      const mode: LinkMode = { kind: 'delay', delayMs: shape.delayMs, jitterMs: shape.jitterMs };
      modeOf = () => mode;
      description = `every link ${describeMode(mode)}`;
    } else {
      const leader = await this.cluster.leader();
      const resolveTarget = (target: NodeTarget): number => (target.kind === 'node' ? target.index : (leader ?? target.fallback));
      const links = shapeLinks(shape, this.cluster.size, resolveTarget, leader);
      const keys = new Set(links.map((link) => `${link.from}>${link.to}`));
      const mode: LinkMode = { kind: spec.mode };
      modeOf = (link) => (keys.has(`${link.from}>${link.to}`) ? mode : PASS);
      description = `${describeSpec(spec)}: ${links.map((link) => `${link.from + 1}->${link.to + 1}`).join(' ')}`;
    }
    network.setAll(modeOf);
    this.note(`network: ${description}`);
    if (spec.flapMs === null) {
      await this.sleepUntil(end);
    } else {
      // Flapping: the same partition comes and goes until the episode ends.
      let on = true;
      // Bounded by `end`: each iteration sleeps flapMs (>= 100 ms) or stops.
      while (!this.stopped && this.elapsed() + spec.flapMs < end) {
        await this.sleepUntil(this.elapsed() + spec.flapMs);
        on = !on;
        network.setAll(on ? modeOf : () => PASS);
      }
      await this.sleepUntil(end);
    }
    network.heal();
    this.note('network healed');
  }

  private async resolveAll(targets: readonly NodeTarget[]): Promise<number[]> {
    const needLeader = targets.some((target) => target.kind === 'leader');
    const leader = needLeader ? await this.cluster.leader() : null;
    const resolved: number[] = [];
    for (const target of targets) {
      const index = target.kind === 'node' ? target.index : (leader ?? target.fallback);
      if (!resolved.includes(index)) resolved.push(index);
    }
    return resolved;
  }

  private leaderNote(targets: readonly NodeTarget[]): string {
    return targets.some((target) => target.kind === 'leader') ? ' (leader-targeted)' : '';
  }

  private allNodes(): number[] {
    return Array.from({ length: this.cluster.size }, (_, index) => index);
  }

  private elapsed(): number {
    return performance.now() - this.origin;
  }

  private note(line: string): void {
    this.log(`[${(this.elapsed() / 1000).toFixed(1).padStart(6)}s] ${line}`);
  }

  /** Sleeps until `atMs` after the start, or until `stop`. */
  private sleepUntil(atMs: number): Promise<void> {
    const delayMs = atMs - this.elapsed();
    if (this.stopped || delayMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, delayMs);
      this.wakers.add(wake);
    });
  }
}

function categoryOf(kind: FaultKind): Category {
  switch (kind) {
    case 'kill':
    case 'pause':
      return 'process';
    case 'partition':
      return 'network';
    case 'disk':
      return 'disk';
    case 'clock':
      return 'clock';
    default:
      return assertNever(kind, 'fault kind');
  }
}

function names(indices: readonly number[]): string {
  return indices.length === 0 ? 'no node' : indices.map((index) => `node ${index + 1}`).join(', ');
}

/** Parses `--faults kill,pause,...`; throws a RangeError naming an unknown kind. */
export function parseFaultKinds(text: string): FaultKind[] {
  const kinds: FaultKind[] = [];
  for (const part of text.split(',').map((item) => item.trim()).filter((item) => item.length > 0)) {
    const kind = FAULT_KINDS.find((candidate) => candidate === part);
    if (kind === undefined) throw new RangeError(`unknown fault kind "${part}"; known: ${FAULT_KINDS.join(', ')}`);
    if (!kinds.includes(kind)) kinds.push(kind);
  }
  return kinds;
}

/**
 * Disk faults on a 3-node cluster of in-process SynodNodes (real files, real TCP), issue 4:
 * - a bit flip or a torn write in a stopped node's log records, its promise records (acceptor
 *   metadata) or a segment header (file metadata), at seeded offsets: the node refuses to start
 *   with a DataCorruptionError naming the file and offset (and logs it), the other two keep
 *   serving writes and linearizable reads, every acknowledged write stays readable; then
 *   `rejoin` rebuilds the node from its peers and all three converge to the same digest;
 * - power loss: all three nodes' logs cut back to the fdatasync point each had reached at one
 *   moment, leaving nothing, a prefix of the unfinished write, or zeros: nothing acknowledged
 *   before that moment is lost, and the replicas converge.
 *
 * SYNOD_LONG=1 runs more seeds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Prng } from '../../src/core/prng.js';
import type { KvOperation } from '../../src/kv/ops.js';
import { makeConfig, type MemberConfig, type NodeConfig } from '../../src/server/config.js';
import { SynodNode } from '../../src/server/node.js';
import { DataCorruptionError } from '../../src/server/rejoin.js';
import type { RequestId, ServiceResult } from '../../src/server/service.js';
import type { FileStorage } from '../../src/storage/file.js';
import {
  type FaultKind,
  type FaultTarget,
  type UnfinishedWrite,
  injectFault,
  planFault,
  powerLoss,
  powerLossPoint,
  type PowerLossPoint,
  walLayout,
} from '../helpers/disk-faults.js';
import { freePorts } from '../helpers/ports.js';

const LONG = process.env.SYNOD_LONG !== undefined && process.env.SYNOD_LONG !== '';
const EXTENSION = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const CLI = fileURLToPath(new URL(`../../src/cli/main${EXTENSION}`, import.meta.url));
const SECRET = 'disk-faults-secret-0123456789ab';
const WAIT_MS = 15_000;

/** Collects log lines (JSON) instead of printing them. */
class LogSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter((line) => line.length > 0));
    callback();
  }
}

/** Three members; `nodes[i]` is member i+1 when running, else null. */
class Cluster {
  readonly nodes: (SynodNode | null)[] = [null, null, null];
  readonly storages = new Map<number, FileStorage>();
  readonly sink = new LogSink();
  /** Every acknowledged write: key -> value. */
  readonly acknowledged = new Map<string, string>();
  private seq = 0;

  private constructor(
    readonly dir: string,
    readonly configs: readonly NodeConfig[],
  ) {}

  /** `front`: member 1's client and HTTP ports (used when it runs as a `synod start` process). */
  static async create(front: { client: number; http: number } | null = null): Promise<Cluster> {
    const dir = await mkdtemp(join(tmpdir(), 'synod-disk-'));
    const ports = await freePorts(3);
    const members: MemberConfig[] = ports.map((port, index) => ({
      id: index + 1,
      peer: { host: '127.0.0.1', port },
      client: index === 0 && front !== null ? { host: '127.0.0.1', port: front.client } : null,
      http: index === 0 && front !== null ? { host: '127.0.0.1', port: front.http } : null,
    }));
    const configs = members.map((member) =>
      makeConfig({ id: member.id, secret: SECRET, dataDir: join(dir, `node-${member.id}`), members, tickMs: 10, logLevel: 'info' }),
    );
    return new Cluster(dir, configs);
  }

  walOf(id: number): string {
    return join(this.config(id).dataDir, 'wal');
  }

  config(id: number): NodeConfig {
    return this.configs[id - 1] as NodeConfig;
  }

  async start(id: number, rejoin = false): Promise<SynodNode> {
    const node = await SynodNode.start(this.config(id), {
      logStream: this.sink,
      processMetrics: false,
      rejoin,
      onStorageOpened: (storage) => this.storages.set(id, storage),
    });
    this.nodes[id - 1] = node;
    return node;
  }

  async stop(id: number): Promise<void> {
    await this.nodes[id - 1]?.stop();
    this.nodes[id - 1] = null;
  }

  running(): SynodNode[] {
    return this.nodes.filter((node): node is SynodNode => node !== null);
  }

  async leader(): Promise<SynodNode> {
    return waitFor('a serving leader', () => this.running().find((node) => node.status().serving));
  }

  /** Submits through the current leader, retrying with the same request id until it succeeds. */
  async submit(operation: KvOperation, id: RequestId = { clientId: 'disk-test', seq: (this.seq += 1) }): Promise<ServiceResult> {
    const deadline = Date.now() + WAIT_MS;
    let last: ServiceResult | null = null;
    while (Date.now() < deadline) {
      const leader = this.running().find((node) => node.status().serving);
      if (leader !== undefined) {
        last = await leader.submit(operation, id, { timeoutMs: 1_000 });
        if (last.ok || last.error === 'cas_failed') return last;
      }
      await sleep(10);
    }
    throw new Error(`${operation.type} did not succeed in time: ${JSON.stringify(last)}`);
  }

  async put(key: string, value: string): Promise<void> {
    const result = await this.submit({ type: 'put', key, value });
    assert.ok(result.ok, JSON.stringify(result));
    this.acknowledged.set(key, value);
  }

  /** Reads every acknowledged key through the leader (read index: linearizable) and compares. */
  async assertAcknowledgedReadable(context: string): Promise<void> {
    const keys = [...this.acknowledged.keys()];
    const results = await Promise.all(keys.map((key) => this.submit({ type: 'get', key })));
    results.forEach((result, index) => {
      const key = keys[index] as string;
      assert.ok(result.ok && result.type === 'get', `${context}: get ${key}: ${JSON.stringify(result)}`);
      assert.equal(result.value, this.acknowledged.get(key), `${context}: acknowledged write of ${key} lost`);
    });
  }

  /** Waits until every running node has applied the same slots to the same state. */
  async converged(context: string): Promise<string> {
    return waitFor(`${context}: replicas to converge`, () => {
      const nodes = this.running();
      const digests = new Set(nodes.map((node) => node.digest()));
      const applied = new Set(nodes.map((node) => node.status().appliedIndex));
      return nodes.length === 3 && digests.size === 1 && applied.size === 1 ? [...digests][0] : undefined;
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.running().map((node) => node.stop()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface FaultCase {
  readonly target: FaultTarget;
  readonly kind: FaultKind;
  readonly seed: number;
}

const TARGETS: readonly FaultTarget[] = ['record', 'promise', 'segment-header', 'last-record'];
const KINDS: readonly FaultKind[] = ['bit-flip', 'torn-write'];
const ROUNDS = LONG ? 4 : 1;
const CASES: FaultCase[] = Array.from({ length: ROUNDS }, (_, round) =>
  TARGETS.flatMap((target, targetIndex) => KINDS.map((kind, kindIndex) => ({ target, kind, seed: 1 + round * 100 + targetIndex * 10 + kindIndex }))),
).flat();

test(`disk faults: ${CASES.length} seeded bit flips and torn writes in records, promises, segment headers and the last record of a stopped node; it refuses with file and offset, the others serve, --rejoin rebuilds it`, { timeout: LONG ? 600_000 : 120_000 }, async (t) => {
  const cluster = await Cluster.create();
  try {
    await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
    for (let index = 0; index < 40; index += 1) await cluster.put(`k${index}`, `v${index}-0`);
    for (const [caseIndex, fault] of CASES.entries()) {
      const random = new Prng(fault.seed);
      const label = `${fault.target} ${fault.kind} (seed ${fault.seed})`;
      // The victim: the leader in odd cases, a follower otherwise.
      const leader = await cluster.leader();
      const followers = cluster.running().filter((node) => node !== leader);
      const victim = caseIndex % 2 === 0 ? leader : (followers[random.int(0, followers.length)] as SynodNode);
      const id = victim.config.id;
      await cluster.stop(id);

      const planned = await planFault(await walLayout(cluster.walOf(id)), fault.target, fault.kind, random);
      await injectFault(planned);
      t.diagnostic(`${label}: node ${id}, ${planned.description}`);
      const linesBefore = cluster.sink.lines.length;
      await assert.rejects(cluster.start(id), (error: unknown) => {
        assert.ok(error instanceof DataCorruptionError, `${label}: ${String(error)}`);
        assert.equal(error.file, planned.file, label);
        assert.equal(error.offset, planned.reportedOffset, `${label}: ${error.message}`);
        assert.match(error.message, new RegExp(`${planned.file}.*offset ${planned.reportedOffset}`));
        assert.match(error.message, /--rejoin/);
        return true;
      });
      const fatal = cluster.sink.lines.slice(linesBefore).map((line) => JSON.parse(line) as { level: number; file?: string; offset?: number; node?: number });
      assert.ok(fatal.some((line) => line.level === 60 && line.node === id && line.file === planned.file && line.offset === planned.reportedOffset), `${label}: a fatal log line names file and offset`);

      // The other two keep serving writes and linearizable reads; nothing acknowledged is lost.
      for (let index = 0; index < 10; index += 1) await cluster.put(`k${(caseIndex * 7 + index) % 60}`, `v-${caseIndex}-${index}`);
      await cluster.assertAcknowledgedReadable(`${label}, node ${id} down`);

      // The operator procedure: rejoin. The damaged log is kept aside; the node relearns and votes again.
      const rejoinStarted = performance.now();
      const rejoined = await cluster.start(id, true);
      assert.ok(rejoined.isRejoining());
      await waitFor(`${label}: node ${id} to rejoin`, () => (rejoined.isRejoining() ? undefined : true));
      t.diagnostic(`${label}: node ${id} rejoined in ${(performance.now() - rejoinStarted).toFixed(0)} ms (tick 10 ms)`);
      const aside = (await readdir(cluster.config(id).dataDir)).filter((name) => name.startsWith('wal.damaged-'));
      assert.ok(aside.length >= 1, 'the damaged log is kept');
      assert.ok((await readdir(join(cluster.config(id).dataDir, aside[aside.length - 1] as string))).includes(basename(planned.file)));
      await cluster.put(`after-${caseIndex}`, 'x');
      await cluster.converged(label);
      await cluster.assertAcknowledgedReadable(`${label}, after rejoin`);
    }
  } finally {
    await cluster.close();
  }
});

test('a rejoin needs every other member: with one down it does not finish and the rejoining node casts no vote; it survives a restart and finishes once all are up', { timeout: 120_000 }, async () => {
  const cluster = await Cluster.create();
  try {
    await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
    for (let index = 0; index < 20; index += 1) await cluster.put(`k${index}`, `v${index}`);
    await cluster.stop(1);
    await cluster.stop(3);
    const rejoining = await cluster.start(1, true);
    // Nodes 1 (rejoining) and 2 are up: a majority of processes, but only one voter. No leader.
    await sleep(500);
    assert.ok(rejoining.isRejoining());
    assert.ok(cluster.running().every((node) => !node.status().serving), 'a rejoining node must not count in a quorum');
    // A restart in the middle resumes the rejoin (the marker is durable), even without --rejoin.
    await cluster.stop(1);
    const resumed = await cluster.start(1);
    assert.ok(resumed.isRejoining());
    await cluster.start(3);
    await waitFor('node 1 to rejoin', () => (resumed.isRejoining() ? undefined : true));
    await cluster.put('after', 'x');
    await cluster.converged('after the rejoin');
    await cluster.assertAcknowledgedReadable('after the rejoin');
    // Rejoined for good: a plain restart is a normal start.
    await cluster.stop(1);
    assert.equal((await cluster.start(1)).isRejoining(), false);
  } finally {
    await cluster.close();
  }
});

const POWER_LOSS_SEEDS = LONG ? [1, 2, 3, 4, 5, 6, 7, 8, 9] : [1, 2, 3];

test(`power loss: every node cut back to its last fdatasync point (${POWER_LOSS_SEEDS.length} seeds; nothing, a prefix or zeros of the unfinished write left): nothing acknowledged is lost`, { timeout: LONG ? 600_000 : 120_000 }, async (t) => {
  for (const seed of POWER_LOSS_SEEDS) {
    const random = new Prng(seed);
    const cluster = await Cluster.create();
    try {
      await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
      for (let index = 0; index < 20; index += 1) await cluster.put(`before-${index}`, `v${index}`);
      // Eight clients write one key after another; the power goes out when a seeded number of
      // writes has been acknowledged: at that moment, what each node had fsync'd and what clients
      // had been told. The other clients' writes are then somewhere between proposal and answer.
      const written = new Map<string, string>();
      const cutAfter = random.int(1, 70);
      let acknowledgedCount = 0;
      let cut: { points: Map<number, PowerLossPoint>; acknowledged: Map<string, string> } | null = null;
      const client = async (clientIndex: number): Promise<void> => {
        for (let index = 0; index < 10; index += 1) {
          const key = `during-${clientIndex}-${index}`;
          const value = `w${seed}-${clientIndex}-${index}`;
          const result = await cluster.submit({ type: 'put', key, value }, { clientId: `client-${clientIndex}`, seq: index + 1 });
          assert.ok(result.ok);
          written.set(key, value);
          acknowledgedCount += 1;
          if (cut === null && acknowledgedCount >= cutAfter) {
            cut = {
              points: new Map([1, 2, 3].map((id) => [id, powerLossPoint(cluster.storages.get(id) as FileStorage)])),
              acknowledged: new Map([...cluster.acknowledged, ...written]),
            };
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, (_, clientIndex) => client(clientIndex)));
      const { points, acknowledged: acknowledgedAtCut } = cut as unknown as { points: Map<number, PowerLossPoint>; acknowledged: Map<string, string> };
      await Promise.all([1, 2, 3].map((id) => cluster.stop(id)));
      const modes: UnfinishedWrite[] = ['nothing', 'prefix', 'zeros', 'in-place'];
      for (const [id, point] of points) {
        const mode = modes[random.int(0, modes.length)] as UnfinishedWrite;
        const cut = await powerLoss(point, mode, random);
        t.diagnostic(`seed ${seed}: node ${id} cut at ${point.durableLength} (${point.writtenLength - point.durableLength} bytes written but not fsync'd at the cut; ${cut} bytes lost, ${mode} of the unfinished write left)`);
      }
      await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
      cluster.acknowledged.clear();
      for (const [key, value] of acknowledgedAtCut) cluster.acknowledged.set(key, value);
      t.diagnostic(`seed ${seed}: ${acknowledgedAtCut.size} writes acknowledged before the cut`);
      await cluster.assertAcknowledgedReadable(`seed ${seed}, after power loss`);
      // Writes acknowledged after the cut may be lost, but whatever survives is what was written.
      let survived = 0;
      for (const [key, value] of written) {
        if (acknowledgedAtCut.has(key)) continue;
        const got = await cluster.submit({ type: 'get', key });
        assert.ok(got.ok && got.type === 'get' && (got.value === null || got.value === value), `seed ${seed}: ${key}`);
        if (got.ok && got.type === 'get' && got.value !== null) survived += 1;
      }
      t.diagnostic(`seed ${seed}: of ${written.size + 20 - acknowledgedAtCut.size} writes acknowledged after the cut, ${survived} survived`);
      await cluster.put('after', 'x');
      await cluster.converged(`seed ${seed}, after power loss`);
    } finally {
      await cluster.close();
    }
  }
});

test('synod start on a damaged data directory exits 1 with one line naming file, offset and --rejoin; synod start --rejoin rebuilds the node', { timeout: 120_000 }, async () => {
  const [clientPort, httpPort] = (await freePorts(2)) as [number, number];
  const cluster = await Cluster.create({ client: clientPort, http: httpPort });
  const children: ReturnType<typeof spawn>[] = [];
  try {
    await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
    for (let index = 0; index < 20; index += 1) await cluster.put(`k${index}`, `v${index}`);
    await cluster.stop(1);
    const planned = await planFault(await walLayout(cluster.walOf(1)), 'record', 'bit-flip', new Prng(7));
    await injectFault(planned);
    const secretFile = join(cluster.dir, 'secret');
    await writeFile(secretFile, SECRET, { mode: 0o600 });
    const spec = cluster.configs.map((config) => {
      const member = config.members[config.id - 1] as MemberConfig;
      return `${member.id}=127.0.0.1:${member.peer.port}${member.client === null || member.http === null ? '' : `:${member.client.port}:${member.http.port}`}`;
    });
    const args = ['start', '--id', '1', '--peers', spec.join(','), '--data', cluster.config(1).dataDir, '--secret-file', secretFile, '--tick-ms', '10'];
    const run = (extra: string[]) => {
      const child = spawn(process.execPath, [...process.execArgv, CLI, ...args, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const output = { stdout: '', stderr: '' };
      child.stdout?.on('data', (chunk: Buffer) => (output.stdout += chunk.toString('utf8')));
      child.stderr?.on('data', (chunk: Buffer) => (output.stderr += chunk.toString('utf8')));
      const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      return { child, output, exit };
    };

    const refused = run([]);
    assert.equal(await refused.exit, 1);
    const stderrLines = refused.output.stderr.trim().split('\n');
    assert.equal(stderrLines.length, 1, refused.output.stderr);
    assert.match(stderrLines[0] as string, new RegExp(`^synod: node 1 refuses to start: storage corruption in ${planned.file} at byte offset ${planned.reportedOffset}: .*--rejoin`));
    const fatal = refused.output.stdout.trim().split('\n').map((line) => JSON.parse(line) as { level: number; file?: string; offset?: number; msg: string });
    assert.ok(fatal.some((line) => line.level === 60 && line.file === planned.file && line.offset === planned.reportedOffset), refused.output.stdout);

    const rejoining = run(['--rejoin']);
    await waitFor('the rejoined process to say so', () => (rejoining.output.stdout.includes('rejoined: this node votes again') ? true : undefined), 30_000);
    await cluster.put('after-rejoin', 'yes');
    const leader = await cluster.leader();
    const status = await waitForAsync('the process to catch up', async () => {
      const response = await fetch(`http://127.0.0.1:${httpPort}/v1/status`).catch(() => null);
      const body = (await response?.json().catch(() => null)) as { appliedIndex?: number; revision?: number } | null;
      const target = leader.status();
      return body !== null && body.appliedIndex === target.appliedIndex && body.revision === target.revision ? body : undefined;
    });
    assert.equal(status.revision, leader.status().revision);
    rejoining.child.kill('SIGTERM');
    assert.equal(await rejoining.exit, 0);
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await cluster.close();
  }
});

async function waitForAsync<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

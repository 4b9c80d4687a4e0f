/**
 * `synod torture` end to end: the real command, real node processes, real sockets through the
 * proxies, real files; every fault kind. A short run of 3 nodes and one of 5; SYNOD_LONG=1 runs
 * each for two minutes instead. Asserts the exit code and the last line, and that every fault
 * kind was injected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHistory } from '../../src/check/history.js';
import { FAULT_KINDS, planFaults } from '../../src/torture/nemesis.js';

const EXTENSION = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const CLI = fileURLToPath(new URL(`../../src/cli/main${EXTENSION}`, import.meta.url));
const LONG = process.env.SYNOD_LONG === '1';
const DURATION_S = LONG ? 120 : 45;

interface Run {
  readonly code: number | null;
  readonly lines: string[];
}

function runTorture(args: readonly string[]): Promise<Run> {
  const child = spawn(process.execPath, [...process.execArgv, CLI, 'torture', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  return new Promise((resolve) => {
    child.on('exit', (code) => resolve({ code, lines: output.trim().split('\n') }));
  });
}

async function tortureTest(nodes: number, seed: number): Promise<void> {
  // The seed's plan has every kind of fault, so the run below must inject each of them.
  const planned = new Set(planFaults({ seed, nodes, durationMs: DURATION_S * 1000, kinds: [...FAULT_KINDS] }).map((episode) => episode.spec.kind));
  assert.deepEqual([...planned].sort(), [...FAULT_KINDS].sort());
  const dir = await mkdtemp(join(tmpdir(), 'synod-torture-test-'));
  const history = join(dir, 'history.jsonl');
  try {
    const run = await runTorture(['--nodes', String(nodes), '--duration', String(DURATION_S), '--seed', String(seed), '--history', history]);
    const output = run.lines.join('\n');
    assert.equal(run.code, 0, `synod torture failed:\n${output}`);
    const summary = JSON.parse(run.lines.at(-1) as string) as Record<string, unknown>;
    assert.deepEqual(Object.keys(summary), ['nodes', 'seed', 'ops', 'faults', 'unknown', 'linearizable', 'lostAcknowledgedWrites', 'converged']);
    assert.equal(summary.nodes, nodes);
    assert.equal(summary.seed, seed);
    assert.equal(summary.linearizable, true);
    assert.equal(summary.lostAcknowledgedWrites, 0);
    assert.equal(summary.converged, true);
    assert.ok((summary.faults as number) >= 5, output);
    assert.ok((summary.ops as number) > 100, output);
    const byKind = run.lines.find((line) => line.startsWith('faults by kind: '));
    assert.ok(byKind !== undefined, output);
    for (const kind of FAULT_KINDS) assert.match(byKind, new RegExp(`${kind} [1-9]`), `${kind} was injected: ${byKind}`);
    // The history file is in the documented format and holds every operation, unknowns as ok:null.
    const ops = parseHistory(await readFile(history, 'utf8'));
    assert.equal(ops.length, summary.ops);
    assert.equal(ops.filter((op) => op.ok === null).length, summary.unknown);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const TIMEOUT_MS = (DURATION_S + 150) * 1000;

test(`synod torture: 3 nodes, ${DURATION_S} s, every fault kind`, { timeout: TIMEOUT_MS }, () => tortureTest(3, 11));

test(`synod torture: 5 nodes, ${DURATION_S} s, every fault kind`, { timeout: TIMEOUT_MS }, () => tortureTest(5, 12));

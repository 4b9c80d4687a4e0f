/**
 * Crash test: a child process appends to a FileStorage and reports each durable append; the test
 * kills it with SIGKILL at a random point, reopens the log, and checks that every acknowledged
 * record is there and that the state is a clean prefix of what was written. Repeated on the same
 * directory, so later runs recover a log that earlier kills left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ballotNode, makeBallot } from '../../src/core/ballot.js';
import { FileStorage } from '../../src/storage/file.js';
import { sortedEntries } from './conformance.js';
import { CRASH_SEGMENT_BYTES_MAX, crashAccept } from './crash-writer.js';

const KILLS_COUNT = 5;
const ACKS_BEFORE_KILL_MAX = 300;
/** The writer is started with the same extension and loader as this file (.ts under tsx, .js compiled). */
const WRITER_PATH = fileURLToPath(new URL(`./crash-writer${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

/** Runs the writer until it has reported `acksTarget` acks, kills it, returns the highest acked slot. */
async function runAndKill(directory: string, acksTarget: number): Promise<number> {
  const execArgv = process.execArgv.filter((argument) => !argument.startsWith('--test'));
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [...execArgv, WRITER_PATH, directory], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let ackedSlot = 0;
  let acks = 0;
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    const lines = stdout.split('\n');
    stdout = lines.pop() ?? '';
    for (const line of lines) {
      const match = /^ack (\d+)$/.exec(line);
      assert.ok(match?.[1] !== undefined, `unexpected writer output: ${line}`);
      const slot = Number(match[1]);
      assert.ok(slot > ackedSlot, 'acks arrive in slot order');
      ackedSlot = slot;
      acks += 1;
      if (acks === acksTarget) child.kill('SIGKILL');
    }
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
  );
  assert.equal(signal, 'SIGKILL', `writer exited on its own (code ${code}): ${stderr}`);
  return ackedSlot;
}

/** Asserts the recovered state is a prefix 1..K of the writer's records with K >= `ackedSlot`. */
async function assertDurablePrefix(directory: string, ackedSlot: number): Promise<number> {
  const warnings: string[] = [];
  const storage = await FileStorage.open(directory, {
    segmentBytesMax: CRASH_SEGMENT_BYTES_MAX,
    logger: { warn: (message) => warnings.push(message) },
  });
  try {
    const entries = sortedEntries(storage.state());
    const lastSlot = entries.length;
    assert.ok(lastSlot >= ackedSlot, `acknowledged slot ${ackedSlot} lost: log ends at ${lastSlot}`);
    entries.forEach((entry, index) => {
      const expected = crashAccept(index + 1);
      assert.ok(expected.type === 'accept');
      assert.deepStrictEqual(entry, { slot: expected.slot, ballot: expected.ballot, value: expected.value, chosen: false });
    });
    // The promise is that of the batch holding the last slot, or of the next batch if its
    // promise record made it to disk without its accepts.
    const promised = storage.state().promised;
    assert.equal(ballotNode(promised), 1);
    assert.ok(promised <= makeBallot(lastSlot + 1, 1), `promise ${promised} beyond the written prefix`);
    return lastSlot;
  } finally {
    await storage.close();
  }
}

test(`crash: ${KILLS_COUNT} SIGKILLs at random points lose no acknowledged record`, { timeout: 60_000 }, async () => {
  const directory = await mkdtemp(join(tmpdir(), 'synod-crash-'));
  try {
    let ackedSlot = 0;
    for (let kill = 0; kill < KILLS_COUNT; kill += 1) {
      const acksTarget = 1 + Math.floor(Math.random() * ACKS_BEFORE_KILL_MAX);
      const acked = await runAndKill(directory, acksTarget);
      ackedSlot = Math.max(ackedSlot, acked);
      const lastSlot = await assertDurablePrefix(directory, ackedSlot);
      assert.ok(lastSlot >= ackedSlot);
    }
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

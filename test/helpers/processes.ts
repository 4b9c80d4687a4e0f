/**
 * Real `synod` processes for tests: spawn `synod start` nodes (or any subcommand) from the sources
 * under tsx or from dist/, keep their output, wait for conditions, read their Prometheus metrics,
 * and clean up. Import-safe (no tests here).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const EXTENSION = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
/** The `synod` command's entry point, next to this build of the tests. */
export const CLI = fileURLToPath(new URL(`../../src/cli/main${EXTENSION}`, import.meta.url));

/** Children still running: killed when this process exits, however the test ended. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Ties `child` to this process: it does not keep the test process alive (a test that failed
 * half-way must not hang the run), and it is SIGKILLed when the test process exits.
 */
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const running of live) running.kill('SIGKILL');
    });
  }
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
}

/** A child process and everything it printed. */
export interface Spawned {
  readonly child: ChildProcess;
  output(): string;
}

/** Runs `synod <args>` as a child process, collecting stdout and stderr. */
export function spawnSynod(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Spawned {
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  track(child);
  const chunks: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
  return { child, output: () => chunks.join('') };
}

/** Runs `synod <args>` to completion. */
export async function runSynod(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
  return { code, stdout, stderr };
}

/** Kills `child` with `signal` and waits for it to exit. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.ref(); // tracked children are unref'd; waiting for this one's exit must keep us alive
  child.kill(signal);
  await exited;
}

/** Polls `probe` until it returns a value (errors count as "not yet"); throws after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await Promise.resolve().then(probe).catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * The value of the sample of `metric` whose labels include every `labels` pair, in a Prometheus
 * text exposition; 0 when there is no such sample (counters with labels appear on first use).
 */
export function metricValue(exposition: string, metric: string, labels: Readonly<Record<string, string>> = {}): number {
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    const labelText = /^[^{ ]*\{([^}]*)\}/.exec(line)?.[1] ?? '';
    if (!Object.entries(labels).every(([name, value]) => labelText.includes(`${name}="${value}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/**
 * `synod torture`: Jepsen-style fault testing of a real cluster on this machine (see
 * src/torture/run.ts). Progress and fault lines while it runs; the last line of stdout is one
 * JSON object; the exit code is 1 on any failure, with the seed, the history and the kept run
 * directory printed.
 */
import { randomInt } from 'node:crypto';
import { InvalidArgumentError, type Command } from 'commander';
import { FAULT_KINDS, parseFaultKinds, type FaultKind } from '../torture/nemesis.js';
import { CLIENTS_DEFAULT, KEYS_DEFAULT, THINK_MS_DEFAULT, runTorture } from '../torture/run.js';
import { integer } from './options.js';

interface TortureCommandOptions {
  nodes: number;
  duration: number;
  seed?: number;
  faults: FaultKind[];
  history?: string;
  clients: number;
  keys: number;
  thinkMs: number;
  dir?: string;
  keep?: boolean;
  quiet?: boolean;
}

export function registerTortureCommand(program: Command): void {
  program
    .command('torture')
    .description('fault-test a real local cluster: kills, pauses, partitions, slow disks, clock jumps; check the history')
    .option('--nodes <n>', 'cluster size: 3 or 5', nodeCount, 3)
    .option('--duration <seconds>', 'length of the fault phase', integer('--duration', 1), 60)
    .option('--seed <s>', 'seed of the fault schedule and the workload (default: random, printed)', integer('--seed', 0))
    .option('--faults <kinds>', `comma-separated fault kinds (${FAULT_KINDS.join(',')}); empty for none`, faultKinds, [...FAULT_KINDS])
    .option('--history <file>', 'write the client history as JSON lines')
    .option('--clients <n>', 'concurrent clients', integer('--clients', 1), CLIENTS_DEFAULT)
    .option('--keys <n>', 'keys the clients use', integer('--keys', 1), KEYS_DEFAULT)
    .option('--think-ms <ms>', 'mean pause between one client\'s operations', integer('--think-ms', 0), THINK_MS_DEFAULT)
    .option('--dir <dir>', 'run directory (default: a new temporary one; removed if the run passes)')
    .option('--keep', 'keep the run directory (node logs, data, nemesis log) even if the run passes')
    .option('--quiet', 'print only failures and the JSON line')
    .action((options: TortureCommandOptions) => torture(options));
}

async function torture(options: TortureCommandOptions): Promise<void> {
  const seed = options.seed ?? randomInt(0, 2 ** 31);
  const report = await runTorture({
    nodes: options.nodes,
    durationS: options.duration,
    seed,
    faults: options.faults,
    clients: options.clients,
    keys: options.keys,
    thinkMs: options.thinkMs,
    ...(options.history === undefined ? {} : { historyPath: options.history }),
    ...(options.dir === undefined ? {} : { dir: options.dir }),
    ...(options.keep === true ? { keep: true } : {}),
    log: options.quiet === true ? () => {} : (line) => console.log(line),
  });
  const kinds = Object.entries(report.faultsByKind).map(([kind, count]) => `${kind} ${count}`).join(', ');
  if (options.quiet !== true) console.log(`faults by kind: ${kinds}`);
  for (const failure of report.failures) console.log(`FAIL: ${failure}`);
  if (!report.passed) {
    console.log(`torture FAILED: seed ${seed}, history ${report.historyPath ?? '(none)'}, run directory (node logs, data, nemesis.log) ${report.dir}`);
    console.log(`replay the fault schedule with: npx synod torture --nodes ${options.nodes} --duration ${options.duration} --seed ${seed} --faults ${options.faults.join(',')}`);
  } else if (report.kept) console.log(`run directory kept: ${report.dir}`);
  console.log(JSON.stringify(report.summary));
  process.exitCode = report.passed ? 0 : 1;
}

function nodeCount(text: string): number {
  const value = Number(text);
  if (value !== 3 && value !== 5) throw new InvalidArgumentError('--nodes must be 3 or 5');
  return value;
}

function faultKinds(text: string): FaultKind[] {
  try {
    return parseFaultKinds(text);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

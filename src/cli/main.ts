#!/usr/bin/env node
/**
 * The `synod` command. Subcommands:
 * - `start`    run one node; `cluster` run a local cluster of node processes;
 * - `put`, `get`, `del`, `cas`, `list`, `status`: the client;
 * - `sim`      run the deterministic simulator (many seeds, or one seed with trace/history);
 * - `scenario` run one scripted scenario of SCENARIOS.md (S1..S6) and print its trace and verdict;
 * - `bench`    closed-loop throughput and latency, optionally against etcd and ZooKeeper.
 * - `torture`  fault-test a real local cluster (kills, pauses, partitions, slow disk, clock jumps).
 */
import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { formatHistory } from '../check/history.js';
import { simulate } from '../sim/simulation.js';
import { sweep } from '../sim/sweep.js';
import { scenarioById, scenarioIds } from '../sim/scenarios/registry.js';
import { registerBenchCommand } from './bench-command.js';
import { registerClientCommands } from './client-commands.js';
import { integer } from './options.js';
import { registerServerCommands } from './server-commands.js';
import { registerTortureCommand } from './torture-command.js';

const program = new Command();
program.name('synod').description('Paxos consensus: a replicated key-value store, its simulator and scenarios').showHelpAfterError();
registerServerCommands(program);
registerClientCommands(program);
registerBenchCommand(program);
registerTortureCommand(program);

program
  .command('sim')
  .description('run the deterministic simulator with all faults on')
  .option('--seeds <n>', 'number of seeds to run', integer('--seeds', 1))
  .option('--start <s>', 'first seed of a multi-seed run', integer('--start', 0), 1)
  .option('--seed <s>', 'run one seed', integer('--seed', 0))
  .option('--nodes <n>', 'cluster size', integer('--nodes', 1), 3)
  .option('--history <file>', 'write the client history of --seed as JSON lines')
  .option('--trace', 'print the events of --seed')
  .option('--no-faults', 'turn fault injection off')
  .addOption(new Option('--read-mode <mode>', 'how gets are served: read index, or through the log').choices(['index', 'log']).default('index'))
  .option('--pipeline-depth <slots>', 'the leader\'s window of slots in flight (default: the core\'s 64; nodes run with 1)', integer('--pipeline-depth', 1))
  .addOption(new Option('--disk-loss <mode>', 'crashed nodes sometimes lose their disk and rejoin (or restart empty: amnesia, unsafe)').choices(['rejoin', 'amnesia']))
  .action((options: { seeds?: number; start: number; seed?: number; nodes: number; history?: string; trace?: boolean; faults: boolean; readMode: 'index' | 'log'; diskLoss?: 'rejoin' | 'amnesia'; pipelineDepth?: number }) => {
    const diskLoss = {
      ...(options.diskLoss === undefined ? {} : { diskLoss: options.diskLoss }),
      ...(options.pipelineDepth === undefined ? {} : { pipelineDepthMax: options.pipelineDepth }),
    };
    if (options.seed !== undefined) {
      const trace = options.trace === true ? (line: string) => process.stdout.write(`${line}\n`) : undefined;
      const result = simulate(options.seed, { nodeCount: options.nodes, faults: options.faults, readMode: options.readMode, ...diskLoss, ...(trace ? { trace } : {}) });
      if (options.history !== undefined) writeFileSync(options.history, formatHistory(result.history));
      for (const violation of result.violations) console.log(`VIOLATION ${violation}`);
      if (result.livenessFailure !== null) console.log(`LIVENESS FAILURE ${result.livenessFailure}`);
      const failed = result.violations.length > 0 || result.livenessFailure !== null;
      console.log(
        JSON.stringify({
          seed: result.seed,
          ops: result.ops,
          unknown: result.unknownOps,
          faults: result.faultsInjected,
          messages: result.messagesDelivered,
          virtualMs: Math.round(result.virtualUs / 1000),
          violations: result.violations.length,
          livenessFailures: result.livenessFailure === null ? 0 : 1,
        }),
      );
      process.exitCode = failed ? 1 : 0;
      return;
    }
    const count = options.seeds ?? 100;
    const startedMs = performance.now();
    const summary = sweep(options.start, count, { nodeCount: options.nodes, faults: options.faults, readMode: options.readMode, ...diskLoss }, (result, index) => {
      if (result.violations.length > 0 || result.livenessFailure !== null) {
        console.log(`seed ${result.seed}: ${[...result.violations, result.livenessFailure ?? ''].filter(Boolean).join('; ')}`);
      }
      if (process.stderr.isTTY && (index + 1) % 10 === 0) process.stderr.write(`\r${index + 1}/${count} seeds`);
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    const seconds = (performance.now() - startedMs) / 1000;
    console.log(`${summary.seeds} seeds, ${summary.ops} client ops in ${seconds.toFixed(1)} s: ` +
      `${Math.round(summary.ops / seconds)} simulated ops/s, ${Math.round((summary.seeds / seconds) * 60)} seeds/min`);
    const first = summary.failedSeeds[0];
    if (first !== undefined) console.log(`replay the first failing seed with: npx synod sim --seed ${first} --trace`);
    console.log(JSON.stringify(summary));
    process.exitCode = summary.violations > 0 || summary.livenessFailures > 0 ? 1 : 0;
  });

program
  .command('scenario')
  .description(`run a scripted scenario of SCENARIOS.md (${scenarioIds().join(', ')})`)
  .argument('<id>', 'scenario id, e.g. S1')
  .option('--quiet', 'print only the verdict')
  .action((id: string, options: { quiet?: boolean }) => {
    const scenario = scenarioById(id);
    if (scenario === undefined) {
      console.error(`synod: unknown scenario "${id}"; known: ${scenarioIds().join(', ')}`);
      process.exitCode = 2;
      return;
    }
    const result = scenario.run();
    if (options.quiet !== true) for (const line of result.trace) console.log(line);
    console.log(`${result.id} ${result.title}: ${result.passed ? 'PASS' : 'FAIL'} (${result.checks.filter((check) => check.passed).length}/${result.checks.length} checks)`);
    process.exitCode = result.passed ? 0 : 1;
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`synod: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});

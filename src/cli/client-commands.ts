/**
 * The client subcommands: `synod put|get|del|cas|list|status`. They find the cluster from
 * `--endpoints`, else `SYNOD_ENDPOINTS`, else `<data>/cluster.json` written by `synod cluster`
 * (default `./data`), else the default local ports. `--json` prints one JSON object for scripts.
 * Errors print one line and exit non-zero: 1 for a failed operation (including cas_failed and a
 * get of an absent key), 2 for bad usage.
 *
 * Credentials: the client token from `--token-file`, else `SYNOD_TOKEN`; TLS with `--ca FILE`
 * (else `SYNOD_CA`) or `--tls` (Node's default roots). When the endpoints come from a cluster
 * file, its token and CA files are used too — but never for endpoints given another way, so a
 * local cluster's token is not sent to some other address.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { SynodClient, SynodClientError } from '../client/index.js';
import type { NodeStatusReport } from '../server/service.js';
import { CLUSTER_FILE, clusterCredentials, type ClusterFile } from './server-commands.js';
import { errorMessage, fail, integer } from './options.js';

interface CommonOptions {
  endpoints?: string;
  data?: string;
  timeout: number;
  json?: boolean;
  tokenFile?: string;
  ca?: string;
  tls?: boolean;
}

const DEFAULT_ENDPOINTS = '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003';

export function registerClientCommands(program: Command): void {
  const common = (command: Command): Command =>
    command
      .option('--endpoints <list>', 'client endpoints host:port,... (default: $SYNOD_ENDPOINTS, <data>/cluster.json, or 127.0.0.1:7001-7003)')
      .option('--data <dir>', 'read the endpoints from <dir>/cluster.json (written by synod cluster)')
      .option('--timeout <ms>', 'give up after this long', integer('--timeout', 1), 5_000)
      .option('--json', 'print the result as one JSON object')
      .option('--token-file <file>', 'the client token, for nodes that require one (or set SYNOD_TOKEN)')
      .option('--ca <file>', 'TLS: trust this CA (PEM) for the nodes\' certificates (or set SYNOD_CA)')
      .option('--tls', 'TLS, trusting Node\'s default certificate authorities');

  common(program.command('put').description('set a key').argument('<key>').argument('<value>')).action(
    (key: string, value: string, options: CommonOptions) =>
      run(options, async (client) => {
        const result = await client.put(key, value);
        return [result, `OK (version ${result.version}, revision ${result.revision})`];
      }),
  );

  common(program.command('get').description('read a key (linearizable)').argument('<key>')).action((key: string, options: CommonOptions) =>
    run(options, async (client) => {
      const result = await client.get(key);
      if (result.value === null) {
        if (options.json === true) console.log(JSON.stringify({ key, ...result }));
        else console.error(`synod: key not found: ${key}`);
        process.exitCode = 1;
        return null;
      }
      return [{ key, ...result }, result.value];
    }),
  );

  common(program.command('del').alias('delete').description('delete a key').argument('<key>')).action((key: string, options: CommonOptions) =>
    run(options, async (client) => {
      const result = await client.delete(key);
      return [{ key, ...result }, result.previous === null ? `OK (${key} was absent)` : `OK (deleted, revision ${result.revision})`];
    }),
  );

  common(
    program
      .command('cas')
      .description('set a key only if its current value or version matches')
      .argument('<key>')
      .argument('<value>')
      .option('--expect-value <value>', 'the current value must be this')
      .option('--expect-absent', 'the key must not exist')
      .option('--expect-version <n>', 'the current version must be this (0: absent)', integer('--expect-version', 0)),
  ).action((key: string, value: string, options: CommonOptions & { expectValue?: string; expectAbsent?: boolean; expectVersion?: number }) => {
    if (options.expectValue === undefined && options.expectAbsent !== true && options.expectVersion === undefined) {
      fail('cas needs --expect-value, --expect-absent or --expect-version', 2);
      return Promise.resolve();
    }
    if (options.expectValue !== undefined && options.expectAbsent === true) {
      fail('--expect-value and --expect-absent contradict each other', 2);
      return Promise.resolve();
    }
    const expected = {
      ...(options.expectValue !== undefined ? { expectedValue: options.expectValue } : {}),
      ...(options.expectAbsent === true ? { expectedValue: null } : {}),
      ...(options.expectVersion !== undefined ? { expectedVersion: options.expectVersion } : {}),
    };
    return run(options, async (client) => {
      const result = await client.cas(key, value, expected);
      return [{ key, ...result }, `OK (version ${result.version}, revision ${result.revision})`];
    });
  });

  common(
    program
      .command('list')
      .description('list keys with a prefix, in byte order')
      .argument('[prefix]', 'key prefix (default: all keys)', '')
      .option('--limit <n>', 'most keys to return', integer('--limit', 1), 1000),
  ).action((prefix: string, options: CommonOptions & { limit: number }) =>
    run(options, async (client) => {
      const result = await client.list(prefix, { limit: options.limit });
      const lines = result.entries.map((entry) => `${entry.key} = ${entry.value}`);
      if (result.more) lines.push(`... more keys (raise --limit)`);
      return [result, lines.join('\n')];
    }),
  );

  common(program.command('status').description('every node: role, leader, ballot, slots, lag')).action((options: CommonOptions) =>
    run(options, async (client) => {
      const statuses = await client.statusAll();
      const nodes = statuses.map((entry) => ('status' in entry ? { endpoint: entry.endpoint, ...entry.status } : { endpoint: entry.endpoint, error: entry.error.code, message: entry.error.message }));
      if (statuses.every((entry) => 'error' in entry)) process.exitCode = 1;
      return [{ nodes }, statusTable(statuses.map((entry) => ('status' in entry ? { endpoint: entry.endpoint, status: entry.status } : { endpoint: entry.endpoint, error: entry.error.message })))];
    }),
  );
}

/** Resolves the endpoints, runs `body` with a client, prints its [json, text] answer, maps errors. */
async function run(options: CommonOptions, body: (client: SynodClient) => Promise<[unknown, string] | null>): Promise<void> {
  let client: SynodClient;
  try {
    client = new SynodClient({ ...target(options), timeoutMs: options.timeout, attemptTimeoutMs: Math.min(1_000, options.timeout) });
  } catch (error) {
    fail(errorMessage(error), 2);
    return;
  }
  try {
    const answer = await body(client);
    if (answer !== null) console.log(options.json === true ? JSON.stringify(answer[0]) : answer[1]);
  } catch (error) {
    if (error instanceof SynodClientError) {
      if (options.json === true) {
        console.log(JSON.stringify({ ok: false, error: error.code, message: error.message, ...(error.current ? { current: error.current } : {}) }));
        process.exitCode = 1;
      } else {
        const current = error.current === undefined ? '' : ` (current: ${error.current.value === null ? 'absent' : JSON.stringify(error.current.value)}, version ${error.current.version})`;
        fail(`${error.code}: ${error.message}${current}`);
      }
    } else {
      fail(errorMessage(error));
    }
  } finally {
    await client.close();
  }
}

/** Endpoints and credentials: from flags and environment, else from the cluster file, else defaults. */
function target(options: CommonOptions): { endpoints: string[]; token?: string; tls?: boolean | { ca: string } } {
  const given = options.endpoints ?? process.env.SYNOD_ENDPOINTS;
  const file = given === undefined ? readClusterFile(options.data ?? 'data') : undefined;
  const list = given ?? file?.endpoints ?? DEFAULT_ENDPOINTS;
  const fromFile = file === undefined ? {} : clusterCredentials(file);
  const token = readText(options.tokenFile, 'token file') ?? nonEmpty(process.env.SYNOD_TOKEN) ?? fromFile.token;
  const caFile = options.ca ?? nonEmpty(process.env.SYNOD_CA);
  const tls = caFile !== undefined ? { ca: readText(caFile, 'CA file') as string } : options.tls === true ? true : fromFile.tls;
  return {
    endpoints: list.split(',').map((endpoint) => endpoint.trim()).filter((endpoint) => endpoint.length > 0),
    ...(token === undefined ? {} : { token }),
    ...(tls === undefined ? {} : { tls }),
  };
}

function readText(path: string | undefined, what: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new Error(`cannot read the ${what} ${path}: ${errorMessage(error)}`);
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function readClusterFile(dataDir: string): ClusterFile | undefined {
  const path = join(dataDir, CLUSTER_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const file = JSON.parse(readFileSync(path, 'utf8')) as ClusterFile;
    return typeof file.endpoints === 'string' ? file : undefined;
  } catch {
    return undefined;
  }
}

function statusTable(rows: readonly ({ endpoint: string; status: NodeStatusReport } | { endpoint: string; error: string })[]): string {
  const header = ['node', 'endpoint', 'role', 'leader', 'ballot', 'first-unchosen', 'applied', 'keys', 'lag'];
  const lines = rows.map((row) => {
    if ('error' in row) return ['?', row.endpoint, `unreachable: ${row.error}`, '', '', '', '', '', ''];
    const status = row.status;
    const lag = status.peers.filter((peer) => peer.lag !== null).map((peer) => `n${peer.id}:${peer.lag}`).join(' ');
    return [
      String(status.id),
      row.endpoint,
      status.serving ? 'leader' : status.role,
      status.leader === null ? '-' : String(status.leader.id),
      status.ballot,
      String(status.firstUnchosen),
      String(status.appliedIndex),
      String(status.keys),
      lag === '' ? '-' : lag,
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)));
  return [header, ...lines].map((line) => line.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()).join('\n');
}

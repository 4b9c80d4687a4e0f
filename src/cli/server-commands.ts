/**
 * `synod start` (one node) and `synod cluster` (a local cluster of child processes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import {
  ConfigError,
  formatHostPort,
  formatMembers,
  makeConfig,
  parseMembers,
  readConfigFile,
  type MemberConfig,
  type NodeConfig,
} from '../server/config.js';
import { SynodServer } from '../server/server.js';
import { SynodClient } from '../client/index.js';
import { FaultControl } from '../torture/fault-control.js';
import { errorMessage, fail, integer } from './options.js';

/** What `synod cluster` writes to `<data>/cluster.json` for the client commands and for people. */
export interface ClusterFile {
  readonly clusterId: string;
  readonly endpoints: string;
  readonly nodes: readonly { id: number; client: string; http: string; peer: string; data: string; log: string }[];
  /** The client token's file when the nodes require one (the token itself stays in that 0600 file). */
  readonly tokenFile?: string;
  /** The CA file clients must trust when the nodes speak TLS. */
  readonly caFile?: string;
}

export const CLUSTER_FILE = 'cluster.json';
const SECRET_FILE = 'secret';
const CLIENT_TOKEN_FILE = 'client-token';
const STOP_GRACE_MS = 10_000;

interface StartOptions {
  id?: number;
  peers?: string;
  data?: string;
  config?: string;
  clusterId?: string;
  secretFile?: string;
  tickMs?: number;
  readMode?: 'index' | 'log';
  logLevel?: NodeConfig['logLevel'];
  requestTimeoutMs?: number;
  pipelineDepth?: number;
  rejoin?: boolean;
  clientBind?: string;
  clientTokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsPeerMutual?: boolean;
}

interface ClusterOptions {
  nodes: number;
  data: string;
  portBase: number;
  readMode: 'index' | 'log';
  logLevel: string;
  clientToken?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsPeerMutual?: boolean;
}

export function registerServerCommands(program: Command): void {
  program
    .command('start')
    .description('run one node of a cluster (logs JSON lines to stdout)')
    .option('--id <n>', 'this node\'s id (1..1023)', integer('--id', 1))
    .option('--peers <spec>', 'every member, this one included: id=host:peerPort[:clientPort[:httpPort]],...')
    .option('--data <dir>', 'data directory (the log and the lock live here)')
    .option('--config <file>', 'JSON config file (flags override it)')
    .option('--cluster-id <id>', 'cluster id; peers of another cluster are refused')
    .option('--secret-file <file>', 'file holding the cluster secret (or set SYNOD_SECRET)')
    .option('--tick-ms <ms>', 'real time per replica tick', integer('--tick-ms', 1))
    .addOption(new Option('--read-mode <mode>', 'linearizable reads by read index, or through the log').choices(['index', 'log']))
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']))
    .option('--request-timeout-ms <ms>', 'answer timeout after this long', integer('--request-timeout-ms', 1))
    .option('--pipeline-depth <slots>', 'slots the leader keeps in flight (smaller: bigger batches)', integer('--pipeline-depth', 1))
    .option('--rejoin', 'rebuild this node from its peers (its log is damaged or lost): moves the log aside; needs every other member running')
    .option('--client-bind <host>', 'address the client and HTTP listeners bind (default 127.0.0.1; 0.0.0.0 for every interface)')
    .option('--client-token-file <file>', 'require the client token in this file (or set SYNOD_CLIENT_TOKEN)')
    .option('--tls-cert <file>', 'PEM certificate: TLS for peers, clients and HTTP (with --tls-key and --tls-ca)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA that peers\' certificates must chain to')
    .option('--tls-peer-mutual', 'peers also present their certificates when dialing (mutual TLS)')
    .action((options: StartOptions) => runStart(options));

  program
    .command('cluster')
    .description('run a local cluster of node processes on loopback (Ctrl-C stops them all)')
    .option('--nodes <n>', 'number of nodes', integer('--nodes', 1), 3)
    .option('--data <dir>', 'data directory (one subdirectory per node)', 'data')
    .option('--port-base <port>', 'node i serves clients on base+i, HTTP on base+1000+i, peers on base+100+i', integer('--port-base', 1), 7000)
    .addOption(new Option('--read-mode <mode>', 'linearizable reads by read index, or through the log').choices(['index', 'log']).default('index'))
    .addOption(new Option('--log-level <level>', 'node log level').choices(['trace', 'debug', 'info', 'warn', 'error']).default('info'))
    .option('--client-token', 'require a client token (generated once into <data>/client-token, mode 0600)')
    .option('--tls-cert <file>', 'PEM certificate for 127.0.0.1 every node uses: TLS for peers, clients and HTTP')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA that signed --tls-cert')
    .option('--tls-peer-mutual', 'mutual TLS between peers')
    .action((options: ClusterOptions) => runCluster(options));
}

/** The node's configuration from `synod start`'s flags, environment and config file (flags win). */
export function startConfig(options: StartOptions): NodeConfig {
  const file = options.config === undefined ? {} : readConfigFile(options.config);
  const secret = readSecret(options.secretFile) ?? file.secret;
  const clientToken = readClientToken(options.clientTokenFile) ?? file.clientToken ?? null;
  const members = options.peers === undefined ? file.members : parseMembers(options.peers);
  const id = options.id ?? file.id;
  const dataDir = options.data ?? file.dataDir;
  if (id === undefined) throw new ConfigError('--id is required');
  if (members === undefined || members.length === 0) throw new ConfigError('--peers is required');
  if (dataDir === undefined) throw new ConfigError('--data is required');
  if (secret === undefined) throw new ConfigError('a cluster secret is required: --secret-file FILE or SYNOD_SECRET');
  const overrides: Partial<NodeConfig> = {};
  if (options.clusterId !== undefined) Object.assign(overrides, { clusterId: options.clusterId });
  if (options.tickMs !== undefined) Object.assign(overrides, { tickMs: options.tickMs });
  if (options.readMode !== undefined) Object.assign(overrides, { readMode: options.readMode });
  if (options.logLevel !== undefined) Object.assign(overrides, { logLevel: options.logLevel });
  if (options.requestTimeoutMs !== undefined) Object.assign(overrides, { requestTimeoutMs: options.requestTimeoutMs });
  if (options.pipelineDepth !== undefined) Object.assign(overrides, { pipelineDepthMax: options.pipelineDepth });
  if (options.clientBind !== undefined) Object.assign(overrides, { clientBind: options.clientBind });
  if (options.tlsCert !== undefined) Object.assign(overrides, { tlsCert: options.tlsCert });
  if (options.tlsKey !== undefined) Object.assign(overrides, { tlsKey: options.tlsKey });
  if (options.tlsCa !== undefined) Object.assign(overrides, { tlsCa: options.tlsCa });
  if (options.tlsPeerMutual !== undefined) Object.assign(overrides, { tlsPeerMutual: options.tlsPeerMutual });
  return makeConfig({ ...file, ...overrides, id, secret, dataDir, members, clientToken });
}

/** The client token from `--client-token-file`, else `$SYNOD_CLIENT_TOKEN`; a file keeps it out of `ps`. */
function readClientToken(file: string | undefined): string | undefined {
  if (file !== undefined) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new ConfigError(`cannot read the client token file ${file}: ${errorMessage(error)}`);
    }
  }
  const fromEnv = process.env.SYNOD_CLIENT_TOKEN;
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

function readSecret(file: string | undefined): string | undefined {
  if (file !== undefined) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new ConfigError(`cannot read the secret file ${file}: ${errorMessage(error)}`);
    }
  }
  const fromEnv = process.env.SYNOD_SECRET;
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

async function runStart(options: StartOptions): Promise<void> {
  let server: SynodServer;
  try {
    // Null unless `synod torture` started this node (SYNOD_FAULT_CONTROL=1 and an IPC channel).
    const faultControl = FaultControl.fromEnvironment();
    server = await SynodServer.start(startConfig(options), {
      rejoin: options.rejoin === true,
      onFatal: (error) => {
        console.error(`synod: node failed: ${errorMessage(error)}`);
        process.exit(1);
      },
      ...faultControl?.nodeOptions(),
    });
    faultControl?.attach(server.node);
  } catch (error) {
    fail(errorMessage(error));
    return;
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    server.node.logger.info({ signal }, 'stopping');
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`synod: stop failed: ${errorMessage(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** The members of a local cluster: node i on loopback at fixed offsets from `base`. */
export function localMembers(count: number, base: number): MemberConfig[] {
  return Array.from({ length: count }, (_, index) => {
    const id = index + 1;
    return {
      id,
      peer: { host: '127.0.0.1', port: base + 100 + id },
      client: { host: '127.0.0.1', port: base + id },
      http: { host: '127.0.0.1', port: base + 1000 + id },
    };
  });
}

/** A random secret in `<dataDir>/<name>` (mode 0600), made once and reused. */
function generatedSecret(dataDir: string, name: string): string {
  const path = join(dataDir, name);
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const secret = randomBytes(32).toString('hex');
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  return secret;
}

async function runCluster(options: ClusterOptions): Promise<void> {
  const dataDir = resolve(options.data);
  mkdirSync(dataDir, { recursive: true });
  generatedSecret(dataDir, SECRET_FILE);
  const tokenFile = options.clientToken === true ? join(dataDir, CLIENT_TOKEN_FILE) : undefined;
  if (tokenFile !== undefined) generatedSecret(dataDir, CLIENT_TOKEN_FILE);
  const tls = [options.tlsCert, options.tlsKey, options.tlsCa].some((value) => value !== undefined);
  if (tls && (options.tlsCert === undefined || options.tlsKey === undefined || options.tlsCa === undefined)) {
    fail('TLS needs all of --tls-cert, --tls-key and --tls-ca', 2);
    return;
  }
  const caFile = options.tlsCa === undefined ? undefined : resolve(options.tlsCa);
  const members = localMembers(options.nodes, options.portBase);
  const spec = formatMembers(members);
  const file: ClusterFile = {
    clusterId: 'synod',
    endpoints: members.map((member) => formatHostPort(member.client as { host: string; port: number })).join(','),
    nodes: members.map((member) => ({
      id: member.id,
      client: formatHostPort(member.client as { host: string; port: number }),
      http: formatHostPort(member.http as { host: string; port: number }),
      peer: formatHostPort(member.peer),
      data: join(dataDir, `node-${member.id}`),
      log: join(dataDir, `node-${member.id}`, 'node.log'),
    })),
    ...(tokenFile === undefined ? {} : { tokenFile }),
    ...(caFile === undefined ? {} : { caFile }),
  };
  writeFileSync(join(dataDir, CLUSTER_FILE), `${JSON.stringify(file, null, 2)}\n`);
  const children = new Map<number, ChildProcess>();
  let stopping = false;
  for (const node of file.nodes) {
    mkdirSync(node.data, { recursive: true });
    const log = openSync(node.log, 'a');
    const args = [
      ...process.execArgv,
      process.argv[1] as string,
      'start',
      '--id', String(node.id),
      '--peers', spec,
      '--data', node.data,
      '--secret-file', join(dataDir, SECRET_FILE),
      '--read-mode', options.readMode,
      '--log-level', options.logLevel,
      ...(tokenFile === undefined ? [] : ['--client-token-file', tokenFile]),
      ...(caFile === undefined ? [] : ['--tls-cert', resolve(options.tlsCert as string), '--tls-key', resolve(options.tlsKey as string), '--tls-ca', caFile]),
      ...(options.tlsPeerMutual === true ? ['--tls-peer-mutual'] : []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    children.set(node.id, child);
    child.on('error', (error) => console.error(`synod: node ${node.id} could not run: ${errorMessage(error)}`));
    child.on('exit', (code, signal) => {
      children.delete(node.id);
      if (!stopping) console.error(`synod: node ${node.id} exited (${signal ?? `code ${code}`}); see ${node.log}`);
      if (children.size === 0 && stopping) process.exit(0);
    });
  }
  const stopAll = (): void => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping the cluster...');
    for (const child of children.values()) child.kill('SIGTERM');
    if (children.size === 0) process.exit(0);
    setTimeout(() => {
      for (const child of children.values()) child.kill('SIGKILL');
    }, STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  printBanner(file, dataDir);
  await reportLeader(file, () => stopping);
}

function printBanner(file: ClusterFile, dataDir: string): void {
  const scheme = file.caFile === undefined ? 'http' : 'https';
  console.log(`synod: ${file.nodes.length}-node cluster, data in ${dataDir}${file.caFile === undefined ? '' : ', TLS'}${file.tokenFile === undefined ? '' : ', client token required'}`);
  for (const node of file.nodes) console.log(`  node ${node.id}: client ${node.client}  http ${scheme}://${node.http}  peer ${node.peer}  log ${node.log}`);
  const http = `${scheme}://${file.nodes[0]?.http ?? '127.0.0.1:8001'}`;
  const curl = ['curl -sL', ...(file.caFile === undefined ? [] : [`--cacert ${file.caFile}`]), ...(file.tokenFile === undefined ? [] : [`-H "Authorization: Bearer $(cat ${file.tokenFile})"`])].join(' ');
  console.log('try (in another terminal):');
  console.log('  npx synod put greeting hello && npx synod get greeting');
  console.log('  npx synod status');
  console.log(`  ${curl} -X PUT --data-binary world ${http}/v1/kv/greeting && ${curl} ${http}/v1/kv/greeting`);
  console.log('Ctrl-C stops every node.');
}

/** The client options a cluster file implies: its token and CA, read from their files. */
export function clusterCredentials(file: ClusterFile): { token?: string; tls?: { ca: string } } {
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (error) {
      throw new ConfigError(`cannot read the ${what} ${path} named by ${CLUSTER_FILE}: ${errorMessage(error)}`);
    }
  };
  return {
    ...(typeof file.tokenFile === 'string' ? { token: read(file.tokenFile, 'client token file') } : {}),
    ...(typeof file.caFile === 'string' ? { tls: { ca: read(file.caFile, 'CA file') } } : {}),
  };
}

/** Waits for a serving leader and says which node it is (or that none appeared in time). */
async function reportLeader(file: ClusterFile, stopping: () => boolean): Promise<void> {
  const client = new SynodClient({ endpoints: file.endpoints.split(','), timeoutMs: 2_000, attemptTimeoutMs: 500, ...clusterCredentials(file) });
  try {
    const deadline = Date.now() + 30_000;
    while (!stopping() && Date.now() < deadline) {
      const statuses = await client.statusAll();
      const leader = statuses.find((entry) => 'status' in entry && entry.status.serving);
      if (leader !== undefined && 'status' in leader) {
        console.log(`synod: ready — node ${leader.status.id} leads (ballot ${leader.status.ballot})`);
        return;
      }
      await new Promise((resolveSleep) => setTimeout(resolveSleep, 200));
    }
    if (!stopping()) console.error('synod: no leader after 30 s; check the node logs');
  } finally {
    await client.close();
  }
}

/**
 * A node's configuration: who the members are and where each listens, where the data lives, the
 * cluster secret, timings and limits. Built from command-line flags or a JSON file; every field is
 * checked here so a node never starts half-configured. Errors are `ConfigError`s naming the field.
 */
import { readFileSync } from 'node:fs';
import { isValidNodeId } from '../core/ballot.js';
import { clientTokenProblem } from './access.js';
import { DEFAULT_REPLICA_OPTIONS } from '../core/multipaxos/replica.js';

/** The node's default leader window: measured best on 3 members sharing one disk (README, Benchmarks). */
export const PIPELINE_DEPTH_DEFAULT = 1;
import { CONNECTIONS_PER_ADDRESS_MAX_DEFAULT } from './address-limit.js';
import type { ReadMode } from './service.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * One member of the cluster and its three listeners. Client and HTTP listeners are optional. The
 * addresses are the ones others use (advertised: peers dial them, redirects name them); a node
 * binds its peer listener there, but its client and HTTP listeners on `NodeConfig.clientBind`.
 */
export interface MemberConfig {
  readonly id: number;
  /** Node-to-node traffic (authenticated with the cluster secret). */
  readonly peer: HostPort;
  /** The binary client protocol. */
  readonly client: HostPort | null;
  /** The HTTP/JSON API. */
  readonly http: HostPort | null;
}

export interface NodeConfig {
  readonly id: number;
  readonly clusterId: string;
  /** Shared by every member; at least 16 bytes. Authenticates peers to each other. */
  readonly secret: string;
  readonly dataDir: string;
  readonly members: readonly MemberConfig[];
  /** Real time per replica tick. Elections, heartbeats and retransmissions count ticks. */
  readonly tickMs: number;
  readonly electionTicksMin: number;
  readonly electionTicksMax: number;
  readonly heartbeatTicks: number;
  /**
   * Slots the leader keeps in flight (proposed, not yet chosen). Commands arriving while the
   * window is full wait and go out together in the next slot: a small window makes big batches,
   * so fewer messages and fsyncs per command (see README, Benchmarks).
   */
  readonly pipelineDepthMax: number;
  readonly readMode: ReadMode;
  /** A request not answered within this is answered `timeout` (outcome unknown for writes). */
  readonly requestTimeoutMs: number;
  /** Client requests waiting for the log or a read round, per node; beyond it `overloaded`. */
  readonly pendingRequestsMax: number;
  /** Open connections from one client address, per front end (binary and HTTP); beyond it refused. */
  readonly connectionsPerAddressMax: number;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /**
   * The host the client and HTTP listeners bind (their ports are the member entry's). Loopback by
   * default, so a node serves no one off the machine until told to: `0.0.0.0` (every interface)
   * or the advertised address.
   */
  readonly clientBind: string;
  /** When set, clients must present it (binary hello, HTTP `Authorization: Bearer`). */
  readonly clientToken: string | null;
  /** PEM files: with cert and key (and the CA, required), peers, clients and HTTP speak TLS. */
  readonly tlsCert: string | null;
  readonly tlsKey: string | null;
  /** The CA peers' certificates must chain to (and the one clients should trust). */
  readonly tlsCa: string | null;
  /** Peers also present and verify certificates when dialing (mutual TLS). */
  readonly tlsPeerMutual: boolean;
}

export const CONFIG_DEFAULTS = {
  clusterId: 'synod',
  tickMs: 20,
  electionTicksMin: DEFAULT_REPLICA_OPTIONS.electionTicksMin,
  electionTicksMax: DEFAULT_REPLICA_OPTIONS.electionTicksMax,
  heartbeatTicks: DEFAULT_REPLICA_OPTIONS.heartbeatTicks,
  pipelineDepthMax: PIPELINE_DEPTH_DEFAULT,
  readMode: 'index' as ReadMode,
  requestTimeoutMs: 5_000,
  pendingRequestsMax: 65_536,
  connectionsPerAddressMax: CONNECTIONS_PER_ADDRESS_MAX_DEFAULT,
  logLevel: 'info' as NodeConfig['logLevel'],
  clientBind: '127.0.0.1',
  clientToken: null as string | null,
  tlsCert: null as string | null,
  tlsKey: null as string | null,
  tlsCa: null as string | null,
  tlsPeerMutual: false,
};

const SECRET_CHARS_MIN = 16;
const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'silent']);

/** Parses `host:port` (IPv6 as `[addr]:port`). */
export function parseHostPort(text: string, what: string): HostPort {
  const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(text.trim());
  if (match === null) throw new ConfigError(`${what}: expected host:port, got "${text}"`);
  const host = (match[1] as string).replace(/^\[|\]$/g, '');
  const port = Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new ConfigError(`${what}: port out of range in "${text}"`);
  return { host, port };
}

export function formatHostPort(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/**
 * Parses a member list: `id=host:peerPort[:clientPort[:httpPort]]`, comma separated, e.g.
 * `1=127.0.0.1:7101:7001:8001,2=127.0.0.1:7102:7002:8002`. Client and HTTP listeners share the
 * peer's host.
 */
export function parseMembers(text: string): MemberConfig[] {
  const members: MemberConfig[] = [];
  for (const item of text.split(',').map((part) => part.trim()).filter((part) => part.length > 0)) {
    const match = /^(\d+)=([^:]+):(\d+)(?::(\d*))?(?::(\d+))?$/.exec(item);
    if (match === null) throw new ConfigError(`--peers: expected id=host:peerPort[:clientPort[:httpPort]], got "${item}"`);
    const host = match[2] as string;
    // An empty client port (`id=host:peer::http`) means: no client listener, but HTTP.
    const port = (value: string | undefined, what: string): HostPort | null =>
      value === undefined || value === '' ? null : parseHostPort(`${host}:${value}`, `--peers ${what} port of node ${match[1]}`);
    members.push({
      id: Number(match[1]),
      peer: port(match[3], 'peer') as HostPort,
      client: port(match[4], 'client'),
      http: port(match[5], 'http'),
    });
  }
  return members;
}

export function formatMembers(members: readonly MemberConfig[]): string {
  return members
    .map((member) => {
      let spec = `${member.id}=${formatHostPort(member.peer)}`;
      if (member.client !== null) spec += `:${member.client.port}`;
      if (member.http !== null) spec += `${member.client === null ? ':' : ''}:${member.http.port}`;
      return spec;
    })
    .join(',');
}

/** Fills defaults and checks every field. */
export function makeConfig(input: Partial<NodeConfig> & Pick<NodeConfig, 'id' | 'secret' | 'dataDir' | 'members'>): NodeConfig {
  const config: NodeConfig = { ...CONFIG_DEFAULTS, ...input };
  validateConfig(config);
  return config;
}

function positiveInteger(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new ConfigError(`${what} must be a positive integer`);
}

export function validateConfig(config: NodeConfig): void {
  if (!isValidNodeId(config.id)) throw new ConfigError(`id ${String(config.id)} is not a valid node id (1..1023)`);
  if (typeof config.clusterId !== 'string' || config.clusterId.length === 0) throw new ConfigError('clusterId must be a non-empty string');
  if (typeof config.secret !== 'string' || config.secret.length < SECRET_CHARS_MIN) {
    throw new ConfigError(`the cluster secret must be at least ${SECRET_CHARS_MIN} characters`);
  }
  if (typeof config.dataDir !== 'string' || config.dataDir.length === 0) throw new ConfigError('dataDir is required');
  const ids = new Set<number>();
  for (const member of config.members) {
    if (!isValidNodeId(member.id)) throw new ConfigError(`member id ${member.id} is not a valid node id (1..1023)`);
    if (ids.has(member.id)) throw new ConfigError(`member ${member.id} is listed twice`);
    ids.add(member.id);
  }
  if (!ids.has(config.id)) throw new ConfigError(`this node (${config.id}) is not in the member list`);
  for (const field of ['tickMs', 'electionTicksMin', 'electionTicksMax', 'heartbeatTicks', 'pipelineDepthMax', 'requestTimeoutMs', 'pendingRequestsMax', 'connectionsPerAddressMax'] as const) {
    positiveInteger(config[field], field);
  }
  if (config.electionTicksMin <= config.heartbeatTicks) throw new ConfigError('electionTicksMin must exceed heartbeatTicks');
  if (config.electionTicksMax <= config.electionTicksMin) throw new ConfigError('electionTicksMax must exceed electionTicksMin');
  if (config.readMode !== 'index' && config.readMode !== 'log') throw new ConfigError('readMode must be "index" or "log"');
  if (!LOG_LEVELS.has(config.logLevel)) throw new ConfigError(`logLevel must be one of ${[...LOG_LEVELS].join(', ')}`);
  validateSecurity(config);
}

function validateSecurity(config: NodeConfig): void {
  if (typeof config.clientBind !== 'string' || config.clientBind.trim().length === 0) throw new ConfigError('clientBind must be a host or address');
  if (config.clientToken !== null) {
    const problem = typeof config.clientToken === 'string' ? clientTokenProblem(config.clientToken) : 'the client token must be a string';
    if (problem !== null) throw new ConfigError(problem);
  }
  for (const field of ['tlsCert', 'tlsKey', 'tlsCa'] as const) {
    const value = config[field];
    if (value !== null && (typeof value !== 'string' || value.length === 0)) throw new ConfigError(`${field} must be a file path`);
  }
  const tls = config.tlsCert !== null || config.tlsKey !== null || config.tlsCa !== null;
  if (tls && (config.tlsCert === null || config.tlsKey === null || config.tlsCa === null)) {
    throw new ConfigError('TLS needs all of --tls-cert, --tls-key and --tls-ca (peers verify each other against the CA)');
  }
  if (typeof config.tlsPeerMutual !== 'boolean') throw new ConfigError('tlsPeerMutual must be true or false');
  if (config.tlsPeerMutual && !tls) throw new ConfigError('--tls-peer-mutual needs --tls-cert, --tls-key and --tls-ca');
}

/** Reads a JSON config file; `members` may be an array of MemberConfig-like objects or a spec string. */
export function readConfigFile(path: string): Partial<NodeConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  const config = { ...(raw as Record<string, unknown>) };
  if (typeof config.members === 'string') config.members = parseMembers(config.members);
  else if (Array.isArray(config.members)) config.members = config.members.map((member, index) => readMember(member, `${path}: members[${index}]`));
  return config as Partial<NodeConfig>;
}

function readMember(value: unknown, what: string): MemberConfig {
  if (typeof value !== 'object' || value === null) throw new ConfigError(`${what} must be an object`);
  const member = value as Record<string, unknown>;
  const address = (field: string, required: boolean): HostPort | null => {
    const text = member[field];
    if (text === undefined || text === null) {
      if (required) throw new ConfigError(`${what}.${field} is required`);
      return null;
    }
    if (typeof text !== 'string') throw new ConfigError(`${what}.${field} must be "host:port"`);
    return parseHostPort(text, `${what}.${field}`);
  };
  if (typeof member.id !== 'number') throw new ConfigError(`${what}.id must be a number`);
  return { id: member.id, peer: address('peer', true) as HostPort, client: address('client', false), http: address('http', false) };
}

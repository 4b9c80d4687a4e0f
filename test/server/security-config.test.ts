/**
 * The security settings of a node's configuration: `synod start`'s defaults (client APIs on
 * loopback, no token, no TLS), where the token comes from (file over environment, never a flag),
 * what combinations are refused, and the TLS files checked at start; plus `SynodServer` binding
 * where `clientBind` says.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startConfig } from '../../src/cli/server-commands.js';
import { ConfigError, makeConfig, type MemberConfig } from '../../src/server/config.js';
import { SynodServer } from '../../src/server/server.js';
import { loadTlsMaterial } from '../../src/server/tls-files.js';
import { makeCa, type CertFiles, type TestCa } from '../helpers/certs.js';
import { freePorts } from '../helpers/ports.js';

const SECRET = 'config-test-secret-0123456789';
const TOKEN = 'config-test-token-0123456789';

let dir = '';
let secretFile = '';
let tokenFile = '';
let ca: TestCa;
let cert: CertFiles;
let otherCert: CertFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'synod-security-config-'));
  secretFile = join(dir, 'secret');
  tokenFile = join(dir, 'token');
  await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  ca = await makeCa(dir, 'config-ca');
  [cert, otherCert] = await Promise.all([ca.issue('config-node'), ca.issue('config-other')]);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `body` with `SYNOD_CLIENT_TOKEN` set to `value` (or unset), restoring it afterwards. */
function withTokenEnv<T>(value: string | undefined, body: () => T): T {
  const saved = process.env.SYNOD_CLIENT_TOKEN;
  if (value === undefined) delete process.env.SYNOD_CLIENT_TOKEN;
  else process.env.SYNOD_CLIENT_TOKEN = value;
  try {
    return body();
  } finally {
    if (saved === undefined) delete process.env.SYNOD_CLIENT_TOKEN;
    else process.env.SYNOD_CLIENT_TOKEN = saved;
  }
}

const START = { id: 1, peers: '1=10.0.0.1:7101:7001:8001,2=10.0.0.2:7101:7001:8001,3=10.0.0.3:7101:7001:8001', data: '/var/lib/synod' };

test('synod start defaults: client APIs bound to 127.0.0.1 even when the members advertise a LAN address; no token; no TLS', () => {
  const config = withTokenEnv(undefined, () => startConfig({ ...START, secretFile }));
  assert.equal(config.clientBind, '127.0.0.1');
  assert.equal(config.members[0]?.client?.host, '10.0.0.1', 'the advertised address is kept for redirects');
  assert.equal(config.clientToken, null);
  assert.deepStrictEqual([config.tlsCert, config.tlsKey, config.tlsCa, config.tlsPeerMutual], [null, null, null, false]);
  assert.equal(startConfig({ ...START, secretFile, clientBind: '0.0.0.0' }).clientBind, '0.0.0.0');
});

test('synod start: the client token comes from --client-token-file, else SYNOD_CLIENT_TOKEN; bad tokens are refused', async () => {
  assert.equal(withTokenEnv('from-the-environment-0123', () => startConfig({ ...START, secretFile, clientTokenFile: tokenFile })).clientToken, TOKEN);
  assert.equal(withTokenEnv('from-the-environment-0123', () => startConfig({ ...START, secretFile })).clientToken, 'from-the-environment-0123');
  assert.throws(() => withTokenEnv(undefined, () => startConfig({ ...START, secretFile, clientTokenFile: join(dir, 'missing') })), ConfigError);
  const shortFile = join(dir, 'short-token');
  await writeFile(shortFile, 'short\n');
  assert.throws(() => withTokenEnv(undefined, () => startConfig({ ...START, secretFile, clientTokenFile: shortFile })), /at least 16/);
});

test('config: TLS needs certificate, key and CA together; mutual TLS needs TLS', () => {
  const base = { id: 1, secret: SECRET, dataDir: '/tmp/x', members: [{ id: 1, peer: { host: '127.0.0.1', port: 1 }, client: null, http: null }] };
  assert.throws(() => makeConfig({ ...base, tlsCert: 'a.crt' }), /all of --tls-cert, --tls-key and --tls-ca/);
  assert.throws(() => makeConfig({ ...base, tlsCert: 'a.crt', tlsKey: 'a.key' }), ConfigError);
  assert.throws(() => makeConfig({ ...base, tlsPeerMutual: true }), /--tls-peer-mutual/);
  assert.throws(() => makeConfig({ ...base, clientBind: ' ' }), /clientBind/);
  assert.equal(makeConfig({ ...base, tlsCert: 'a.crt', tlsKey: 'a.key', tlsCa: 'ca.crt', tlsPeerMutual: true }).tlsPeerMutual, true);
});

test('TLS files are read and checked at start: missing, not PEM, or a key that is not the certificate\'s are ConfigErrors naming the problem', async () => {
  assert.equal(loadTlsMaterial({ tlsCert: null, tlsKey: null, tlsCa: null }), null);
  const material = loadTlsMaterial({ tlsCert: cert.certFile, tlsKey: cert.keyFile, tlsCa: ca.certFile });
  assert.ok(material !== null && material.cert.includes('BEGIN CERTIFICATE') && material.ca === ca.cert);
  assert.throws(() => loadTlsMaterial({ tlsCert: join(dir, 'nope.crt'), tlsKey: cert.keyFile, tlsCa: ca.certFile }), /cannot read --tls-cert/);
  const notPem = join(dir, 'not.pem');
  await writeFile(notPem, 'hello');
  assert.throws(() => loadTlsMaterial({ tlsCert: cert.certFile, tlsKey: cert.keyFile, tlsCa: notPem }), /--tls-ca .* is not a PEM file/);
  assert.throws(() => loadTlsMaterial({ tlsCert: cert.certFile, tlsKey: otherCert.keyFile, tlsCa: ca.certFile }), /do not load together/);
});

class Sink extends Writable {
  override _write(_chunk: Buffer, _encoding: string, callback: () => void): void {
    callback();
  }
}

/** Whether something accepts TCP connections at host:port. */
function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

test('SynodServer binds its client and HTTP listeners to clientBind, not to the advertised host', async () => {
  const [peer, client, http] = (await freePorts(3)) as [number, number, number];
  const members: MemberConfig[] = [{ id: 1, peer: { host: '127.0.0.1', port: peer }, client: { host: '127.0.0.1', port: client }, http: { host: '127.0.0.1', port: http } }];
  const server = await SynodServer.start(
    makeConfig({ id: 1, secret: SECRET, dataDir: join(dir, 'bind'), members, clientBind: '127.0.0.3', logLevel: 'silent' }),
    { logStream: new Sink(), processMetrics: false },
  );
  try {
    assert.equal(server.addresses.client, `127.0.0.3:${client}`);
    assert.equal(server.addresses.http, `127.0.0.3:${http}`);
    assert.equal(await reachable('127.0.0.3', client), true);
    assert.equal(await reachable('127.0.0.1', client), false);
    assert.equal(await reachable('127.0.0.1', http), false);
  } finally {
    await server.stop();
  }
});

/**
 * A 3-node cluster over TLS, with a CA and certificate made by openssl in the test: `synod
 * cluster --client-token --tls-* --tls-peer-mutual` elects a leader over mutual-TLS peer links
 * and serves put/get to clients that trust the CA (the library, HTTPS, and the CLI finding token
 * and CA through cluster.json); a client that does not trust the CA is refused; plaintext
 * clients, plaintext HTTP and a plaintext peer holding the secret are refused cleanly, counted,
 * and the nodes keep serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SynodClient, SynodClientError } from '../../src/client/index.js';
import { makeBallot } from '../../src/core/ballot.js';
import type { ClusterFile } from '../../src/cli/server-commands.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { makeCa } from '../helpers/certs.js';
import { freePortBase } from '../helpers/ports.js';
import { metricValue, runSynod, spawnSynod, stopProcess, waitFor } from '../helpers/processes.js';
import { RawPeer } from '../helpers/raw-peer.js';

/** GET over HTTPS; resolves with status and body, rejects on a TLS or socket error. */
function httpsGet(url: string, options: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = https.request(url, { ...options, timeout: 5_000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error('timeout')));
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** Kills nodes left behind by a `synod cluster` that did not stop them (their pid is in their log). */
async function killLeftovers(dataDir: string, nodes: number): Promise<void> {
  for (let id = 1; id <= nodes; id += 1) {
    const log = await readFile(join(dataDir, `node-${id}`, 'node.log'), 'utf8').catch(() => '');
    const pid = /"pid":(\d+)/.exec(log)?.[1];
    if (pid === undefined) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

test('a TLS cluster (mutual TLS between peers, client token) serves clients that trust its CA and refuses the others cleanly', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-tls-cluster-'));
  const data = join(dir, 'data');
  const [ca, otherCa] = await Promise.all([makeCa(dir, 'cluster-ca'), makeCa(dir, 'other-ca')]);
  const node = await ca.issue('nodes');
  const base = await freePortBase(3);
  const cluster = spawnSynod([
    'cluster', '--nodes', '3', '--data', data, '--port-base', String(base), '--client-token',
    '--tls-cert', node.certFile, '--tls-key', node.keyFile, '--tls-ca', ca.certFile, '--tls-peer-mutual',
  ]);
  const clients: SynodClient[] = [];
  try {
    // The cluster's own readiness probe already goes through TLS with the token from cluster.json.
    await waitFor('the cluster to report its leader', () => (cluster.output().includes('ready') ? true : undefined), 60_000);
    const file = JSON.parse(await readFile(join(data, 'cluster.json'), 'utf8')) as ClusterFile;
    assert.equal(file.caFile, ca.certFile);
    assert.equal(file.tokenFile, join(data, 'client-token'));
    const token = (await readFile(file.tokenFile, 'utf8')).trim();
    const endpoints = file.endpoints.split(',');
    const trusting = new SynodClient({ endpoints, token, tls: { ca: ca.cert }, timeoutMs: 10_000 });
    clients.push(trusting);
    await trusting.put('over-tls', 'yes');
    assert.equal((await trusting.get('over-tls')).value, 'yes');
    // A leader needs two nodes; wait for the third to be up and linked too.
    let seen = '';
    await waitFor('every node up, every peer link up over mutual TLS', async () => {
      const all = await trusting.statusAll();
      seen = JSON.stringify(all.map((entry) => ('status' in entry ? { id: entry.status.id, peers: entry.status.peers } : { endpoint: entry.endpoint, error: entry.error.message })));
      const statuses = all.flatMap((entry) => ('status' in entry ? [entry.status] : []));
      return statuses.length === 3 && statuses.every((status) => status.peers.every((peer) => peer.connected)) ? true : undefined;
    }, 30_000).catch(async (error: unknown) => {
      const logs = await Promise.all([1, 2, 3].map((id) => readFile(join(data, `node-${id}`, 'node.log'), 'utf8').catch(() => '')));
      throw new Error(`${String(error)}; last seen ${seen}; node logs:\n${logs.map((log) => log.split('\n').slice(-15).join('\n')).join('\n---\n')}`);
    });

    // The CLI: token and CA from cluster.json; and the same from explicit flags.
    const viaFile = await runSynod(['get', 'over-tls', '--data', data]);
    assert.equal(viaFile.code, 0, viaFile.stderr);
    assert.equal(viaFile.stdout.trim(), 'yes');
    const viaFlags = await runSynod(['get', 'over-tls', '--endpoints', file.endpoints, '--ca', ca.certFile, '--token-file', file.tokenFile]);
    assert.equal(viaFlags.code, 0, viaFlags.stderr);

    // Refused: a client trusting another CA; plaintext binary clients; plaintext HTTP.
    // A status request is one attempt and ends with the refusal itself; an operation retries until
    // its deadline (a timeout), so for those only the failure is checked.
    const untrusting = new SynodClient({ endpoints, token, tls: { ca: otherCa.cert }, timeoutMs: 10_000, attemptTimeoutMs: 10_000 });
    const plaintext = new SynodClient({ endpoints, token, timeoutMs: 10_000, attemptTimeoutMs: 10_000 });
    const hurried = [otherCa.cert, null].map((ca) => new SynodClient({ endpoints, token, ...(ca === null ? {} : { tls: { ca } }), timeoutMs: 800, attemptTimeoutMs: 300 }));
    clients.push(untrusting, plaintext, ...hurried);
    await assert.rejects(untrusting.status(), (error: unknown) => error instanceof SynodClientError && error.code === 'unavailable' && /certificate/i.test(error.message));
    await assert.rejects(plaintext.status(), (error: unknown) => error instanceof SynodClientError && error.code === 'unavailable');
    for (const client of hurried) await assert.rejects(client.get('over-tls'), SynodClientError);
    const http = file.nodes[0]?.http as string;
    const plainHttp = await fetch(`http://${http}/healthz`, { signal: AbortSignal.timeout(5_000) }).then((response) => response.status, (error: unknown) => error);
    assert.ok(plainHttp instanceof Error, `plaintext HTTP got ${String(plainHttp)}`);
    await assert.rejects(httpsGet(`https://${http}/healthz`, { ca: otherCa.cert }), /certificate/i);

    // Refused peers: plaintext with the secret, and TLS without a client certificate (mutual TLS).
    const secret = (await readFile(join(data, 'secret'), 'utf8')).trim();
    const peerPort = Number(file.nodes[0]?.peer.split(':')[1]);
    const plainPeer = new TcpTransport({
      nodeId: 2, clusterId: 'synod', secret, listen: { host: '127.0.0.1', port: 0 }, peers: new Map([[1, { host: '127.0.0.1', port: peerPort }]]),
      reconnectDelayMsMin: 20, reconnectDelayMsMax: 50,
    });
    await plainPeer.start();
    try {
      for (let round = 0; round < 10; round += 1) {
        plainPeer.send({ type: 'prepare', from: 2, to: 1, ballot: makeBallot(1_000_000, 2), firstUnchosen: 1 });
        await sleep(20);
      }
      assert.equal(plainPeer.stats().peers.get(1)?.sent, 0);
    } finally {
      await plainPeer.stop();
    }
    const certless = await RawPeer.handshake({ host: '127.0.0.1', port: peerPort, clusterId: 'synod', from: 2, to: 1, secret, tls: { ca: ca.cert } })
      .then((result) => result.outcome, () => 'refused');
    assert.notEqual(certless, 'welcome');

    // Every refusal was counted where it happened, and everything still serves.
    const metrics = await Promise.all(file.nodes.map(async (entry) => (await httpsGet(`https://${entry.http}/metrics`, { ca: ca.cert, headers: { authorization: `Bearer ${token}` } })).body));
    const total = (name: string, labels: Record<string, string>): number => metrics.reduce((sum, text) => sum + metricValue(text, name, labels), 0);
    assert.ok(total('synod_client_auth_failures_total', { api: 'binary', reason: 'tls-handshake' }) >= 2, metrics.join('\n'));
    assert.ok(total('synod_client_auth_failures_total', { api: 'http', reason: 'tls-handshake' }) >= 2);
    assert.ok(metricValue(metrics[0] as string, 'synod_peer_auth_failures_total', { reason: 'tls' }) >= 2, metrics[0]);
    await trusting.put('after', 'still');
    assert.equal((await trusting.get('after')).value, 'still');
    const health = await httpsGet(`https://${http}/healthz`, { ca: ca.cert });
    assert.equal(health.status, 200);

    cluster.child.kill('SIGINT');
    await waitFor('the cluster to stop', () => (cluster.child.exitCode !== null ? true : undefined), 20_000);
    assert.equal(cluster.child.exitCode, 0, cluster.output());
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await stopProcess(cluster.child, 'SIGINT');
    await killLeftovers(data, 3);
    await rm(dir, { recursive: true, force: true });
  }
});

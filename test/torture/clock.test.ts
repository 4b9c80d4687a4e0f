/**
 * A wall-clock jump must not break a node. Found by `synod torture`'s clock fault: a node whose
 * clock jumped back reported a negative uptime, which the status encoder refuses, so the node
 * answered every status request with an internal error (and `synod status`, leader discovery by
 * status, and the harness lost sight of it). Uptime now comes from the monotonic clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { decodeServerMessage, encodeServerMessage } from '../../src/protocol/wire.js';
import { makeConfig } from '../../src/server/config.js';
import { SynodNode } from '../../src/server/node.js';
import { freePorts } from '../helpers/ports.js';

test('a node whose wall clock jumps back a day still reports a status that encodes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'synod-clock-'));
  const [port] = await freePorts(1);
  const members = [{ id: 1, peer: { host: '127.0.0.1', port: port as number }, client: null, http: null }];
  const quiet = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const node = await SynodNode.start(makeConfig({ id: 1, secret: 'clock-test-secret-0123456789', dataDir: join(dir, 'node'), members, tickMs: 10 }), {
    logStream: quiet,
    processMetrics: false,
  });
  const realNow = Date.now;
  try {
    Date.now = () => realNow.call(Date) - 24 * 3600 * 1000;
    const status = node.status();
    assert.ok(status.uptimeMs >= 0, `uptime ${status.uptimeMs} ms`);
    const decoded = decodeServerMessage(encodeServerMessage({ type: 'status', reqId: 1, status }));
    assert.equal(decoded.type, 'status');
  } finally {
    Date.now = realNow;
    await node.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

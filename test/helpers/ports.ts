/** Free TCP ports on loopback for tests that must know peer addresses before binding. Import-safe. */
import { createServer } from 'node:net';

export { freePorts } from '../../src/bench/ports.js';

/**
 * A `--port-base` for `synod cluster --nodes <nodes>` whose ports (base+i, base+100+i,
 * base+1000+i) are all free right now and all below the kernel's ephemeral range (32768 up on
 * Linux), where an outgoing connection elsewhere on the machine could take one at any moment.
 */
export async function freePortBase(nodes: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = 10_000 + Math.floor(Math.random() * (32_768 - 10_000 - 1_000 - nodes - 1));
    const ports = Array.from({ length: nodes }, (_, index) => [base + 1 + index, base + 101 + index, base + 1001 + index]).flat();
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error('no free port base found');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

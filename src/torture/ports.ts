/**
 * Listening ports for the nodes of a torture cluster.
 *
 * A node is killed and restarted on the same ports many times in a run. Ports from the kernel's
 * ephemeral range (what `listen(0)` hands out) are also the local ports of outgoing connections:
 * while a node is down, a connection from anyone on the machine may take its port, and the
 * restart would fail with EADDRINUSE. So the ports come from below the ephemeral range, where
 * the kernel never allocates, each checked free by binding it once.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port handed out; below it lie well-known and commonly configured ports. */
const PORT_FLOOR = 20_000;
/** Linux's default ephemeral range starts here; used when the kernel does not say. */
const EPHEMERAL_LOW_DEFAULT = 32_768;
/** Ports tried before giving up: the range is large and mostly free. */
const ATTEMPTS_MAX = 2_000;

export class PortsUnavailableError extends Error {
  override readonly name = 'PortsUnavailableError';
}

/** The first port of the kernel's ephemeral range. */
export function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && Number.isInteger(low) && low > 1024) return low;
  } catch {
    // not Linux, or /proc is not mounted: assume the default
  }
  return EPHEMERAL_LOW_DEFAULT;
}

/**
 * Returns `count` distinct ports on `host` that were free a moment ago and lie outside the
 * ephemeral range. Throws `PortsUnavailableError` if that range is too small or too busy.
 */
export async function reservePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const high = ephemeralLow() - 1;
  const span = high - PORT_FLOOR + 1;
  if (span < count * 4) throw new PortsUnavailableError(`the ports ${PORT_FLOOR}..${high} below the ephemeral range are too few for ${count} listeners`);
  const chosen = new Set<number>();
  for (let attempt = 0; attempt < ATTEMPTS_MAX && chosen.size < count; attempt += 1) {
    // Not seeded: two runs of the same seed on one machine must not pick the same ports.
    const port = PORT_FLOOR + Math.floor(Math.random() * span);
    if (chosen.has(port)) continue;
    if (await isFree(port, host)) chosen.add(port);
  }
  if (chosen.size < count) throw new PortsUnavailableError(`found only ${chosen.size} of ${count} free ports in ${PORT_FLOOR}..${high}`);
  return [...chosen];
}

function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The peer network of a torture cluster: one `LinkProxy` per directed pair of nodes (n·(n−1)
 * proxies). Node i is configured with proxy (i→j)'s port as peer j's address, so every message
 * from i to j crosses exactly that proxy. A network state is a mode per directed link.
 */
import { assert } from '../core/assert.js';
import { Prng } from '../core/prng.js';
import { LinkProxy, PASS, type LinkMode } from './proxy.js';

/** A directed link between node slots (0-based). */
export interface Link {
  readonly from: number;
  readonly to: number;
}

export class PeerNetwork {
  private constructor(
    readonly size: number,
    private readonly proxies: ReadonlyMap<string, LinkProxy>,
  ) {}

  /** Starts a proxy for every directed pair; `peerPorts[j]` is node j's real peer listener. */
  static async create(peerPorts: readonly number[], seed: number): Promise<PeerNetwork> {
    const random = new Prng(seed);
    const proxies = new Map<string, LinkProxy>();
    try {
      for (let from = 0; from < peerPorts.length; from += 1) {
        for (let to = 0; to < peerPorts.length; to += 1) {
          if (from === to) continue;
          const proxy = new LinkProxy({ targetHost: '127.0.0.1', targetPort: peerPorts[to] as number, random: random.fork() });
          await proxy.start();
          proxies.set(linkKey(from, to), proxy);
        }
      }
    } catch (error) {
      await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
      throw error;
    }
    return new PeerNetwork(peerPorts.length, proxies);
  }

  /** The port node `from` must dial to reach node `to`. */
  port(from: number, to: number): number {
    return this.proxy(from, to).port;
  }

  /** Sets every link: `modeOf` gives each directed link its mode. */
  setAll(modeOf: (link: Link) => LinkMode): void {
    for (const link of this.links()) this.proxy(link.from, link.to).setMode(modeOf(link));
  }

  /** Every link passes again (a blackholed connection is reset: its stream lost bytes). */
  heal(): void {
    this.setAll(() => PASS);
  }

  /** Links whose mode is not `pass`. */
  faultyLinks(): { link: Link; mode: LinkMode }[] {
    return this.links()
      .map((link) => ({ link, mode: this.proxy(link.from, link.to).currentMode }))
      .filter((entry) => entry.mode.kind !== 'pass');
  }

  /** Every directed link, in a fixed order. */
  links(): Link[] {
    const links: Link[] = [];
    for (let from = 0; from < this.size; from += 1) {
      for (let to = 0; to < this.size; to += 1) if (from !== to) links.push({ from, to });
    }
    return links;
  }

  /** Bytes forwarded and connections reset, summed over every proxy. */
  totals(): { bytes: number; resets: number; discarded: number } {
    let bytes = 0;
    let resets = 0;
    let discarded = 0;
    for (const proxy of this.proxies.values()) {
      const stats = proxy.stats();
      bytes += stats.bytesForward + stats.bytesBackward;
      resets += stats.resets;
      discarded += stats.bytesDiscarded;
    }
    return { bytes, resets, discarded };
  }

  async close(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((proxy) => proxy.close()));
  }

  private proxy(from: number, to: number): LinkProxy {
    const proxy = this.proxies.get(linkKey(from, to));
    assert(proxy !== undefined, `no proxy for link ${from}->${to}`);
    return proxy;
  }
}

function linkKey(from: number, to: number): string {
  return `${from}>${to}`;
}

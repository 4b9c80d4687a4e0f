/**
 * Connections per client address, for the client front ends (binary listener and HTTP API). A
 * total connection cap alone lets one misbehaving host take every slot; this bounds what any one
 * address may hold, so others can still connect. ZooKeeper's `maxClientCnxns` is the precedent.
 */
import { assert } from '../core/assert.js';

/** The default cap on open client connections from one address, per front end. */
export const CONNECTIONS_PER_ADDRESS_MAX_DEFAULT = 256;

/** The address a socket counts against: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) counts as the IPv4 one. */
export function addressKey(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return '?';
  return remoteAddress.startsWith('::ffff:') ? remoteAddress.slice('::ffff:'.length) : remoteAddress;
}

/** Counts open connections per address against a cap. Entries vanish when their count drops to 0. */
export class ConnectionsPerAddress {
  private readonly open = new Map<string, number>();

  constructor(readonly max: number) {
    assert(Number.isSafeInteger(max) && max >= 1, 'connections per address must be a positive integer');
  }

  /** Takes a slot for `address`; false (nothing taken) when it already holds `max`. */
  tryAcquire(address: string): boolean {
    const count = this.open.get(address) ?? 0;
    if (count >= this.max) return false;
    this.open.set(address, count + 1);
    return true;
  }

  /** Gives back a slot taken by `tryAcquire`. */
  release(address: string): void {
    const count = this.open.get(address) ?? 0;
    assert(count > 0, 'release of a slot never acquired');
    if (count === 1) this.open.delete(address);
    else this.open.set(address, count - 1);
  }

  /** Open connections of `address`. */
  count(address: string): number {
    return this.open.get(address) ?? 0;
  }

  /** Addresses holding at least one connection (bounded by the total connection cap). */
  get addresses(): number {
    return this.open.size;
  }
}

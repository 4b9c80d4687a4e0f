/**
 * Client endpoints are `host:port` strings, as nodes advertise them (`NodeEndpoint.clientAddress`);
 * an IPv6 host is bracketed (`[::1]:7001`).
 */

/** A parsed endpoint. */
export interface EndpointAddress {
  readonly host: string;
  readonly port: number;
}

const BRACKETED = /^\[([^\]]+)\]:(\d{1,5})$/;
const PLAIN = /^([^:[\]\s]+):(\d{1,5})$/;

/** Parses `host:port`; null when it is not one (a node's hint may be junk: it is then ignored). */
export function parseEndpoint(endpoint: string): EndpointAddress | null {
  if (typeof endpoint !== 'string') return null;
  const match = BRACKETED.exec(endpoint) ?? PLAIN.exec(endpoint);
  if (match === null) return null;
  const host = match[1];
  const port = Number(match[2]);
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) return null;
  return { host, port };
}

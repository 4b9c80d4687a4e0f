/**
 * The TLS certificate, key and CA a node's configuration names, read once at start and checked by
 * building a secure context, so that a missing file, a key that does not match its certificate or
 * a file that is not PEM stops the node with a `ConfigError` naming the file instead of failing
 * the first handshake. Certificates are not reloaded: rotating them means restarting the node.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError, type NodeConfig } from './config.js';

/** PEM text of the node's certificate (chain), its key, and the cluster CA. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** Reads the files `config` names; null when TLS is off. */
export function loadTlsMaterial(config: Pick<NodeConfig, 'tlsCert' | 'tlsKey' | 'tlsCa'>): TlsMaterial | null {
  if (config.tlsCert === null || config.tlsKey === null || config.tlsCa === null) return null;
  const material = { cert: readPem(config.tlsCert, '--tls-cert'), key: readPem(config.tlsKey, '--tls-key'), ca: readPem(config.tlsCa, '--tls-ca') };
  try {
    tls.createSecureContext(material);
  } catch (error) {
    throw new ConfigError(`the TLS certificate, key and CA do not load together: ${error instanceof Error ? error.message : String(error)}`);
  }
  return material;
}

function readPem(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${flag} ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!text.includes('-----BEGIN ')) throw new ConfigError(`${flag} ${path} is not a PEM file`);
  return text;
}

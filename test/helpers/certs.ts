/**
 * Test certificates made on the spot with the `openssl` binary: a CA, and leaf certificates it
 * signs for 127.0.0.1 / localhost (server and client use, so one certificate serves a node as TLS
 * server and as mutual-TLS client). EC P-256 keys: fast to make. Import-safe (no side effects).
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const OPENSSL = '/usr/bin/openssl';

/** Paths of a certificate and its key, and their PEM text. */
export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

/** A CA and the means to issue leaves from it. */
export interface TestCa extends CertFiles {
  /** Issues a leaf for 127.0.0.1 and localhost named `name`, valid for server and client auth. */
  issue(name: string): Promise<CertFiles>;
}

/** Makes a fresh self-signed CA in `dir` named `name` (files `<name>.crt`, `<name>.key`). */
export async function makeCa(dir: string, name: string): Promise<TestCa> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  await run(OPENSSL, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const ca = await readPair(certFile, keyFile);
  return { ...ca, issue: (leaf) => issue(dir, ca, leaf) };
}

async function issue(dir: string, ca: CertFiles, name: string): Promise<CertFiles> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(extFile, [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth,clientAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '',
  ].join('\n'));
  await run(OPENSSL, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${name}`]);
  await run(OPENSSL, [
    'x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', String(Date.now()),
    '-out', certFile, '-days', '2', '-extfile', extFile,
  ]);
  return readPair(certFile, keyFile);
}

async function readPair(certFile: string, keyFile: string): Promise<CertFiles> {
  const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  return { certFile, keyFile, cert, key };
}

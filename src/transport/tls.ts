/**
 * Plain TCP or TLS, chosen once where a socket or a server is created. Everything above works on
 * `net.Socket` (a `tls.TLSSocket` is one), so the framing, handshakes and protocols do not know
 * or care which they got; with TLS off the objects are exactly the ones `node:net` makes.
 *
 * What TLS adds is confidentiality and integrity on the wire and, with a CA, proof of the server's
 * (and for mutual TLS the client's) certificate. It does not replace the peer HMAC handshake or the
 * client token: those still run inside the TLS stream.
 */
import net from 'node:net';
import tls from 'node:tls';

/** Where to dial. */
export interface StreamAddress {
  readonly host: string;
  readonly port: number;
}

/** A dialed socket and the event after which it may be written to and read from. */
export interface DialedStream {
  readonly socket: net.Socket;
  /** 'connect' for plain TCP; 'secureConnect' once the TLS handshake and verification succeed. */
  readonly readyEvent: 'connect' | 'secureConnect';
}

/** The largest time a TLS handshake may take on a listener before the socket is dropped. */
export const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT = 10_000;

/**
 * Dials `address` with plain TCP (`tlsOptions` null) or TLS. With TLS the server's certificate is
 * verified against `tlsOptions.ca` (else Node's default roots) and must name `address.host`,
 * unless the caller explicitly passes `rejectUnauthorized: false`.
 */
export function dialStream(address: StreamAddress, tlsOptions: tls.ConnectionOptions | null): DialedStream {
  if (tlsOptions === null) return { socket: net.connect({ host: address.host, port: address.port }), readyEvent: 'connect' };
  // SNI carries host names only; for an IP address Node verifies the certificate's IP SANs.
  const servername = net.isIP(address.host) === 0 ? address.host : undefined;
  const socket = tls.connect({ ...tlsOptions, host: address.host, port: address.port, ...(servername === undefined ? {} : { servername }) });
  return { socket, readyEvent: 'secureConnect' };
}

/**
 * A listening server whose connection handler gets plain sockets (`tlsOptions` null) or TLS
 * sockets whose handshake has completed. `onTlsError` hears every TLS handshake that failed (a
 * plaintext client, an untrusted client certificate, a timeout); Node has already destroyed the
 * socket, so it is only told, for counting and logging.
 */
export function createStreamServer(
  tlsOptions: tls.TlsOptions | null,
  onSocket: (socket: net.Socket) => void,
  onTlsError: (error: Error, remoteAddress: string) => void = () => {},
): net.Server {
  if (tlsOptions === null) return net.createServer(onSocket);
  const server = tls.createServer({ handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT, ...tlsOptions }, onSocket);
  server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => onTlsError(error, remoteOf(socket)));
  return server;
}

/** `host:port` of a socket's far end, for logs ('?' when the socket is already gone). */
export function remoteOf(socket: net.Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

/**
 * Whether `error` is a TLS failure (handshake, protocol or certificate verification) rather than a
 * plain network error: these are worth a warning, since they mean a misconfiguration or someone
 * who should not be there, whereas refused and reset connections are routine while nodes restart.
 */
export function isTlsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || TLS_VERIFY_CODES.has(code) || code.startsWith('CERT_');
}

/** OpenSSL's certificate verification results, as Node reports them in `error.code`. */
const TLS_VERIFY_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

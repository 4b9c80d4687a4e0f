/**
 * A whole Synod server process: the node (replica, disk, peers) plus its client front ends — the
 * binary protocol listener and the HTTP/JSON API — on the ports its member entry names, bound to
 * `config.clientBind` (loopback unless configured), behind the client token and TLS when set.
 */
import type { Logger } from 'pino';
import { ClientAccess } from './access.js';
import { ClientListener } from './client-listener.js';
import { formatHostPort, type HostPort, type NodeConfig } from './config.js';
import { HttpApi } from './http.js';
import { SynodNode, type SynodNodeOptions } from './node.js';
import { loadTlsMaterial } from './tls-files.js';

export interface ServerAddresses {
  readonly peer: string | null;
  readonly client: string | null;
  readonly http: string | null;
}

export class SynodServer {
  private constructor(
    readonly node: SynodNode,
    private readonly clientListener: ClientListener | null,
    private readonly httpApi: HttpApi | null,
    readonly addresses: ServerAddresses,
    /** Refusals of clients so far (token, TLS), by `api/reason`. */
    readonly access: ClientAccess,
  ) {}

  static async start(config: NodeConfig, options: SynodNodeOptions = {}): Promise<SynodServer> {
    const tlsMaterial = options.tlsMaterial === undefined ? loadTlsMaterial(config) : options.tlsMaterial;
    const node = await SynodNode.start(config, { ...options, tlsMaterial });
    const self = config.members.find((member) => member.id === config.id);
    const logger = node.logger;
    const access = new ClientAccess({
      token: config.clientToken,
      logger: logger.child({ component: 'access' }),
      onRefused: (api, reason) => node.countClientRefusal(api, reason),
    });
    const tls = tlsMaterial === null ? {} : { tls: { cert: tlsMaterial.cert, key: tlsMaterial.key } };
    const host = config.clientBind;
    let clientListener: ClientListener | null = null;
    let httpApi: HttpApi | null = null;
    try {
      const connectionsPerAddressMax = config.connectionsPerAddressMax;
      if (self?.client) {
        warnIfUnreachable(logger, 'client', host, self.client);
        clientListener = new ClientListener({
          service: node, host, port: self.client.port, logger: logger.child({ component: 'client' }), access, ...tls,
          connectionsPerAddressMax, onRefused: (reason) => node.countRefusedConnection('client', reason),
        });
        await clientListener.start();
      }
      if (self?.http) {
        warnIfUnreachable(logger, 'http', host, self.http);
        httpApi = new HttpApi({
          service: node, host, port: self.http.port, logger: logger.child({ component: 'http' }), access, ...tls,
          connectionsPerAddressMax, onRefused: (reason) => node.countRefusedConnection('http', reason),
        });
        await httpApi.start();
      }
    } catch (error) {
      await clientListener?.stop();
      await httpApi?.stop();
      await node.stop();
      throw error;
    }
    const peer = node.peerAddress();
    const addresses: ServerAddresses = {
      peer: peer === null ? null : formatHostPort(peer),
      client: clientListener === null ? null : formatHostPort(clientListener.address()),
      http: httpApi === null ? null : formatHostPort(httpApi.address()),
    };
    node.logger.info({ ...addresses, tls: tlsMaterial !== null, clientToken: access.tokenRequired }, 'serving');
    return new SynodServer(node, clientListener, httpApi, addresses, access);
  }

  /** Stops taking requests, then stops the node (pending requests are answered `unavailable`). */
  async stop(): Promise<void> {
    await Promise.all([this.clientListener?.stop(), this.httpApi?.stop()]);
    await this.node.stop();
  }
}

/**
 * Says so when a listener is bound to loopback but advertised on another address: redirects and
 * cluster files will send clients where nothing answers them (the safe default, but a surprise).
 */
function warnIfUnreachable(logger: Logger, api: 'client' | 'http', bind: string, advertised: HostPort): void {
  if (!isLoopback(bind) || isLoopback(advertised.host)) return;
  logger.warn(
    { api, bind, advertised: formatHostPort(advertised) },
    'client API bound to loopback but advertised on another address: remote clients cannot reach it (set --client-bind)',
  );
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

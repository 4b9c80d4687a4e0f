/**
 * A whole Synod server process: the node (replica, disk, peers) plus its client front ends — the
 * binary protocol listener and the HTTP/JSON API — on the addresses its member entry names.
 */
import { ClientListener } from './client-listener.js';
import { formatHostPort, type NodeConfig } from './config.js';
import { HttpApi } from './http.js';
import { SynodNode, type SynodNodeOptions } from './node.js';

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
  ) {}

  static async start(config: NodeConfig, options: SynodNodeOptions = {}): Promise<SynodServer> {
    const node = await SynodNode.start(config, options);
    const self = config.members.find((member) => member.id === config.id);
    let clientListener: ClientListener | null = null;
    let httpApi: HttpApi | null = null;
    try {
      const logger = node.logger;
      const connectionsPerAddressMax = config.connectionsPerAddressMax;
      if (self?.client) {
        clientListener = new ClientListener({
          service: node, host: self.client.host, port: self.client.port, logger: logger.child({ component: 'client' }),
          connectionsPerAddressMax, onRefused: (reason) => node.countRefusedConnection('client', reason),
        });
        await clientListener.start();
      }
      if (self?.http) {
        httpApi = new HttpApi({
          service: node, host: self.http.host, port: self.http.port, logger: logger.child({ component: 'http' }),
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
    node.logger.info({ ...addresses }, 'serving');
    return new SynodServer(node, clientListener, httpApi, addresses);
  }

  /** Stops taking requests, then stops the node (pending requests are answered `unavailable`). */
  async stop(): Promise<void> {
    await Promise.all([this.clientListener?.stop(), this.httpApi?.stop()]);
    await this.node.stop();
  }
}

/**
 * The part of node-zookeeper-client 1.1 (which ships no types) that the ZooKeeper benchmark peer
 * uses. Signatures follow the package's README and index.js.
 */
declare module 'node-zookeeper-client' {
  import type { EventEmitter } from 'node:events';

  /** A server error (`code` is ZooKeeper's, e.g. -103 BadVersion) or a client-side failure. */
  export interface ZookeeperException extends Error {
    readonly code: number;
    getCode(): number;
    getName(): string;
  }

  export interface Stat {
    readonly version: number;
  }

  export type Callback<T> = (error: ZookeeperException | Error | null, result: T) => void;

  /** A request as the client's connection manager queues it (`lib/jute`'s Request shape). */
  export interface QueuedRequest {
    readonly header: { type: number; xid: number };
    readonly payload: null;
    toBuffer(): Buffer;
  }

  export interface ConnectionManager {
    queue(request: QueuedRequest, callback: (error: ZookeeperException | Error | null) => void): void;
  }

  export interface Client extends EventEmitter {
    /** Not part of the documented API; used to send SYNC, which this version has no method for. */
    readonly connectionManager: ConnectionManager;
    connect(): void;
    close(): void;
    getSessionId(): Buffer;
    create(path: string, data: Buffer, callback: Callback<string>): void;
    remove(path: string, version: number, callback: (error: ZookeeperException | Error | null) => void): void;
    setData(path: string, data: Buffer, version: number, callback: Callback<Stat>): void;
    getData(path: string, callback: (error: ZookeeperException | Error | null, data: Buffer, stat: Stat) => void): void;
  }

  export interface ClientOptions {
    sessionTimeout?: number;
    spinDelay?: number;
    retries?: number;
  }

  export function createClient(connectionString: string, options?: ClientOptions): Client;
}

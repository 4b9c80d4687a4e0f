/**
 * The `synod` package entry point: the client library for applications, and the server pieces for
 * embedding a node in a process of your own.
 */
export * from './client/index.js';
export { SynodServer } from './server/server.js';
export { SynodNode } from './server/node.js';
export type { SynodNodeOptions } from './server/node.js';
export { makeConfig, parseMembers, ConfigError } from './server/config.js';
export type { NodeConfig, MemberConfig } from './server/config.js';
export type { KvService, ServiceResult, ServiceFailure, RequestId, ReadMode, PeerStatus } from './server/service.js';

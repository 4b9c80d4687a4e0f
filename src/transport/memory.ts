/**
 * An in-process transport for tests: every `MemoryTransport` of one `MemoryNetwork` can reach the
 * others. Delivery is asynchronous (`setImmediate`), as on a real network, so a handler never runs
 * inside the sender's call. Messages go through the wire codec by default, so a test catches a
 * message TCP could not carry and receivers never share objects with senders.
 */
import { assert } from '../core/assert.js';
import { isValidNodeId, type NodeId } from '../core/ballot.js';
import type { Message } from '../core/multipaxos/types.js';
import { decodeMessage, encodeMessage } from './codec.js';
import {
  NodeCounters,
  PeerCounters,
  type MessageHandler,
  type Transport,
  type TransportStats,
} from './transport.js';

/** Options for a `MemoryNetwork`. */
export interface MemoryNetworkOptions {
  /** Returns true to drop a message in flight (loss injection). Consulted once per message. */
  readonly drop?: (message: Message) => boolean;
  /** Round-trip each message through `encodeMessage`/`decodeMessage` (default true). */
  readonly useCodec?: boolean;
}

/** The shared medium: routes messages between the transports created on it. */
export class MemoryNetwork {
  private readonly transports = new Map<NodeId, MemoryTransport>();
  /** Loss injection; replaceable mid-test to model partitions that heal. */
  drop: (message: Message) => boolean;
  readonly useCodec: boolean;

  constructor(options: MemoryNetworkOptions = {}) {
    this.drop = options.drop ?? (() => false);
    this.useCodec = options.useCodec ?? true;
  }

  /** Creates the transport of `nodeId`; its peers are every other node of this network. */
  createTransport(nodeId: NodeId): MemoryTransport {
    assert(isValidNodeId(nodeId), 'invalid node id');
    assert(!this.transports.has(nodeId), 'node id already on this network');
    const transport = new MemoryTransport(this, nodeId);
    this.transports.set(nodeId, transport);
    return transport;
  }

  /** Removes a stopped transport, so a replacement (a "restarted" node) can take its id. */
  remove(nodeId: NodeId): void {
    this.transports.delete(nodeId);
  }

  /** The transport of `nodeId`, if one was created and not removed. */
  transport(nodeId: NodeId): MemoryTransport | undefined {
    return this.transports.get(nodeId);
  }

  /** The node ids on this network. */
  nodeIds(): NodeId[] {
    return [...this.transports.keys()];
  }
}

/** One node's endpoint on a `MemoryNetwork`. */
export class MemoryTransport implements Transport {
  private readonly handlers: MessageHandler[] = [];
  private readonly peers = new Map<NodeId, PeerCounters>();
  private readonly counters = new NodeCounters();
  private running = false;
  private stopped = false;

  /** Use `MemoryNetwork.createTransport`. */
  constructor(
    private readonly network: MemoryNetwork,
    readonly nodeId: NodeId,
  ) {}

  /** Marks the endpoint reachable. */
  async start(): Promise<void> {
    assert(!this.stopped, 'a stopped MemoryTransport cannot restart; create a new one');
    this.running = true;
  }

  /** Queues delivery to `message.to` on a later turn of the event loop. */
  send(message: Message): void {
    assert(message.from === this.nodeId, 'send: message.from must be this node');
    const counters = this.peerCounters(message.to);
    if (!this.running) {
      counters.drop('stopped');
      return;
    }
    if (message.to === this.nodeId || this.network.transport(message.to) === undefined) {
      this.counters.droppedUnknownPeer += 1;
      return;
    }
    counters.sent += 1;
    const carried = this.network.useCodec ? decodeMessage(encodeMessage(message)) : message;
    if (this.network.drop(message)) return;
    setImmediate(() => this.network.transport(message.to)?.deliver(carried));
  }

  /** Registers a handler for delivered messages. */
  onMessage(handler: MessageHandler): void {
    this.handlers.push(handler);
  }

  /** Stops sending and receiving; messages still in flight to this node are discarded. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopped = true;
  }

  /** Counters per peer this node has exchanged messages with. */
  stats(): TransportStats {
    return this.counters.snapshot(this.nodeId, this.peers);
  }

  /** Called by the network: hands a message to the handlers if this node is running. */
  private deliver(message: Message): void {
    if (!this.running) return;
    this.peerCounters(message.from).received += 1;
    for (const handler of this.handlers) handler(message);
  }

  private peerCounters(peerId: NodeId): PeerCounters {
    let counters = this.peers.get(peerId);
    if (counters === undefined) {
      counters = new PeerCounters();
      counters.state = 'connected';
      this.peers.set(peerId, counters);
    }
    return counters;
  }
}

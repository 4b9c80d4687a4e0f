/**
 * Majority quorums over a member set. A configuration is the set of voting members that governs
 * a slot; today it is fixed at start, and the log is where a later membership change will record
 * a new one (`ConfigurationSource` leaves that room).
 */
import { assert } from '../assert.js';
import type { NodeId } from '../ballot.js';

export class Configuration {
  readonly members: readonly NodeId[];
  readonly quorumSize: number;
  private readonly memberSet: ReadonlySet<NodeId>;

  constructor(members: readonly NodeId[]) {
    assert(members.length >= 1, 'a configuration needs at least one member');
    const unique = new Set(members);
    assert(unique.size === members.length, 'configuration members must be distinct');
    this.members = [...members].sort((x, y) => x - y);
    this.memberSet = unique;
    this.quorumSize = Math.floor(members.length / 2) + 1;
  }

  has(nodeId: NodeId): boolean {
    return this.memberSet.has(nodeId);
  }

  /** True when the voters in `votes` (members only are counted) form a majority. */
  isQuorum(votes: ReadonlySet<NodeId>): boolean {
    let count = 0;
    for (const voter of votes) if (this.memberSet.has(voter)) count += 1;
    return count >= this.quorumSize;
  }

  /** How many failures the configuration tolerates: f of 2f+1. */
  get faultTolerance(): number {
    return this.members.length - this.quorumSize;
  }
}

/** Where the replica asks which configuration governs a slot (membership change hooks in here). */
export interface ConfigurationSource {
  configurationFor(slot: number): Configuration;
}

/** A configuration that never changes. */
export class StaticConfiguration implements ConfigurationSource {
  constructor(private readonly configuration: Configuration) {}
  configurationFor(_slot: number): Configuration {
    return this.configuration;
  }
}

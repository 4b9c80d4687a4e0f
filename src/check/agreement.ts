/**
 * The agreement oracle: watches every acceptor's durable acceptances and every replica's chosen
 * marks and applied entries, across the whole cluster, and reports any safety violation:
 * - two different values chosen (accepted by a majority at some ballot) for one slot;
 * - a replica marking a slot chosen with a value that no majority ever accepted;
 * - two replicas applying different values at one slot (replica consistency: applied sequences
 *   must be prefixes of one another).
 * Values are compared by a canonical key (`entryKey`).
 */
import type { NodeId } from '../core/ballot.js';

interface SlotVotes {
  /** ballot -> value key and the acceptors that durably accepted it. */
  readonly byBallot: Map<number, { key: string; acceptors: Set<NodeId> }>;
  chosenKey: string | null;
}

export class AgreementOracle {
  readonly violations: string[] = [];
  private readonly slots = new Map<number, SlotVotes>();
  private readonly applied = new Map<number, string>();
  private readonly markedChosen = new Map<number, string>();

  constructor(private readonly quorumSize: number) {}

  /** An acceptor made (slot, ballot, value) durable. */
  onAccepted(acceptor: NodeId, slot: number, ballot: number, key: string): void {
    const votes = this.votesFor(slot);
    let ballotVotes = votes.byBallot.get(ballot);
    if (ballotVotes === undefined) {
      ballotVotes = { key, acceptors: new Set() };
      votes.byBallot.set(ballot, ballotVotes);
    } else if (ballotVotes.key !== key) {
      this.report(`slot ${slot}: ballot ${ballot} carried two values (${ballotVotes.key} and ${key})`);
    }
    ballotVotes.acceptors.add(acceptor);
    if (ballotVotes.acceptors.size < this.quorumSize) return;
    if (votes.chosenKey === null) votes.chosenKey = key;
    else if (votes.chosenKey !== key) {
      this.report(`slot ${slot}: two values chosen: ${votes.chosenKey} and then ${key} (ballot ${ballot})`);
    }
  }

  /** A replica durably marked a slot chosen. */
  onMarkedChosen(node: NodeId, slot: number, key: string): void {
    const votes = this.slots.get(slot);
    if (votes === undefined || votes.chosenKey === null) {
      this.report(`slot ${slot}: node ${node} marked ${key} chosen, but no majority accepted any value`);
    } else if (votes.chosenKey !== key) {
      this.report(`slot ${slot}: node ${node} marked ${key} chosen, but ${votes.chosenKey} was chosen`);
    }
    const previous = this.markedChosen.get(slot);
    if (previous === undefined) this.markedChosen.set(slot, key);
    else if (previous !== key) this.report(`slot ${slot}: marked chosen as ${previous} and as ${key}`);
  }

  /** A replica applied a slot to its state machine. */
  onApplied(node: NodeId, slot: number, key: string): void {
    const previous = this.applied.get(slot);
    if (previous === undefined) this.applied.set(slot, key);
    else if (previous !== key) this.report(`slot ${slot}: node ${node} applied ${key}, another replica applied ${previous}`);
  }

  /** The value chosen at a slot, if a majority accepted one. */
  chosen(slot: number): string | null {
    return this.slots.get(slot)?.chosenKey ?? null;
  }

  private votesFor(slot: number): SlotVotes {
    let votes = this.slots.get(slot);
    if (votes === undefined) {
      votes = { byBallot: new Map(), chosenKey: null };
      this.slots.set(slot, votes);
    }
    return votes;
  }

  private report(violation: string): void {
    if (this.violations.length < 100) this.violations.push(violation);
  }
}

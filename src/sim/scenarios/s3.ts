/**
 * S3 — dueling proposers, livelock (seed 003 "2.3"; seeds 000 and 001 "活锁"; SCENARIOS.md S3).
 *
 * (a) The problem, scripted: two naive proposers (no backoff) preempt each other. Each prepare
 *     wins phase 1 everywhere just before the other's accepts land, so every accept is refused
 *     and the refused proposer at once prepares higher. No value is chosen however long the
 *     script runs, and nothing is ever accepted.
 * (b) The mitigation, randomised: proposers back off a random, growing number of ticks after a
 *     preemption. Over many seeds with random delays, loss and duplication and 2–5 concurrent
 *     proposers, a value is chosen within a bounded virtual time in every seed, and every run
 *     keeps agreement. The other half of the mitigation, a distinguished leader (the only
 *     proposer in steady state), is the Multi-Paxos replica's job (`src/core/multipaxos/`).
 */
import { ballotRound, formatBallot, type Ballot, type NodeId } from '../../core/ballot.js';
import { Prng } from '../../core/prng.js';
import type { AcceptMessage, Message } from '../../core/paxos/index.js';
import { BasicHarness, runRandomTrial, type HarnessNodeOptions, type RandomNetwork } from '../basic-harness.js';
import { ScenarioRecorder, type Scenario, type ScenarioResult } from '../scenario.js';

const TITLE = 'dueling proposers — livelock without backoff, progress with randomised backoff';
const VARIABLE = 'x';
const N1: NodeId = 1;
const N2: NodeId = 2;
/** Rounds of the adversarial script: each is one preemption. */
const LIVELOCK_ROUNDS = 20;
/** Seeds of the randomised run. */
export const S3_SEEDS = 1000;
/** The bound on virtual time within which every seed must choose a value. */
export const S3_CHOSEN_TICKS_MAX = 500;
/** How long a random run may last before it counts as stuck. */
const TRIAL_TICKS_MAX = 5000;

/** Random delays of 1–6 ticks (so messages reorder), 5% loss, 5% duplication. */
const NETWORK: RandomNetwork = { delayTicksMin: 1, delayTicksMax: 6, lossProbability: 0.05, duplicateProbability: 0.05 };

/** Retransmit after about one slow round trip; back off from 4 ticks, doubling up to 128. */
const BACKOFF_NODE: HarnessNodeOptions = {
  retransmitTicks: 16,
  backoff: true,
  backoffTicksMin: 4,
  backoffTicksMax: 128,
  proposeTicksMax: TRIAL_TICKS_MAX,
};

/** The S3 scenario: the scripted livelock, then the randomised mitigation over many seeds. */
export const s3Scenario: Scenario = { id: 'S3', title: TITLE, run: runS3 };

function runS3(): ScenarioResult {
  const recorder = new ScenarioRecorder('S3', TITLE);
  runLivelock(recorder);
  runRandomised(recorder);
  return recorder.finish();
}

const isAccept = (message: Message): message is AcceptMessage => message.type === 'accept';

function runLivelock(recorder: ScenarioRecorder): void {
  recorder.step(`=== (a) Two naive proposers (no backoff), an adversarial schedule, ${LIVELOCK_ROUNDS} rounds`);
  const harness = new BasicHarness({
    members: [N1, N2, 3],
    names: { [N1]: 'N1', [N2]: 'N2', 3: 'N3' },
    seed: 3,
    traceSink: (line) => recorder.step(line),
    node: { backoff: false },
  });
  const requests = [harness.submit(N1, VARIABLE, 'A')];
  harness.deliverWhile((message) => !isAccept(message));
  requests.push(harness.submit(N2, VARIABLE, 'B'));
  for (let round = 1; round <= LIVELOCK_ROUNDS; round += 1) {
    // The newest prepare wins phase 1 everywhere; its proposer's accepts wait in the network.
    harness.deliverWhile((message) => !isAccept(message));
    const late = lowestPendingAccept(harness);
    if (late === null) break;
    const winner = harness.pending().filter(isAccept).find((message) => message.ballot !== late.ballot);
    harness.note(
      `-- Round ${round}: ${harness.name(late.from)}'s accept(${formatBallot(late.ballot)}) lands after ` +
        `${winner === undefined ? 'a higher' : `${harness.name(winner.from)}'s`} prepare(${winner === undefined ? '?' : formatBallot(winner.ballot)}) ` +
        `and is refused; ${harness.name(late.from)} prepares higher at once.`,
    );
    // The older accepts land late, are refused, and the naive loser retries immediately.
    harness.deliverWhile((message) => message.type === 'nack' || (isAccept(message) && message.ballot === late.ballot));
  }
  const ballots = [N1, N2].map((nodeId) => harness.node(nodeId).ballotUsed);
  const rounds = ballots.map((ballot) => ballotRound(ballot));
  recorder.check(`no value is chosen after ${LIVELOCK_ROUNDS} rounds`, harness.oracle.chosen(VARIABLE) === undefined);
  recorder.check('no acceptor ever accepted anything', harness.oracle.accepts.length === 0, `${harness.oracle.accepts.length} acceptances`);
  recorder.check('neither propose call returned', requests.every((request) => request.result === null));
  recorder.check(
    'the ballots kept climbing (the livelock is real, not a stall)',
    Math.min(...rounds) >= LIVELOCK_ROUNDS / 2,
    `last ballots ${ballots.map((ballot: Ballot) => formatBallot(ballot)).join(' and ')}`,
  );
}

function lowestPendingAccept(harness: BasicHarness): AcceptMessage | null {
  let lowest: AcceptMessage | null = null;
  for (const message of harness.pending()) {
    if (isAccept(message) && (lowest === null || message.ballot < lowest.ballot)) lowest = message;
  }
  return lowest;
}

interface RandomisedSummary {
  chosenSeeds: number;
  boundedSeeds: number;
  allOkSeeds: number;
  chosenTicksMax: number;
  violations: string[];
  byProposers: Map<number, { seeds: number; chosenTicksMax: number }>;
}

function runRandomised(recorder: ScenarioRecorder): void {
  recorder.step(`=== (b) Randomised backoff: ${S3_SEEDS} seeds, 2-5 concurrent proposers, random delays`);
  recorder.step(
    `network: delays ${NETWORK.delayTicksMin}-${NETWORK.delayTicksMax} ticks, loss ${NETWORK.lossProbability}, ` +
      `duplication ${NETWORK.duplicateProbability}; backoff ${BACKOFF_NODE.backoffTicksMin}-${BACKOFF_NODE.backoffTicksMax} ticks, doubling`,
  );
  recorder.step('The other half of the mitigation, a distinguished leader, is the Multi-Paxos replica (src/core/multipaxos/).');
  const summary = runSeeds(BACKOFF_NODE);
  for (const [proposers, entry] of [...summary.byProposers].sort((x, y) => x[0] - y[0])) {
    recorder.step(`${proposers} proposers: ${entry.seeds} seeds, chosen by tick ${entry.chosenTicksMax} at the latest`);
  }
  recorder.step(`${summary.chosenSeeds}/${S3_SEEDS} seeds chose a value, max ${summary.chosenTicksMax} ticks`);
  recorder.check(`every seed chose a value`, summary.chosenSeeds === S3_SEEDS, `${summary.chosenSeeds}/${S3_SEEDS}`);
  recorder.check(
    `every seed chose within ${S3_CHOSEN_TICKS_MAX} ticks`,
    summary.boundedSeeds === S3_SEEDS,
    `max ${summary.chosenTicksMax} ticks`,
  );
  recorder.check('every proposer returned <ok, chosen value>', summary.allOkSeeds === S3_SEEDS, `${summary.allOkSeeds}/${S3_SEEDS} seeds`);
  recorder.check('agreement held in every seed', summary.violations.length === 0, summary.violations.slice(0, 3).join('; ') || undefined);
  const naive = runSeeds({ ...BACKOFF_NODE, backoff: false });
  recorder.step(
    `For comparison, naive proposers on the same seeds: ${naive.boundedSeeds}/${S3_SEEDS} chose within ` +
      `${S3_CHOSEN_TICKS_MAX} ticks, the slowest after ${naive.chosenTicksMax} (random delays alone break most duels).`,
  );
}

function runSeeds(node: HarnessNodeOptions): RandomisedSummary {
  const summary: RandomisedSummary = {
    chosenSeeds: 0,
    boundedSeeds: 0,
    allOkSeeds: 0,
    chosenTicksMax: 0,
    violations: [],
    byProposers: new Map(),
  };
  for (let seed = 1; seed <= S3_SEEDS; seed += 1) {
    const proposerCount = new Prng(seed).int(2, 6);
    const report = runRandomTrial({ seed, proposerCount, network: NETWORK, node, ticksMax: TRIAL_TICKS_MAX });
    for (const violation of report.violations) summary.violations.push(`seed ${seed}: ${violation}`);
    if (report.outcomes.every((outcome) => outcome !== null && outcome.ok && outcome.chosen === report.chosen)) {
      summary.allOkSeeds += 1;
    }
    if (report.chosenTick === null) continue;
    summary.chosenSeeds += 1;
    if (report.chosenTick <= S3_CHOSEN_TICKS_MAX) summary.boundedSeeds += 1;
    summary.chosenTicksMax = Math.max(summary.chosenTicksMax, report.chosenTick);
    const entry = summary.byProposers.get(proposerCount) ?? { seeds: 0, chosenTicksMax: 0 };
    entry.seeds += 1;
    entry.chosenTicksMax = Math.max(entry.chosenTicksMax, report.chosenTick);
    summary.byProposers.set(proposerCount, entry);
  }
  return summary;
}

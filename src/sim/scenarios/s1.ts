/**
 * S1 — "1 + 1 = ?" (seed 002, section 3; SCENARIOS.md S1).
 *
 * Three users, each proposer and acceptor, prepare in turn with growing numbers, then send
 * their accepts in the same order. Only the last one, User3, still holds a majority's promise,
 * so "1+1=3" is chosen; User2's "1+1=2" stays on User3 alone, which is harmless. The retries
 * that follow show phase 1 doing its job: whoever proposes next learns "1+1=3" and must
 * propose it.
 */
import { formatBallot, makeBallot, type NodeId } from '../../core/ballot.js';
import { formatAccepted } from '../../core/paxos/index.js';
import { BasicHarness, formatOutcome, isSelfMessage, matching, type HarnessRequest } from '../basic-harness.js';
import { ScenarioRecorder, type Scenario, type ScenarioResult } from '../scenario.js';

const TITLE = '1 + 1 = ? — three proposers in turn; the last promise holder chooses';
const VARIABLE = '1+1';
const USER1: NodeId = 1;
const USER2: NodeId = 2;
const USER3: NodeId = 3;
const CHOSEN = '1+1=3';
const RETRY_TICKS_MAX = 1000;

/** The seed's proposal number n: the first ballot of node n (round 1, since round 0 is unused). */
function seedNumber(user: NodeId): string {
  return formatBallot(makeBallot(1, user));
}

/** The S1 scenario: the exact six-step schedule of the seed, then the losers' retries. */
export const s1Scenario: Scenario = { id: 'S1', title: TITLE, run: runS1 };

function runS1(): ScenarioResult {
  const recorder = new ScenarioRecorder('S1', TITLE);
  const harness = new BasicHarness({
    members: [USER1, USER2, USER3],
    names: { [USER1]: 'User1', [USER2]: 'User2', [USER3]: 'User3' },
    seed: 1,
    traceSink: (line) => recorder.step(line),
    node: { backoffTicksMin: 2, backoffTicksMax: 16 },
  });
  recorder.step('Seed 002, section 3: User1, User2, User3 decide what 1+1 is; each is proposer and acceptor.');
  const numbers = [USER1, USER2, USER3].map(seedNumber).join(', ');
  recorder.step(`Ballots print as round.node; the seed's proposal numbers 1, 2, 3 are the users' first ballots ${numbers}.`);
  recorder.step("In steps 1-6 each user asks only the other two, as in the seed: messages to oneself are dropped.");
  const requests = [
    prepareStep(harness, 1, USER1, '1+1=1'),
    prepareStep(harness, 2, USER2, '1+1=2'),
    prepareStep(harness, 3, USER3, '1+1=3'),
  ] as const;
  const [two, three] = [seedNumber(USER2), seedNumber(USER3)];
  acceptStep(harness, 4, USER1, `both refuse: User2 promised ${three}, User3 promised ${two}`);
  acceptStep(harness, 5, USER2, `User1 refuses (promised ${three}); User3 accepts (promised ${two}, and ${two} >= ${two})`);
  acceptStep(harness, 6, USER3, 'User1 and User2 accept: a majority, "1+1=3" is chosen');
  checkAfterStepSix(recorder, harness, requests[2]);
  const acceptsBeforeRetry = harness.oracle.accepts.length;
  harness.note('-- Retries: User1 and User2 back off a random number of ticks and retry with higher ballots;');
  harness.note('   from now on every message is delivered, including those to oneself.');
  const retried = harness.runUntil(() => requests[0].result !== null && requests[1].result !== null, RETRY_TICKS_MAX);
  recorder.check('the retries finish', retried, `at tick ${harness.now}`);
  for (const request of [requests[0], requests[1]]) {
    const outcome = request.result;
    recorder.check(
      `${harness.name(request.nodeId)}'s propose returns <ok, "${CHOSEN}">`,
      outcome !== null && outcome.ok && outcome.chosen === CHOSEN,
      outcome === null ? 'no result' : formatOutcome(outcome),
    );
  }
  const retryValues = new Set(harness.oracle.accepts.slice(acceptsBeforeRetry).map((entry) => entry.value));
  recorder.check(
    `every acceptance after step 6 is "${CHOSEN}" (phase 1 taught it to the retrying proposers)`,
    retryValues.size === 1 && retryValues.has(CHOSEN),
    [...retryValues].map((value) => JSON.stringify(value)).join(', '),
  );
  harness.note('-- A learner: User3 already knows the chosen value, so a new propose answers at once.');
  const late = harness.propose(USER3, VARIABLE, '1+1=4');
  recorder.check(`propose("1+1=4") on User3 returns <ok, "${CHOSEN}">`, late.ok && late.chosen === CHOSEN, formatOutcome(late));
  const chosenValues = [...harness.oracle.chosenValues(VARIABLE)];
  recorder.check('only one value is ever chosen', chosenValues.length === 1 && chosenValues[0] === CHOSEN, chosenValues.join(', '));
  const violations = harness.agreementViolations();
  recorder.check('the agreement oracle saw no violation', violations.length === 0, violations.join('; ') || undefined);
  return recorder.finish();
}

/** Steps 1-3: `user` proposes `value`; its prepare reaches the other two, who promise. */
function prepareStep(harness: BasicHarness, step: number, user: NodeId, value: string): HarnessRequest {
  harness.note(`-- Step ${step}: ${harness.name(user)} proposes "${value}" and sends prepare to the other two.`);
  const request = harness.submit(user, VARIABLE, value);
  harness.drop(isSelfMessage);
  harness.deliver(matching({ type: 'prepare', from: user }));
  harness.deliver(matching({ type: 'promise', to: user }));
  // With two promises of three, the user already sent its accepts; they wait for step 4-6.
  harness.drop(isSelfMessage);
  return request;
}

/** Steps 4-6: `user`'s accepts land, and the answers come back. */
function acceptStep(harness: BasicHarness, step: number, user: NodeId, expected: string): void {
  harness.note(`-- Step ${step}: ${harness.name(user)}'s accept reaches the other two: ${expected}.`);
  harness.deliver(matching({ type: 'accept', from: user }));
  harness.deliver(matching({ type: ['accepted', 'nack'], to: user }));
  harness.drop(isSelfMessage);
}

function checkAfterStepSix(recorder: ScenarioRecorder, harness: BasicHarness, user3Request: HarnessRequest): void {
  const chosen = harness.oracle.chosen(VARIABLE);
  recorder.check(
    `the chosen value is "${CHOSEN}"`,
    chosen?.value === CHOSEN,
    chosen === undefined ? 'nothing chosen' : `at ballot ${formatBallot(chosen.ballot)}`,
  );
  const outcome = user3Request.result;
  recorder.check(
    `User3's propose returns <ok, "${CHOSEN}">`,
    outcome !== null && outcome.ok && outcome.chosen === CHOSEN,
    outcome === null ? 'no result' : formatOutcome(outcome),
  );
  const expected: ReadonlyArray<readonly [NodeId, string]> = [
    [USER1, `(${seedNumber(USER3)}, "${CHOSEN}")`],
    [USER2, `(${seedNumber(USER3)}, "${CHOSEN}")`],
    [USER3, `(${seedNumber(USER2)}, "1+1=2")`],
  ];
  for (const [user, accepted] of expected) {
    const state = harness.node(user).acceptorState(VARIABLE);
    const actual = formatAccepted(state.accepted);
    recorder.check(
      `${harness.name(user)}'s acceptor holds ${accepted}`,
      actual === accepted,
      `accepted ${actual}, promised ${formatBallot(state.promised)}`,
    );
  }
  const user3Alone = harness.oracle.accepts.filter((entry) => entry.value === '1+1=2').map((entry) => entry.acceptor);
  recorder.check(
    '"1+1=2" was accepted by User3 alone, never by a majority',
    user3Alone.length === 1 && user3Alone[0] === USER3 && !harness.oracle.chosenValues(VARIABLE).has('1+1=2'),
  );
}

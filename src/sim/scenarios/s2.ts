/**
 * S2 — preemptive epochs, "the later one accepts the earlier" (后者认同前者; seed 004,
 * SCENARIOS.md S2).
 *
 * Acceptors A, B, C and two proposer-only nodes P1 (value V1) and P2 (value V2), each calling the
 * seed's `propose(var, V) -> <ok, f> | <error>`.
 * Main run: V1 reaches A before P2's phase 1, and A is in P2's majority, so P2 must adopt V1;
 * V1 then also reaches C and is chosen. Both calls return <ok, V1>; V2 is never accepted.
 * Variant: P2's phase 1 is answered by B and C, which hold nothing, so P2 is free to propose V2;
 * P1's accepts are refused, V1 stays on A alone, V2 is chosen, and P1's retry learns V2.
 */
import { formatBallot, type NodeId } from '../../core/ballot.js';
import { BasicHarness, formatOutcome, matching, type HarnessRequest } from '../basic-harness.js';
import { ScenarioRecorder, type Scenario, type ScenarioResult } from '../scenario.js';

const TITLE = 'preemptive epochs — the later proposer adopts the earlier value';
const VARIABLE = 'var';
const P1: NodeId = 1;
const P2: NodeId = 2;
const A: NodeId = 3;
const B: NodeId = 4;
const C: NodeId = 5;
const V1 = 'V1';
const V2 = 'V2';
const RETRY_TICKS_MAX = 1000;

/** The S2 scenario: the main schedule and its variant, each in its own cluster. */
export const s2Scenario: Scenario = { id: 'S2', title: TITLE, run: runS2 };

function runS2(): ScenarioResult {
  const recorder = new ScenarioRecorder('S2', TITLE);
  recorder.step('Seed 004: acceptors A, B, C; proposers P1 (V1) and P2 (V2), outside the acceptor set.');
  runMain(recorder);
  runVariant(recorder);
  return recorder.finish();
}

function newHarness(recorder: ScenarioRecorder): BasicHarness {
  return new BasicHarness({
    members: [A, B, C],
    clients: [P1, P2],
    names: { [P1]: 'P1', [P2]: 'P2', [A]: 'A', [B]: 'B', [C]: 'C' },
    seed: 2,
    traceSink: (line) => recorder.step(line),
    node: { backoffTicksMin: 2, backoffTicksMax: 16 },
  });
}

/** Step 1 of both runs: P1's phase 1 wins everywhere; its accepts wait in the network. */
function p1PhaseOne(harness: BasicHarness): HarnessRequest {
  harness.note('-- Step 1: P1 prepares at its first ballot; A, B and C all promise, none holds a value.');
  const request = harness.submit(P1, VARIABLE, V1);
  harness.deliver(matching({ type: 'prepare', from: P1 }));
  harness.deliver(matching({ type: 'promise', to: P1 }));
  harness.note('-- Step 2: P1\'s accept reaches A only: accepted.');
  harness.deliver(matching({ type: 'accept', from: P1, to: A }));
  harness.deliver(matching({ type: 'accepted', from: A, to: P1 }));
  return request;
}

function runMain(recorder: ScenarioRecorder): void {
  recorder.step('=== Main run: A is in P2\'s phase-1 majority');
  const harness = newHarness(recorder);
  const request1 = p1PhaseOne(harness);
  harness.note('-- Step 3: P2 prepares at a higher ballot; A and B promise, A reporting V1.');
  const request2 = harness.submit(P2, VARIABLE, V2);
  harness.deliver(matching({ type: 'prepare', from: P2, to: [A, B] }));
  harness.deliver(matching({ type: 'promise', to: P2 }));
  harness.note('-- Step 4: P1\'s accept reaches B (refused: it promised P2) and C (accepted): V1 is on A and C.');
  harness.deliver(matching({ type: 'accept', from: P1, to: B }));
  harness.deliver(matching({ type: 'accept', from: P1, to: C }));
  const chosen = harness.oracle.chosen(VARIABLE);
  recorder.check('V1 is chosen by A and C', chosen?.value === V1, chosen === undefined ? 'nothing chosen' : `ballot ${formatBallot(chosen.ballot)}`);
  harness.deliver(matching({ type: 'accepted', to: P1 }));
  harness.deliver(matching({ type: 'nack', to: P1 }));
  harness.note('-- Step 5: P2 proposes V1, the highest-ballot value its promises reported, at its own ballot.');
  harness.deliverAll();
  checkOutcome(recorder, 'P1', request1, V1);
  checkOutcome(recorder, 'P2', request2, V1);
  recorder.check('V2 is never accepted by anyone', !harness.oracle.acceptedValues(VARIABLE).has(V2));
  checkAgreement(recorder, harness, V1);
}

function runVariant(recorder: ScenarioRecorder): void {
  recorder.step('=== Variant: P2\'s phase 1 is answered by B and C, which hold nothing');
  const harness = newHarness(recorder);
  const request1 = p1PhaseOne(harness);
  harness.note('-- Step 3: P2 prepares at a higher ballot; B and C promise with no value, so P2 may propose V2.');
  const request2 = harness.submit(P2, VARIABLE, V2);
  harness.deliver(matching({ type: 'prepare', from: P2, to: [B, C] }));
  harness.deliver(matching({ type: 'promise', to: P2 }));
  harness.note('-- Step 4: P1\'s accept reaches B and C: both refuse (promised P2\'s ballot); P1 backs off.');
  harness.deliver(matching({ type: 'accept', from: P1, to: [B, C] }));
  harness.deliver(matching({ type: 'nack', to: P1 }));
  const holders = harness.oracle.accepts.filter((entry) => entry.value === V1).map((entry) => harness.name(entry.acceptor));
  recorder.check('V1 sits on A alone and is not chosen', holders.join() === 'A' && harness.oracle.chosen(VARIABLE) === undefined, `held by ${holders.join(', ')}`);
  harness.note('-- Step 5: P2\'s accept(V2) reaches B and C: accepted, V2 is chosen.');
  harness.deliver(matching({ type: 'accept', from: P2, to: [B, C] }));
  harness.deliver(matching({ type: 'accepted', to: P2 }));
  checkOutcome(recorder, 'P2', request2, V2);
  harness.note('-- Step 6: P2\'s messages to A are lost, so A still holds V1; P1 retries with a higher ballot.');
  harness.note('   Any majority includes B or C, whose V2 has the higher ballot: P1 learns V2 and proposes it.');
  harness.drop(matching({ from: P2, to: A }));
  harness.runUntil(() => request1.result !== null, RETRY_TICKS_MAX);
  checkOutcome(recorder, 'P1', request1, V2);
  checkAgreement(recorder, harness, V2);
}

function checkOutcome(recorder: ScenarioRecorder, name: string, request: HarnessRequest, expected: string): void {
  const outcome = request.result;
  recorder.check(
    `${name}'s propose returns <ok, ${expected}>`,
    outcome !== null && outcome.ok && outcome.chosen === expected,
    outcome === null ? 'no result' : formatOutcome(outcome),
  );
}

function checkAgreement(recorder: ScenarioRecorder, harness: BasicHarness, expected: string): void {
  const chosen = [...harness.oracle.chosenValues(VARIABLE)];
  recorder.check(`only ${expected} is ever chosen`, chosen.length === 1 && chosen[0] === expected, chosen.join(', '));
  const violations = harness.agreementViolations();
  recorder.check('the agreement oracle saw no violation', violations.length === 0, violations.join('; ') || undefined);
}

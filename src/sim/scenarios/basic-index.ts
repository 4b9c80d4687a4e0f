/**
 * The Basic Paxos scenarios of SCENARIOS.md (S1, S2, S3), for the CLI's scenario registry.
 * Each runs the production `PaxosNode` in the deterministic `BasicHarness`.
 */
import type { Scenario } from '../scenario.js';
import { s1Scenario } from './s1.js';
import { s2Scenario } from './s2.js';
import { s3Scenario } from './s3.js';

/** S1 ("1 + 1 = ?"), S2 (preemptive epochs, both variants), S3 (livelock and backoff). */
export const basicScenarios: Scenario[] = [s1Scenario, s2Scenario, s3Scenario];

export { s1Scenario, s2Scenario, s3Scenario };

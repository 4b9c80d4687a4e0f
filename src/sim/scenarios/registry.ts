/** Every scripted scenario of SCENARIOS.md, by id (`synod scenario <id>`). */
import type { Scenario } from '../scenario.js';
import { basicScenarios } from './basic-index.js';
import { d1 } from './d1.js';
import { s4 } from './s4.js';
import { s5 } from './s5.js';
import { s6 } from './s6.js';

const scenarios: readonly Scenario[] = [...basicScenarios, s4, s5, s6, d1];

export function scenarioIds(): string[] {
  return scenarios.map((scenario) => scenario.id);
}

export function scenarioById(id: string): Scenario | undefined {
  return scenarios.find((scenario) => scenario.id.toLowerCase() === id.toLowerCase());
}

export function allScenarios(): readonly Scenario[] {
  return scenarios;
}

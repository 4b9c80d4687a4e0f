/** Every scripted scenario of SCENARIOS.md, by id. */
import type { Scenario } from '../scenario.js';

const scenarios: Scenario[] = [];

export function scenarioIds(): string[] {
  return scenarios.map((scenario) => scenario.id);
}

export function scenarioById(id: string): Scenario | undefined {
  return scenarios.find((scenario) => scenario.id.toLowerCase() === id.toLowerCase());
}

export function allScenarios(): readonly Scenario[] {
  return scenarios;
}

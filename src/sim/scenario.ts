/**
 * The shape shared by every scripted scenario of SCENARIOS.md (S1, S2, ...): a deterministic run
 * that records a readable step-by-step trace and a list of checks, each of which must hold for
 * the scenario's expected outcome. `synod scenario S1` prints the trace and the verdict.
 */

export interface ScenarioCheck {
  readonly name: string;
  readonly passed: boolean;
  readonly detail?: string;
}

export interface ScenarioResult {
  readonly id: string;
  readonly title: string;
  readonly trace: readonly string[];
  readonly checks: readonly ScenarioCheck[];
  readonly passed: boolean;
}

export interface Scenario {
  readonly id: string;
  readonly title: string;
  run(): ScenarioResult;
}

/** Collects trace lines and checks while a scenario runs. */
export class ScenarioRecorder {
  private readonly lines: string[] = [];
  private readonly results: ScenarioCheck[] = [];

  constructor(
    readonly id: string,
    readonly title: string,
  ) {}

  /** Appends one trace line (a step of the script, a message, a state change). */
  step(line: string): void {
    this.lines.push(line);
  }

  /** Records whether an expected outcome holds; returns the condition for chaining. */
  check(name: string, passed: boolean, detail?: string): boolean {
    this.results.push(detail === undefined ? { name, passed } : { name, passed, detail });
    this.lines.push(`${passed ? 'CHECK ok  ' : 'CHECK FAIL'} ${name}${detail === undefined ? '' : ` (${detail})`}`);
    return passed;
  }

  finish(): ScenarioResult {
    return {
      id: this.id,
      title: this.title,
      trace: [...this.lines],
      checks: [...this.results],
      passed: this.results.length > 0 && this.results.every((result) => result.passed),
    };
  }
}

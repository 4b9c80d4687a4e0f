/** Option parsers and error reporting shared by the `synod` subcommands. */
import { InvalidArgumentError } from 'commander';

/** A commander parser for an integer option with a lower bound. */
export function integer(name: string, min: number): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return value;
  };
}

/** Prints one clear line for a failure and sets a non-zero exit code. */
export function fail(message: string, exitCode = 1): void {
  console.error(`synod: ${message}`);
  process.exitCode = exitCode;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

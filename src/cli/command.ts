import type { ParseArgsConfig } from 'node:util';

/** Option values as `node:util` parseArgs gives them. */
export type OptionValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

/** One `onnx-gateway <name>` subcommand; `main.ts` parses its options and runs it. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** What `onnx-gateway <name> --help` prints, and what follows a usage error. */
  usage: string;
  /** parseArgs option declarations (`--help` is added by main.ts). */
  options: NonNullable<ParseArgsConfig['options']>;
  /** Takes words besides options (`keys revoke ID`); without it, any is a usage error. @default false */
  positionals?: boolean;
  /** Runs the command; resolves with the process exit code. Throws UsageError for option values it rejects. */
  run(values: OptionValues, positionals: readonly string[]): Promise<number>;
}

/** The command line is wrong: nothing ran. main.ts prints the message and the usage on stderr and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Exit code of a usage error (as in most Unix tools). */
export const USAGE_EXIT_CODE = 2;

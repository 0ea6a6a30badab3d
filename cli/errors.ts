import { CacheError } from '../src/errors.js';

/** Exit codes of the CLI: 0 ok, 1 the policy has problems, 2 usage or environment errors. */
export const EXIT = { ok: 0, policy: 1, usage: 2 } as const;

/**
 * A problem the CLI reports in one line and exits on: bad arguments, a missing module, a bad URL,
 * an unreachable Redis. `exitCode` is 2 unless said otherwise.
 */
export class CliError extends CacheError {
  /** The process exit code this error ends the command with. */
  readonly exitCode: number;

  constructor(code: `E_CLI_${string}`, message: string, options: { cause?: unknown; exitCode?: number } = {}) {
    super(code, message, { cause: options.cause });
    this.exitCode = options.exitCode ?? EXIT.usage;
  }
}

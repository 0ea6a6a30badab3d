import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root, where `cli/main.ts` lives. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The schema module the CLI tests pass to `--schema`, relative to the root. */
export const SCHEMA = 'test/cli/fixtures/schema.ts';

/** How a CLI run ended. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node --import tsx cli/main.ts ...args` from the repository root as a child process.
 * The timeout is a hang guard: a CLI that hangs fails the test instead of stalling it.
 */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', ...args],
      { cwd: ROOT, timeout: 25_000, env: { ...process.env, REDIS_URL: '', ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

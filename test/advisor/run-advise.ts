import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** How a run of `tablecache advise` ended. */
export interface AdviseRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tablecache advise ...args` (through test/advisor/advise-entry.ts, as cli/main.ts would
 * dispatch it) in a child process. The timeout is a hang guard, not a timing assertion.
 */
export function runAdvise(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<AdviseRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'test/advisor/advise-entry.ts', ...args],
      { cwd: ROOT, timeout: 25_000, env: { ...process.env, DATABASE_URL: '', ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

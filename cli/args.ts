import { parseDuration } from '../src/duration.js';
import { CliError } from './errors.js';

/** `--help` / `-h`, accepted by every command. */
export const helpOption = { help: { type: 'boolean', short: 'h' } } as const;

/** Options of commands that talk to Redis. */
export const redisOptions = {
  'redis-url': { type: 'string' },
  prefix: { type: 'string' },
  timeout: { type: 'string' },
} as const;

/** Help lines for `redisOptions`, shared by every command that has them. */
export const REDIS_OPTIONS_HELP = `  --redis-url <url>   Redis the app's cache uses, e.g. redis://127.0.0.1:6379 (default: $REDIS_URL)
  --prefix <prefix>   The app's createCache({ prefix }) (default: tc)
  --timeout <time>    Connect and command timeout, e.g. 500ms, 2s (default: 2s)`;

/** Runs `node:util` parseArgs, turning its errors (unknown option, missing value) into usage errors. */
export function parseOrFail<T>(parse: () => T, usage: string): T {
  try {
    return parse();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new CliError('E_CLI_USAGE', `${message}\n${usageHint(usage)}`);
  }
}

/** The first line of a command's usage and where to find the rest, for usage errors. */
export function usageHint(usage: string): string {
  const first = usage.split('\n', 1)[0] ?? '';
  const name = /tablecache (\S+)/.exec(first)?.[1] ?? '<command>';
  return `${first}\nRun "tablecache ${name} --help" for details.`;
}

/** A required option or positional, or a usage error naming it. */
export function required(value: string | undefined, what: string, usage: string): string {
  if (value === undefined || value === '') throw new CliError('E_CLI_USAGE', `missing ${what}\n${usageHint(usage)}`);
  return value;
}

/** Parses `--timeout` (a duration such as `500ms` or `2s`, or seconds) into milliseconds. */
export function timeoutMs(value: string | undefined): number {
  if (value === undefined) return 2000;
  const numeric = Number(value);
  try {
    return parseDuration(Number.isFinite(numeric) && value.trim() !== '' ? numeric : value);
  } catch {
    throw new CliError('E_CLI_USAGE', `invalid --timeout ${JSON.stringify(value)}: use a duration such as 500ms or 2s`);
  }
}

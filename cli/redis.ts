import { connect } from 'node:net';
import type { CacheStore } from '../src/store.js';
import { redisStore } from '../stores/redis.js';
import { CliError } from './errors.js';

/** A Redis URL the CLI accepted. */
export interface RedisTarget {
  /** The URL as given, for the client. */
  readonly url: string;
  /** The URL with any password masked, for messages. */
  readonly shown: string;
  readonly host: string;
  readonly port: number;
}

/** Checks a `redis://` or `rediss://` URL (default: $REDIS_URL); throws a CliError (exit 2) when it is not one. */
export function parseRedisUrl(raw: string | undefined): RedisTarget {
  const given = raw ?? process.env.REDIS_URL;
  if (given === undefined || given === '') {
    throw new CliError(
      'E_CLI_USAGE',
      'missing --redis-url (or set REDIS_URL), e.g. --redis-url redis://127.0.0.1:6379',
    );
  }
  const hint = 'expected redis://[user:password@]host[:port][/db] or rediss://...';
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new CliError('E_CLI_URL', `invalid Redis URL ${JSON.stringify(given)}: ${hint}`);
  }
  const shown = mask(url);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new CliError('E_CLI_URL', `invalid Redis URL ${shown}: unsupported scheme "${url.protocol}", ${hint}`);
  }
  if (url.hostname === '') throw new CliError('E_CLI_URL', `invalid Redis URL ${shown}: no host, ${hint}`);
  const port = url.port === '' ? 6379 : Number(url.port);
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) {
    throw new CliError('E_CLI_URL', `invalid Redis URL ${shown}: database "${db}" is not a number, ${hint}`);
  }
  return { url: given, shown, host: url.hostname.replace(/^\[|\]$/g, ''), port };
}

/**
 * Opens a store on the target after checking, within `timeoutMs`, that something accepts TCP
 * connections there: an unreachable Redis fails fast with a clear CliError instead of retrying.
 */
export async function openRedis(target: RedisTarget, timeoutMs: number): Promise<CacheStore> {
  await reachable(target, timeoutMs);
  return redisStore(target.url, { commandTimeoutMs: timeoutMs });
}

/** Turns a failed store call into a CliError naming the Redis it was for. */
export function redisFailure(target: RedisTarget, error: unknown): CliError {
  const message = error instanceof Error ? error.message : String(error);
  return new CliError('E_CLI_REDIS', `Redis at ${target.shown} did not answer: ${message}`, { cause: error });
}

function reachable(target: RedisTarget, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port });
    const fail = (reason: string): void => {
      socket.destroy();
      reject(new CliError('E_CLI_REDIS', `cannot reach Redis at ${target.shown}: ${reason}`));
    };
    socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => fail(describeSocketError(error)));
  });
}

function describeSocketError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is Redis running there?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    default:
      return error.message;
  }
}

function mask(url: URL): string {
  if (url.password === '') return url.toString();
  const copy = new URL(url.toString());
  copy.password = '***';
  return copy.toString();
}

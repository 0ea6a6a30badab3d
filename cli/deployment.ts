import { createCache, type TableCache } from '../src/cache.js';
import type { Catalog } from '../src/catalog.js';
import type { CacheError } from '../src/errors.js';
import { KeySpace } from '../src/keys.js';
import type { Policy } from '../src/policy/types.js';
import type { CacheStore } from '../src/store.js';
import { timeoutMs } from './args.js';
import { CliError } from './errors.js';
import { openRedis, parseRedisUrl, type RedisTarget } from './redis.js';

/** What the Redis commands share: where the app's cache lives and how its keys are named. */
export interface Deployment {
  readonly policy: Policy;
  readonly target: RedisTarget;
  readonly prefix: string;
  readonly timeoutMs: number;
  /** The app's key names (same prefix, namespace and version). */
  readonly keys: KeySpace;
}

/** The values of `redisOptions` as parseArgs returns them. */
export interface RedisValues {
  'redis-url'?: string | undefined;
  prefix?: string | undefined;
  timeout?: string | undefined;
}

/** Checks the Redis options (before anything slow is loaded) for the given policy. */
export function deployment(policy: Policy, values: RedisValues): Deployment {
  const target = parseRedisUrl(values['redis-url']);
  const prefix = values.prefix ?? 'tc';
  if (prefix === '') throw new CliError('E_CLI_USAGE', '--prefix must not be empty');
  return {
    policy,
    target,
    prefix,
    timeoutMs: timeoutMs(values.timeout),
    keys: new KeySpace(prefix, policy.namespace, policy.version),
  };
}

/** A cache attached to `catalog` on the deployment's Redis, with the store failures it reported. */
export interface OpenCache {
  readonly cache: TableCache;
  readonly store: CacheStore;
  /** Store failures reported through `onError` (an undelivered invalidation shows up here). */
  readonly problems: CacheError[];
}

/**
 * Opens the app's cache as the app would (same prefix, namespace and version) so the CLI runs the
 * engine's own invalidation code. Fails fast with a CliError when Redis cannot be reached.
 */
export async function openCache(target: Deployment, catalog: Catalog): Promise<OpenCache> {
  const store = await openRedis(target.target, target.timeoutMs);
  const problems: CacheError[] = [];
  const cache = createCache({
    store,
    policy: target.policy,
    prefix: target.prefix,
    storeTimeout: target.timeoutMs / 1000,
    onError: (error) => problems.push(error),
  });
  try {
    cache.attach(catalog);
  } catch (error) {
    await cache.close();
    throw error;
  }
  return { cache, store, problems };
}

/** Explains why an invalidation was not delivered, from the failures the cache reported. */
export function undelivered(target: Deployment, what: string, problems: readonly CacheError[]): CliError {
  const why = problems.length > 0 ? problems.map((p) => p.message).join('; ') : 'no reason reported';
  return new CliError('E_CLI_REDIS', `could not ${what} at ${target.target.shown}: ${why}`);
}

import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import { withCache } from '../../../adapters/drizzle/index.js';
import { type CacheError, createCache, definePolicy, type TableCache } from '../../../src/index.js';
import type { PolicyInput } from '../../../src/policy/types.js';
import type { WriteBackOptions } from '../../../src/write-back/runtime.js';
import { memoryStore } from '../../../stores/memory.js';
import { redisStore } from '../../../stores/redis.js';
import * as schema from '../../fixtures/write-back-schema.js';

/** Statements a pool ran, by text, for "which SQL reached PostgreSQL" checks. */
export interface StatementLog {
  readonly texts: string[];
  /** Statements whose text starts with `prefix` (case-insensitive), e.g. `update "page_views"`. */
  matching(prefix: string): string[];
  reset(): void;
}

/** Records the text of every statement the pool's clients run. */
export function recordStatements(pool: pg.Pool): StatementLog {
  const texts: string[] = [];
  const wrapped = new WeakSet<object>();
  pool.on('connect', (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const first = args[0] as { text?: string } | string;
      texts.push(typeof first === 'string' ? first : String(first?.text ?? ''));
      return original(...args);
    };
  });
  return {
    texts,
    matching: (prefix) => texts.filter((t) => t.trimStart().toLowerCase().startsWith(prefix.toLowerCase())),
    reset: () => {
      texts.length = 0;
    },
  };
}

/** One application instance: a cache on the shared Redis, a Drizzle client on its own pool. */
export interface Instance {
  cache: TableCache;
  db: ReturnType<typeof drizzle<typeof schema>>;
  raw: ReturnType<typeof drizzle<typeof schema>>;
  pool: pg.Pool;
  log: StatementLog;
  errors: CacheError[];
}

type Tables = NonNullable<PolicyInput<typeof schema>['tables']>;

/** The default policy of the tests: every fixture table write-back except `pages`. */
export function writeBackPolicy(namespace: string, tables: Tables = {}) {
  return definePolicy<typeof schema>({
    namespace,
    version: 1,
    defaults: { pattern: 'none' },
    tables: {
      pageViews: { pattern: 'write-back', flush: { every: '100ms', batch: 500 } },
      events: { pattern: 'write-back', flush: { every: '100ms' } },
      scores: { pattern: 'write-back', flush: { every: '100ms' } },
      typed: { pattern: 'write-back', flush: { every: '100ms' } },
      pages: { pattern: 'cache-aside' },
      ...tables,
    },
  });
}

/** Opens an instance; `store: 'memory'` uses a process-local store instead of Redis. */
export function openInstance(options: {
  pool: pg.Pool;
  redisUrl: string;
  namespace: string;
  tables?: Tables;
  writeBack?: WriteBackOptions;
  store?: 'redis' | 'memory';
}): Instance {
  const log = recordStatements(options.pool);
  const errors: CacheError[] = [];
  const raw = drizzle(options.pool, { schema });
  const cache = createCache({
    // AOF with fsync always can stall on a busy machine: these tests check semantics, not speed.
    store: options.store === 'memory' ? memoryStore() : redisStore(options.redisUrl, { commandTimeoutMs: 10_000 }),
    policy: writeBackPolicy(options.namespace, options.tables),
    onError: (e) => errors.push(e),
    writeBack: {
      leaseTtl: '2s',
      lockTimeout: '300ms',
      maxBackoff: '300ms',
      attempts: 2,
      waitTimeout: '10s',
      ...options.writeBack,
    },
  });
  const db = withCache(raw, cache);
  return { cache, db, raw, pool: options.pool, log, errors };
}

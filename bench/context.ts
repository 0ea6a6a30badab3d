import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { withCache } from '../adapters/drizzle/index.js';
import {
  type CacheError,
  type CacheStore,
  createCache,
  definePolicy,
  type TableCache,
  type TablePolicy,
} from '../src/index.js';
import { redisStore } from '../stores/redis.js';
import type { Timing } from './harness.js';
import type { BenchTables } from './schema.js';

/** Command-line and environment settings of a run. */
export interface BenchConfig {
  quick: boolean;
  /** Scenario names to run; undefined runs all. */
  only: readonly string[] | undefined;
  databaseUrl: string;
  redisUrl: string;
  /** Where results.json goes. */
  out: string;
}

/** How much work each scenario does, by mode. */
export interface Budget {
  timing: Timing;
  /** Distinct cached queries the hit scenarios cycle through. */
  hitKeys: number;
  /** Entry counts the scale scenario measures at (P7). */
  scaleLevels: readonly number[];
  /** Seconds of sustained write-back load for the sync-lag measurement (P6). */
  lagSeconds: number;
  /** Rows written back for the flush-throughput measurement (P5). */
  flushRows: number;
  /** Increments to one row in one flush window (P5). */
  increments: number;
  /** Distinct entries pushed through the memory store (several times its byte budget). */
  memoryEntries: number;
}

/** The budgets of `--quick` (CI smoke check, < 2 min) and of the full run (< 15 min). */
export function budgetOf(quick: boolean): Budget {
  return quick
    ? {
        timing: { rounds: 3, sliceMs: 120, warmupMs: 100 },
        hitKeys: 500,
        scaleLevels: [1e3, 1e5],
        lagSeconds: 4,
        flushRows: 5_000,
        increments: 1_000,
        memoryEntries: 20_000,
      }
    : {
        timing: { rounds: 10, sliceMs: 300, warmupMs: 300 },
        hitKeys: 1_000,
        scaleLevels: [1e3, 1e5, 1e6],
        lagSeconds: 20,
        flushRows: 50_000,
        increments: 1_000,
        memoryEntries: 60_000,
      };
}

/** What every scenario gets: connections, the seeded tables and a way to build cached clients. */
export interface BenchContext {
  config: BenchConfig;
  budget: Budget;
  pool: pg.Pool;
  /** A default ioredis client (what tablecache's store and the baselines use). */
  redis: Redis;
  /** An ioredis client with `enableAutoPipelining` (the pipelined floor). */
  redisPiped: Redis;
  schemaName: string;
  tables: BenchTables;
  /** Plain Drizzle on the pool: the uncached baseline. */
  db: NodePgDatabase<BenchTables>;
  /** Every Redis key of the run starts with this (cleaned up at the end). */
  keyPrefix: string;
  /** Store errors tablecache reported through `onError` during the run. */
  storeErrors: CacheError[];
  log(message: string): void;
}

/** A tablecache-wrapped Drizzle client of one scenario, with its cache. */
export interface CachedClient {
  cache: TableCache;
  db: NodePgDatabase<BenchTables>;
}

/**
 * Builds a cache with its own namespace over the run's Redis (or `store`), and wraps a Drizzle
 * client on the shared pool with it. Each scenario builds its own, so a feature that is still
 * missing or broken only affects the scenarios that use it.
 */
export function cachedClient(
  ctx: BenchContext,
  name: string,
  tables: Readonly<Record<string, TablePolicy>>,
  store?: CacheStore,
): CachedClient {
  const cache = createCache({
    store: store ?? redisStore(ctx.redis),
    prefix: ctx.keyPrefix,
    policy: definePolicy({ namespace: name, version: 1, tables: { ...tables } }),
    onError: (error) => {
      ctx.storeErrors.push(error);
    },
  });
  const db = withCache(drizzle(ctx.pool, { schema: ctx.tables }), cache);
  return { cache, db };
}

/** Hits, misses and reads of a cache, summed over its tables. */
export function cacheCounts(cache: TableCache): { hits: number; misses: number; reads: number } {
  let hits = 0;
  let misses = 0;
  let reads = 0;
  for (const t of Object.values(cache.stats().tables)) {
    hits += t.hits;
    misses += t.misses;
    reads += t.reads;
  }
  return { hits, misses, reads };
}

import { drizzle } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import pg from 'pg';
import { type BenchConfig, type BenchContext, budgetOf } from './context.js';
import { benchSchema } from './schema.js';
import { dropSeed, seed } from './seed.js';

/** An open benchmark environment and how to tear it down. */
export interface OpenBench {
  ctx: BenchContext;
  /** Drops the schema, deletes the run's Redis keys and closes connections; safe to call twice. */
  close(): Promise<void>;
}

/** Connects, seeds a schema named after this process, and builds the scenario context. */
export async function openBench(config: BenchConfig, log: (message: string) => void): Promise<OpenBench> {
  const schemaName = `tcbench_${process.pid}`;
  const keyPrefix = `tcbench-${process.pid}`;
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 20 });
  const redis = new Redis(config.redisUrl);
  const redisPiped = new Redis(config.redisUrl, { enableAutoPipelining: true });
  const tables = benchSchema(schemaName);
  const ctx: BenchContext = {
    config,
    budget: budgetOf(config.quick),
    pool,
    redis,
    redisPiped,
    schemaName,
    tables,
    db: drizzle(pool, { schema: tables }),
    keyPrefix,
    storeErrors: [],
    log,
  };
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await dropSeed(pool, schemaName).catch((e) => log(`could not drop schema ${schemaName}: ${e}`));
    await deleteKeys(redis, `${keyPrefix}:*`).catch((e) => log(`could not delete Redis keys: ${e}`));
    await pool.end().catch(() => undefined);
    redis.disconnect();
    redisPiped.disconnect();
  };
  try {
    log(`seeding schema ${schemaName}`);
    await seed(pool, schemaName);
  } catch (error) {
    await close();
    throw error;
  }
  return { ctx, close };
}

/** Deletes every key matching `pattern` (SCAN + UNLINK, never KEYS); returns how many. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

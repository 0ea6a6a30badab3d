import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import type { BenchTables } from './schema.js';

type Query = (config: unknown, params?: unknown[]) => Promise<unknown>;

/**
 * A Drizzle client whose node-postgres driver answers every query with the result the real
 * database gave the first one: what Drizzle itself costs per query, with no I/O at all. It is the
 * floor under any cache that sits inside Drizzle (tablecache, Drizzle's own cache).
 */
export function cannedDrizzle(pool: pg.Pool, tables: BenchTables): NodePgDatabase<BenchTables> {
  let answer: unknown;
  const query: Query = async (config, params) => {
    if (answer === undefined) answer = await (pool.query as unknown as Query)(config, params);
    return answer;
  };
  return drizzle({ client: { query } as unknown as pg.Pool, schema: tables });
}

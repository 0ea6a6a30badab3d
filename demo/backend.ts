import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import pg from 'pg';
import type { CacheStore } from '../src/index.js';
import { memoryStore } from '../stores/memory.js';
import { redisStore } from '../stores/redis.js';
import * as schema from './schema.js';

/** The Drizzle client type the demo uses, whatever the driver. */
export type DemoDb = PgDatabase<PgQueryResultHKT, typeof schema>;

/** Where the demo's data and cache live. */
export interface Backend {
  /** `pglite` (embedded, in memory) or `postgres` ($DATABASE_URL). */
  readonly database: 'pglite' | 'postgres';
  /** `memory` (in process) or `redis` ($REDIS_URL). */
  readonly store: 'memory' | 'redis';
  /** How many requests may usefully run at once (PGlite runs one statement at a time). */
  readonly concurrency: number;
  /** The plain Drizzle client, without the cache. */
  readonly db: DemoDb;
  /** A fresh store for a cache (a cache closes its store when it closes). */
  makeStore(): CacheStore;
  /** Closes the database. */
  close(): Promise<void>;
}

/**
 * Opens the embedded default (PGlite and the memory store, no servers needed) or, with
 * DATABASE_URL / REDIS_URL set, PostgreSQL (tables in their own schema `pgSchema`) and Redis;
 * then (re)creates and seeds the demo's tables.
 */
export async function openBackend(pgSchema: string): Promise<Backend> {
  const databaseUrl = process.env.DATABASE_URL;
  const redisUrl = process.env.REDIS_URL;
  const makeStore = redisUrl ? () => redisStore(redisUrl) : () => memoryStore({ maxEntries: 50_000 });
  const store = redisUrl ? 'redis' : 'memory';

  if (!databaseUrl) {
    const client = new PGlite();
    await client.exec(schema.DDL);
    const db = drizzlePglite(client, { schema });
    await seed(db);
    return { database: 'pglite', store, concurrency: 1, db, makeStore, close: () => client.close() };
  }

  if (!/^[a-z_][a-z0-9_]*$/.test(pgSchema)) throw new Error(`invalid PostgreSQL schema name "${pgSchema}"`);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10, options: `-c search_path=${pgSchema}` });
  await pool.query(`create schema if not exists ${pgSchema}`);
  await pool.query(schema.DDL);
  const db = drizzlePg(pool, { schema });
  await seed(db);
  return { database: 'postgres', store, concurrency: 8, db, makeStore, close: () => pool.end() };
}

async function seed(db: DemoDb): Promise<void> {
  const rows = schema.seedRows();
  await db.insert(schema.users).values(rows.users);
  await db.insert(schema.products).values(rows.products);
  await db.insert(schema.inventory).values(rows.inventory);
}

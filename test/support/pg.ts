import { randomBytes } from 'node:crypto';
import type { SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { DEFAULT_DATABASE_URL } from './services.js';

/** The PostgreSQL URL tests use. */
export function databaseUrl(): string {
  return process.env.TEST_DATABASE_URL ?? DEFAULT_DATABASE_URL;
}

/** A PostgreSQL schema of its own for one test file, with pools whose search_path points at it. */
export interface IsolatedDatabase {
  /** The schema name. */
  schema: string;
  /** A new pool bound to the schema (closed by `drop`). */
  pool(max?: number): pg.Pool;
  /** Runs statements on the schema. */
  run(statement: SQL | string): Promise<void>;
  /** Drops the schema and closes every pool. */
  drop(): Promise<void>;
}

/** Creates a fresh schema, runs `ddl` in it, and returns pools bound to it. */
export async function isolatedDatabase(ddl: SQL): Promise<IsolatedDatabase> {
  const schema = `tc_${randomBytes(5).toString('hex')}`;
  const pools: pg.Pool[] = [];
  const pool = (max = 10) => {
    const p = new pg.Pool({ connectionString: databaseUrl(), max, options: `-c search_path=${schema}` });
    pools.push(p);
    return p;
  };
  const admin = pool(2);
  await admin.query(`create schema ${schema}`);
  const db = drizzle(admin);
  await db.execute(ddl);
  return {
    schema,
    pool,
    async run(statement) {
      await (typeof statement === 'string' ? admin.query(statement) : db.execute(statement));
    },
    async drop() {
      await admin.query(`drop schema ${schema} cascade`);
      await Promise.all(pools.map((p) => p.end()));
    },
  };
}

/** Counts the statements a pool runs (its clients' `query` calls), for "the database was not asked" checks. */
export function countQueries(pool: pg.Pool): { readonly count: number; reset(): void } {
  let count = 0;
  const wrapped = new WeakSet<object>();
  pool.on('connect', (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      count++;
      if (process.env.DEBUG_QUERIES)
        console.log('QUERY', String((args[0] as { text?: string })?.text ?? args[0]).slice(0, 120));
      return original(...args);
    };
  });
  return {
    get count() {
      return count;
    },
    reset() {
      count = 0;
    },
  };
}

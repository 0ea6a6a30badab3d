import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The PostgreSQL URL chaos runs and reliability tests use. */
export function databaseUrl(): string {
  return process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

/** The Redis URL of the shared test server (only tests that do not start their own use it). */
export function sharedRedisUrl(): string {
  return process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
}

/** A PostgreSQL schema of the run's own, with pools whose search_path and application_name are set. */
export interface ChaosDatabase {
  schema: string;
  /** The admin pool (not faulted): DDL, seeds, the final state. */
  admin: pg.Pool;
  /** A new pool named `application`, so faults can find its backends in pg_stat_activity. */
  pool(application: string, max?: number): pg.Pool;
  /** Terminates every backend of the pools named `application`; returns how many. */
  terminate(application: string): Promise<number>;
  /**
   * Clients checked out and never returned, per pool (after the workload is idle). Drizzle's
   * node-postgres `transaction()` leaks its client when BEGIN fails (drizzle-orm#6023).
   */
  leaked(): number;
  /** Drops the schema and closes every pool (not waiting for leaked clients). */
  drop(): Promise<void>;
}

/** Creates a fresh schema named `<prefix>_<random>`. */
export async function createDatabase(prefix = 'chaos'): Promise<ChaosDatabase> {
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  const pools: pg.Pool[] = [];
  const pool = (application: string, max = 5) => {
    const p = new pg.Pool({
      connectionString: databaseUrl(),
      max,
      // A pool that lost its clients (see leaked()) fails the query instead of hanging forever.
      connectionTimeoutMillis: 10_000,
      application_name: application,
      options: `-c search_path=${schema}`,
    });
    // An idle client whose backend was terminated errors here; the pool then drops it. A client
    // checked out between two statements of a transaction emits 'error' itself (node-postgres
    // behaviour, not tablecache's): without a listener that would crash the process.
    p.on('error', () => {});
    p.on('connect', (client) => client.on('error', () => {}));
    pools.push(p);
    return p;
  };
  const admin = pool(`${schema}-admin`, 3);
  await admin.query(`create schema ${schema}`);
  return {
    schema,
    admin,
    pool: (application, max) => pool(`${schema}-${application}`, max),
    async terminate(application) {
      const { rows } = await admin.query<{ n: number }>(
        'select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = $1',
        [`${schema}-${application}`],
      );
      return rows[0]?.n ?? 0;
    },
    leaked() {
      return pools.reduce((n, p) => n + p.totalCount - p.idleCount, 0);
    },
    async drop() {
      await admin.query(`drop schema if exists ${schema} cascade`);
      // pool.end() waits for every checked-out client, and a leaked one never comes back.
      const ended = Promise.all(pools.map((p) => p.end().catch(() => undefined)));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
    },
  };
}

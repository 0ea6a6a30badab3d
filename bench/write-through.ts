/**
 * `npx tsx bench/write-through.ts`: one run, printed, never asserted.
 * 1. Write latency of a by-key UPDATE: plain Drizzle vs cache-aside (evicts the row) vs
 *    write-through (announces, writes, publishes the row), interleaved round-robin.
 * 2. Hit rate of a read-after-write workload (update a random row, then read it by key).
 * Uses TEST_DATABASE_URL / TEST_REDIS_URL (defaults: local PostgreSQL and Redis).
 */
import { randomBytes } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, numeric, pgTable, text } from 'drizzle-orm/pg-core';
import { Redis } from 'ioredis';
import pg from 'pg';
import { withCache } from '../adapters/drizzle/index.js';
import { createCache, definePolicy } from '../src/index.js';
import { redisStore } from '../stores/redis.js';

const items = pgTable('items', {
  id: integer('id').primaryKey(),
  title: text('title').notNull(),
  price: numeric('price').notNull(),
  stock: integer('stock').notNull(),
});
const schema = { items };

const ROWS = 1000;
const WRITES = 500;
const WARMUP = 50;
const READ_AFTER_WRITE = 1000;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

function summary(samples: number[]): { p50: number; p90: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const r = (n: number) => Math.round(n * 1000) / 1000;
  return { p50: r(quantile(s, 0.5)), p90: r(quantile(s, 0.9)), p99: r(quantile(s, 0.99)) };
}

async function main(): Promise<void> {
  const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const dbSchema = `bench_wt_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  await admin.query(`create schema ${dbSchema}`);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4, options: `-c search_path=${dbSchema}` });
  const redis = new Redis(redisUrl);
  try {
    await pool.query(
      'create table items (id integer primary key, title text not null, price numeric not null, stock integer not null)',
    );
    await pool.query(
      `insert into items select i, 'item ' || i, (i % 100) + 0.5, i % 7 from generate_series(1, ${ROWS}) as i`,
    );
    const namespace = `bench-wt-${randomBytes(4).toString('hex')}`;
    const makeCache = (pattern: 'cache-aside' | 'write-through') =>
      createCache({
        store: redisStore(redis),
        policy: definePolicy<typeof schema>({
          namespace: `${namespace}-${pattern}`,
          version: 1,
          tables: { items: { pattern, ttl: '10m' } },
        }),
      });
    const plain = drizzle(pool, { schema });
    const asideCache = makeCache('cache-aside');
    const throughCache = makeCache('write-through');
    const aside = withCache(drizzle(pool, { schema }), asideCache);
    const through = withCache(drizzle(pool, { schema }), throughCache);
    const clients = { plain, 'cache-aside': aside, 'write-through': through } as const;
    const latencies: Record<keyof typeof clients, number[]> = { plain: [], 'cache-aside': [], 'write-through': [] };

    const randomId = () => 1 + Math.floor(Math.random() * ROWS);
    for (let i = 0; i < WARMUP + WRITES; i++) {
      for (const [name, db] of Object.entries(clients) as [keyof typeof clients, typeof plain][]) {
        const id = randomId();
        const started = performance.now();
        await db
          .update(items)
          .set({ stock: sql`${items.stock} + 1`, title: `t${i}` })
          .where(eq(items.id, id));
        if (i >= WARMUP) latencies[name].push(performance.now() - started);
      }
    }

    const hitRate = async (cache: typeof throughCache, db: typeof through) => {
      const before = cache.stats().tables.items ?? { hits: 0, misses: 0 };
      for (let i = 0; i < READ_AFTER_WRITE; i++) {
        const id = randomId();
        await db
          .update(items)
          .set({ title: `r${i}` })
          .where(eq(items.id, id));
        const [row] = await db.select().from(items).where(eq(items.id, id));
        if (row?.title !== `r${i}`) throw new Error(`read-after-write returned ${row?.title} for r${i}`);
      }
      await cache.flush();
      const after = cache.stats().tables.items ?? { hits: 0, misses: 0 };
      const hits = after.hits - before.hits;
      const misses = after.misses - before.misses;
      return { reads: hits + misses, hits, misses, hitRate: Math.round((hits / (hits + misses)) * 10000) / 10000 };
    };

    const result = {
      machine: { node: process.version, rows: ROWS, writes: WRITES },
      writeLatencyMs: {
        plain: summary(latencies.plain),
        'cache-aside': summary(latencies['cache-aside']),
        'write-through': summary(latencies['write-through']),
      },
      readAfterWrite: {
        'write-through': await hitRate(throughCache, through),
        'cache-aside': await hitRate(asideCache, aside),
      },
    };
    console.log(JSON.stringify(result, null, 2));
    await asideCache.close();
    await throughCache.close();
  } finally {
    await pool.end();
    await admin.query(`drop schema ${dbSchema} cascade`);
    await admin.end();
    redis.disconnect();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

/**
 * `npx tsx bench/write-back-measure.ts`: one measurement run of write-back against local
 * PostgreSQL and a Redis it starts itself with the append-only file on. Prints, without asserting:
 * acknowledgement latency against a direct Drizzle insert, flush throughput against raw 100-row
 * multi-row inserts, and the sync lag (acknowledgement to commit) under a sustained load.
 * Env: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), WB_LOAD_RATE, WB_LOAD_SECONDS.
 */
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { withCache } from '../adapters/drizzle/index.js';
import { createCache, definePolicy, type TableCache } from '../src/index.js';
import { redisStore } from '../stores/redis.js';
import { isolatedDatabase } from '../test/support/pg.js';
import { startRedis } from '../test/write-back/support/redis-server.js';
import { quantile, Samples } from './stats.js';

const wbEvents = pgTable('wb_events', {
  id: integer('id').primaryKey(),
  kind: text('kind').notNull(),
  amount: integer('amount').notNull(),
  at: timestamp('at', { withTimezone: true }).notNull(),
});
const rawEvents = pgTable('raw_events', {
  id: integer('id').primaryKey(),
  kind: text('kind').notNull(),
  amount: integer('amount').notNull(),
  at: timestamp('at', { withTimezone: true }).notNull(),
});
const schema = { wbEvents, rawEvents };
const DDL = sql`
  create table wb_events (id integer primary key, kind text not null, amount integer not null, at timestamptz not null);
  create table raw_events (id integer primary key, kind text not null, amount integer not null, at timestamptz not null);
`;

const ACK_SAMPLES = 3000;
const FLUSH_ROWS = 50_000;
const LOAD_RATE = Number(process.env.WB_LOAD_RATE ?? 2000);
const LOAD_SECONDS = Number(process.env.WB_LOAD_SECONDS ?? 10);

const row = (id: number) => ({ id, kind: id % 2 ? 'view' : 'click', amount: id % 100, at: new Date() });
const fmt = (ms: number) => `${ms.toFixed(3)} ms`;

async function main(): Promise<void> {
  const database = await isolatedDatabase(DDL);
  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    console.log(line);
  };
  try {
    for (const fsync of ['always', 'everysec'] as const) {
      const redis = await startRedis({ appendfsync: fsync });
      try {
        await measure(database, redis.url, fsync, say);
      } finally {
        await redis.stop();
      }
      await database.run('truncate wb_events, raw_events');
    }
  } finally {
    await database.drop();
  }
  console.log('\nSummary\n-------');
  for (const l of lines) console.log(l);
}

async function measure(
  database: Awaited<ReturnType<typeof isolatedDatabase>>,
  redisUrl: string,
  fsync: string,
  say: (line: string) => void,
): Promise<void> {
  const pool = database.pool(8);
  const raw = drizzle(pool, { schema });
  const open = (every: '1h' | '1s', worker: boolean): { cache: TableCache; db: typeof raw } => {
    const cache = createCache({
      store: redisStore(redisUrl),
      policy: definePolicy<typeof schema>({
        namespace: `wb-measure-${fsync}-${every}`,
        version: 1,
        tables: { wbEvents: { pattern: 'write-back', flush: { every, batch: 500, maxPending: 1_000_000 } } },
      }),
      onError: (e) => {
        if (e.code !== 'E_WRITE_BACK_DURABILITY') console.error(`[onError] ${e.code}: ${e.message}`);
      },
      writeBack: { worker },
    });
    return { cache, db: withCache(drizzle(pool, { schema }), cache) };
  };
  say(`\nRedis appendonly yes, appendfsync ${fsync}`);

  // 1. Acknowledgement latency: sequential single-row inserts, one client.
  {
    const { cache, db } = open('1h', false);
    const wb = new Samples();
    const direct = new Samples();
    for (let i = 0; i < 200; i++) {
      await db.insert(wbEvents).values(row(1_000_000 + i));
      await raw.insert(rawEvents).values(row(1_000_000 + i));
    }
    for (let i = 0; i < ACK_SAMPLES; i++) {
      let t = performance.now();
      await db.insert(wbEvents).values(row(i));
      wb.push(performance.now() - t);
      t = performance.now();
      await raw.insert(rawEvents).values(row(i));
      direct.push(performance.now() - t);
    }
    const a = wb.sorted();
    const b = direct.sorted();
    say(
      `  acknowledgement, ${ACK_SAMPLES} sequential inserts: write-back p50 ${fmt(quantile(a, 0.5))} (p99 ${fmt(quantile(a, 0.99))}) vs direct Drizzle insert p50 ${fmt(quantile(b, 0.5))} (p99 ${fmt(quantile(b, 0.99))}): ${(quantile(b, 0.5) / quantile(a, 0.5)).toFixed(1)}x`,
    );
    await cache.close();
    await database.run('truncate wb_events, raw_events');
  }

  // 2. Flush throughput: journal FLUSH_ROWS inserts, then drain; against raw 100-row multi-row inserts.
  {
    const { cache, db } = open('1h', false);
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < FLUSH_ROWS; i++) {
      pending.push(db.insert(wbEvents).values(row(i)));
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    let t = performance.now();
    await cache.flush();
    const flushMs = performance.now() - t;
    const [{ n } = { n: 0 }] = (await pool.query<{ n: number }>('select count(*)::int as n from wb_events')).rows;
    t = performance.now();
    for (let i = 0; i < FLUSH_ROWS; i += 100) {
      await raw.insert(rawEvents).values(Array.from({ length: 100 }, (_, k) => row(i + k)));
    }
    const rawMs = performance.now() - t;
    say(
      `  flush throughput, ${FLUSH_ROWS} journaled inserts (batch 500, one flusher): ${Math.round((n / flushMs) * 1000)} rows/s (${n} rows in ${flushMs.toFixed(0)} ms) vs raw 100-row multi-row inserts: ${Math.round((FLUSH_ROWS / rawMs) * 1000)} rows/s`,
    );
    await cache.close();
    await database.run('truncate wb_events, raw_events');
  }

  // 3. Sync lag under a sustained load, in-app flusher every 1s (the default).
  {
    const { cache, db } = open('1s', true);
    const total = LOAD_RATE * LOAD_SECONDS;
    const start = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    let errors = 0;
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / LOAD_RATE;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const p = db
        .insert(wbEvents)
        .values(row(i))
        .catch(() => {
          errors++;
        });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      if (inFlight.size >= 256) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const offered = (total / (performance.now() - start)) * 1000;
    await cache.flush();
    const stats = cache.stats().writeBack.wb_events;
    say(
      `  sync lag (acknowledged in Redis -> committed in PostgreSQL), ${total} inserts at ${Math.round(offered)}/s for ${LOAD_SECONDS}s, flush every 1s: p50 ${stats?.lagP50Ms} ms, p99 ${stats?.lagP99Ms} ms (${stats?.flushed} flushed, ${errors} errors)`,
    );
    await cache.close();
  }
}

await main();

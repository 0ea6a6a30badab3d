/**
 * `npx tsx chaos/fault-figures.ts [--reads 200]`: what each Redis fault costs a read, measured on
 * one app instance with the library defaults (storeTimeout 150 ms, breaker 5 failures / 1 s).
 * Prints a table: latency while Redis answers, while it hangs (before and after the breaker
 * opens), while it is down, and how long after it returns reads are cache hits again.
 */
import { parseArgs } from 'node:util';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { Redis } from 'ioredis';
import { withCache } from '../adapters/drizzle/index.js';
import { createCache, definePolicy } from '../src/index.js';
import { redisStore } from '../stores/redis.js';
import { createDatabase } from './database.js';
import { startRedisServer } from './redis-server.js';

const { values } = parseArgs({ options: { reads: { type: 'string', default: '200' } } });
const reads = Number(values.reads);

const people = pgTable('people', { id: integer('id').primaryKey(), name: text('name').notNull() });
const schema = { people };

const database = await createDatabase('figures');
const server = await startRedisServer();
try {
  await database.admin.query(
    "create table people (id int primary key, name text not null); insert into people values (1, 'ada')",
  );
  const pool = database.pool('app', 4);
  const plain = drizzle(pool, { schema });
  const client = new Redis(server.url, { retryStrategy: (times) => Math.min(times * 50, 500) });
  client.on('error', () => {});
  let storeErrors = 0;
  const cache = createCache({
    store: redisStore(client),
    policy: definePolicy<typeof schema>({
      namespace: 'figures',
      version: 1,
      tables: { people: { pattern: 'cache-aside' } },
    }),
    onError: () => {
      storeErrors++;
    },
  });
  const db = withCache(plain, cache);
  const pointRead = () => db.select().from(people).where(eq(people.id, 1));
  const listRead = () => db.select().from(people).where(eq(people.name, 'ada'));
  const uncached = () => plain.select().from(people).where(eq(people.id, 1));

  const rows: [string, string][] = [];
  const time = async (fn: () => Promise<unknown>): Promise<number> => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const series = async (n: number, fn: () => Promise<unknown>): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(await time(fn));
    return out;
  };
  const fmt = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p: number) => (s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0).toFixed(2);
    return `p50 ${q(0.5)} ms, p99 ${q(0.99)} ms (n=${s.length})`;
  };

  // Warm up the pool, the scripts and the entries.
  await series(50, uncached);
  await series(50, pointRead);
  await series(50, listRead);
  await cache.flush();
  rows.push(['uncached Drizzle point read', fmt(await series(reads, uncached))]);
  rows.push(['cache hit, point read (row entry)', fmt(await series(reads, pointRead))]);
  rows.push(['cache hit, list read (query entry)', fmt(await series(reads, listRead))]);

  // Redis hangs: the first reads wait for the store timeout, then the breaker opens.
  server.freeze();
  const errorsBefore = storeErrors;
  const hung = await series(reads, pointRead);
  server.thaw();
  const waited = hung.filter((ms) => ms >= 100);
  rows.push([
    'Redis hung: reads that waited for the store timeout',
    `${waited.length} of ${hung.length} (${storeErrors - errorsBefore} store errors); ${fmt(waited)}`,
  ]);
  rows.push(['Redis hung: reads after the breaker opened', fmt(hung.filter((ms) => ms < 100))]);

  // Recovery after the hang: time from thaw until a read is a hit again.
  rows.push(['Redis hung then back: time until reads are hits again', `${(await untilHit()).toFixed(0)} ms`]);

  // Redis down (process killed): connection refused.
  await server.kill();
  const down = await series(reads, pointRead);
  const slow = down.filter((ms) => ms >= 100);
  rows.push([
    'Redis down: reads that waited for the store timeout',
    `${slow.length} of ${down.length}${slow.length > 0 ? `; ${fmt(slow)}` : ''}`,
  ]);
  rows.push(['Redis down: other reads', fmt(down.filter((ms) => ms < 100))]);
  await server.start();
  rows.push(['Redis restarted: time until reads are hits again', `${(await untilHit()).toFixed(0)} ms`]);

  // A write while Redis is down: the writing instance bypasses the table until the invalidation is delivered.
  await server.kill();
  const writeDown = await time(() => db.update(people).set({ name: 'ada' }).where(eq(people.id, 1)));
  rows.push(['Redis down: a write (invalidation undeliverable)', `${writeDown.toFixed(2)} ms`]);
  await server.start();
  rows.push(['Redis back after a write while down: time until hits', `${(await untilHit()).toFixed(0)} ms`]);

  console.log('| situation (library defaults: storeTimeout 150 ms, breaker 5 failures / 1 s) | figure |');
  console.log('| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
  await cache.close();
  client.disconnect();

  /** Reads every 10 ms until one is a cache hit; returns the elapsed time. */
  async function untilHit(): Promise<number> {
    const start = performance.now();
    for (;;) {
      const hits = cache.stats().tables.people?.hits ?? 0;
      await pointRead();
      await cache.flush();
      if ((cache.stats().tables.people?.hits ?? 0) > hits) return performance.now() - start;
      if (performance.now() - start > 30_000) return Number.POSITIVE_INFINITY;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
} finally {
  await server.stop();
  await database.drop();
}

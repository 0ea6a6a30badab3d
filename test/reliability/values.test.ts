import { asc, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { doublePrecision, integer, numeric, pgTable, real, text } from 'drizzle-orm/pg-core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type ChaosDatabase, createDatabase } from '../../chaos/database.js';
import { createCache, definePolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import { countQueries } from '../support/pg.js';
import { redisClient } from '../support/redis.js';

// What test/drizzle/fidelity.test.ts does not cover: NaN and ±Infinity in real and numeric
// columns, -Infinity and -0 in double precision, through row entries and query entries alike;
// and results far larger than maxValueBytes.

const nums = pgTable('nums', {
  id: integer('id').primaryKey(),
  d: doublePrecision('d'),
  r: real('r'),
  n: numeric('n'),
});
const blobs = pgTable('blobs', { id: integer('id').primaryKey(), body: text('body').notNull() });
const schema = { nums, blobs };

let database: ChaosDatabase;
let redis: Redis;
let cache: TableCache;
let db: ReturnType<typeof drizzle<typeof schema>>;
let plain: ReturnType<typeof drizzle<typeof schema>>;
let queries: { readonly count: number; reset(): void };

const BIG = 3 * 1024 * 1024;

beforeAll(async () => {
  database = await createDatabase('values');
  await database.admin.query(`
    create table nums (id int primary key, d double precision, r real, n numeric);
    insert into nums values
      (1, 'NaN', 'NaN', 'NaN'),
      (2, 'Infinity', 'Infinity', 'Infinity'),
      (3, '-Infinity', '-Infinity', '-Infinity'),
      (4, '-0', '-0', '-0'),
      (5, 1.7976931348623157e308, 3.4028235e38, '1e-1000'),
      (6, 5e-324, 1e-45, '123456789012345678901234567890.000000000000000000001');
    create table blobs (id int primary key, body text not null);
    insert into blobs values (1, repeat('x', ${BIG})), (2, 'small');
  `);
  redis = redisClient();
  cache = createCache({
    store: redisStore(redis),
    policy: definePolicy<typeof schema>({
      namespace: `values-${Math.random().toString(36).slice(2)}`,
      version: 1,
      tables: { nums: { pattern: 'cache-aside' }, blobs: { pattern: 'cache-aside' } },
    }),
  });
  const pool = database.pool('app', 3);
  queries = countQueries(pool);
  plain = drizzle(pool, { schema });
  db = withCache(plain, cache);
});
afterAll(async () => {
  await cache.close();
  await redis.quit();
  await database.drop();
});

/** Object.is equality per field, so NaN equals NaN and -0 differs from 0. */
function same(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return Object.is(a, b);
  const ka = Object.keys(a);
  return (
    ka.length === Object.keys(b).length &&
    ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

describe('NaN, ±Infinity and -0 round-trip through the cache', () => {
  it('primary-key reads (row entries) return exactly what uncached Drizzle returns', async () => {
    for (let id = 1; id <= 6; id++) {
      const expected = (await plain.select().from(nums).where(eq(nums.id, id)))[0];
      await db.select().from(nums).where(eq(nums.id, id));
      await cache.flush();
      queries.reset();
      const cached = (await db.select().from(nums).where(eq(nums.id, id)))[0];
      expect(queries.count, `row ${id} was served from the cache`).toBe(0);
      expect(same(cached, expected), `row ${id}: ${JSON.stringify(cached)} vs ${JSON.stringify(expected)}`).toBe(true);
    }
    const nan = (await db.select().from(nums).where(eq(nums.id, 1)))[0];
    expect(Number.isNaN(nan?.d)).toBe(true);
    expect(Number.isNaN(nan?.r)).toBe(true);
    expect(nan?.n).toBe('NaN');
    const minus = (await db.select().from(nums).where(eq(nums.id, 3)))[0];
    expect(minus).toMatchObject({ d: Number.NEGATIVE_INFINITY, r: Number.NEGATIVE_INFINITY, n: '-Infinity' });
    expect(Object.is((await db.select().from(nums).where(eq(nums.id, 4)))[0]?.d, -0)).toBe(true);
  });

  it('list reads (query entries) return exactly what uncached Drizzle returns', async () => {
    const expected = await plain.select().from(nums).orderBy(asc(nums.id));
    await db.select().from(nums).orderBy(asc(nums.id));
    await cache.flush();
    queries.reset();
    const cached = await db.select().from(nums).orderBy(asc(nums.id));
    expect(queries.count).toBe(0);
    expect(cached).toHaveLength(6);
    for (const [i, row] of cached.entries()) expect(same(row, expected[i]), `row ${i + 1}`).toBe(true);
  });
});

describe('oversized results', () => {
  it('a 3 MiB row is served whole, never cached, and does not disturb small rows', async () => {
    for (let i = 0; i < 3; i++) {
      const [row] = await db.select().from(blobs).where(eq(blobs.id, 1));
      expect(row?.body.length).toBe(BIG);
      const list = await db.select({ id: blobs.id }).from(blobs).orderBy(asc(blobs.id));
      expect(list).toEqual([{ id: 1 }, { id: 2 }]);
      const all = await db.select().from(blobs).orderBy(asc(blobs.id));
      expect(all.map((r) => r.body.length)).toEqual([BIG, 5]);
      await cache.flush();
    }
    const stats = cache.stats().tables.blobs;
    // The point read and the full list exceed maxValueBytes (1 MiB) each time; the id list does not.
    expect(stats?.oversized).toBe(6);
    queries.reset();
    expect((await db.select().from(blobs).where(eq(blobs.id, 2)))[0]?.body).toBe('small');
    await cache.flush();
    expect((await db.select().from(blobs).where(eq(blobs.id, 2)))[0]?.body).toBe('small');
    expect(queries.count).toBe(1);
    const keys = await redis.keys('*values-*');
    const sizes = await Promise.all(keys.map((k) => redis.strlen(k).catch(() => 0)));
    expect(Math.max(0, ...sizes)).toBeLessThan(1024 * 1024);
  });
});

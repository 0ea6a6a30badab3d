import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheStore, createCache, definePolicy } from '../../src/index.js';
import { memoryStore } from '../../stores/memory.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { countQueries, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisClient } from '../support/redis.js';

const { allTypes, users } = schema;

let database: IsolatedDatabase;
let redis: Redis;

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
  redis = redisClient();
  const raw = drizzle(database.pool(2), { schema });
  await raw.insert(allTypes).values([
    {
      id: 1,
      ts: new Date('2024-02-29T23:59:58.123Z'),
      tsz: new Date('2021-06-01T12:00:00.000Z'),
      tsStr: '2020-01-01 10:00:00.5',
      day: '1999-12-31',
      dayDate: new Date('2000-01-01T00:00:00.000Z'),
      big: 9007199254740993n,
      bigNum: 42,
      num: '12345678901234567890.123456789',
      dbl: Number.NaN,
      flag: true,
      doc: { a: [1, { b: null }], s: 'ünï', n: 1.5 },
      tags: ['a', 'b,c', 'd"e', ''],
      ints: [1, -2, 3],
      blob: Buffer.from([0, 255, 10, 13, 0x80]),
      id2: '4c1a0f3e-8f7b-4d8a-9b1e-2f0c6a3d9e10',
      span: '1 day 02:03:04',
    },
    { id: 2 },
    { id: 3, dbl: Number.POSITIVE_INFINITY, big: -1n, doc: [], tags: [], num: '-0.0' },
  ]);
  await raw.insert(users).values({ name: 'ada' });
});
afterAll(async () => {
  await database.drop();
  await redis.quit();
});

const stores: [string, () => CacheStore][] = [
  ['redis', () => redisStore(redis)],
  ['memory', () => memoryStore()],
];

describe.each(stores)('a cached answer is indistinguishable from the uncached one (%s store)', (_name, makeStore) => {
  it('round-trips every column type: Date, bigint, numeric strings, Buffer, jsonb, arrays, NaN, Infinity, nulls', async () => {
    const pool = database.pool(2);
    const queries = countQueries(pool);
    const raw = drizzle(pool, { schema });
    const cache = createCache({
      store: makeStore(),
      policy: definePolicy<typeof schema>({
        namespace: `fid-${Math.random()}`,
        version: 1,
        tables: { allTypes: { pattern: 'cache-aside' } },
      }),
    });
    const db = withCache(raw, cache);
    const uncached = await raw.select().from(allTypes).orderBy(allTypes.id);
    const miss = await db.select().from(allTypes).orderBy(allTypes.id);
    await cache.flush();
    queries.reset();
    const hit = await db.select().from(allTypes).orderBy(allTypes.id);
    expect(queries.count).toBe(0);
    expect(miss).toStrictEqual(uncached);
    expect(hit).toStrictEqual(uncached);
    const first = hit[0]!;
    expect(first.ts).toBeInstanceOf(Date);
    expect(typeof first.big).toBe('bigint');
    expect(first.big).toBe(9007199254740993n);
    expect(Buffer.isBuffer(first.blob)).toBe(true);
    expect(Number.isNaN(first.dbl)).toBe(true);
    expect(hit[2]?.dbl).toBe(Number.POSITIVE_INFINITY);
    expect(hit[1]?.doc).toBeNull();

    // Relational queries and partial selections go through the same path.
    const rq = await db.query.allTypes.findFirst({ where: eq(allTypes.id, 1) });
    expect(rq).toStrictEqual(await raw.query.allTypes.findFirst({ where: eq(allTypes.id, 1) }));
    await cache.close();
  });

  it('accepts bigint parameters and keys them apart', async () => {
    const cache = createCache({
      store: makeStore(),
      policy: definePolicy<typeof schema>({
        namespace: `fidp-${Math.random()}`,
        version: 1,
        tables: { allTypes: { pattern: 'cache-aside' }, users: { pattern: 'cache-aside' } },
      }),
    });
    const db = withCache(drizzle(database.pool(2), { schema }), cache);
    const byBig = (v: bigint) => db.select({ id: allTypes.id }).from(allTypes).where(eq(allTypes.big, v));
    expect(await byBig(9007199254740993n)).toEqual([{ id: 1 }]);
    expect(await byBig(9007199254740992n)).toEqual([]);
    expect(await byBig(-1n)).toEqual([{ id: 3 }]);
    await cache.close();
  });
});

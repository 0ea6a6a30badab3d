// The in-app drift sampler: a write behind the cache's back (a raw pool update) is found on a
// sampled hit, counted (tablecache.drift and stats) and the table invalidated; a write through
// tablecache racing the check is not drift. Real PostgreSQL and Redis.
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { asc, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheOptions, createCache, definePolicy, PolicyError, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { countQueries, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisClient } from '../support/redis.js';

const { products, lineItems } = schema;

class TestMetricReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

let database: IsolatedDatabase;
let redis: Redis;
let namespace: string;
const open: TableCache[] = [];

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
  redis = redisClient();
});
afterAll(async () => {
  await database.drop();
  await redis.quit();
});
beforeEach(async () => {
  namespace = `drift-${Math.random().toString(36).slice(2)}`;
  await database.run('truncate products, line_items');
  await database.run("insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3)");
  await database.run("insert into line_items values (1, 1, 'a'), (1, 2, 'b')");
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

function setup(verify: CacheOptions['verify'], hooks?: CacheOptions['hooks']) {
  const reader = new TestMetricReader();
  const pool = database.pool(3);
  const queries = countQueries(pool);
  const cache = createCache({
    store: redisStore(redis),
    policy: definePolicy<typeof schema>({
      namespace,
      version: 1,
      tables: { products: { pattern: 'cache-aside', ttl: '1h' }, lineItems: { pattern: 'write-through', ttl: '1h' } },
    }),
    verify,
    hooks,
    meterProvider: new MeterProvider({ readers: [reader] }),
  });
  open.push(cache);
  const db = withCache(drizzle(pool, { schema }), cache);
  const stats = (table = 'products') => cache.stats().tables[table]!;
  const driftMetric = async (): Promise<{ attributes: Attributes; value: number }[]> => {
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === 'tablecache.drift');
    return (metric?.dataPoints ?? []).map((p) => ({ attributes: p.attributes, value: p.value as number }));
  };
  return { cache, db, queries, stats, driftMetric };
}

const titles = async (db: ReturnType<typeof setup>['db']) =>
  (await db.select().from(products).orderBy(asc(products.id))).map((p) => p.title);

describe('the drift sampler', () => {
  it('finds a query entry that differs from the database, counts it and invalidates the table', async () => {
    const s = setup({ rate: 1, confirmAfter: '20ms' });
    expect(await titles(s.db)).toEqual(['pen', 'ink']);
    await s.cache.flush();
    await database.run("update products set title = 'psql' where id = 1"); // behind the cache's back
    expect(await titles(s.db)).toEqual(['pen', 'ink']); // a hit, sampled: the check runs in the background
    await s.cache.flush();
    expect(s.stats()).toMatchObject({ hits: 1, driftChecks: 1, drift: 1, invalidations: 1 });
    expect(await s.driftMetric()).toEqual([
      { attributes: { 'db.collection.name': 'products', 'tablecache.pattern': 'cache_aside' }, value: 1 },
    ]);
    // The entry got invalidated: the next read is a miss with the database's value.
    s.queries.reset();
    expect(await titles(s.db)).toEqual(['psql', 'ink']);
    expect(s.stats().misses).toBe(2);
  });

  it('finds a row entry that differs from the database (primary-key reads)', async () => {
    const s = setup({ rate: 1, confirmAfter: '20ms' });
    const byKey = async () => (await s.db.select().from(products).where(eq(products.id, 2)))[0]?.title;
    expect(await byKey()).toBe('ink');
    await s.cache.flush();
    await database.run("update products set title = 'psql' where id = 2");
    expect(await byKey()).toBe('ink');
    await s.cache.flush();
    expect(s.stats()).toMatchObject({ hits: 1, driftChecks: 1, drift: 1 });
    expect(await byKey()).toBe('psql');
  });

  it('finds a deleted row of a write-through table with a composite key', async () => {
    const s = setup({ rate: 1, confirmAfter: '20ms' });
    const read = () =>
      s.db
        .select()
        .from(lineItems)
        .where(eq(lineItems.orderId, 1))
        .then((rows) => rows.length);
    const byKey = async () =>
      (await s.db.query.lineItems.findFirst({ where: (t, { and }) => and(eq(t.orderId, 1), eq(t.line, 2)) }))?.note;
    expect(await read()).toBe(2);
    expect(await byKey()).toBe('b');
    await s.cache.flush();
    await database.run('delete from line_items where order_id = 1 and line = 2');
    expect(await byKey()).toBe('b');
    await s.cache.flush();
    expect(s.stats('line_items')).toMatchObject({ driftChecks: 1, drift: 1 });
    expect(await byKey()).toBeUndefined();
    expect(await read()).toBe(1);
  });

  it('a hit that agrees with the database is checked and left alone', async () => {
    const s = setup({ rate: 1, confirmAfter: '20ms' });
    await titles(s.db);
    await s.cache.flush();
    await titles(s.db);
    await s.cache.flush();
    expect(s.stats()).toMatchObject({ hits: 1, driftChecks: 1, drift: 0, invalidations: 0 });
    expect(await s.driftMetric()).toEqual([]);
    await titles(s.db);
    expect(s.stats().hits).toBe(2);
  });

  it('a write through tablecache between its commit and its invalidation is not drift', async () => {
    let release: () => void = () => {};
    let reached: () => void = () => {};
    const committed = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const s = setup(
      { rate: 1, confirmAfter: '1s' },
      {
        // Holds the update after its commit, before it evicts the row and invalidates the table.
        beforePublish: () =>
          new Promise<void>((resolve) => {
            release = resolve;
            reached();
          }),
      },
    );
    await titles(s.db);
    await s.cache.flush();
    const write = s.db
      .update(products)
      .set({ title: 'new' })
      .where(eq(products.id, 1))
      .then(() => undefined);
    await committed;
    // A hit (not invalidated yet) whose check reads 'new' from the database: a mismatch.
    expect(await titles(s.db)).toEqual(['pen', 'ink']);
    release(); // the invalidation lands well within the confirmation delay
    await write;
    await s.cache.flush();
    expect(s.stats()).toMatchObject({ driftChecks: 1, drift: 0 });
    expect(await titles(s.db)).toEqual(['new', 'ink']);
  });

  it('never samples reads inside a transaction, and rate 0 samples nothing', async () => {
    const s = setup({ rate: 1, confirmAfter: '20ms' });
    await titles(s.db);
    await s.cache.flush();
    await s.db.transaction(async (tx) => {
      await tx.select().from(products);
    });
    await s.cache.flush();
    expect(s.stats().driftChecks).toBe(0);

    namespace = `${namespace}-off`;
    const off = setup({ rate: 0 });
    await titles(off.db);
    await titles(off.db);
    await off.cache.flush();
    expect(off.stats()).toMatchObject({ hits: 1, driftChecks: 0 });
  });

  it('rejects a rate outside 0 to 1 when the cache is created', () => {
    for (const rate of [-0.1, 1.5, Number.NaN]) {
      expect(() =>
        createCache({ store: redisStore(redis), policy: definePolicy({ namespace, version: 1 }), verify: { rate } }),
      ).toThrow(PolicyError);
    }
  });
});

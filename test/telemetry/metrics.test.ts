// tablecache's metrics for scripted workloads, read with a pull MetricReader, and the same figures
// in cache.stats(). Real PostgreSQL and Redis; the store-down case points at a closed port.
import type { Attributes } from '@opentelemetry/api';
import { type Histogram, MeterProvider, type MetricData, MetricReader } from '@opentelemetry/sdk-metrics';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheError, type CacheOptions, createCache, definePolicy, type TableCache } from '../../src/index.js';
import { Telemetry } from '../../src/telemetry.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisClient } from '../support/redis.js';

const { users, products } = schema;

class TestMetricReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

interface Point {
  attributes: Attributes;
  value: number | Histogram;
}

/** A meter provider with a pull reader, and helpers to read what it collected. */
function observed() {
  const reader = new TestMetricReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const collect = async (): Promise<MetricData[]> => {
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    return resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics);
  };
  return { meterProvider, collect };
}

function metric(all: MetricData[], name: string): MetricData {
  const found = all.find((m) => m.descriptor.name === name);
  if (!found) throw new Error(`metric ${name} was not collected; got ${all.map((m) => m.descriptor.name).join(', ')}`);
  return found;
}

/** The data points of `name` whose attributes include `match`. */
function pointsOf(all: MetricData[], name: string, match: Attributes = {}): Point[] {
  const points = metric(all, name).dataPoints as Point[];
  return points.filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v));
}

function sumOf(all: MetricData[], name: string, match: Attributes = {}): number {
  return pointsOf(all, name, match).reduce((total, p) => total + (p.value as number), 0);
}

function histogramOf(all: MetricData[], name: string, match: Attributes): Histogram {
  const points = pointsOf(all, name, match);
  expect(points).toHaveLength(1);
  return points[0]?.value as Histogram;
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
  namespace = `metrics-${Math.random().toString(36).slice(2)}`;
  await database.run('truncate users, products, orders restart identity cascade');
  await database.run("insert into users (name) values ('ada'), ('bob'), ('cy')");
  await database.run("insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3)");
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

function instance(options: Partial<CacheOptions> = {}) {
  const cache = createCache({
    store: redisStore(redis),
    policy: definePolicy<typeof schema>({
      namespace,
      version: 1,
      defaults: { pattern: 'none' },
      tables: {
        users: { pattern: 'cache-aside' },
        products: { pattern: 'cache-aside', maxValueBytes: 16 },
      },
    }),
    ...options,
  });
  open.push(cache);
  const db = withCache(drizzle(database.pool(2), { schema }), cache);
  return { cache, db };
}

const userById = (db: ReturnType<typeof instance>['db'], id: number) => db.select().from(users).where(eq(users.id, id));

describe('read metrics', () => {
  it('3 misses then 5 hits: exact histogram counts by result, hit ratio 5/8, same figures in stats()', async () => {
    const { meterProvider, collect } = observed();
    const { db, cache } = instance({ meterProvider });
    for (const id of [1, 2, 3]) {
      await userById(db, id);
      await cache.flush(); // let the fill land so the next read of this id hits
    }
    for (const id of [1, 2, 3, 1, 2]) expect(await userById(db, id)).toHaveLength(1);

    const all = await collect();
    const duration = metric(all, 'tablecache.operation.duration');
    expect(duration.descriptor.unit).toBe('s');
    const get = { 'tablecache.operation': 'get', 'db.collection.name': 'users', 'tablecache.pattern': 'cache_aside' };
    const misses = histogramOf(all, 'tablecache.operation.duration', { ...get, 'tablecache.result': 'miss' });
    const hits = histogramOf(all, 'tablecache.operation.duration', { ...get, 'tablecache.result': 'hit' });
    expect(misses.count).toBe(3);
    expect(hits.count).toBe(5);
    expect(hits.sum).toBeGreaterThan(0);
    expect(hits.buckets.boundaries).toEqual([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]);
    expect(pointsOf(all, 'tablecache.operation.duration', get)).toHaveLength(2); // no bypass, no error
    for (const point of pointsOf(all, 'tablecache.operation.duration')) {
      expect(Object.keys(point.attributes).sort()).toEqual(
        ['db.collection.name', 'tablecache.operation', 'tablecache.pattern', 'tablecache.result'].sort(),
      );
    }
    // The documented hit ratio: count{result=hit} / count{operation=get}.
    const reads = pointsOf(all, 'tablecache.operation.duration', get).reduce(
      (n, p) => n + (p.value as Histogram).count,
      0,
    );
    expect(hits.count / reads).toBe(5 / 8);
    expect(cache.stats().tables.users).toMatchObject({
      reads: 8,
      hits: 5,
      misses: 3,
      bypasses: 0,
      fills: 3,
      errors: 0,
      hitRatio: 5 / 8,
    });
  });

  it('counts invalidations per table, rejected fills and oversized values, matching stats()', async () => {
    const { meterProvider, collect } = observed();
    let armed = false;
    let reached!: () => void;
    let release!: () => void;
    const fillReached = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { db, cache } = instance({
      meterProvider,
      hooks: {
        beforeFill: async () => {
          if (!armed) return;
          armed = false;
          reached();
          await gate;
        },
      },
    });
    // Two writes to users, one manual invalidation of users: three bumps of users.
    await db.update(users).set({ name: 'ada2' }).where(eq(users.id, 1));
    await db.delete(users).where(eq(users.id, 3));
    await cache.invalidate('users');
    // A fill held back while a write invalidates: rejected by the stale-set guard (a fourth bump).
    armed = true;
    await userById(db, 2);
    await fillReached;
    await db.update(users).set({ name: 'bob2' }).where(eq(users.id, 2));
    release();
    await cache.flush();
    // Products caps entries at 16 bytes: every result is served uncached.
    await db.select().from(products);
    await db.select().from(products);

    const all = await collect();
    expect(metric(all, 'tablecache.invalidations').descriptor.unit).toBe('{invalidation}');
    expect(sumOf(all, 'tablecache.invalidations', { 'db.collection.name': 'users' })).toBe(4);
    expect(sumOf(all, 'tablecache.rejected_fills', { 'db.collection.name': 'users' })).toBe(1);
    expect(sumOf(all, 'tablecache.oversized_values', { 'db.collection.name': 'products' })).toBe(2);
    const stats = cache.stats().tables;
    expect(stats.users).toMatchObject({ invalidations: 4, fillsRejected: 1, misses: 1, fills: 0 });
    expect(stats.products).toMatchObject({ oversized: 2, misses: 2, hits: 0 });
    // Every invalidation the counter saw is in stats(), table by table (dependents included).
    for (const point of pointsOf(all, 'tablecache.invalidations')) {
      const table = String(point.attributes['db.collection.name']);
      expect(stats[table]?.invalidations).toBe(point.value);
    }
  });
});

describe('store failure metrics', () => {
  it('counts store errors and reports the open breaker while reads are served by PostgreSQL', async () => {
    const { meterProvider, collect } = observed();
    const down = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, maxRetriesPerRequest: 0 });
    down.on('error', () => {});
    const handled: CacheError[] = [];
    const { db, cache } = instance({
      meterProvider,
      store: redisStore(down, { commandTimeoutMs: 100 }),
      breaker: { failures: 2, cooldown: '1h' },
      onError: (error) => handled.push(error),
    });
    const before = await collect();
    expect(sumOf(before, 'tablecache.breaker.open')).toBe(0);
    for (const id of [1, 2, 3]) expect(await userById(db, id)).toHaveLength(1);

    const all = await collect();
    // Two failures open the breaker; the third read does not even try the store.
    expect(sumOf(all, 'tablecache.store.errors')).toBe(2);
    expect(pointsOf(all, 'tablecache.store.errors').map((p) => p.attributes['error.type'])).toEqual(['StoreError']);
    expect(sumOf(all, 'tablecache.breaker.open')).toBe(1);
    const bypass = histogramOf(all, 'tablecache.operation.duration', {
      'tablecache.operation': 'get',
      'tablecache.result': 'bypass',
    });
    expect(bypass.count).toBe(3);
    // Handled: no error result, no error.type on the operation metric.
    expect(
      pointsOf(all, 'tablecache.operation.duration').filter((p) => p.attributes['error.type'] !== undefined),
    ).toEqual([]);
    expect(handled).toHaveLength(2);
    expect(cache.stats()).toMatchObject({ storeErrors: 2, breakerOpen: true });
    expect(cache.stats().tables.users).toMatchObject({ reads: 3, bypasses: 3, hits: 0, errors: 0, hitRatio: 0 });
    down.disconnect();
  });

  it('a failing query is result=error with the SQLSTATE as error.type, counted in stats().errors', async () => {
    const { meterProvider, collect } = observed();
    const { db, cache } = instance({ meterProvider });
    await expect(userById(db, 'x' as unknown as number)).rejects.toThrow();
    const all = await collect();
    const failed = histogramOf(all, 'tablecache.operation.duration', {
      'tablecache.operation': 'get',
      'tablecache.result': 'error',
    });
    expect(failed.count).toBe(1);
    expect(
      pointsOf(all, 'tablecache.operation.duration', { 'tablecache.result': 'error' })[0]?.attributes,
    ).toMatchObject({ 'error.type': '22P02', 'db.collection.name': 'users' });
    expect(cache.stats().tables.users).toMatchObject({ reads: 1, errors: 1, misses: 0 });
  });
});

describe('write-back metrics (recorded by the write-back engine through Telemetry)', () => {
  it('pending, oldest pending age, lag, batch size and dead letters, matching stats()', async () => {
    const { meterProvider, collect } = observed();
    const telemetry = new Telemetry({ meterProvider });
    telemetry.registerTable('orders', 'write-back');
    const initial = await collect();
    expect(sumOf(initial, 'tablecache.write_back.pending', { 'db.collection.name': 'orders' })).toBe(0);

    telemetry.observePendingAge(() => new Map([['orders', 1500]]));
    telemetry.writeBackQueued('orders', 5);
    telemetry.writeBackFlushed('orders', [100, 200, 300]);
    telemetry.writeBackDeadLettered('orders', 1);

    const all = await collect();
    const orders = { 'db.collection.name': 'orders' };
    expect(sumOf(all, 'tablecache.write_back.pending', orders)).toBe(1);
    expect(metric(all, 'tablecache.write_back.pending').descriptor.unit).toBe('{write}');
    expect(sumOf(all, 'tablecache.write_back.pending.age', orders)).toBe(1.5);
    expect(metric(all, 'tablecache.write_back.pending.age').descriptor.unit).toBe('s');
    const lag = histogramOf(all, 'tablecache.write_back.lag', orders);
    expect(lag.count).toBe(3);
    expect(lag.sum).toBeCloseTo(0.6, 9);
    expect(lag.min).toBeCloseTo(0.1, 9);
    expect(lag.max).toBeCloseTo(0.3, 9);
    expect(lag.buckets.boundaries).toContain(60); // the sync-lag alert threshold is a bucket edge
    const batch = histogramOf(all, 'tablecache.write_back.batch.size', orders);
    expect(batch).toMatchObject({ count: 1, sum: 3 });
    expect(sumOf(all, 'tablecache.write_back.dead_letters', orders)).toBe(1);
    expect(telemetry.stats().writeBack.orders).toEqual({
      pending: 1,
      oldestPendingAgeMs: 1500,
      flushed: 3,
      deadLetters: 1,
      lagP50Ms: 200,
      lagP99Ms: 300,
    });
  });
});

describe('what we never emit', () => {
  it('only tablecache.* metrics, no db.client.* (instrumentation-pg owns those)', async () => {
    const { meterProvider, collect } = observed();
    const { db, cache } = instance({ meterProvider });
    await userById(db, 1);
    await cache.flush();
    await userById(db, 1);
    await db.update(users).set({ name: 'z' }).where(eq(users.id, 1));
    const names = (await collect()).map((m) => m.descriptor.name);
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((n) => !n.startsWith('tablecache.'))).toEqual([]);
    expect(names.filter((n) => n.startsWith('db.client.'))).toEqual([]);
  });
});

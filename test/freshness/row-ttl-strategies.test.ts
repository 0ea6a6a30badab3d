// TTL strategies on row entries (primary-key reads and write-through rows): jitter, sliding
// expiration, early refresh, grace and serving stale on database errors. Same rules as query
// entries (ttl-strategies.test.ts); the clock and random source are injected on the memory store,
// Redis runs on the real clock with PTTL read back.
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import { eq, inArray } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { products } from '../fixtures/shop-schema.js';
import { type Setup, sleep, stats, T0, TestMetricReader, useFreshnessFixture } from './fixture.js';

const fx = useFreshnessFixture();

const byKey = (s: Setup, id = 1) => s.db.select().from(products).where(eq(products.id, id));
const titleOf = async (s: Setup, id = 1) => (await byKey(s, id))[0]?.title;
const both = async (s: Setup) =>
  (
    await s.db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2]))
  )
    .map((p) => p.title)
    .sort();

/** Makes every query on products fail (the table disappears) while `fn` runs. */
async function withDatabaseFailing(fn: () => Promise<void>): Promise<void> {
  await fx.database.run('alter table products rename to products_away');
  try {
    await fn();
  } finally {
    await fx.database.run('alter table products_away rename to products');
  }
}

describe('row entries: jitter and grace in the TTL Redis keeps', () => {
  it('rows published by write-through writes get a jittered TTL', async () => {
    const s = fx.setup({ pattern: 'write-through', ttl: '100s', ttlJitter: '40s' }, { store: 'redis' });
    s.random.value = 0; // 100s - 40s
    await s.db.update(products).set({ title: 'published' }).where(eq(products.id, 1));
    await s.cache.flush();
    const [ttl] = await fx.ttls('r');
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(ttl).toBeGreaterThan(55_000);
    expect(await fx.queriesOf(s, () => titleOf(s))).toBe(0);
  });

  it('filled and published rows stay in Redis ttl + grace', async () => {
    const s = fx.setup({ pattern: 'write-through', ttl: '10s', grace: '50s' }, { store: 'redis' });
    await byKey(s, 2); // a fill
    await s.db.update(products).set({ title: 'published' }).where(eq(products.id, 1));
    await s.cache.flush();
    const rowTtls = await fx.ttls('r');
    expect(rowTtls).toHaveLength(2);
    for (const ttl of rowTtls) {
      expect(ttl).toBeLessThanOrEqual(60_000);
      expect(ttl).toBeGreaterThan(55_000);
    }
  });
});

describe('row entries: sliding expiration', () => {
  it('a hit extends the row to ttl from now, up to maxAge after the fill', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', sliding: { maxAge: '25s' } });
    await byKey(s);
    await s.cache.flush();
    s.clock.t = T0 + 8000; // expires at 18s
    expect(await fx.queriesOf(s, () => byKey(s))).toBe(0);
    s.clock.t = T0 + 16_000; // expires at min(26s, 25s)
    expect(await fx.queriesOf(s, () => byKey(s))).toBe(0);
    s.clock.t = T0 + 24_000;
    expect(await fx.queriesOf(s, () => byKey(s))).toBe(0);
    s.clock.t = T0 + 25_500;
    expect(await fx.queriesOf(s, () => byKey(s))).toBe(1);
    expect(stats(s)).toMatchObject({ hits: 3, misses: 2 });
  });

  it('without hits, the row expires after ttl', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', sliding: { maxAge: '1h' } });
    await byKey(s);
    await s.cache.flush();
    s.clock.t = T0 + 10_500;
    expect(await fx.queriesOf(s, () => byKey(s))).toBe(1);
  });

  it('extends the TTL Redis keeps for the row after a hit', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '2s', sliding: { maxAge: '1m' } }, { store: 'redis' });
    await byKey(s);
    await s.cache.flush();
    await sleep(600);
    const [before] = await fx.ttls('r');
    await byKey(s);
    await s.cache.flush();
    const [after] = await fx.ttls('r');
    expect(stats(s).hits).toBe(1);
    expect(after).toBeGreaterThan(before!);
  });

  it('a write racing an extension is never hidden by it (cache-aside and write-through)', async () => {
    for (const pattern of ['cache-aside', 'write-through'] as const) {
      fx.namespace = `${fx.namespace}-${pattern}`;
      const s = fx.setup({ pattern, ttl: '10s', sliding: { maxAge: '1m' } });
      await byKey(s);
      await s.cache.flush();
      s.clock.t = T0 + 8000;
      await Promise.all([byKey(s), s.db.update(products).set({ title: pattern }).where(eq(products.id, 1))]);
      await s.cache.flush();
      expect(await titleOf(s)).toBe(pattern);
      s.clock.t = T0 + 17_000;
      expect(await titleOf(s)).toBe(pattern);
      await fx.database.run("update products set title = 'pen' where id = 1");
    }
  });
});

describe('row entries: early refresh (XFetch)', () => {
  it('refreshes the row in the background as expiry nears, serving the current row meanwhile', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } });
    await byKey(s);
    await s.cache.flush();
    await fx.database.run("update products set title = 'pen 2' where id = 1");
    s.clock.t = T0 + 5000;
    s.random.value = 0.999; // far from expiry: no refresh
    expect(await fx.queriesOf(s, () => byKey(s))).toBe(0);
    s.clock.t = T0 + 9999;
    s.random.value = 1e-300; // certain refresh
    s.queries.reset();
    expect(await titleOf(s)).toBe('pen');
    await s.cache.flush();
    expect(s.queries.count).toBe(1);
    s.clock.t = T0 + 12_000; // past the old expiry: the refreshed row is served
    expect(await fx.queriesOf(s, async () => expect(await titleOf(s)).toBe('pen 2'))).toBe(0);
    expect(stats(s)).toMatchObject({ hits: 3, misses: 1, fills: 2, stale: 0 });
  });

  it('runs one refresh per row for concurrent hits', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } });
    await both(s);
    await s.cache.flush();
    s.clock.t = T0 + 9000;
    s.random.value = 1e-300;
    expect(await fx.queriesOf(s, () => Promise.all([both(s), byKey(s, 1), byKey(s, 2), both(s)]))).toBe(1);
  });

  it('obeys the stale-set guard: a write during the refresh makes its fill rejected', async () => {
    let holdNext: Promise<void> | undefined;
    let release: () => void = () => {};
    let reached: () => void = () => {};
    const fillReached = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const s = fx.setup(
      { pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } },
      {
        hooks: {
          beforeFill: () => {
            const hold = holdNext;
            holdNext = undefined;
            if (hold) reached();
            return hold ?? Promise.resolve();
          },
        },
      },
    );
    await byKey(s);
    await s.cache.flush();
    holdNext = new Promise<void>((resolve) => {
      release = resolve;
    });
    s.clock.t = T0 + 9000;
    s.random.value = 1e-300;
    expect(await titleOf(s)).toBe('pen'); // starts the refresh
    await fillReached; // the refresh read the old row and waits before its fill
    await s.db.update(products).set({ title: 'new' }).where(eq(products.id, 1));
    release();
    await s.cache.flush();
    expect(stats(s).fillsRejected).toBe(1);
    expect(await titleOf(s)).toBe('new');
  });
});

describe('row entries: grace (stale-while-revalidate)', () => {
  it('serves an expired row within grace while one refresh runs, reported as stale', async () => {
    const reader = new TestMetricReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' }, { meterProvider });
    await byKey(s);
    await s.cache.flush();
    await fx.database.run("update products set title = 'pen 2' where id = 1");
    s.clock.t = T0 + 12_000;
    s.queries.reset();
    expect(await Promise.all([titleOf(s), titleOf(s)])).toEqual(['pen', 'pen']);
    await s.cache.flush();
    expect(s.queries.count).toBe(1); // one refresh for both stale reads
    expect(await titleOf(s)).toBe('pen 2');
    expect(stats(s)).toMatchObject({ stale: 2, hits: 1, misses: 1 });

    const { resourceMetrics } = await reader.collect();
    const duration = resourceMetrics.scopeMetrics
      .flatMap((m) => m.metrics)
      .find((m: MetricData) => m.descriptor.name === 'tablecache.operation.duration');
    const stale = duration?.dataPoints.filter((p) => (p.attributes as Attributes)['tablecache.result'] === 'stale');
    expect((stale?.[0]?.value as { count: number } | undefined)?.count).toBe(2);
  });

  it('beyond grace the row is gone: a miss', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' });
    await byKey(s);
    await s.cache.flush();
    s.clock.t = T0 + 40_500;
    expect(await fx.queriesOf(s, () => byKey(s))).toBe(1);
    expect(stats(s).stale).toBe(0);
  });

  it('a read that misses some rows reads the stale ones again in the same query', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' });
    await byKey(s, 1);
    await s.cache.flush();
    await fx.database.run("update products set title = 'pen 2' where id = 1");
    s.clock.t = T0 + 12_000; // row 1 stale, row 2 never cached
    expect(await fx.queriesOf(s, async () => expect(await both(s)).toEqual(['ink', 'pen 2']))).toBe(1);
    expect(stats(s).stale).toBe(0);
    expect(await fx.queriesOf(s, () => both(s))).toBe(0);
  });

  it('never serves a written or invalidated row stale', async () => {
    for (const pattern of ['cache-aside', 'write-through'] as const) {
      fx.namespace = `${fx.namespace}-${pattern}`;
      const s = fx.setup({ pattern, ttl: '10s', grace: '30s', serveStaleOnDbError: true });
      await byKey(s, 1);
      await byKey(s, 2);
      await s.cache.flush();
      s.clock.t = T0 + 12_000; // both rows expired, within grace
      await s.db.update(products).set({ title: 'written' }).where(eq(products.id, 1));
      expect(await titleOf(s, 1)).toBe('written');
      await fx.database.run("update products set title = 'psql' where id = 2");
      await s.cache.invalidateRow('products', [2]);
      expect(await titleOf(s, 2)).toBe('psql');
      expect(stats(s).stale).toBe(0);
      await fx.database.run(
        "update products set title = 'pen' where id = 1; update products set title = 'ink' where id = 2",
      );
    }
  });
});

describe('row entries: serveStaleOnDbError', () => {
  it('off: after a failed refresh the expired row is no longer served and the error surfaces', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' });
    await byKey(s);
    await s.cache.flush();
    s.clock.t = T0 + 12_000;
    await withDatabaseFailing(async () => {
      expect(await titleOf(s)).toBe('pen'); // stale while the refresh runs (and fails)
      await s.cache.flush();
      await expect(byKey(s)).rejects.toThrow(/products/);
    });
    expect(stats(s).stale).toBe(1);
    expect(await titleOf(s)).toBe('pen');
  });

  it('on: the expired row keeps being served while the database fails, up to grace', async () => {
    const s = fx.setup({ pattern: 'write-through', ttl: '10s', grace: '30s', serveStaleOnDbError: true });
    await byKey(s);
    await s.cache.flush();
    s.clock.t = T0 + 12_000;
    await withDatabaseFailing(async () => {
      expect(await titleOf(s)).toBe('pen');
      await s.cache.flush();
      s.clock.t = T0 + 39_000;
      expect(await titleOf(s)).toBe('pen');
      await s.cache.flush();
      expect(stats(s).stale).toBe(2);
      s.clock.t = T0 + 40_500; // beyond grace
      await expect(byKey(s)).rejects.toThrow(/products/);
    });
  });
});

// TTL strategies end to end through Drizzle: jitter, sliding expiration, early refresh (XFetch),
// grace (stale-while-revalidate) and serving stale on database errors, on query entries. The
// logic runs on the memory store with an injected clock shared with the cache (and an injected
// random source), so every timing is forced; the Redis side uses short real TTLs and reads PTTL.
// Row entries: row-ttl-strategies.test.ts.
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import { asc, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { products } from '../fixtures/shop-schema.js';
import { list, sleep, stats, T0, TestMetricReader, titles, useFreshnessFixture } from './fixture.js';

const fx = useFreshnessFixture();

describe('fixed TTL with jitter', () => {
  it('draws each fill a TTL within ttl ± jitter, so entries filled together expire apart', async () => {
    const early = fx.setup({ pattern: 'cache-aside', ttl: '10s', ttlJitter: 0.5 });
    early.random.value = 0; // 10s - 5s
    await list(early);
    await early.cache.flush();
    early.clock.t = T0 + 5500;
    expect(await fx.queriesOf(early, () => list(early))).toBe(1);

    fx.namespace = `${fx.namespace}-late`;
    const late = fx.setup({ pattern: 'cache-aside', ttl: '10s', ttlJitter: 0.5 });
    late.random.value = 0.999; // about 10s + 5s
    await list(late);
    await late.cache.flush();
    late.clock.t = T0 + 14_000;
    expect(await fx.queriesOf(late, () => list(late))).toBe(0);
    expect(stats(late).hits).toBe(1);
  });

  it('spreads the TTLs Redis keeps, for query entries and row entries', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '100s', ttlJitter: '40s' }, { store: 'redis' });
    const draws = [0, 0.25, 0.5, 0.75];
    for (const [i, value] of draws.entries()) {
      s.random.value = value;
      await s.db
        .select()
        .from(products)
        .where(eq(products.id, 1))
        .limit(i + 10); // a row-entry read
      await s.cache.flush();
      await s.db
        .select()
        .from(products)
        .orderBy(asc(products.id))
        .limit(i + 1); // a query entry each
      await s.cache.flush();
    }
    const query = (await fx.ttls('q')).sort((a, b) => a - b);
    const expected = [60_000, 80_000, 100_000, 120_000];
    expect(query).toHaveLength(4);
    query.forEach((ttl, i) => {
      expect(ttl).toBeLessThanOrEqual(expected[i]!);
      expect(ttl).toBeGreaterThan(expected[i]! - 5000);
    });
    // One row entry, filled once with the first draw (the later reads were hits).
    const [row] = await fx.ttls('r');
    expect(row).toBeLessThanOrEqual(60_000);
    expect(row).toBeGreaterThan(55_000);
  });
});

describe('sliding expiration', () => {
  it('a hit extends the entry to ttl from now, up to maxAge after the fill', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', sliding: { maxAge: '25s' } });
    await list(s);
    await s.cache.flush();
    s.clock.t = T0 + 8000; // hit: expires at 18s
    expect(await fx.queriesOf(s, () => list(s))).toBe(0);
    s.clock.t = T0 + 16_000; // past the first TTL, still a hit: expires at min(26s, 25s)
    expect(await fx.queriesOf(s, () => list(s))).toBe(0);
    s.clock.t = T0 + 24_000; // a hit, but the maximum age holds the expiry at 25s
    expect(await fx.queriesOf(s, () => list(s))).toBe(0);
    s.clock.t = T0 + 25_500;
    expect(await fx.queriesOf(s, () => list(s))).toBe(1);
    expect(stats(s)).toMatchObject({ hits: 3, misses: 2 });
  });

  it('without hits, the entry expires after ttl', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', sliding: { maxAge: '1h' } });
    await list(s);
    await s.cache.flush();
    s.clock.t = T0 + 10_500;
    expect(await fx.queriesOf(s, () => list(s))).toBe(1);
  });

  it('extends the TTL Redis keeps after a hit (a second command, not awaited by the hit)', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '2s', sliding: { maxAge: '1m' } }, { store: 'redis' });
    await list(s);
    await s.cache.flush();
    await sleep(600);
    const [before] = await fx.ttls('q');
    await list(s);
    await s.cache.flush();
    const [after] = await fx.ttls('q');
    expect(stats(s).hits).toBe(1);
    expect(after).toBeGreaterThan(before!);
  });

  it('a write racing an extension is never hidden by it', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', sliding: { maxAge: '1m' } });
    await list(s);
    await s.cache.flush();
    s.clock.t = T0 + 8000;
    // The hit's extension (guarded by the generations it read) races the write's invalidation.
    await Promise.all([list(s), s.db.update(products).set({ title: 'new' }).where(eq(products.id, 1))]);
    await s.cache.flush();
    expect(await titles(s)).toEqual(['new', 'ink']);
    s.clock.t = T0 + 17_000;
    expect(await titles(s)).toEqual(['new', 'ink']);
  });
});

describe('early refresh (XFetch)', () => {
  it('refreshes in the background as expiry nears, serving the current value meanwhile', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } });
    await list(s);
    await s.cache.flush();
    await fx.database.run("update products set title = 'pen 2' where id = 1"); // behind the cache's back
    s.clock.t = T0 + 5000;
    s.random.value = 0.5; // far from expiry: no refresh
    expect(await fx.queriesOf(s, () => list(s))).toBe(0);
    s.clock.t = T0 + 9999;
    s.random.value = 1e-12; // -ln = 27.6: with any compute time, refresh now
    s.queries.reset();
    expect(await titles(s)).toEqual(['pen', 'ink']); // served the current entry
    await s.cache.flush();
    expect(s.queries.count).toBe(1);
    s.clock.t = T0 + 10_500; // past the old expiry: the refreshed entry is a hit
    expect(await fx.queriesOf(s, async () => expect(await titles(s)).toEqual(['pen 2', 'ink']))).toBe(0);
    expect(stats(s)).toMatchObject({ hits: 3, misses: 1, stale: 0 });
  });

  it('runs one refresh for concurrent hits', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } });
    await list(s);
    await s.cache.flush();
    s.clock.t = T0 + 9000;
    s.random.value = 1e-300;
    expect(await fx.queriesOf(s, () => Promise.all([list(s), list(s), list(s)]))).toBe(1);
    expect(stats(s).hits).toBe(3);
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
    await list(s);
    await s.cache.flush();
    holdNext = new Promise<void>((resolve) => {
      release = resolve;
    });
    s.clock.t = T0 + 9000;
    s.random.value = 1e-300;
    expect(await titles(s)).toEqual(['pen', 'ink']); // starts the refresh
    await fillReached; // the refresh read the old row and waits before its fill
    await s.db.update(products).set({ title: 'new' }).where(eq(products.id, 1));
    release();
    await s.cache.flush();
    expect(stats(s).fillsRejected).toBe(1);
    expect(await titles(s)).toEqual(['new', 'ink']);
  });
});

describe('grace (stale-while-revalidate)', () => {
  it('serves an expired entry within grace while one refresh runs, reported as stale', async () => {
    const reader = new TestMetricReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' }, { meterProvider });
    await list(s);
    await s.cache.flush();
    await fx.database.run("update products set title = 'pen 2' where id = 1");
    s.clock.t = T0 + 12_000;
    s.queries.reset();
    expect(await Promise.all([titles(s), titles(s)])).toEqual([
      ['pen', 'ink'],
      ['pen', 'ink'],
    ]);
    await s.cache.flush();
    expect(s.queries.count).toBe(1); // one refresh for both stale reads
    expect(await titles(s)).toEqual(['pen 2', 'ink']);
    expect(stats(s)).toMatchObject({ stale: 2, hits: 1, misses: 1 });

    const { resourceMetrics } = await reader.collect();
    const duration = resourceMetrics.scopeMetrics
      .flatMap((m) => m.metrics)
      .find((m: MetricData) => m.descriptor.name === 'tablecache.operation.duration');
    const stale = duration?.dataPoints.filter((p) => (p.attributes as Attributes)['tablecache.result'] === 'stale');
    expect(stale).toHaveLength(1);
    expect((stale?.[0]?.value as { count: number } | undefined)?.count).toBe(2);
  });

  it('beyond grace the entry is gone: a miss', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' });
    await list(s);
    await s.cache.flush();
    s.clock.t = T0 + 40_500;
    expect(await fx.queriesOf(s, () => list(s))).toBe(1);
    expect(stats(s).stale).toBe(0);
  });

  it('never serves an invalidated entry stale: a written row is read from the database', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s', serveStaleOnDbError: true });
    await list(s);
    await s.db.select().from(products).where(eq(products.id, 1));
    await s.cache.flush();
    s.clock.t = T0 + 12_000; // both entries expired, within grace
    await s.db.update(products).set({ title: 'written' }).where(eq(products.id, 1));
    expect(await titles(s)).toEqual(['written', 'ink']);
    const [row] = await s.db.select().from(products).where(eq(products.id, 1));
    expect(row?.title).toBe('written');
    expect(stats(s).stale).toBe(0);

    // The same after a manual invalidation (a write that bypassed tablecache, then `invalidate`).
    await s.cache.flush();
    s.clock.t = T0 + 24_000;
    await fx.database.run("update products set title = 'psql' where id = 1");
    await s.cache.invalidate('products');
    expect(await titles(s)).toEqual(['psql', 'ink']);
    expect(stats(s).stale).toBe(0);
  });

  it('keeps entries in Redis for ttl + grace and serves them stale after the real TTL', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '300ms', grace: '20s' }, { store: 'redis' });
    await list(s);
    await s.cache.flush();
    const [ttl] = await fx.ttls('q');
    expect(ttl).toBeGreaterThan(15_000);
    await sleep(400);
    await fx.database.run("update products set title = 'pen 2' where id = 1");
    expect(await titles(s)).toEqual(['pen', 'ink']);
    await s.cache.flush();
    expect(stats(s).stale).toBe(1);
    expect(await titles(s)).toEqual(['pen 2', 'ink']);
  });
});

describe('serveStaleOnDbError', () => {
  /** Makes every query on products fail (the table disappears) while `fn` runs. */
  async function withDatabaseFailing(fn: () => Promise<void>): Promise<void> {
    await fx.database.run('alter table products rename to products_away');
    try {
      await fn();
    } finally {
      await fx.database.run('alter table products_away rename to products');
    }
  }

  it('off: after a failed refresh the expired entry is no longer served and the error surfaces', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' });
    await list(s);
    await s.cache.flush();
    s.clock.t = T0 + 12_000;
    await withDatabaseFailing(async () => {
      expect(await titles(s)).toEqual(['pen', 'ink']); // stale while the refresh runs (and fails)
      await s.cache.flush();
      await expect(list(s)).rejects.toThrow(/products/);
    });
    expect(stats(s).stale).toBe(1);
    expect(await titles(s)).toEqual(['pen', 'ink']);
  });

  it('on: the expired entry keeps being served while the database fails, up to grace', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s', serveStaleOnDbError: true });
    await list(s);
    await s.cache.flush();
    s.clock.t = T0 + 12_000;
    await withDatabaseFailing(async () => {
      expect(await titles(s)).toEqual(['pen', 'ink']);
      await s.cache.flush();
      s.clock.t = T0 + 39_000;
      expect(await titles(s)).toEqual(['pen', 'ink']);
      await s.cache.flush();
      expect(stats(s).stale).toBe(2);
      s.clock.t = T0 + 40_500; // beyond grace
      await expect(list(s)).rejects.toThrow(/products/);
    });
  });
});

describe('entries written before the metadata existed', () => {
  it('are served by a table that now uses strategies; malformed metadata is a miss', async () => {
    const plain = fx.setup({ pattern: 'cache-aside', ttl: '1m' }, { store: 'redis' });
    await list(plain);
    await plain.cache.flush();
    const [key] = await fx.redis.keys(`tc:{${fx.namespace}:v1}:q:*`);
    const legacy = (await fx.redis.getBuffer(key!))!;
    expect(legacy.subarray(0, legacy.indexOf(0x0a)).toString('latin1')).not.toContain(';');

    const strategic = fx.setup(
      { pattern: 'cache-aside', ttl: '1m', grace: '1m', earlyRefresh: { beta: 1 }, sliding: { maxAge: '1h' } },
      { store: 'redis' },
    );
    expect(await fx.queriesOf(strategic, () => list(strategic))).toBe(0);
    expect(stats(strategic).hits).toBe(1);

    const generations = legacy.subarray(0, legacy.indexOf(0x0a)).toString('latin1');
    const body = legacy.subarray(legacy.indexOf(0x0a));
    await fx.redis.set(key!, Buffer.concat([Buffer.from(`${generations};1,2`, 'latin1'), body]), 'PX', 60_000);
    expect(await fx.queriesOf(strategic, () => list(strategic))).toBe(1);
    expect(stats(strategic).misses).toBe(1);
  });
});

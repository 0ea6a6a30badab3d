// The TTL strategies that behave alike on query entries (lists, filters, joins) and row entries
// (primary-key reads): sliding expiration, early refresh (XFetch), grace and serving stale on
// database errors, each scenario run once per entry kind. The memory store shares an injected
// clock and random source with the cache, so every timing is forced; Redis runs on the real clock.
// Kind-specific cases: ttl-strategies.test.ts (query entries), row-ttl-strategies.test.ts (rows).
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { products } from '../fixtures/shop-schema.js';
import { list, type Setup, sleep, stats, T0, TestMetricReader, useFreshnessFixture } from './fixture.js';

const fx = useFreshnessFixture();

const byKey = (s: Setup) => s.db.select().from(products).where(eq(products.id, 1));

/** One kind of entry: a read served by it, and the title of product 1 that read returns. */
interface EntryKind {
  name: string;
  read(s: Setup): Promise<unknown>;
  title(s: Setup): Promise<string | undefined>;
  /** The key kind in Redis (`q` query entries, `r` row entries). */
  key: 'q' | 'r';
}

const KINDS: EntryKind[] = [
  { name: 'query entries', read: list, title: async (s) => (await list(s))[0]?.title, key: 'q' },
  { name: 'row entries', read: byKey, title: async (s) => (await byKey(s))[0]?.title, key: 'r' },
];

/** Makes every query on products fail (the table disappears) while `fn` runs. */
async function withDatabaseFailing(fn: () => Promise<void>): Promise<void> {
  await fx.database.run('alter table products rename to products_away');
  try {
    await fn();
  } finally {
    await fx.database.run('alter table products_away rename to products');
  }
}

describe.each(KINDS)('$name', (kind) => {
  describe('sliding expiration', () => {
    it('a hit extends the entry to ttl from now, up to maxAge after the fill', async () => {
      const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', sliding: { maxAge: '25s' } });
      await kind.read(s);
      await s.cache.flush();
      s.clock.t = T0 + 8000; // hit: expires at 18s
      expect(await fx.queriesOf(s, () => kind.read(s))).toBe(0);
      s.clock.t = T0 + 16_000; // past the first TTL, still a hit: expires at min(26s, 25s)
      expect(await fx.queriesOf(s, () => kind.read(s))).toBe(0);
      s.clock.t = T0 + 24_000; // a hit, but the maximum age holds the expiry at 25s
      expect(await fx.queriesOf(s, () => kind.read(s))).toBe(0);
      s.clock.t = T0 + 25_500;
      expect(await fx.queriesOf(s, () => kind.read(s))).toBe(1);
      expect(stats(s)).toMatchObject({ hits: 3, misses: 2 });
    });

    it('without hits, the entry expires after ttl', async () => {
      const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', sliding: { maxAge: '1h' } });
      await kind.read(s);
      await s.cache.flush();
      s.clock.t = T0 + 10_500;
      expect(await fx.queriesOf(s, () => kind.read(s))).toBe(1);
    });

    it('extends the TTL Redis keeps after a hit (a second command, not awaited by the hit)', async () => {
      // A TTL far above the pause, so the hit is a hit even when the machine is loaded.
      const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', sliding: { maxAge: '1m' } }, { store: 'redis' });
      await kind.read(s);
      await s.cache.flush();
      await sleep(600);
      const [before] = await fx.ttls(kind.key);
      await kind.read(s);
      await s.cache.flush();
      const [after] = await fx.ttls(kind.key);
      expect(stats(s).hits).toBe(1);
      expect(after).toBeGreaterThan(before!);
    });

    it('a write racing an extension is never hidden by it (cache-aside and write-through)', async () => {
      for (const pattern of ['cache-aside', 'write-through'] as const) {
        fx.namespace = `${fx.namespace}-${pattern}`;
        const s = fx.setup({ pattern, ttl: '10s', sliding: { maxAge: '1m' } });
        await kind.read(s);
        await s.cache.flush();
        s.clock.t = T0 + 8000;
        // The hit's extension (guarded by what it read) races the write's invalidation.
        await Promise.all([kind.read(s), s.db.update(products).set({ title: pattern }).where(eq(products.id, 1))]);
        await s.cache.flush();
        expect(await kind.title(s)).toBe(pattern);
        s.clock.t = T0 + 17_000;
        expect(await kind.title(s)).toBe(pattern);
        await fx.database.run("update products set title = 'pen' where id = 1");
      }
    });
  });

  describe('early refresh (XFetch)', () => {
    it('refreshes in the background as expiry nears, serving the current value meanwhile', async () => {
      const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } });
      await kind.read(s);
      await s.cache.flush();
      await fx.database.run("update products set title = 'pen 2' where id = 1"); // behind the cache's back
      s.clock.t = T0 + 5000;
      s.random.value = 0.5; // far from expiry: no refresh
      expect(await fx.queriesOf(s, () => kind.read(s))).toBe(0);
      s.clock.t = T0 + 9999;
      s.random.value = 1e-12; // -ln = 27.6: with any compute time, refresh now
      s.queries.reset();
      expect(await kind.title(s)).toBe('pen'); // served the current entry
      await s.cache.flush();
      expect(s.queries.count).toBe(1);
      s.clock.t = T0 + 10_500; // past the old expiry: the refreshed entry is a hit
      expect(await fx.queriesOf(s, async () => expect(await kind.title(s)).toBe('pen 2'))).toBe(0);
      expect(stats(s)).toMatchObject({ hits: 3, misses: 1, fills: 2, stale: 0 });
    });

    it('runs one refresh for concurrent hits', async () => {
      const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } });
      await kind.read(s);
      await s.cache.flush();
      s.clock.t = T0 + 9000;
      s.random.value = 1e-300;
      expect(await fx.queriesOf(s, () => Promise.all([kind.read(s), kind.read(s), kind.read(s)]))).toBe(1);
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
      await kind.read(s);
      await s.cache.flush();
      holdNext = new Promise<void>((resolve) => {
        release = resolve;
      });
      s.clock.t = T0 + 9000;
      s.random.value = 1e-300;
      expect(await kind.title(s)).toBe('pen'); // starts the refresh
      await fillReached; // the refresh read the old row and waits before its fill
      await s.db.update(products).set({ title: 'new' }).where(eq(products.id, 1));
      release();
      await s.cache.flush();
      expect(stats(s).fillsRejected).toBe(1);
      expect(await kind.title(s)).toBe('new');
    });
  });

  describe('grace (stale-while-revalidate)', () => {
    it('serves an expired entry within grace while one refresh runs, reported as stale', async () => {
      const reader = new TestMetricReader();
      const meterProvider = new MeterProvider({ readers: [reader] });
      const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' }, { meterProvider });
      await kind.read(s);
      await s.cache.flush();
      await fx.database.run("update products set title = 'pen 2' where id = 1");
      s.clock.t = T0 + 12_000;
      s.queries.reset();
      expect(await Promise.all([kind.title(s), kind.title(s)])).toEqual(['pen', 'pen']);
      await s.cache.flush();
      expect(s.queries.count).toBe(1); // one refresh for both stale reads
      expect(await kind.title(s)).toBe('pen 2');
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
      await kind.read(s);
      await s.cache.flush();
      s.clock.t = T0 + 40_500;
      expect(await fx.queriesOf(s, () => kind.read(s))).toBe(1);
      expect(stats(s).stale).toBe(0);
    });
  });

  describe('serveStaleOnDbError', () => {
    it('off: after a failed refresh the expired entry is no longer served and the error surfaces', async () => {
      const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', grace: '30s' });
      await kind.read(s);
      await s.cache.flush();
      s.clock.t = T0 + 12_000;
      await withDatabaseFailing(async () => {
        expect(await kind.title(s)).toBe('pen'); // stale while the refresh runs (and fails)
        await s.cache.flush();
        await expect(kind.read(s)).rejects.toThrow(/products/);
      });
      expect(stats(s).stale).toBe(1);
      expect(await kind.title(s)).toBe('pen');
    });

    it('on: the expired entry keeps being served while the database fails, up to grace', async () => {
      const s = fx.setup({ pattern: 'write-through', ttl: '10s', grace: '30s', serveStaleOnDbError: true });
      await kind.read(s);
      await s.cache.flush();
      s.clock.t = T0 + 12_000;
      await withDatabaseFailing(async () => {
        expect(await kind.title(s)).toBe('pen');
        await s.cache.flush();
        s.clock.t = T0 + 39_000;
        expect(await kind.title(s)).toBe('pen');
        await s.cache.flush();
        expect(stats(s).stale).toBe(2);
        s.clock.t = T0 + 40_500; // beyond grace
        await expect(kind.read(s)).rejects.toThrow(/products/);
      });
    });
  });
});

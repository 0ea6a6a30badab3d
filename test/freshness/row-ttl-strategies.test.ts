import { eq, inArray } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { products } from '../fixtures/shop-schema.js';
import { type Setup, stats, T0, useFreshnessFixture } from './fixture.js';

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

describe('row entries: early refresh and grace across several keys', () => {
  it('runs one refresh per row for concurrent hits', async () => {
    const s = fx.setup({ pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } });
    await both(s);
    await s.cache.flush();
    s.clock.t = T0 + 9000;
    s.random.value = 1e-300;
    expect(await fx.queriesOf(s, () => Promise.all([both(s), byKey(s, 1), byKey(s, 2), both(s)]))).toBe(1);
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

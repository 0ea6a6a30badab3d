import { asc, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { products } from '../fixtures/shop-schema.js';
import { list, sleep, stats, T0, titles, useFreshnessFixture } from './fixture.js';

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

describe('grace (stale-while-revalidate), query entries', () => {
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

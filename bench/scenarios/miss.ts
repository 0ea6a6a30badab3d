import { and, eq, ne, sql } from 'drizzle-orm';
import { cacheCounts, cachedClient } from '../context.js';
import type { Labelled, Scenario } from '../scenario.js';
import { measureGroup } from '../scenario.js';
import { ITEM_COUNT, itemCode } from '../schema.js';

/**
 * Cache-aside misses: every operation asks a query never asked before (a one-row lookup by code
 * plus an always-true `id <> -n` with a fresh n), so tablecache reads Redis, queries PostgreSQL
 * and fills in the background. Baselines: the same query uncached, and the GET floor.
 */
export const miss: Scenario = {
  name: 'miss',
  title: 'Cache-aside misses (P3)',
  async run(ctx, rec) {
    const { items } = ctx.tables;
    const tc = cachedClient(ctx, 'miss', { items: { pattern: 'cache-aside', ttl: '5m' } });
    const codeOf = (n: number) => itemCode((n % ITEM_COUNT) + 1);
    const floorKey = (n: number) => `${ctx.keyPrefix}:miss-floor:${n % 100}`;
    // A fresh parameter per call, across concurrencies too (the harness index restarts per group).
    let fresh = 0;
    const next = () => ++fresh;
    const query = (db: typeof ctx.db, n: number) =>
      db
        .select()
        .from(items)
        .where(and(eq(items.code, codeOf(n)), ne(items.id, -n)));
    const prepare = (db: typeof ctx.db, name: string) =>
      db
        .select()
        .from(items)
        .where(and(eq(items.code, sql.placeholder('code')), ne(items.id, sql.placeholder('neg'))))
        .prepare(name);
    const tcPrepared = prepare(tc.db, 'bench_tc_miss');
    const plainPrepared = prepare(ctx.db, 'bench_plain_miss');
    try {
      const pipeline = ctx.redis.pipeline();
      for (let n = 0; n < 100; n++) {
        pipeline.set(floorKey(n), JSON.stringify(await query(ctx.db, n + 1)), 'EX', 600);
      }
      await pipeline.exec();
      const before = cacheCounts(tc.cache);
      const subjects: Labelled[] = [
        { name: 'tablecache.miss.builder', label: 'tablecache miss, builder', op: () => query(tc.db, next()) },
        {
          name: 'tablecache.miss.prepared',
          label: 'tablecache miss, prepared',
          op: () => {
            const n = next();
            return tcPrepared.execute({ code: codeOf(n), neg: -n });
          },
        },
        { name: 'uncached.builder', label: 'uncached Drizzle, builder', op: () => query(ctx.db, next()) },
        {
          name: 'uncached.prepared',
          label: 'uncached Drizzle, prepared',
          op: () => {
            const n = next();
            return plainPrepared.execute({ code: codeOf(n), neg: -n });
          },
        },
        {
          name: 'floor.get-parse',
          label: 'floor: ioredis GET + JSON.parse',
          op: async (i) => JSON.parse((await ctx.redis.get(floorKey(i))) as string),
        },
      ];
      const g = await measureGroup(ctx, rec, subjects, [1, 64]);
      await tc.cache.flush();
      const after = cacheCounts(tc.cache);
      rec.fact('tablecache hits while measuring (expected 0)', after.hits - before.hits);
      const floor = g.get('floor.get-parse', 1).p50Us ?? Number.NaN;
      for (const [id, kind] of [
        ['P3a', 'builder'],
        ['P3b', 'prepared'],
      ] as const) {
        const p50 = g.get(`tablecache.miss.${kind}`, 1).p50Us ?? Number.NaN;
        const plain = g.get(`uncached.${kind}`, 1).p50Us ?? Number.NaN;
        rec.ratio(id, p50 / (plain + floor), '<=', 1.2, `p50 ${p50} vs ${plain} + ${floor} µs`);
      }
    } finally {
      await tc.cache.close();
    }
  },
};

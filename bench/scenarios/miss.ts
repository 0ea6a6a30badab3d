import { cacheCounts, cachedClient } from '../context.js';
import { lookup, lookupParams, prepareLookup } from '../queries.js';
import type { Labelled, Scenario } from '../scenario.js';
import { measureGroup } from '../scenario.js';

/**
 * Cache-aside misses: every operation asks a query never asked before (the "lookup n" query with
 * a fresh n), so tablecache reads Redis, queries PostgreSQL and fills in the background.
 * Baselines: the same queries uncached, and the GET floor.
 */
export const miss: Scenario = {
  name: 'miss',
  title: 'Cache-aside misses (P3)',
  async run(ctx, rec) {
    const tc = cachedClient(ctx, 'miss', { items: { pattern: 'cache-aside', ttl: '5m' } });
    const floorKey = (n: number) => `${ctx.keyPrefix}:miss-floor:${n % 100}`;
    // A fresh n per call, across concurrencies too (the harness index restarts for each group).
    let fresh = 0;
    const next = () => ++fresh;
    const tcPrepared = prepareLookup(tc.db, ctx.tables, 'bench_tc_miss');
    const plainPrepared = prepareLookup(ctx.db, ctx.tables, 'bench_plain_miss');
    try {
      const pipeline = ctx.redis.pipeline();
      for (let n = 0; n < 100; n++) {
        pipeline.set(floorKey(n), JSON.stringify(await lookup(ctx.db, ctx.tables, n)), 'EX', 600);
      }
      await pipeline.exec();
      const before = cacheCounts(tc.cache);
      const subjects: Labelled[] = [
        {
          name: 'tablecache.miss.builder',
          label: 'tablecache miss, builder',
          op: () => lookup(tc.db, ctx.tables, next()),
        },
        {
          name: 'tablecache.miss.prepared',
          label: 'tablecache miss, prepared',
          op: () => tcPrepared.execute(lookupParams(next())),
        },
        { name: 'uncached.builder', label: 'uncached Drizzle, builder', op: () => lookup(ctx.db, ctx.tables, next()) },
        {
          name: 'uncached.prepared',
          label: 'uncached Drizzle, prepared',
          op: () => plainPrepared.execute(lookupParams(next())),
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

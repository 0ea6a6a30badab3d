import { eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { redisStore } from '../../stores/redis.js';
import { cannedDrizzle } from '../canned-client.js';
import { cacheCounts, cachedClient } from '../context.js';
import { RedisDrizzleCache } from '../drizzle-redis-cache.js';
import { runCount } from '../harness.js';
import type { Labelled, Scenario } from '../scenario.js';
import { measureGroup } from '../scenario.js';
import { itemCode } from '../schema.js';

/**
 * Cache-aside hits against what a user would run instead: the uncached query (builder and
 * prepared), Drizzle's own cache on Redis, and the floor of any Redis cache (GET + JSON.parse of
 * the same rows). Every subject cycles through the same `hitKeys` distinct queries.
 */
export const reads: Scenario = {
  name: 'reads',
  title: 'Cache-aside hits (P1, P2)',
  async run(ctx, rec) {
    const { items } = ctx.tables;
    const keys = ctx.budget.hitKeys;
    const idOf = (i: number) => (i % keys) + 1;
    const policy = { items: { pattern: 'cache-aside', ttl: '30m' } } as const;
    const tc = cachedClient(ctx, 'reads', policy);
    // The same namespace over an auto-pipelining client: compared with the auto-pipelined floor (P2b).
    const tcPiped = cachedClient(ctx, 'reads', policy, redisStore(ctx.redisPiped));
    const dz = drizzle(ctx.pool, {
      schema: ctx.tables,
      cache: new RedisDrizzleCache(ctx.redis, `${ctx.keyPrefix}:dz:`),
    });
    const tcPrepared = tc.db
      .select()
      .from(items)
      .where(eq(items.code, sql.placeholder('code')))
      .prepare('bench_tc_hit');
    const pipedPrepared = tcPiped.db
      .select()
      .from(items)
      .where(eq(items.code, sql.placeholder('code')))
      .prepare('bench_tc_hit_piped');
    const plainPrepared = ctx.db
      .select()
      .from(items)
      .where(eq(items.code, sql.placeholder('code')))
      .prepare('bench_plain_hit');
    // Drizzle alone: the same query answered from memory by a stand-in driver (one fixed row).
    const canned = cannedDrizzle(ctx.pool, ctx.tables);
    const cannedPrepared = canned
      .select()
      .from(items)
      .where(eq(items.code, sql.placeholder('code')))
      .prepare('bench_canned');
    const floorKey = (id: number) => `${ctx.keyPrefix}:floor:${id}`;

    try {
      ctx.log(`  prefilling ${keys} queries (tablecache, Drizzle cache, floor keys)`);
      await runCount(
        (i) =>
          tc.db
            .select()
            .from(items)
            .where(eq(items.code, itemCode(idOf(i)))),
        0,
        keys,
        16,
      );
      await runCount(
        (i) =>
          tc.db
            .select()
            .from(items)
            .where(eq(items.id, idOf(i))),
        0,
        keys,
        16,
      );
      await runCount(
        (i) =>
          dz
            .select()
            .from(items)
            .where(eq(items.code, itemCode(idOf(i)))),
        0,
        keys,
        16,
      );
      const pipeline = ctx.redis.pipeline();
      for (let id = 1; id <= keys; id++) {
        const rows = await ctx.db
          .select()
          .from(items)
          .where(eq(items.code, itemCode(id)));
        pipeline.set(floorKey(id), JSON.stringify(rows), 'EX', 1800);
      }
      await pipeline.exec();
      await tc.cache.flush();

      const before = cacheCounts(tc.cache);
      const subjects: Labelled[] = [
        {
          name: 'tablecache.hit.builder',
          label: 'tablecache hit, builder',
          op: (i) =>
            tc.db
              .select()
              .from(items)
              .where(eq(items.code, itemCode(idOf(i)))),
        },
        {
          name: 'tablecache.hit.prepared',
          label: 'tablecache hit, prepared',
          op: (i) => tcPrepared.execute({ code: itemCode(idOf(i)) }),
        },
        {
          name: 'tablecache.hit.prepared.pipelined',
          label: 'tablecache hit, prepared, auto-pipelining client',
          op: (i) => pipedPrepared.execute({ code: itemCode(idOf(i)) }),
        },
        {
          name: 'tablecache.hit.pk-row',
          label: 'tablecache hit, builder by primary key (row entry)',
          op: (i) =>
            tc.db
              .select()
              .from(items)
              .where(eq(items.id, idOf(i))),
        },
        {
          name: 'drizzle-cache.hit.builder',
          label: 'Drizzle cache (Redis) hit, builder',
          op: (i) =>
            dz
              .select()
              .from(items)
              .where(eq(items.code, itemCode(idOf(i)))),
        },
        {
          name: 'uncached.builder',
          label: 'uncached Drizzle, builder',
          op: (i) =>
            ctx.db
              .select()
              .from(items)
              .where(eq(items.code, itemCode(idOf(i)))),
        },
        {
          name: 'uncached.prepared',
          label: 'uncached Drizzle, prepared',
          op: (i) => plainPrepared.execute({ code: itemCode(idOf(i)) }),
        },
        {
          name: 'floor.get-parse',
          label: 'floor: ioredis GET + JSON.parse',
          op: async (i) => JSON.parse((await ctx.redis.get(floorKey(idOf(i)))) as string),
        },
        {
          name: 'floor.get-parse.pipelined',
          label: 'floor: GET + JSON.parse, auto-pipelining',
          op: async (i) => JSON.parse((await ctx.redisPiped.get(floorKey(idOf(i)))) as string),
        },
        {
          name: 'floor.drizzle-no-io.builder',
          label: 'floor: Drizzle alone, builder (no I/O)',
          op: (i) =>
            canned
              .select()
              .from(items)
              .where(eq(items.code, itemCode(idOf(i)))),
        },
        {
          name: 'floor.drizzle-no-io.prepared',
          label: 'floor: Drizzle alone, prepared (no I/O)',
          op: (i) => cannedPrepared.execute({ code: itemCode(idOf(i)) }),
        },
      ];
      const g = await measureGroup(ctx, rec, subjects, [1, 64]);
      const after = cacheCounts(tc.cache);
      const reads = after.reads - before.reads;
      rec.fact('tablecache hit ratio while measuring', reads > 0 ? (after.hits - before.hits) / reads : 0);
      const piped = cacheCounts(tcPiped.cache);
      rec.fact(
        'tablecache (auto-pipelining) hit ratio while measuring',
        piped.reads > 0 ? piped.hits / piped.reads : 0,
      );

      const hit64 = g.get('tablecache.hit.builder', 64).perSecond;
      const dz64 = g.get('drizzle-cache.hit.builder', 64).perSecond;
      const plain64 = g.get('uncached.builder', 64).perSecond;
      rec.ratio('P1a', hit64 / dz64, '>=', 3, `${hit64} vs ${dz64} ops/s`);
      rec.ratio('P1b', hit64 / plain64, '>=', 4, `${hit64} vs ${plain64} ops/s`);
      const p50 = g.get('tablecache.hit.prepared', 1).p50Us ?? Number.NaN;
      const floorP50 = g.get('floor.get-parse', 1).p50Us ?? Number.NaN;
      rec.ratio('P2a', p50 / floorP50, '<=', 1.25, `p50 ${p50} vs ${floorP50} µs`);
      const prep64 = g.get('tablecache.hit.prepared.pipelined', 64).perSecond;
      const piped64 = g.get('floor.get-parse.pipelined', 64).perSecond;
      rec.ratio('P2b', prep64 / piped64, '>=', 0.8, `${prep64} vs ${piped64} ops/s`);
    } finally {
      await tc.cache.close();
      await tcPiped.cache.close();
    }
  },
};

import { Redis } from 'ioredis';
import { redisStore } from '../../stores/redis.js';
import { type CachedClient, cacheCounts, cachedClient } from '../context.js';
import { EntryKeys, recordingStore } from '../entries.js';
import { runCount } from '../harness.js';
import { lookup, lookupParams, prepareLookup } from '../queries.js';
import type { Labelled, Scenario } from '../scenario.js';
import { measureGroup } from '../scenario.js';
import { ITEM_COUNT } from '../schema.js';
import { deleteKeys } from '../setup.js';

const TTL_MS = 20 * 60_000;
const WRITE_CHUNK = 5_000;
/** Redis logical databases the levels live in, one each (the rest of the run uses the URL's). */
const FIRST_DB = 13;
const POLICY = { items: { pattern: 'cache-aside', ttl: TTL_MS / 1000 } } as const;

/**
 * Hit latency as the number of cached entries grows (1e3, 1e5, 1e6; --quick stops at 1e5).
 * Each size lives in a Redis logical database of its own, so the sizes are measured side by side,
 * interleaved like every other comparison, instead of one after another. 10,000 real entries are
 * filled through tablecache; every other entry is a byte copy of one of them under the key
 * tablecache computes for its own query (the key layout is checked against the real fills).
 */
export const scale: Scenario = {
  name: 'scale',
  title: 'Hit latency by entries cached (P7)',
  async run(ctx, rec) {
    const levels = [...ctx.budget.scaleLevels].sort((a, b) => a - b);
    const clients = levels.map((_, i) => new Redis(ctx.config.redisUrl, { db: FIRST_DB + i }));
    const caches: CachedClient[] = [];
    try {
      const recording = recordingStore(redisStore(clients[0] as Redis));
      caches.push(cachedClient(ctx, 'scale', POLICY, recording));
      for (const client of clients.slice(1)) caches.push(cachedClient(ctx, 'scale', POLICY, redisStore(client)));
      const sqlText = lookup(ctx.db, ctx.tables, 0).toSQL().sql;
      const forge = new EntryKeys(ctx.keyPrefix, 'scale', ctx.tables);
      const keyOf = (n: number) => {
        const p = lookupParams(n);
        return forge.queryEntry(sqlText, [p.code, p.neg]);
      };
      const first = caches[0] as CachedClient;
      const fill = prepareLookup(first.db, ctx.tables, 'bench_scale_fill');
      ctx.log(`  filling ${ITEM_COUNT} entries through tablecache`);
      await runCount((n) => fill.execute(lookupParams(n)), 0, ITEM_COUNT, 32);
      await first.cache.flush();
      const real = Array.from({ length: ITEM_COUNT }, (_, n) => keyOf(n));
      EntryKeys.verify(real, recording.filled);
      const entryBytes = (n: number) => {
        const v = recording.filled.get(real[n % ITEM_COUNT] as string) as Uint8Array;
        return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      };
      rec.fact('entry size (bytes)', entryBytes(0).length);

      for (const [i, level] of levels.entries()) {
        const client = clients[i] as Redis;
        const have = i === 0 ? ITEM_COUNT : 0;
        if (level < have) {
          for (let n = level; n < have; n += WRITE_CHUNK) await client.unlink(...real.slice(n, n + WRITE_CHUNK));
        }
        if (level > have) ctx.log(`  writing ${level - have} entries into database ${FIRST_DB + i}`);
        for (let start = have; start < level; start += WRITE_CHUNK) {
          const pipeline = client.pipeline();
          for (let n = start; n < Math.min(level, start + WRITE_CHUNK); n++) {
            pipeline.set(keyOf(n), entryBytes(n), 'PX', TTL_MS);
          }
          await pipeline.exec();
        }
        rec.fact(
          `keys in database ${FIRST_DB + i} (entries of the ${level.toExponential(0)} level)`,
          await client.dbsize(),
        );
      }
      const floorKey = (n: number) => `${ctx.keyPrefix}:scale-floor:${n % 100}`;
      const floor = ctx.redis.pipeline();
      for (let n = 0; n < 100; n++) {
        floor.set(floorKey(n), JSON.stringify(await lookup(ctx.db, ctx.tables, n)), 'EX', 1200);
      }
      await floor.exec();

      const subjects: Labelled[] = levels.map((level, i) => {
        const prepared = prepareLookup((caches[i] as CachedClient).db, ctx.tables, `bench_scale_${i}`);
        const random = mulberry32(level);
        return {
          name: `tablecache.hit.entries-${level}`,
          label: `tablecache hit, prepared, ${level.toExponential(0)} entries cached`,
          op: () => prepared.execute(lookupParams(Math.floor(random() * level))),
        };
      });
      subjects.push({
        name: 'floor.get-parse',
        label: 'floor: ioredis GET + JSON.parse',
        op: async (i) => JSON.parse((await ctx.redis.get(floorKey(i))) as string),
      });
      const before = caches.map((c) => cacheCounts(c.cache));
      const g = await measureGroup(ctx, rec, subjects, [1]);
      for (const [i, level] of levels.entries()) {
        const after = cacheCounts((caches[i] as CachedClient).cache);
        const reads = after.reads - (before[i]?.reads ?? 0);
        const ratio = reads > 0 ? (after.hits - (before[i]?.hits ?? 0)) / reads : 0;
        rec.fact(`hit ratio at ${level.toExponential(0)}`, ratio);
        if (ratio < 0.99) throw new Error(`only ${ratio} of the reads at ${level} entries were hits`);
      }
      const memory = /used_memory:(\d+)/.exec(await ctx.redis.info('memory'))?.[1];
      if (memory) rec.fact('Redis used_memory with every level filled (MiB)', Number(memory) / 2 ** 20);

      const p50 = (level: number) => g.get(`tablecache.hit.entries-${level}`, 1).p50Us ?? Number.NaN;
      const base = p50(levels[0] as number);
      let worst = 1;
      let worstLevel = levels[0] as number;
      for (const level of levels) {
        const r = p50(level) / base;
        if (Math.abs(r - 1) >= Math.abs(worst - 1)) {
          worst = r;
          worstLevel = level;
        }
      }
      const largest = levels[levels.length - 1] as number;
      const detail =
        `p50 ${levels.map((l) => `${l.toExponential(0)}: ${p50(l)} µs`).join(', ')}` +
        (largest < 1e6 ? ' (--quick stops at 1e5)' : '');
      rec.target(
        'P7',
        worst,
        `${worst.toFixed(2)}x at ${worstLevel.toExponential(0)}`,
        Math.abs(worst - 1) <= 0.2,
        detail,
      );
    } finally {
      for (const c of caches) await c.cache.close();
      for (const client of clients) {
        await deleteKeys(client, `${ctx.keyPrefix}:*`).catch(() => undefined);
        client.disconnect();
      }
    }
  },
};

/** A small seeded PRNG, so every run draws the same keys. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

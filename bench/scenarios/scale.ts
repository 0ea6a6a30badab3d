import { redisStore } from '../../stores/redis.js';
import { cacheCounts, cachedClient } from '../context.js';
import { EntryKeys, recordingStore } from '../entries.js';
import { runCount } from '../harness.js';
import { lookup, lookupParams, prepareLookup } from '../queries.js';
import type { Measurement } from '../results.js';
import type { Labelled, Scenario } from '../scenario.js';
import { measureGroup } from '../scenario.js';
import { ITEM_COUNT } from '../schema.js';

const TTL_MS = 20 * 60_000;
const WRITE_CHUNK = 5_000;

/**
 * Hit latency as the number of cached entries grows (1e3, 1e5, 1e6; --quick stops at 1e5).
 * 10,000 real entries are filled through tablecache; every further entry is a byte copy of one of
 * them under the key tablecache computes for its own query (the key layout is verified against
 * the 10,000 real fills first), written with Redis pipelines. At each size, hits on keys drawn
 * uniformly from all entries are interleaved with the GET floor, which exposes drift.
 */
export const scale: Scenario = {
  name: 'scale',
  title: 'Hit latency by entries cached (P7)',
  async run(ctx, rec) {
    const namespace = 'scale';
    const store = recordingStore(redisStore(ctx.redis));
    const tc = cachedClient(ctx, namespace, { items: { pattern: 'cache-aside', ttl: TTL_MS / 1000 } }, store);
    try {
      const prepared = prepareLookup(tc.db, ctx.tables, 'bench_scale');
      const sqlText = lookup(ctx.db, ctx.tables, 0).toSQL().sql;
      const forge = new EntryKeys(ctx.keyPrefix, namespace, ctx.tables);
      const keyOf = (n: number) => {
        const p = lookupParams(n);
        return forge.queryEntry(sqlText, [p.code, p.neg]);
      };
      ctx.log(`  filling ${ITEM_COUNT} entries through tablecache`);
      await runCount((n) => prepared.execute(lookupParams(n)), 0, ITEM_COUNT, 32);
      await tc.cache.flush();
      const real = Array.from({ length: ITEM_COUNT }, (_, n) => keyOf(n));
      EntryKeys.verify(real, store.filled);
      const entryBytes = (n: number) => {
        const v = store.filled.get(real[n % ITEM_COUNT] as string) as Uint8Array;
        return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      };
      rec.fact('entry size (bytes)', entryBytes(0).length);

      const floorKey = (n: number) => `${ctx.keyPrefix}:scale-floor:${n % 100}`;
      const floor = ctx.redis.pipeline();
      for (let n = 0; n < 100; n++)
        floor.set(floorKey(n), JSON.stringify(await lookup(ctx.db, ctx.tables, n)), 'EX', 1200);
      await floor.exec();

      const levels = [...ctx.budget.scaleLevels].sort((a, b) => a - b);
      let cached = ITEM_COUNT;
      const first = levels[0] as number;
      if (first < cached) {
        for (let n = first; n < cached; n += WRITE_CHUNK) await ctx.redis.unlink(...real.slice(n, n + WRITE_CHUNK));
        cached = first;
      }
      const byLevel = new Map<number, Measurement>();
      for (const level of levels) {
        if (level > cached) {
          ctx.log(`  writing entries ${cached} to ${level}`);
          for (let start = cached; start < level; start += WRITE_CHUNK) {
            const pipeline = ctx.redis.pipeline();
            for (let n = start; n < Math.min(level, start + WRITE_CHUNK); n++) {
              pipeline.set(keyOf(n), entryBytes(n), 'PX', TTL_MS);
            }
            await pipeline.exec();
          }
          cached = level;
        }
        const random = mulberry32(level);
        const before = cacheCounts(tc.cache);
        const subjects: Labelled[] = [
          {
            name: `tablecache.hit.entries-${level}`,
            label: `tablecache hit, prepared, ${level.toExponential(0)} entries cached`,
            op: () => prepared.execute(lookupParams(Math.floor(random() * level))),
          },
          {
            name: `floor.get-parse.entries-${level}`,
            label: `floor: GET + JSON.parse, ${level.toExponential(0)} entries cached`,
            op: async (i) => JSON.parse((await ctx.redis.get(floorKey(i))) as string),
          },
        ];
        const g = await measureGroup(ctx, rec, subjects, [1]);
        const after = cacheCounts(tc.cache);
        const reads = after.reads - before.reads;
        rec.fact(`hit ratio at ${level.toExponential(0)}`, reads > 0 ? (after.hits - before.hits) / reads : 0);
        const memory = /used_memory:(\d+)/.exec(await ctx.redis.info('memory'))?.[1];
        if (memory) rec.fact(`Redis used_memory at ${level.toExponential(0)} (MiB)`, Number(memory) / 2 ** 20);
        byLevel.set(level, g.get(subjects[0]?.name as string, 1));
        const floorP50 = g.get(subjects[1]?.name as string, 1).p50Us ?? Number.NaN;
        rec.fact(
          `hit p50 / floor p50 at ${level.toExponential(0)}`,
          (byLevel.get(level)?.p50Us ?? Number.NaN) / floorP50,
        );
      }
      const base = byLevel.get(first)?.p50Us ?? Number.NaN;
      let worst = 1;
      let worstLevel = first;
      for (const [level, m] of byLevel) {
        const r = (m.p50Us ?? Number.NaN) / base;
        if (Math.abs(r - 1) >= Math.abs(worst - 1)) {
          worst = r;
          worstLevel = level;
        }
      }
      const largest = levels[levels.length - 1] as number;
      const detail =
        `p50 ${[...byLevel].map(([l, m]) => `${l.toExponential(0)}: ${m.p50Us} µs`).join(', ')}` +
        (largest < 1e6 ? ' (--quick stops at 1e5)' : '');
      rec.target(
        'P7',
        worst,
        `${worst.toFixed(2)}x at ${worstLevel.toExponential(0)}`,
        Math.abs(worst - 1) <= 0.2,
        detail,
      );
    } finally {
      await tc.cache.close();
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

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { memoryStore } from '../../stores/memory.js';
import { cachedClient } from '../context.js';
import { EntryKeys, recordingStore } from '../entries.js';
import { runCount } from '../harness.js';
import { lookup, lookupParams, prepareLookup } from '../queries.js';
import type { Labelled, Scenario } from '../scenario.js';
import { measureGroup } from '../scenario.js';

const MAX_BYTES = 8 * 2 ** 20;
const REAL_FILLS = 2_000;
const HOT = 1_000;

/**
 * The in-process memory store under more entries than its byte budget holds: `memoryEntries`
 * real entries (2,000 filled through tablecache, the rest byte copies under their own query keys)
 * go into an 8 MiB store; then the entries it kept must add up to at most 8 MiB, and the heap
 * must have grown by about that much, not by everything pushed. Also compares a hit from the
 * memory store (tablecache's own overhead, no network) with a hit from Redis.
 */
export const memory: Scenario = {
  name: 'memory',
  title: 'Memory store within its byte budget',
  async run(ctx, rec) {
    const gc = exposeGc();
    const entries = ctx.budget.memoryEntries;
    const inner = memoryStore({ maxEntries: 10_000_000, maxBytes: MAX_BYTES });
    const store = recordingStore(inner);
    const policy = { items: { pattern: 'cache-aside', ttl: '30m' } } as const;
    const mem = cachedClient(ctx, 'memory', policy, store);
    const red = cachedClient(ctx, 'memory-redis', policy);
    try {
      const sqlText = lookup(ctx.db, ctx.tables, 0).toSQL().sql;
      const forge = new EntryKeys(ctx.keyPrefix, 'memory', ctx.tables);
      const keyOf = (n: number) => {
        const p = lookupParams(n);
        return forge.queryEntry(sqlText, [p.code, p.neg]);
      };
      const memPrepared = prepareLookup(mem.db, ctx.tables, 'bench_memory');
      const redPrepared = prepareLookup(red.db, ctx.tables, 'bench_memory_redis');

      await runCount((n) => memPrepared.execute(lookupParams(n)), 0, REAL_FILLS, 16);
      await mem.cache.flush();
      const real = Array.from({ length: REAL_FILLS }, (_, n) => keyOf(n));
      EntryKeys.verify(real, store.filled);
      let pushed = 0;
      for (const v of store.filled.values()) pushed += v.byteLength;
      const values = real.map((k) => store.filled.get(k) as Uint8Array);
      store.filled.clear();
      for (let start = REAL_FILLS; start < entries; start += 1000) {
        const batch = [];
        for (let n = start; n < Math.min(entries, start + 1000); n++) {
          const value = values[n % REAL_FILLS] as Uint8Array;
          const key = keyOf(n);
          pushed += Buffer.byteLength(key) + value.byteLength;
          batch.push({ key, value, ttlMs: 30 * 60_000 });
        }
        await inner.set(batch);
      }
      // The most recent entries are the ones an LRU keeps: hits on them, memory against Redis.
      await runCount((n) => redPrepared.execute(lookupParams(n)), entries - HOT, HOT, 16);
      await red.cache.flush();
      const hot = (i: number) => lookupParams(entries - HOT + (i % HOT));
      const subjects: Labelled[] = [
        {
          name: 'tablecache.hit.memory-store',
          label: 'tablecache hit, prepared, memory store',
          op: (i) => memPrepared.execute(hot(i)),
        },
        {
          name: 'tablecache.hit.redis-store',
          label: 'tablecache hit, prepared, Redis store',
          op: (i) => redPrepared.execute(hot(i)),
        },
      ];
      await measureGroup(ctx, rec, subjects, [1, 64]);
      const memStats = Object.values(mem.cache.stats().tables)[0];
      if (memStats) rec.fact('memory store hit ratio (fills included)', memStats.hitRatio);

      let kept = 0;
      let keptBytes = 0;
      for (let start = 0; start < entries; start += 1000) {
        const keys = Array.from({ length: Math.min(1000, entries - start) }, (_, i) => keyOf(start + i));
        const got = await inner.getMany(keys);
        got.forEach((v, i) => {
          if (v === null) return;
          kept++;
          keptBytes += Buffer.byteLength(keys[i] as string) + v.byteLength;
        });
      }
      // What the store holds: memory in use now, minus what is left once the store drops everything.
      gc();
      const full = process.memoryUsage();
      await inner.close();
      gc();
      const empty = process.memoryUsage();
      const heapGrowth = full.heapUsed + full.arrayBuffers - empty.heapUsed - empty.arrayBuffers;
      rec.fact('budget (MiB)', MAX_BYTES / 2 ** 20);
      rec.fact('pushed (MiB)', pushed / 2 ** 20);
      rec.fact('entries pushed', entries);
      rec.fact('entries kept', kept);
      rec.fact('kept key + value bytes (MiB)', keptBytes / 2 ** 20);
      rec.fact('kept bytes within budget', keptBytes <= MAX_BYTES);
      rec.fact('heap + array buffers held by the store (MiB)', heapGrowth / 2 ** 20);
      rec.fact('RSS released when the store is emptied (MiB)', (full.rss - empty.rss) / 2 ** 20);
      rec.note(
        `the store holds ${(heapGrowth / MAX_BYTES).toFixed(2)}x its byte budget in heap: the budget counts key and value ` +
          'bytes; per-entry bookkeeping (Map slot, entry object, Uint8Array header) comes on top.',
      );
    } finally {
      await mem.cache.close();
      await red.cache.close();
    }
  },
};

/** `global.gc`, exposed at run time (the bench runs under plain tsx, without --expose-gc). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  return () => {
    gc?.();
    gc?.();
  };
}

import { parseArgs } from 'node:util';
import { and, eq, ne, sql } from 'drizzle-orm';
import type { CacheStore } from '../src/index.js';
import { memoryStore } from '../stores/memory.js';
import { redisStore } from '../stores/redis.js';
import { parseConfig } from './config.js';
import { cachedClient } from './context.js';
import { profile, saveProfile, summarize } from './cpu-profile.js';
import { runCount, runSlice } from './harness.js';
import { itemCode } from './schema.js';
import { openBench } from './setup.js';

/**
 * Profiles one tablecache hot path under load, in-process with the V8 sampler, and prints where
 * the time goes by area (our folders, each library, native/GC) and by function.
 *
 *   npx tsx bench/profile.ts --path hit-prepared --concurrency 64 --seconds 8 --out /tmp/hit.cpuprofile
 *
 * Paths: hit-builder, hit-prepared, miss-builder, miss-prepared. `--store`: redis (a default ioredis
 * client), redis-piped (auto-pipelining) or memory.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      path: { type: 'string', default: 'hit-prepared' },
      concurrency: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '8' },
      out: { type: 'string' },
      top: { type: 'string', default: '30' },
      store: { type: 'string', default: 'redis' },
    },
  });
  const config = parseConfig(['--quick'], process.env);
  if (config === 'help') return;
  const log = (m: string) => console.error(m);
  const { ctx, close } = await openBench(config, log);
  try {
    const { items } = ctx.tables;
    const stores: Record<string, () => CacheStore> = {
      redis: () => redisStore(ctx.redis),
      'redis-piped': () => redisStore(ctx.redisPiped),
      memory: () => memoryStore({ maxEntries: 100_000 }),
    };
    const makeStore = stores[values.store];
    if (!makeStore) throw new Error(`unknown --store ${values.store}; known: ${Object.keys(stores).join(', ')}`);
    const store = makeStore();
    const tc = cachedClient(ctx, 'profile', { items: { pattern: 'cache-aside', ttl: '30m' } }, store);
    const keys = 1000;
    const codeOf = (i: number) => itemCode((i % keys) + 1);
    const hitPrepared = tc.db
      .select()
      .from(items)
      .where(eq(items.code, sql.placeholder('code')))
      .prepare('profile_hit');
    const missPrepared = tc.db
      .select()
      .from(items)
      .where(and(eq(items.code, sql.placeholder('code')), ne(items.id, sql.placeholder('neg'))))
      .prepare('profile_miss');
    let fresh = 0;
    const ops: Record<string, (i: number) => Promise<unknown>> = {
      'hit-builder': (i) =>
        tc.db
          .select()
          .from(items)
          .where(eq(items.code, codeOf(i))),
      'hit-prepared': (i) => hitPrepared.execute({ code: codeOf(i) }),
      'miss-builder': () => {
        const n = ++fresh;
        return tc.db
          .select()
          .from(items)
          .where(and(eq(items.code, codeOf(n)), ne(items.id, -n)));
      },
      'miss-prepared': () => {
        const n = ++fresh;
        return missPrepared.execute({ code: codeOf(n), neg: -n });
      },
    };
    const op = ops[values.path];
    if (!op) throw new Error(`unknown --path ${values.path}; known: ${Object.keys(ops).join(', ')}`);
    const concurrency = Number(values.concurrency);
    await runCount(
      (i) =>
        tc.db
          .select()
          .from(items)
          .where(eq(items.code, codeOf(i))),
      0,
      keys,
      16,
    );
    await tc.cache.flush();
    await runSlice(op, 0, concurrency, 1000, undefined);
    let done = { ops: 0, seconds: 1 };
    const p = await profile(async () => {
      done = await runSlice(op, 0, concurrency, Number(values.seconds) * 1000, undefined);
    });
    await tc.cache.close();
    if (values.out) await saveProfile(values.out, p);
    const { functions, areas } = summarize(p);
    const top = Number(values.top);
    console.log(
      `## ${values.path}, ${values.store} store, c=${concurrency}: ${Math.round(done.ops / done.seconds)} ops/s while profiling`,
    );
    console.log('\n### Self time by area\n\n| Area | Self % |\n| --- | ---: |');
    for (const a of areas) if (a.selfPct >= 0.1) console.log(`| ${a.area} | ${a.selfPct} |`);
    console.log(
      '\n### Top functions by self time\n\n| Function | Where | Self % | Total % |\n| --- | --- | ---: | ---: |',
    );
    for (const f of [...functions].sort((a, b) => b.selfPct - a.selfPct).slice(0, top)) {
      console.log(`| ${f.name} | ${f.where} | ${f.selfPct} | ${f.totalPct} |`);
    }
    console.log(
      '\n### tablecache functions by inclusive time\n\n| Function | Where | Self % | Total % |\n| --- | --- | ---: | ---: |',
    );
    const ours = functions.filter((f) => /^(src|adapters|stores)\//.test(f.where));
    for (const f of ours.sort((a, b) => b.totalPct - a.totalPct).slice(0, top)) {
      console.log(`| ${f.name} | ${f.where} | ${f.selfPct} | ${f.totalPct} |`);
    }
  } finally {
    await close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});

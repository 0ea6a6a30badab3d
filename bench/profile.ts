import { parseArgs } from 'node:util';
import { eq, sql } from 'drizzle-orm';
import type { CacheStore } from '../src/index.js';
import { memoryStore } from '../stores/memory.js';
import { redisStore } from '../stores/redis.js';
import { parseConfig } from './config.js';
import { cachedClient } from './context.js';
import { type CpuProfile, profile, saveProfile, summarize } from './cpu-profile.js';
import { runCount, runSlice } from './harness.js';
import { lookupParams, prepareLookup } from './queries.js';
import { itemCode } from './schema.js';
import { openBench } from './setup.js';
import { eventRow } from './write-back-support.js';

const USAGE = `usage: npx tsx bench/profile.ts [--path P] [--store S] [--concurrency N] [--seconds N] [--out file] [--top N]
  paths: hit-builder, hit-prepared (default), miss-builder, miss-prepared,
         wb-ack (write-back inserts), wb-flush (one flush of --rows queued inserts)
  stores: redis (default ioredis client), redis-piped (auto-pipelining), memory`;

/**
 * Profiles one tablecache hot path under load with the V8 sampler, in-process so only the measured
 * work is sampled, and prints where the time goes: by area (our folders, each library, native code
 * and GC) and by function. `--out` saves the .cpuprofile for DevTools or speedscope.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      path: { type: 'string', default: 'hit-prepared' },
      concurrency: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '8' },
      rows: { type: 'string', default: '9000' },
      out: { type: 'string' },
      top: { type: 'string', default: '30' },
      store: { type: 'string', default: 'redis' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const config = parseConfig(['--quick'], process.env);
  if (config === 'help') return;
  const { ctx, close } = await openBench(config, (m) => console.error(m));
  try {
    const { items, events } = ctx.tables;
    const stores: Record<string, () => CacheStore> = {
      redis: () => redisStore(ctx.redis),
      'redis-piped': () => redisStore(ctx.redisPiped),
      memory: () => memoryStore({ maxEntries: 100_000 }),
    };
    const makeStore = stores[values.store];
    if (!makeStore) throw new Error(`unknown --store ${values.store}\n${USAGE}`);
    const writeBack = values.path.startsWith('wb-');
    const tc = cachedClient(
      ctx,
      'profile',
      writeBack
        ? { events: { pattern: 'write-back', flush: { every: '1h', batch: 10_000, maxPending: 1_000_000 } } }
        : { items: { pattern: 'cache-aside', ttl: '30m' } },
      makeStore(),
    );
    const codeOf = (i: number) => itemCode((i % 1000) + 1);
    const hitPrepared = tc.db
      .select()
      .from(items)
      .where(eq(items.code, sql.placeholder('code')))
      .prepare('profile_hit');
    const missPrepared = prepareLookup(tc.db, ctx.tables, 'profile_miss');
    let fresh = 0;
    let nextEvent = 0;
    const ops: Record<string, (i: number) => Promise<unknown>> = {
      'hit-builder': (i) =>
        tc.db
          .select()
          .from(items)
          .where(eq(items.code, codeOf(i))),
      'hit-prepared': (i) => hitPrepared.execute({ code: codeOf(i) }),
      'miss-builder': () => {
        const p = lookupParams(++fresh);
        return tc.db.select().from(items).where(eq(items.code, p.code));
      },
      'miss-prepared': () => missPrepared.execute(lookupParams(++fresh)),
      'wb-ack': () => tc.db.insert(events).values(eventRow(++nextEvent)),
    };
    const concurrency = Number(values.concurrency);
    let p: CpuProfile;
    let rate: string;
    if (values.path === 'wb-flush') {
      const rows = Number(values.rows);
      await runCount(() => tc.db.insert(events).values(eventRow(++nextEvent)), 0, rows, 64);
      const t0 = performance.now();
      p = await profile(() => tc.cache.flush());
      rate = `${Math.round(rows / ((performance.now() - t0) / 1000))} rows/s flushed while profiling`;
    } else {
      const op = ops[values.path];
      if (!op) throw new Error(`unknown --path ${values.path}\n${USAGE}`);
      if (values.path.startsWith('hit-')) {
        await runCount(
          (i) =>
            tc.db
              .select()
              .from(items)
              .where(eq(items.code, codeOf(i))),
          0,
          1000,
          16,
        );
        await tc.cache.flush();
      }
      await runSlice(op, 0, concurrency, 1000, undefined);
      let done = { ops: 0, seconds: 1 };
      p = await profile(async () => {
        done = await runSlice(op, 0, concurrency, Number(values.seconds) * 1000, undefined);
      });
      rate = `${Math.round(done.ops / done.seconds)} ops/s while profiling`;
    }
    await tc.cache.close();
    if (values.out) await saveProfile(values.out, p);
    print(p, `${values.path}, ${values.store} store, c=${concurrency}: ${rate}`, Number(values.top));
  } finally {
    await close();
  }
}

function print(p: CpuProfile, title: string, top: number): void {
  const { functions, areas } = summarize(p);
  console.log(`## ${title}`);
  console.log('\n### Self time by area\n\n| Area | Self % |\n| --- | ---: |');
  for (const a of areas) if (a.selfPct >= 0.1) console.log(`| ${a.area} | ${a.selfPct} |`);
  const row = (f: (typeof functions)[number]) => `| ${f.name} | ${f.where} | ${f.selfPct} | ${f.totalPct} |`;
  console.log(
    '\n### Top functions by self time\n\n| Function | Where | Self % | Total % |\n| --- | --- | ---: | ---: |',
  );
  for (const f of [...functions].sort((a, b) => b.selfPct - a.selfPct).slice(0, top)) console.log(row(f));
  console.log('\n### tablecache functions by inclusive time\n\n| Function | Where | Self % | Total % |');
  console.log('| --- | --- | ---: | ---: |');
  const ours = functions.filter((f) => /^(src|adapters|stores)\//.test(f.where));
  for (const f of ours.sort((a, b) => b.totalPct - a.totalPct).slice(0, top)) console.log(row(f));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});

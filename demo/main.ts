/**
 * `npm run demo`: a small shop on tablecache. Runs on PGlite and the memory store out of the box,
 * or on PostgreSQL and Redis with DATABASE_URL / REDIS_URL; shows per-table figures live.
 */
import { parseArgs } from 'node:util';
import { withCache } from '../adapters/drizzle/index.js';
import { createCache, type Pattern, type TableCache } from '../src/index.js';
import { type Backend, type DemoDb, openBackend } from './backend.js';
import { startOtel } from './otel.js';
import { demoPolicy, WANTED, writeBackWorks, writeThroughWorks } from './policy.js';
import { buildReport, type DemoReport, LiveView, plainLine, progressLine, summaryLines, tableLines } from './report.js';
import type { TableName } from './schema.js';
import * as schema from './schema.js';
import { Recorder, runWorkload } from './workload.js';

const USAGE = `Usage: npm run demo -- [--duration 20s] [--concurrency N] [--json]

A small shop (users, products, inventory, page_views, payments) on tablecache, with a live
per-table view of hits, misses, latency with and without the cache, and write-back lag.

  --duration <time>   How long the workload runs: 20s, 1m, 500ms (default: 20s)
  --concurrency <n>   Requests in flight (default: 1 on PGlite, 8 on PostgreSQL)
  --json              Print the final figures as JSON on stdout (progress goes to stderr)
  -h, --help          Show this help

Environment: DATABASE_URL (PostgreSQL; default: embedded PGlite), REDIS_URL (default: in-process
memory store), DEMO_PG_SCHEMA (PostgreSQL schema for the demo's tables, default tablecache_demo),
OTEL_EXPORTER_OTLP_ENDPOINT (export spans and metrics over OTLP/HTTP).`;

interface Args {
  durationMs: number;
  concurrency: number | undefined;
  json: boolean;
}

function parse(argv: string[]): Args | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '20s' },
      concurrency: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(values.duration.trim());
  if (!match) throw new Error(`invalid --duration "${values.duration}": use e.g. 20s, 1m or 500ms`);
  const unit = { ms: 1, s: 1000, m: 60_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm'];
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256)) {
    throw new Error(`invalid --concurrency "${values.concurrency}": a whole number from 1 to 256`);
  }
  return { durationMs: Number(match[1]) * unit, concurrency, json: values.json };
}

/** A cache on a fresh store, attached to the plain client. */
async function attach(backend: Backend, namespace: string, patterns: Record<TableName, Pattern>) {
  const store = backend.makeStore();
  let cache: TableCache | undefined;
  try {
    cache = createCache({ store, policy: demoPolicy(namespace, patterns) });
    const db: DemoDb = withCache(backend.db, cache, { schema });
    return { cache, db };
  } catch (error) {
    await (cache ? cache.close() : store.close());
    throw error;
  }
}

/**
 * Creates the cache with the shop's patterns, checks that this build really provides write-through
 * and write-back, and falls back to cache-aside (with a note) for what it does not.
 */
async function setUp(backend: Backend, namespace: string, notes: string[]) {
  const patterns = { ...WANTED };
  let attached: { cache: TableCache; db: DemoDb };
  try {
    attached = await attach(backend, namespace, patterns);
  } catch (error) {
    notes.push(`the shop's policy was refused (${(error as Error).message}); every cached table runs as cache-aside`);
    for (const t of schema.TABLES) if (patterns[t] !== 'none') patterns[t] = 'cache-aside';
    return { ...(await attach(backend, namespace, patterns)), patterns };
  }
  // Entries left by an earlier run on a shared Redis describe data that has since been re-seeded.
  await attached.cache.invalidateAll();
  const probes: [TableName[], Pattern, (db: DemoDb, cache: TableCache) => Promise<boolean>][] = [
    [['products', 'inventory'], 'write-through', writeThroughWorks],
    [['page_views'], 'write-back', writeBackWorks],
  ];
  let changed = false;
  for (const [tables, pattern, works] of probes) {
    let why = 'it behaves as cache-aside';
    const ok = await works(attached.db, attached.cache).catch((error: unknown) => {
      why = `it failed: ${error instanceof Error ? error.message : String(error)}`;
      return false;
    });
    if (ok) continue;
    for (const t of tables) patterns[t] = 'cache-aside';
    changed = true;
    notes.push(`${pattern} is not available in this build (${why}): ${tables.join(' and ')} run as cache-aside`);
  }
  if (!changed) return { ...attached, patterns };
  await attached.cache.close();
  return { ...(await attach(backend, namespace, patterns)), patterns };
}

async function main(): Promise<number> {
  let args: Args | undefined;
  try {
    args = parse(process.argv.slice(2));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  if (!args) {
    console.log(USAGE);
    return 0;
  }
  const out = args.json ? process.stderr : process.stdout;
  const stopOtel = await startOtel('tablecache-demo');
  const pgSchema = process.env.DEMO_PG_SCHEMA || 'tablecache_demo';
  out.write('Setting up the shop');
  const backend = await openBackend(pgSchema);
  const concurrency = args.concurrency ?? backend.concurrency;
  const notes: string[] = [];
  if (stopOtel) notes.push(`exporting spans and metrics to ${process.env.OTEL_EXPORTER_OTLP_ENDPOINT}`);
  const { cache, db, patterns } = await setUp(backend, `demo_${pgSchema}`, notes);
  out.write(` on ${backend.database} with the ${backend.store} store.\n\n`);

  const recorder = new Recorder();
  const baseline = cache.stats();
  const started = performance.now();
  const settings = {
    database: backend.database,
    store: backend.store,
    concurrency,
    durationMs: args.durationMs,
    notes,
  };
  const snapshot = (): DemoReport =>
    buildReport({
      settings,
      patterns,
      requested: WANTED,
      recorder,
      stats: cache.stats(),
      baseline,
      elapsedMs: performance.now() - started,
    });
  const live = out.isTTY ? new LiveView(out) : undefined;
  const render = () => {
    const report = snapshot();
    if (live) live.draw([progressLine(report), '', ...tableLines(report)]);
    else out.write(`${plainLine(report)}\n`);
  };
  const timer = setInterval(render, live ? 250 : 1000);
  try {
    await runWorkload({ db, raw: backend.db, recorder, durationMs: args.durationMs, concurrency });
  } finally {
    clearInterval(timer);
  }
  await cache.flush(); // lands pending write-back writes before the final figures
  const report = snapshot();
  if (live) live.draw([progressLine(report), '', ...tableLines(report)]);
  else out.write(`\n${tableLines(report).join('\n')}\n`);
  out.write(`${summaryLines(report).join('\n')}\n`);
  if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);

  await cache.close();
  await backend.close();
  await stopOtel?.();
  return report.errorCount > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  },
);

// Spans of tablecache nested with the REAL pg and ioredis instrumentations. The instrumentations
// patch modules process-wide, so this file keeps them to itself: they are registered before pg and
// ioredis are first loaded (createRequire), and everything that imports those modules (Drizzle's
// node-postgres driver, our Redis store, the test helpers) is imported dynamically afterwards.
import { createRequire } from 'node:module';
import { context, type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { eq } from 'drizzle-orm';
import type { Redis as RedisClient } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCache, definePolicy, type TableCache } from '../../src/index.js';
import { Telemetry } from '../../src/telemetry.js';
import * as schema from '../fixtures/shop-schema.js';

class TestMetricReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
const reader = new TestMetricReader();
const meterProvider = new MeterProvider({ readers: [reader] });
const ioredisInstrumentation = new IORedisInstrumentation();
const instrumentations = [new PgInstrumentation(), ioredisInstrumentation];
registerInstrumentations({ tracerProvider, meterProvider, instrumentations });

const require = createRequire(import.meta.url);
require('pg');
const { Redis } = require('ioredis') as typeof import('ioredis');
const { drizzle } = await import('drizzle-orm/node-postgres');
const { withCache } = await import('../../adapters/drizzle/index.js');
const { redisStore } = await import('../../stores/redis.js');
const { isolatedDatabase } = await import('../support/pg.js');
const { redisUrl } = await import('../support/redis.js');

const { users, products } = schema;
const SECRET = 'ada-secret@example.com';
const tracer = tracerProvider.getTracer('test-app');

type Db = ReturnType<typeof drizzle<typeof schema>>;
let database: Awaited<ReturnType<typeof isolatedDatabase>>;
let redis: RedisClient;
const open: TableCache[] = [];

function instance(options: { recordKeys?: boolean; recordErrorMessages?: boolean } = {}): {
  cache: TableCache;
  db: Db;
} {
  const cache = createCache({
    store: redisStore(redis),
    policy: definePolicy<typeof schema>({
      namespace: `spans-${Math.random().toString(36).slice(2)}`,
      version: 1,
      defaults: { pattern: 'none' },
      tables: { users: { pattern: 'cache-aside' }, products: { pattern: 'cache-aside' } },
    }),
    tracerProvider,
    meterProvider,
    recordKeys: options.recordKeys ?? false,
    recordErrorMessages: options.recordErrorMessages ?? false,
  });
  open.push(cache);
  return { cache, db: withCache(drizzle(database.pool(2), { schema }), cache) };
}

/** Runs `fn` under an application span, like an HTTP server span, and returns that span's id. */
async function request(name: string, fn: () => Promise<unknown>): Promise<string> {
  return tracer.startActiveSpan(name, async (span: Span) => {
    try {
      await fn();
    } catch {
      // The tests inspect the spans of failing requests too.
    } finally {
      span.end();
    }
    return span.spanContext().spanId;
  });
}

const finished = (): ReadableSpan[] => exporter.getFinishedSpans();
const byId = (spanId: string): ReadableSpan => {
  const span = finished().find((s) => s.spanContext().spanId === spanId);
  if (!span) throw new Error(`no finished span ${spanId}`);
  return span;
};
const childrenOf = (parent: ReadableSpan): ReadableSpan[] =>
  finished()
    .filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId)
    .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
const ours = (): ReadableSpan[] => finished().filter((s) => s.instrumentationScope.name === 'tablecache');
const oneOurs = (name: string, parentSpanId: string): ReadableSpan => {
  const matches = ours().filter((s) => s.name === name && s.parentSpanContext?.spanId === parentSpanId);
  expect(matches).toHaveLength(1);
  return matches[0] as ReadableSpan;
};
const isRedis = (s: ReadableSpan) => s.attributes['db.system.name'] === 'redis';
const isPgQuery = (s: ReadableSpan) => s.name.startsWith('pg.query:');
const isScript = (s: ReadableSpan) => isRedis(s) && (s.name === 'evalsha' || s.name === 'eval');

beforeAll(async () => {
  database = await isolatedDatabase(schema.SHOP_DDL);
  redis = new Redis(redisUrl(), { maxRetriesPerRequest: 1 });
  await redis.ping();
  await database.run("insert into users (name, email) values ('ada', 'ada-secret@example.com'), ('bob', 'bob@x')");
  await database.run("insert into products values (1, 'pen', '1.50', 10)");
});
afterAll(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await database.drop();
  await redis.quit();
  for (const i of instrumentations) i.disable();
  await tracerProvider.shutdown();
  contextManager.disable();
});
beforeEach(() => exporter.reset());

describe('read spans nest around the pg and ioredis spans', () => {
  it('a miss shows the Redis read, the PostgreSQL query and the fill under tablecache.get; a hit only the read', async () => {
    const { db, cache } = instance();
    const read = () => db.select().from(users).where(eq(users.email, SECRET));

    const missRequest = await request('GET /users (miss)', read);
    await cache.flush(); // the fill runs in the background, still as a child of the get span
    const miss = oneOurs('tablecache.get users', missRequest);
    expect(miss.kind).toBe(SpanKind.INTERNAL);
    expect(miss.status.code).toBe(SpanStatusCode.UNSET);
    expect(miss.attributes).toMatchObject({
      'db.collection.name': 'users',
      'db.operation.name': 'SELECT',
      'db.query.summary': 'SELECT users',
      'tablecache.operation': 'get',
      'tablecache.pattern': 'cache_aside',
      'tablecache.result': 'miss',
    });
    expect(miss.attributes['db.system.name']).toBeUndefined();
    const missChildren = childrenOf(miss);
    for (const child of missChildren) expect(child.kind).toBe(SpanKind.CLIENT);
    const first = missChildren[0] as ReadableSpan;
    expect(first.name).toBe('mget');
    expect(isRedis(first)).toBe(true);
    const query = missChildren.filter(isPgQuery);
    expect(query).toHaveLength(1);
    expect(query[0]?.attributes['db.system.name']).toBe('postgresql');
    // The fill (a Lua script: EVALSHA, or EVAL after a script-cache flush) comes after the query.
    const fill = missChildren.filter(isScript);
    expect(fill.length).toBeGreaterThanOrEqual(1);
    expect(missChildren.indexOf(fill[0] as ReadableSpan)).toBeGreaterThan(
      missChildren.indexOf(query[0] as ReadableSpan),
    );
    expect(missChildren.every((s) => isRedis(s) || s.name.startsWith('pg'))).toBe(true);

    exporter.reset();
    const hitRequest = await request('GET /users (hit)', read);
    await cache.flush();
    const hit = oneOurs('tablecache.get users', hitRequest);
    expect(hit.attributes).toMatchObject({ 'tablecache.result': 'hit', 'tablecache.pattern': 'cache_aside' });
    expect(childrenOf(hit).map((s) => s.name)).toEqual(['mget']);
    expect(finished().filter(isPgQuery)).toHaveLength(0);
  });

  it('puts no parameter values and no keys on our spans unless recordKeys is on', async () => {
    const quiet = instance();
    await request('quiet', () => quiet.db.select().from(users).where(eq(users.email, SECRET)));
    await quiet.cache.flush();
    const [quietSpan] = ours();
    expect(quietSpan).toBeDefined();
    expect(quietSpan?.attributes['tablecache.key']).toBeUndefined();
    const namespaceOfQuiet = quiet.cache.policy.namespace;
    for (const span of ours()) {
      const text = JSON.stringify([span.name, span.attributes, span.events, span.status]);
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(namespaceOfQuiet); // every key carries the namespace
    }
    // The pg instrumentation records the parameterized SQL only.
    const pgText = String(finished().find(isPgQuery)?.attributes['db.query.text']);
    expect(pgText).toContain('$1');
    expect(pgText).not.toContain(SECRET);

    exporter.reset();
    const debug = instance({ recordKeys: true });
    await request('debug', () => debug.db.select().from(users).where(eq(users.email, SECRET)));
    await debug.cache.flush();
    const debugSpan = ours().find((s) => s.name === 'tablecache.get users');
    const key = debugSpan?.attributes['tablecache.key'];
    expect(typeof key).toBe('string');
    expect(key).toContain(debug.cache.policy.namespace);
    expect(String(key)).not.toContain(SECRET); // keys are hashes of the parameters
    // It is the real key: the fill stored the entry under it.
    expect(await redis.exists(String(key))).toBe(1);
  });
});

describe('cached values in the ioredis spans', () => {
  it('instrumentation-ioredis puts script arguments (the cached rows) in db.query.text; the documented serializer drops them', async () => {
    const leaky = instance();
    const leakyRequest = await request('GET /users (default ioredis config)', () =>
      leaky.db.select().from(users).where(eq(users.email, SECRET)),
    );
    await leaky.cache.flush();
    const leakyFill = childrenOf(oneOurs('tablecache.get users', leakyRequest)).filter(isScript);
    // EVALSHA serializes every argument: the encoded result, which holds the row's email.
    expect(leakyFill.some((span) => String(span.attributes['db.query.text']).includes(SECRET))).toBe(true);

    exporter.reset();
    ioredisInstrumentation.setConfig({ dbStatementSerializer: (command) => command }); // docs/observability.md
    try {
      const safe = instance();
      const safeRequest = await request('GET /users (recommended ioredis config)', () =>
        safe.db.select().from(users).where(eq(users.email, SECRET)),
      );
      await safe.cache.flush();
      const children = childrenOf(oneOurs('tablecache.get users', safeRequest));
      expect(children.filter(isScript).map((span) => span.attributes['db.query.text'])).toContain('evalsha');
      // No span at all, ours or the instrumentations', carries the parameter or the row.
      for (const span of finished()) expect(JSON.stringify(span.attributes)).not.toContain(SECRET);
    } finally {
      ioredisInstrumentation.setConfig({});
    }
  });
});

describe('write and failure spans', () => {
  it('a write is followed by a tablecache.invalidate span whose bump is its ioredis child', async () => {
    const { db, cache } = instance();
    await db.select().from(users); // some entry to invalidate
    await cache.flush();
    exporter.reset();
    const writeRequest = await request('PUT /users/2', () =>
      db.update(users).set({ name: 'bobby' }).where(eq(users.id, 2)),
    );
    const update = childrenOf(byId(writeRequest)).find(isPgQuery);
    expect(update?.name).toMatch(/^pg\.query:UPDATE/);
    const invalidate = oneOurs('tablecache.invalidate users', writeRequest);
    expect(invalidate.kind).toBe(SpanKind.INTERNAL);
    expect(invalidate.attributes).toMatchObject({
      'db.collection.name': 'users',
      'tablecache.operation': 'invalidate',
      'tablecache.pattern': 'cache_aside',
      'tablecache.result': 'ok',
    });
    expect(invalidate.status.code).toBe(SpanStatusCode.UNSET);
    const bump = childrenOf(invalidate);
    expect(bump.length).toBeGreaterThanOrEqual(1);
    expect(bump.every(isScript)).toBe(true);
    // The write was sent before the invalidation started (the engine invalidates once it resolved).
    const nanos = (t: readonly [number, number]) => t[0] * 1e9 + t[1];
    expect(nanos(invalidate.startTime)).toBeGreaterThan(nanos((update as ReadableSpan).startTime));
  });

  it('a failing read marks tablecache.get ERROR with the SQLSTATE as error.type and no message', async () => {
    const { db } = instance();
    const failing = await request('GET /users/nope', () =>
      db
        .select()
        .from(users)
        .where(eq(users.id, 'nope' as unknown as number)),
    );
    const get = oneOurs('tablecache.get users', failing);
    expect(get.status.code).toBe(SpanStatusCode.ERROR);
    // 22P02: invalid_text_representation. PostgreSQL's message quotes the parameter, so it stays off our span.
    expect(get.attributes).toMatchObject({ 'error.type': '22P02', 'tablecache.result': 'error' });
    expect(get.status.message ?? '').not.toContain('nope');
    const query = childrenOf(get).find(isPgQuery);
    expect(query?.status.code).toBe(SpanStatusCode.ERROR);

    exporter.reset();
    const debug = instance({ recordErrorMessages: true });
    const debugFailing = await request('GET /users/nope (debug)', () =>
      debug.db
        .select()
        .from(users)
        .where(eq(users.id, 'nope' as unknown as number)),
    );
    expect(oneOurs('tablecache.get users', debugFailing).status.message).toContain('Failed query');
  });

  it('a unique violation on a write is reported by the pg span (23505), never as a cache error', async () => {
    const { db } = instance();
    let caught: unknown;
    const failing = await request('POST /products', async () => {
      try {
        await db.insert(products).values({ id: 1, title: 'duplicate', price: '1.00' });
      } catch (error) {
        caught = error;
        throw error;
      }
    });
    expect((caught as { cause?: { code?: string } }).cause?.code).toBe('23505');
    const insert = childrenOf(byId(failing)).find(isPgQuery);
    expect(insert?.name).toMatch(/^pg\.query:INSERT/);
    // instrumentation-pg 0.76 puts error.type on its duration metric only; on the span the SQLSTATE
    // is in the sanitized exception event.
    expect(insert?.status.code).toBe(SpanStatusCode.ERROR);
    expect(JSON.stringify(insert?.events)).toContain('23505');
    // The cache did nothing wrong: an invalidation after the failed statement (the engine issues
    // one when the outcome may be unknown) is a success, and nothing of ours carries the error.
    for (const span of ours()) {
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.attributes['error.type']).toBeUndefined();
      expect(span.parentSpanContext?.spanId).toBe(failing);
    }
  });

  it('a store outage is handled: the read is a bypass served by PostgreSQL, not a span error', async () => {
    const down = new Redis({ host: '127.0.0.1', port: 1, maxRetriesPerRequest: 0, lazyConnect: true });
    down.on('error', () => {});
    const cache = createCache({
      store: redisStore(down, { commandTimeoutMs: 100 }),
      policy: definePolicy<typeof schema>({
        namespace: 'spans-down',
        version: 1,
        tables: { users: { pattern: 'cache-aside' } },
      }),
      tracerProvider,
      meterProvider,
    });
    open.push(cache);
    const db = withCache(drizzle(database.pool(1), { schema }), cache);
    const id = await request('GET /users (store down)', async () => {
      expect(await db.select().from(users).where(eq(users.id, 1))).toHaveLength(1);
    });
    const get = oneOurs('tablecache.get users', id);
    expect(get.status.code).toBe(SpanStatusCode.UNSET);
    expect(get.attributes['tablecache.result']).toBe('bypass');
    expect(get.attributes['error.type']).toBeUndefined();
    expect(childrenOf(get).filter(isPgQuery)).toHaveLength(1);
    down.disconnect();
  });
});

describe('background work', () => {
  it('a flush runs in its own root span, linked to the writes it applies, with its pg and ioredis calls inside', async () => {
    const telemetry = new Telemetry({ tracerProvider, meterProvider });
    const pool = database.pool(1);
    let link: string | undefined;
    const acknowledged = await request('POST /orders (write-back)', async () => {
      link = telemetry.traceparent();
    });
    expect(link).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // A flusher timer fires outside any request; its work must not join whatever span is active.
    await request('unrelated request', () =>
      telemetry.operation(
        'flush',
        'orders',
        'write-back',
        async (scope) => {
          await pool.query('select 1');
          await redis.get('spans-flush-probe');
          scope.result('ok');
        },
        { root: true, links: [link as string], dbOperation: 'BATCH INSERT' },
      ),
    );
    const flush = ours().find((s) => s.name === 'tablecache.write_back.flush orders');
    expect(flush).toBeDefined();
    const span = flush as ReadableSpan;
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.kind).toBe(SpanKind.INTERNAL);
    expect(span.links.map((l) => l.context.spanId)).toEqual([acknowledged]);
    expect(span.attributes).toMatchObject({
      'tablecache.operation': 'flush',
      'tablecache.pattern': 'write_back',
      'db.operation.name': 'BATCH INSERT',
      'db.collection.name': 'orders',
    });
    const names = childrenOf(span).map((s) => s.name);
    expect(names.some((n) => n.startsWith('pg.query:SELECT'))).toBe(true);
    expect(names).toContain('get');
  });
});

describe('metrics next to the instrumentations', () => {
  it('the pg instrumentation records db.client.operation.duration; tablecache never does', async () => {
    const { db } = instance();
    await db.select().from(users);
    const { resourceMetrics } = await reader.collect();
    const byScope = new Map<string, string[]>();
    for (const scope of resourceMetrics.scopeMetrics) {
      byScope.set(
        scope.scope.name,
        scope.metrics.map((m) => m.descriptor.name),
      );
    }
    expect(byScope.get('@opentelemetry/instrumentation-pg')).toContain('db.client.operation.duration');
    const mine = byScope.get('tablecache') ?? [];
    expect(mine).toContain('tablecache.operation.duration');
    expect(mine.every((name) => name.startsWith('tablecache.'))).toBe(true);
  });
});

import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheError, createCache, type TableCache } from '../../src/index.js';
import type { AppendRequest } from '../../src/write-back/journal.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/write-back-schema.js';
import { WRITE_BACK_DDL } from '../fixtures/write-back-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startRedis } from './support/redis-server.js';
import { writeBackPolicy } from './support/setup.js';

const { pageViews } = schema;

let database: IsolatedDatabase;
let redis: OwnRedis;
let check: pg.Pool;
const open: TableCache[] = [];

beforeAll(async () => {
  [database, redis] = await Promise.all([isolatedDatabase(WRITE_BACK_DDL), startRedis()]);
  check = database.pool(2);
});
afterAll(async () => {
  await database.drop();
  await redis.stop();
});
beforeEach(async () => {
  await database.run('truncate page_views');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

/** A write-back app whose journal records every append it makes (rows per append). */
function app(flush: { maxPending?: number; batch?: number; onBackpressure?: 'fail' } = {}) {
  const store = redisStore(redis.url, { commandTimeoutMs: 10_000 });
  const journal = store.writeBackJournal;
  const appends: number[] = [];
  const append = journal.append.bind(journal);
  journal.append = (request: AppendRequest) => {
    appends.push(request.rows.length);
    return append(request);
  };
  const errors: CacheError[] = [];
  const cache = createCache({
    store,
    policy: writeBackPolicy(`wbs-${randomUUID().slice(0, 8)}`, {
      pageViews: { pattern: 'write-back', flush: { every: '1h', batch: 10_000, ...flush } },
    }),
    onError: (e) => errors.push(e),
    writeBack: { worker: false, waitTimeout: '10s' },
  });
  open.push(cache);
  const raw = drizzle(database.pool(4), { schema });
  return { cache, db: withCache(raw, cache), raw, appends, errors };
}

async function views(): Promise<Record<string, number>> {
  const { rows } = await check.query<{ id: string; views: number }>('select id, views from page_views');
  return Object.fromEntries(rows.map((r) => [r.id, r.views]));
}

describe('concurrent statements share journal appends', () => {
  it('acknowledges every one of 200 concurrent inserts in fewer appends, each landing once', async () => {
    const { cache, db, appends } = app();
    const ids = Array.from({ length: 200 }, (_, i) => `c${i}`);
    await Promise.all(ids.map((id, i) => db.insert(pageViews).values({ id, views: i })));
    // Every row went out in some append, and at least one append carried several statements.
    expect(appends.reduce((a, b) => a + b, 0)).toBe(200);
    expect(appends.length).toBeLessThan(200);
    await cache.flush();
    expect(await views()).toEqual(Object.fromEntries(ids.map((id, i) => [id, i])));
  });

  it('answers a duplicate key in a shared append as the database would, without losing the others', async () => {
    const { cache, db, appends } = app();
    // The first statement goes out alone; the next ones queue behind it and share an append.
    const settled = await Promise.allSettled([
      db.insert(pageViews).values({ id: 'a' }),
      db.insert(pageViews).values({ id: 'b' }),
      db.insert(pageViews).values({ id: 'dup', views: 1 }),
      db.insert(pageViews).values({ id: 'c' }),
      db.insert(pageViews).values({ id: 'dup', views: 2 }),
      db.insert(pageViews).values({ id: 'd' }),
    ]);
    expect(appends.some((rows) => rows > 1)).toBe(true);
    const outcomes = settled.map((s) => s.status);
    expect(outcomes.filter((s) => s === 'rejected')).toHaveLength(1);
    const failed = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult;
    expect((failed.reason as { cause?: { code?: string } }).cause?.code).toBe('23505');
    await cache.flush();
    const rows = await views();
    expect(Object.keys(rows).sort()).toEqual(['a', 'b', 'c', 'd', 'dup']);
    expect([1, 2]).toContain(rows.dup);
  });

  it('never accepts past maxPending, however many statements arrive at once', async () => {
    const { cache, db, appends } = app({ maxPending: 3, batch: 3, onBackpressure: 'fail' });
    const settled = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => db.insert(pageViews).values({ id: `f${i}` })),
    );
    const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    expect(appends.some((rows) => rows > 1)).toBe(true);
    expect(rejected).toHaveLength(7);
    for (const r of rejected) expect(r.reason).toMatchObject({ code: 'E_WRITE_BACK_FULL' });
    await cache.flush();
    expect(Object.keys(await views())).toHaveLength(3);
  });

  it('applies concurrent increments of rows it must first read from the database', async () => {
    const { cache, db, raw, appends } = app();
    const ids = Array.from({ length: 20 }, (_, i) => `r${i}`);
    await raw.insert(pageViews).values(ids.map((id, i) => ({ id, views: i })));
    await Promise.all(
      [1, 2, 3].flatMap(() =>
        ids.map((id) =>
          db
            .update(pageViews)
            .set({ views: sql`${pageViews.views} + ${1}` })
            .where(eq(pageViews.id, id)),
        ),
      ),
    );
    expect(appends.some((rows) => rows > 1)).toBe(true);
    await cache.flush();
    expect(await views()).toEqual(Object.fromEntries(ids.map((id, i) => [id, i + 3])));
  });
});

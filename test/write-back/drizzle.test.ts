import { randomUUID } from 'node:crypto';
import { and, asc, eq, gte, inArray, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WriteBackError } from '../../src/errors.js';
import * as schema from '../fixtures/write-back-schema.js';
import { WRITE_BACK_DDL } from '../fixtures/write-back-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startRedis } from './support/redis-server.js';
import { type Instance, openInstance } from './support/setup.js';

const { pageViews, events, scores, typed, pages } = schema;

let database: IsolatedDatabase;
let redis: OwnRedis;
let namespace: string;
let check: import('pg').Pool;
const open: Instance[] = [];

beforeAll(async () => {
  [database, redis] = await Promise.all([isolatedDatabase(WRITE_BACK_DDL), startRedis()]);
  check = database.pool(2);
});
afterAll(async () => {
  await database.drop();
  await redis.stop();
});
beforeEach(async () => {
  namespace = `wb-${randomUUID().slice(0, 8)}`;
  await database.run('truncate page_views, events, scores, typed, pages');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((i) => i.cache.close()));
});

/** An app instance; `worker: false` keeps its flusher from running in the background. */
function instance(options: Parameters<typeof openInstance>[0]['writeBack'] = {}, tables = {}): Instance {
  const inst = openInstance({ pool: database.pool(4), redisUrl: redis.url, namespace, writeBack: options, tables });
  open.push(inst);
  return inst;
}

async function dbRows<T = Record<string, unknown>>(text: string): Promise<T[]> {
  return (await check.query(text)).rows as T[];
}

describe('acknowledged writes', () => {
  it('acknowledges inserts, updates and deletes without touching PostgreSQL, and applies them at the flush', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values({ id: 'warm-up' });
    app.log.reset();
    await app.db.insert(pageViews).values([{ id: 'a', views: 1 }, { id: 'b' }, { id: 'c', title: 'C' }]);
    await app.db.update(pageViews).set({ title: 'A' }).where(eq(pageViews.id, 'a'));
    await app.db.delete(pageViews).where(eq(pageViews.id, 'b'));
    expect(app.log.texts).toEqual([]);
    expect(await dbRows('select * from page_views')).toEqual([]);

    await app.cache.flush();
    expect(await dbRows('select id, views, title from page_views order by id')).toEqual([
      { id: 'a', views: 1, title: 'A' },
      { id: 'c', views: 0, title: 'C' },
      { id: 'warm-up', views: 0, title: null },
    ]);
  });

  it('reports what the database would: row counts of updates and deletes, RETURNING rows', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values({ id: 'a', views: 2 });
    const updated = await app.db
      .update(pageViews)
      .set({ views: sql`${pageViews.views} + ${3}` })
      .where(inArray(pageViews.id, ['a', 'missing']))
      .returning({ id: pageViews.id, views: pageViews.views });
    expect(updated).toEqual([{ id: 'a', views: 5 }]);
    const missing = await app.db.update(pageViews).set({ title: 'x' }).where(eq(pageViews.id, 'nope'));
    expect(missing.rowCount).toBe(0);
    const inserted = await app.db.insert(pageViews).values({ id: 'b', bytes: 7 }).returning();
    expect(inserted).toEqual([{ id: 'b', views: 0, bytes: 7, title: null }]);
    const deleted = await app.db.delete(pageViews).where(eq(pageViews.id, 'a')).returning({ views: pageViews.views });
    expect(deleted).toEqual([{ views: 5 }]);
    await app.cache.flush();
    expect(await dbRows('select id, views, bytes from page_views')).toEqual([{ id: 'b', views: 0, bytes: '7' }]);
  });

  it('refuses an insert without its primary key, naming the table and the column', async () => {
    const app = instance({ worker: false });
    const attempt = app.db.insert(pageViews).values({ views: 1 } as unknown as typeof pageViews.$inferInsert);
    await expect(attempt).rejects.toMatchObject({ code: 'E_WRITE_BACK_NO_PK' });
    await expect(attempt).rejects.toThrow(/"page_views".*"id"/);
    expect(await dbRows('select * from page_views')).toEqual([]);
  });

  it('takes a client-side $defaultFn key', async () => {
    const app = instance({ worker: false });
    const [row] = await app.db.insert(events).values({ kind: 'click' }).returning({ id: events.id });
    expect(row?.id).toMatch(/^[0-9a-f-]{36}$/);
    await app.cache.flush();
    expect(await dbRows('select id, kind from events')).toEqual([{ id: row?.id, kind: 'click' }]);
  });
});

describe('coalescing', () => {
  it('turns 1000 increments of one row into a single UPDATE adding 1000', async () => {
    const app = instance({ worker: false }, { pageViews: { pattern: 'write-back', flush: { batch: 2000 } } });
    await app.db.insert(pageViews).values({ id: 'home' });
    await app.cache.flush();
    for (let i = 0; i < 1000; i++) await app.cache.increment('page_views', 'home', { views: 1 });
    expect(
      (await app.db.select({ views: pageViews.views }).from(pageViews).where(eq(pageViews.id, 'home')))[0],
    ).toEqual({
      views: 1000,
    });
    app.log.reset();
    await app.cache.flush();
    const updates = app.log.matching('update "page_views"');
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatch(/"views" = "__tc_t"\."views" \+ "__tc_v"\."v0"/);
    expect(await dbRows('select views from page_views')).toEqual([{ views: 1000 }]);
  });

  it('folds per row: last write wins per column, deltas summed, delete wins, insert absorbs later writes', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values([
      { id: 'kept', views: 10, title: 'old' },
      { id: 'gone', views: 1 },
    ]);
    await app.cache.flush();
    await app.db.update(pageViews).set({ title: 'first' }).where(eq(pageViews.id, 'kept'));
    await app.cache.increment('page_views', 'kept', { views: 5, bytes: 100 });
    await app.db.update(pageViews).set({ title: 'last' }).where(eq(pageViews.id, 'kept'));
    await app.cache.increment('page_views', 'kept', { views: -3 });
    await app.db.update(pageViews).set({ title: 'x' }).where(eq(pageViews.id, 'gone'));
    await app.cache.increment('page_views', 'gone', { views: 1 });
    await app.db.delete(pageViews).where(eq(pageViews.id, 'gone'));
    await app.db.insert(pageViews).values({ id: 'new', views: 1 });
    await app.cache.increment('page_views', 'new', { views: 2 });
    await app.db.update(pageViews).set({ title: 'fresh' }).where(eq(pageViews.id, 'new'));
    app.log.reset();
    await app.cache.flush();
    expect(app.log.matching('insert into "page_views"')).toHaveLength(1);
    expect(app.log.matching('delete from "page_views"')).toHaveLength(1);
    expect(app.log.matching('update "page_views"')).toHaveLength(1);
    expect(await dbRows('select id, views, bytes, title from page_views order by id')).toEqual([
      { id: 'kept', views: 12, bytes: '100', title: 'last' },
      { id: 'new', views: 3, bytes: '0', title: 'fresh' },
    ]);
  });

  it('keeps per-row order when a row is deleted and inserted again within one batch', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values({ id: 'r', views: 5, title: 'one' });
    await app.cache.flush();
    await app.db.delete(pageViews).where(eq(pageViews.id, 'r'));
    await app.db.insert(pageViews).values({ id: 'r', views: 1 });
    await app.cache.increment('page_views', 'r', { views: 1 });
    await app.db.delete(pageViews).where(eq(pageViews.id, 'r'));
    await app.db.insert(pageViews).values({ id: 'r', title: 'two' });
    await app.cache.flush();
    expect(await dbRows('select id, views, title from page_views')).toEqual([{ id: 'r', views: 0, title: 'two' }]);
  });

  it('applies counter upserts (insert ... on conflict do update set n = n + $1) in one row', async () => {
    const app = instance({ worker: false });
    const hit = (id: string) =>
      app.db
        .insert(pageViews)
        .values({ id, views: 1 })
        .onConflictDoUpdate({ target: pageViews.id, set: { views: sql`${pageViews.views} + ${1}` } });
    await app.db.insert(pageViews).values({ id: 'warm' });
    await app.cache.flush();
    for (let i = 0; i < 5; i++) await hit('p');
    await hit('warm');
    expect(
      await app.db
        .select({ id: pageViews.id, views: pageViews.views })
        .from(pageViews)
        .where(inArray(pageViews.id, ['p', 'warm'])),
    ).toEqual([
      { id: 'p', views: 5 },
      { id: 'warm', views: 1 },
    ]);
    await app.cache.flush();
    expect(await dbRows('select id, views from page_views order by id')).toEqual([
      { id: 'p', views: 5 },
      { id: 'warm', views: 1 },
    ]);
  });

  it('handles composite keys and bigint deltas', async () => {
    const app = instance({ worker: false });
    await app.db.insert(scores).values({ game: 'g', player: 1, points: 9007199254740990n });
    for (let i = 0; i < 5; i++) await app.cache.increment('scores', { game: 'g', player: 1 }, { points: 1 });
    await app.cache.increment('scores', ['g', 2], { points: 1 });
    const [row] = await app.db
      .select()
      .from(scores)
      .where(and(eq(scores.game, 'g'), eq(scores.player, 1)));
    expect(row).toEqual({ game: 'g', player: 1, points: 9007199254740995n, note: null });
    await app.cache.flush();
    expect(await dbRows('select game, player, points from scores')).toEqual([
      { game: 'g', player: 1, points: '9007199254740995' },
    ]);
  });
});

describe('reads', () => {
  it('serves primary-key reads with acknowledged writes, on this and on another instance', async () => {
    const a = instance({ worker: false });
    const b = instance({ worker: false });
    await a.db.insert(pageViews).values({ id: 'x', views: 1, title: 'from a' });
    await b.cache.increment('page_views', 'x', { views: 41 });
    const fromA = await a.db.select().from(pageViews).where(eq(pageViews.id, 'x'));
    const fromB = await b.db.query.pageViews.findFirst({ where: eq(pageViews.id, 'x') });
    expect(fromA).toEqual([{ id: 'x', views: 42, bytes: 0, title: 'from a' }]);
    expect(fromB).toEqual({ id: 'x', views: 42, bytes: 0, title: 'from a' });
    await b.db.delete(pageViews).where(eq(pageViews.id, 'x'));
    expect(await a.db.select().from(pageViews).where(eq(pageViews.id, 'x'))).toEqual([]);
    expect(await dbRows('select * from page_views')).toEqual([]);
  });

  it('loads a row that is not cached before updating it, and serves the merged row', async () => {
    await database.run(`insert into page_views (id, views, bytes, title) values ('cold', 7, 3, 'db')`);
    const app = instance({ worker: false });
    await app.db.update(pageViews).set({ title: 'cache' }).where(eq(pageViews.id, 'cold'));
    await app.cache.increment('page_views', 'cold', { views: 1 });
    expect(await app.db.select().from(pageViews).where(eq(pageViews.id, 'cold'))).toEqual([
      { id: 'cold', views: 8, bytes: 3, title: 'cache' },
    ]);
    expect(await app.cache.increment('page_views', 'absent', { views: 1 })).toBe(false);
    await app.cache.flush();
    expect(await dbRows('select id, views, bytes, title from page_views')).toEqual([
      { id: 'cold', views: 8, bytes: '3', title: 'cache' },
    ]);
  });

  it('waits for a column the database computes (defaultNow) before serving it', async () => {
    const app = instance({ worker: false });
    const [{ id } = { id: '' }] = await app.db.insert(events).values({ kind: 'view' }).returning({ id: events.id });
    const [row] = await app.db.select().from(events).where(eq(events.id, id));
    const [stored] = await dbRows<{ at: Date }>(`select at from events where id = '${id}'`);
    expect(row?.at).toEqual(stored?.at);
    expect(row?.kind).toBe('view');
  });

  it('decodes every supported type exactly as a database read returns it', async () => {
    const app = instance({ worker: false });
    const values = {
      id: 1,
      i2: -3,
      i8: 9007199254740993n,
      i8n: 42,
      n: '1.50e1',
      n2: '3.456',
      d: 0.1 + 0.2,
      b: true,
      t: 'multi\nline \u00e9 \u{1F600}',
      v: 'ab   ',
      u: 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
      j: { z: 1, a: [1, 2.5, 'x'] },
      jb: { z: 1, aa: [1.0, 2e2, -0], a: { y: null, b: true }, é: 'u' },
      ts: new Date('2024-01-02T03:04:05.678Z'),
      tss: '2024-01-01T10:00:00.500',
      tz: new Date('2024-05-01T12:34:56.789Z'),
      dt: '2024-02-29',
      dd: new Date('2024-03-01T00:00:00Z'),
      by: Buffer.from([0, 1, 2, 255]),
    };
    await app.db.insert(typed).values(values);
    await app.db
      .update(typed)
      .set({ n2: '-0.004', d: -0, jb: { k: [] }, t: '' })
      .where(eq(typed.id, 1));
    await app.db.insert(typed).values({ id: 2 });
    // A primary-key read (no ORDER BY: that is another query, served by the database).
    const cached = await app.db
      .select()
      .from(typed)
      .where(inArray(typed.id, [1, 2]));
    await app.cache.flush();
    const stored = await app.raw
      .select()
      .from(typed)
      .where(inArray(typed.id, [1, 2]))
      .orderBy(asc(typed.id));
    expect(cached).toStrictEqual(stored);
    expect(JSON.stringify(cached.map((r) => Object.keys(r.jb ?? {})))).toBe(
      JSON.stringify(stored.map((r) => Object.keys(r.jb ?? {}))),
    );
  });
});

describe('writes it cannot journal exactly', () => {
  it('drains the table, then runs predicate and raw writes synchronously, in order', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values([{ id: 'a' }, { id: 'b' }]);
    for (let i = 0; i < 10; i++) await app.cache.increment('page_views', 'a', { views: 1 });
    // Only correct if the pending increments land first.
    await app.db.update(pageViews).set({ title: 'popular' }).where(gte(pageViews.views, 10));
    expect(await dbRows('select id, views, title from page_views order by id')).toEqual([
      { id: 'a', views: 10, title: 'popular' },
      { id: 'b', views: 0, title: null },
    ]);
    await app.cache.increment('page_views', 'b', { views: 2 });
    await app.db.execute(sql`update page_views set views = views * 10`);
    expect(
      await app.db
        .select({ id: pageViews.id, views: pageViews.views })
        .from(pageViews)
        .where(inArray(pageViews.id, ['a', 'b'])),
    ).toEqual([
      { id: 'a', views: 100 },
      { id: 'b', views: 20 },
    ]);
  });

  it('drains before a statement inside a transaction and runs it there', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values({ id: 't', views: 1 });
    await app.db.transaction(async (tx) => {
      const [row] = await tx.select().from(pageViews).where(eq(pageViews.id, 't'));
      expect(row?.views).toBe(1);
      await tx.update(pageViews).set({ views: 5 }).where(eq(pageViews.id, 't'));
    });
    expect(await dbRows('select views from page_views')).toEqual([{ views: 5 }]);
    expect((await app.db.select().from(pageViews).where(eq(pageViews.id, 't')))[0]?.views).toBe(5);
  });

  it('runs an insert that would violate the primary key synchronously, so the caller gets the real error', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values({ id: 'dup' });
    const error = await app.db
      .insert(pageViews)
      .values({ id: 'dup' })
      .catch((e: unknown) => e);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('23505');
  });

  it('leaves other tables alone', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pages).values({ id: 'p', title: 'T' });
    expect(await dbRows('select * from pages')).toEqual([{ id: 'p', title: 'T' }]);
  });
});

describe('flusher', () => {
  it('flushes in the background every flush.every, and reports lag and pending age', async () => {
    const app = instance();
    await app.db.insert(pageViews).values({ id: 'bg', views: 3 });
    // Committed, then acknowledged: wait for the acknowledgement, which is what the figures count.
    await waitFor(async () => app.cache.stats().writeBack.page_views?.flushed === 1);
    expect(await dbRows('select views from page_views')).toEqual([{ views: 3 }]);
    const stats = app.cache.stats().writeBack.page_views;
    expect(stats?.lagP50Ms).toBeGreaterThanOrEqual(0);
    expect(stats?.oldestPendingAgeMs).toBe(0);
  });

  it('shares the work between several flushers and applies every write once', async () => {
    const a = instance({}, { pageViews: { pattern: 'write-back', flush: { every: '20ms', batch: 50 } } });
    const b = instance({}, { pageViews: { pattern: 'write-back', flush: { every: '20ms', batch: 50 } } });
    await a.db.insert(pageViews).values([{ id: 'x' }, { id: 'y' }]);
    await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        (i % 2 ? a : b).cache.increment('page_views', i % 3 ? 'x' : 'y', { views: 1, bytes: i }),
      ),
    );
    await Promise.all([a.cache.flush(), b.cache.flush()]);
    const expected = { x: { views: 0, bytes: 0 }, y: { views: 0, bytes: 0 } };
    for (let i = 0; i < 400; i++) {
      const row = expected[i % 3 ? 'x' : 'y'];
      row.views++;
      row.bytes += i;
    }
    expect(await dbRows('select id, views, bytes::int as bytes from page_views order by id')).toEqual([
      { id: 'x', ...expected.x },
      { id: 'y', ...expected.y },
    ]);
    const flushed =
      (a.cache.stats().writeBack.page_views?.flushed ?? 0) + (b.cache.stats().writeBack.page_views?.flushed ?? 0);
    expect(flushed).toBe(402);
  });

  it('drains on close', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values({ id: 'closing' });
    await app.cache.close();
    open.splice(open.indexOf(app), 1);
    expect(await dbRows('select id from page_views')).toEqual([{ id: 'closing' }]);
  });

  it('throws E_WRITE_BACK_TABLE for increment on a table that is not write-back', async () => {
    const app = instance({ worker: false });
    await expect(app.cache.increment('pages', 'p', { title: 1 })).rejects.toBeInstanceOf(Error);
    await expect(app.cache.increment('page_views', 'x', { title: 1 })).rejects.toBeInstanceOf(WriteBackError);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

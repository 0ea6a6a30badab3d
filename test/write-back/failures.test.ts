import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, interval, pgTable, real, text } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy, PolicyError } from '../../src/index.js';
import { writeBackOf } from '../../src/write-back/attach.js';
import { journalOf } from '../../src/write-back/journal.js';
import { encodePayload, type RowWrite } from '../../src/write-back/ops.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/write-back-schema.js';
import { WRITE_BACK_DDL } from '../fixtures/write-back-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startRedis } from './support/redis-server.js';
import { type Instance, openInstance } from './support/setup.js';

const { pageViews } = schema;

let database: IsolatedDatabase;
let redis: OwnRedis;
let check: pg.Pool;
let namespace: string;
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
  namespace = `wbf-${randomUUID().slice(0, 8)}`;
  await database.run('truncate page_views, events, scores, typed, pages');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((i) => i.cache.close()));
});

function instance(writeBack: Parameters<typeof openInstance>[0]['writeBack'] = {}, tables = {}): Instance {
  const inst = openInstance({ pool: database.pool(4), redisUrl: redis.url, namespace, writeBack, tables });
  open.push(inst);
  return inst;
}

async function dbRows(text: string): Promise<Record<string, unknown>[]> {
  return (await check.query(text)).rows;
}

function runtimeOf(inst: Instance) {
  const engine = inst.cache.attach({ tables: [] });
  const runtime = writeBackOf(engine);
  if (!runtime) throw new Error('no write-back runtime');
  return runtime;
}

describe('a poison row', () => {
  it('goes to the dead-letter stream with its error while the other rows land, and can be replayed', async () => {
    const app = instance({ worker: false, attempts: 2 });
    await app.db.insert(pageViews).values([{ id: 'ok1' }, { id: 'bad' }, { id: 'ok2' }]);
    await app.cache.flush();
    await app.cache.increment('page_views', 'ok1', { views: 3 });
    // The CHECK (views >= 0) constraint is the database's: the cache cannot know it.
    await app.cache.increment('page_views', 'bad', { views: -1 });
    await app.cache.increment('page_views', 'ok2', { views: 5 });
    await app.cache.flush();

    expect(await dbRows('select id, views from page_views order by id')).toEqual([
      { id: 'bad', views: 0 },
      { id: 'ok1', views: 3 },
      { id: 'ok2', views: 5 },
    ]);
    const runtime = runtimeOf(app);
    const table = runtime.table('page_views')!;
    const dead = await runtime.deadLetters(table);
    expect(dead).toHaveLength(1);
    expect(dead[0]?.error).toMatch(/^23514: .*check constraint/);
    expect(JSON.parse(dead[0]?.payload ?? '{}')).toMatchObject({ k: 'upd', pk: ['bad'] });
    expect(app.errors.some((e) => e.code === 'E_WRITE_BACK_DEAD_LETTER')).toBe(true);
    // The failed write is no longer shown: the row is read from the database again.
    expect((await app.db.select().from(pageViews).where(eq(pageViews.id, 'bad')))[0]?.views).toBe(0);
    // No values in what reaches the logs.
    expect(app.errors.map((e) => e.message).join('\n')).not.toMatch(/-1/);

    await database.run('alter table page_views drop constraint page_views_views_check');
    expect(await runtime.replayDeadLetters(table, dead)).toBe(1);
    await app.cache.flush();
    expect(await dbRows(`select views from page_views where id = 'bad'`)).toEqual([{ views: -1 }]);
    expect(await runtime.deadLetters(table)).toEqual([]);
    await database
      .run('alter table page_views add constraint page_views_views_check check (views >= 0)')
      .catch(async () => {
        await database.run(`update page_views set views = 0 where views < 0`);
        await database.run('alter table page_views add constraint page_views_views_check check (views >= 0)');
      });
  });
});

describe('a database that is unavailable for a while', () => {
  it('keeps every acknowledged write, retries with backoff, and applies all once it is back', async () => {
    const app = instance({ lockTimeout: '100ms', maxBackoff: '200ms' });
    await app.db.insert(pageViews).values({ id: 'c' });
    await app.cache.flush();
    const blocker = await check.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table page_views in access exclusive mode');
      for (let i = 0; i < 50; i++) await app.cache.increment('page_views', 'c', { views: 1 });
      await app.db.insert(pageViews).values({ id: 'during' });
      await waitFor(() => app.errors.filter((e) => e.code === 'E_WRITE_BACK_FLUSH').length >= 2);
      expect(app.errors.find((e) => e.code === 'E_WRITE_BACK_FLUSH')?.message).toMatch(/SQLSTATE 55P03/);
      expect((await app.db.select().from(pageViews).where(eq(pageViews.id, 'c')))[0]?.views).toBe(50);
      await blocker.query('rollback');
    } finally {
      blocker.release();
    }
    await app.cache.flush();
    expect(await dbRows('select id, views from page_views order by id')).toEqual([
      { id: 'c', views: 50 },
      { id: 'during', views: 0 },
    ]);
  });
});

describe('back-pressure', () => {
  const bounded = (mode: 'wait' | 'fail' | 'sync') => ({
    pageViews: {
      pattern: 'write-back' as const,
      flush: { maxPending: 3, batch: 3, onBackpressure: mode, every: '1h' },
    },
  });

  it('fail: refuses writes past maxPending with E_WRITE_BACK_FULL', async () => {
    const app = instance({ worker: false }, bounded('fail'));
    await app.db.insert(pageViews).values([{ id: '1' }, { id: '2' }, { id: '3' }]);
    await expect(app.db.insert(pageViews).values({ id: '4' })).rejects.toMatchObject({ code: 'E_WRITE_BACK_FULL' });
    await app.cache.flush();
    expect((await dbRows('select id from page_views order by id')).map((r) => r.id)).toEqual(['1', '2', '3']);
  });

  it('sync: drains the table and runs the write against the database', async () => {
    const app = instance({ worker: false }, bounded('sync'));
    await app.db.insert(pageViews).values([{ id: '1' }, { id: '2' }, { id: '3' }]);
    await app.db.insert(pageViews).values({ id: '4' });
    expect((await dbRows('select id from page_views order by id')).map((r) => r.id)).toEqual(['1', '2', '3', '4']);
  });

  it('wait: holds the write until a flusher makes room, or times out', async () => {
    const app = instance({ worker: false, waitTimeout: '300ms' }, bounded('wait'));
    await app.db.insert(pageViews).values([{ id: '1' }, { id: '2' }, { id: '3' }]);
    await expect(app.db.insert(pageViews).values({ id: 'late' })).rejects.toMatchObject({
      code: 'E_WRITE_BACK_TIMEOUT',
    });
    // An instance with room to wait: the flusher started below may take long on a loaded machine.
    const patient = instance({ worker: false, waitTimeout: '20s' }, bounded('wait'));
    let settled = false;
    const waiting = Promise.resolve(patient.db.insert(pageViews).values({ id: '4' })).finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false); // held: no flusher has made room yet
    const worker = instance({ waitTimeout: '5s' }, bounded('wait'));
    await waiting;
    await worker.cache.flush();
    expect((await dbRows('select id from page_views order by id')).map((r) => r.id)).toEqual(['1', '2', '3', '4']);
  });
});

describe('SQL injection', () => {
  it('binds values as parameters: SQL in values is stored as text', async () => {
    const app = instance({ worker: false });
    const evil = `x'); drop table page_views; --`;
    await app.db.insert(pageViews).values({ id: evil, title: `"; delete from page_views; --` });
    await app.cache.increment('page_views', evil, { views: 1 });
    await app.cache.flush();
    expect(await dbRows('select id, views, title from page_views')).toEqual([
      { id: evil, views: 1, title: `"; delete from page_views; --` },
    ]);
  });

  it('takes column names from the schema only: a journal entry naming another column is dead-lettered', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values({ id: 'safe', views: 1 });
    await app.cache.flush();
    const runtime = runtimeOf(app);
    const table = runtime.table('page_views')!;
    const store = redisStore(redis.url);
    const write: RowWrite = {
      k: 'upd',
      pk: ['safe'],
      s: [{ k: 's', c: 'views" = 0; drop table page_views; --', v: 'v1' }],
    };
    try {
      await journalOf(store)!.append({
        keys: table.keys,
        requestId: randomUUID(),
        rows: [{ row: table.rowKey(['safe']), write, payload: encodePayload(write) }],
        maxPending: 100,
        ttlMs: 60_000,
      });
    } finally {
      await store.close();
    }
    await app.cache.flush();
    expect(await dbRows('select id, views from page_views')).toEqual([{ id: 'safe', views: 1 }]);
    const dead = await runtime.deadLetters(table);
    expect(dead.map((d) => d.error)).toEqual([expect.stringMatching(/malformed entry.*unknown column/)]);
  });
});

describe('set-up checks', () => {
  it('refuses write-back on tables with column types it cannot represent exactly, naming table and column', () => {
    const odd = pgTable('odd', {
      id: integer('id').primaryKey(),
      ratio: real('ratio'),
      span: interval('span'),
      tags: text('tags').array(),
    });
    const cache = createCache({
      store: redisStore(redis.url),
      policy: definePolicy({ namespace, version: 1, tables: { odd: { pattern: 'write-back' } } }),
    });
    const attempt = () => withCache(drizzle(check, { schema: { odd } }), cache);
    expect(attempt).toThrow(PolicyError);
    try {
      attempt();
    } catch (error) {
      const issues = (error as PolicyError).issues;
      expect(issues.map((i) => [i.location.table, i.location.field])).toEqual([
        ['odd', 'columns.ratio'],
        ['odd', 'columns.span'],
        ['odd', 'columns.tags'],
      ]);
    }
    void cache.close();
  });

  it('warns when Redis runs without the append-only file', async () => {
    const volatile = await startRedis({ appendonly: false });
    try {
      const inst = openInstance({
        pool: database.pool(2),
        redisUrl: volatile.url,
        namespace,
        writeBack: { worker: false },
      });
      open.push(inst);
      await waitFor(() => inst.errors.some((e) => e.code === 'E_WRITE_BACK_DURABILITY'));
      expect(inst.errors.find((e) => e.code === 'E_WRITE_BACK_DURABILITY')?.message).toMatch(/appendonly no/);
      await inst.cache.close();
      open.splice(open.indexOf(inst), 1);
    } finally {
      await volatile.stop();
    }
  });

  it('does not warn on a Redis with AOF on', async () => {
    const app = instance({ worker: false });
    await app.db.insert(pageViews).values({ id: 'x' });
    expect(app.errors.filter((e) => e.code === 'E_WRITE_BACK_DURABILITY')).toEqual([]);
  });
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

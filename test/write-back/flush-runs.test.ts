import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { splitByRows } from '../../src/write-back/coalesce.js';
import type { RowWrite } from '../../src/write-back/ops.js';
import * as schema from '../fixtures/write-back-schema.js';
import { WRITE_BACK_DDL } from '../fixtures/write-back-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startRedis } from './support/redis-server.js';
import { type Instance, openInstance } from './support/setup.js';

const { pageViews } = schema;

const entry = (id: number, row: string) => ({ id: `1-${id}`, write: { k: 'upd', pk: [row] } as RowWrite });

describe('splitting a batch into runs', () => {
  it('cuts only where no row continues, keeps every entry once and in order', () => {
    // Row "a" spans entries 0..4, so no cut before index 4; the others are single entries.
    const rows = ['a', 'b', 'c', 'd', 'a', 'e', 'f', 'g', 'h', 'i', 'j', 'k'];
    const entries = rows.map((r, i) => entry(i, r));
    const runs = splitByRows(entries, 3);
    expect(runs.map((run) => run.map((e) => e.write.pk[0]).join(''))).toEqual(['abcda', 'efg', 'hij', 'k']);
    expect(runs.flat()).toEqual(entries);
  });

  it('keeps a batch whose rows all continue to the end in one run', () => {
    const entries = ['a', 'b', 'c', 'b', 'a'].map((r, i) => entry(i, r));
    expect(splitByRows(entries, 2)).toEqual([entries]);
  });

  it('keeps a batch no longer than the run size whole', () => {
    const entries = ['a', 'b'].map((r, i) => entry(i, r));
    expect(splitByRows(entries, 2)).toEqual([entries]);
  });
});

describe('a flush larger than one run', () => {
  let database: IsolatedDatabase;
  let redis: OwnRedis;
  const open: Instance[] = [];

  beforeAll(async () => {
    [database, redis] = await Promise.all([isolatedDatabase(WRITE_BACK_DDL), startRedis()]);
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((i) => i.cache.close()));
  });
  afterAll(async () => {
    await database.drop();
    await redis.stop();
  });

  it('commits in several transactions, each with its offset, and applies every write once', async () => {
    const app = openInstance({
      pool: database.pool(4),
      redisUrl: redis.url,
      namespace: `wb-${randomUUID().slice(0, 8)}`,
      writeBack: { worker: false },
      tables: { pageViews: { pattern: 'write-back', flush: { every: '1h', batch: 10_000 } } },
    });
    open.push(app);
    const insert = async (from: number, to: number) => {
      for (let start = from; start < to; start += 100) {
        const values = [];
        for (let i = start; i < Math.min(to, start + 100); i++) values.push({ id: `p${i}`, views: i });
        await app.db.insert(pageViews).values(values);
      }
    };
    // p5 is written again after 3,000 entries: no transaction may end between its two writes.
    await insert(0, 3000);
    await app.db
      .update(pageViews)
      .set({ views: sql`${pageViews.views} + ${1}` })
      .where(eq(pageViews.id, 'p5'));
    await insert(3000, 6000);
    await app.db.update(pageViews).set({ title: 'late' }).where(eq(pageViews.id, 'p4000'));
    app.log.reset();

    await app.cache.flush();

    // Two runs: entries 0..3000 (up to p5's increment), then the rest (up to p4000's update).
    expect(app.log.matching('insert into "tablecache_write_back_offsets"')).toHaveLength(2);
    // The later writes fold into each row's insert: one INSERT per run.
    expect(app.log.matching('insert into "page_views"')).toHaveLength(2);
    const check = database.pool(1);
    const { rows } = await check.query<{ n: string; total: string }>(
      'select count(*)::text as n, sum(views)::text as total from page_views',
    );
    expect(rows[0]).toEqual({ n: '6000', total: String((5999 * 6000) / 2 + 1) });
    const special = await check.query(
      "select id, views, title from page_views where id in ('p5', 'p4000') order by id",
    );
    expect(special.rows).toEqual([
      { id: 'p4000', views: 4000, title: 'late' },
      { id: 'p5', views: 6, title: null },
    ]);
  });

  it('a replay of runs committed but never acknowledged applies nothing twice (the offset never goes back)', async () => {
    const namespace = `wb-${randomUUID().slice(0, 8)}`;
    const app = openInstance({
      pool: database.pool(4),
      redisUrl: redis.url,
      namespace,
      writeBack: { worker: false },
      tables: { pageViews: { pattern: 'write-back', flush: { every: '1h', batch: 10_000 } } },
    });
    open.push(app);
    const check = database.pool(1);
    await check.query('truncate page_views');
    await check.query("insert into page_views (id, views) select 'r' || i, 0 from generate_series(0, 2499) as i");
    // One flushed write first: the bookkeeping table and this table's offset row exist.
    await app.db.update(pageViews).set({ title: 'first' }).where(eq(pageViews.id, 'r0'));
    await app.cache.flush();
    for (let i = 0; i < 2500; i++) {
      await app.db
        .update(pageViews)
        .set({ views: sql`${pageViews.views} + ${1}` })
        .where(eq(pageViews.id, `r${i}`));
    }
    // A flusher committed both runs (2,000 then 500 entries) and died before acknowledging either:
    // the rows hold the increments and the offset is the last entry's id, the journal all of it.
    const admin = new Redis(redis.url);
    const streams = [];
    for (const key of await admin.keys(`tc:{${namespace}:v1}:wb:*`)) {
      if ((await admin.type(key)) === 'stream' && key.includes('page_views')) streams.push(key);
    }
    expect(streams).toHaveLength(1);
    const stream = streams[0] as string;
    const [[lastId]] = (await admin.xrevrange(stream, '+', '-', 'COUNT', 1)) as [[string, string[]]];
    admin.disconnect();
    await check.query('update page_views set views = views + 1');
    await check.query('update tablecache_write_back_offsets set last_id = $1 where namespace = $2', [
      lastId,
      `${namespace}:v1`,
    ]);

    await app.cache.flush(); // claims all 2,500 again, in two runs

    const { rows } = await check.query<{ views: number; n: string }>(
      'select views, count(*)::text as n from page_views group by views order by views',
    );
    expect(rows).toEqual([{ views: 1, n: '2500' }]);
    const offset = await check.query('select last_id from tablecache_write_back_offsets where namespace = $1', [
      `${namespace}:v1`,
    ]);
    expect(offset.rows).toEqual([{ last_id: lastId }]);
  });
});

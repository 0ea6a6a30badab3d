import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FlusherHooks } from '../../src/write-back/flusher.js';
import * as schema from '../fixtures/write-back-schema.js';
import { WRITE_BACK_DDL } from '../fixtures/write-back-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisClient, redisUrl } from '../support/redis.js';
import { type Instance, openInstance } from './support/setup.js';

const { pageViews, events, scores } = schema;

/** Rows per flush batch in every table of these tests. */
const BATCH = 5;
/**
 * High priority goes to the table declared last and low to the one declared first, so the order
 * seen in PostgreSQL comes from the priorities, not from the declaration order.
 */
const PRIORITIES = {
  events: { pattern: 'write-back', flush: { every: '100ms', batch: BATCH, priority: 'high' } },
  scores: { pattern: 'write-back', flush: { every: '100ms', batch: BATCH, priority: 'normal' } },
  pageViews: { pattern: 'write-back', flush: { every: '100ms', batch: BATCH, priority: 'low' } },
} as const;
const HIGH = 'events';
const NORMAL = 'scores';
const LOW = 'page_views';

let database: IsolatedDatabase;
let redis: Redis;
let check: pg.Pool;
let namespace: string;
const open: Instance[] = [];

beforeAll(async () => {
  database = await isolatedDatabase(WRITE_BACK_DDL);
  redis = redisClient();
  check = database.pool(2);
  // Every row the flusher writes is numbered in commit order, with the transaction that wrote it.
  await database.run(`
    create table apply_log (seq bigserial primary key, tbl text not null, tx bigint not null default txid_current());
    create function ${database.schema}.log_apply() returns trigger language plpgsql as $$
      begin insert into ${database.schema}.apply_log (tbl) values (tg_table_name); return null; end $$;
    create trigger log_apply after insert or update on events for each row execute function ${database.schema}.log_apply();
    create trigger log_apply after insert or update on scores for each row execute function ${database.schema}.log_apply();
    create trigger log_apply after insert or update on page_views for each row execute function ${database.schema}.log_apply();
  `);
});
afterAll(async () => {
  await database.drop();
  await redis.quit();
});
beforeEach(async () => {
  namespace = `wbp-${randomUUID().slice(0, 8)}`;
  await database.run('truncate page_views, events, scores, typed, pages, apply_log');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((i) => i.cache.close()));
  const keys = await redis.keys(`*${namespace}*`);
  if (keys.length > 0) await redis.del(...keys);
});

/** An instance with the priorities above; `worker: false` only queues, a worker flushes in the background. */
function instance(worker: boolean, hooks?: FlusherHooks): Instance {
  const inst = openInstance({
    pool: database.pool(4),
    redisUrl: redisUrl(),
    namespace,
    writeBack: { worker, hooks },
    tables: PRIORITIES,
  });
  open.push(inst);
  return inst;
}

/** Queues `count` new rows in each table (through the journal: PostgreSQL sees nothing yet). */
async function queue(app: Instance, table: typeof HIGH | typeof NORMAL | typeof LOW, count: number): Promise<void> {
  const tag = randomUUID().slice(0, 8);
  const n = Array.from({ length: count }, (_, i) => i);
  if (table === HIGH) await app.db.insert(events).values(n.map(() => ({ kind: tag })));
  else if (table === NORMAL) await app.db.insert(scores).values(n.map((i) => ({ game: tag, player: i })));
  else await app.db.insert(pageViews).values(n.map((i) => ({ id: `${tag}-${i}` })));
}

/** The flush transactions in the order PostgreSQL applied them: table and number of rows each. */
async function flushes(): Promise<{ table: string; rows: number }[]> {
  const { rows } = await check.query<{ tbl: string; tx: string }>('select tbl, tx from apply_log order by seq');
  const out: { table: string; rows: number; tx: string }[] = [];
  for (const r of rows) {
    const last = out[out.length - 1];
    if (last && last.tx === r.tx) last.rows++;
    else out.push({ table: r.tbl, rows: 1, tx: r.tx });
  }
  return out.map(({ table, rows: n }) => ({ table, rows: n }));
}

async function applied(): Promise<number> {
  return Number((await check.query<{ n: string }>('select count(*) as n from apply_log')).rows[0]?.n);
}

/** Polls until `condition` holds (a bound on the wait, not an assertion about speed). */
async function waitFor(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('flush priority under backlog', () => {
  it('applies the high-priority batch first in every pass, then normal, then low', async () => {
    const app = instance(false);
    for (const table of [LOW, NORMAL, HIGH] as const) await queue(app, table, 2 * BATCH);
    expect(await applied()).toBe(0);

    const worker = instance(true);
    await waitFor(async () => (await applied()) === 6 * BATCH);

    // Two passes over the backlog, one batch of each table per pass, in priority order.
    const pass = [
      { table: HIGH, rows: BATCH },
      { table: NORMAL, rows: BATCH },
      { table: LOW, rows: BATCH },
    ];
    expect(await flushes()).toEqual([...pass, ...pass]);
    expect(worker.errors.filter((e) => e.code.startsWith('E_WRITE_BACK_FLUSH'))).toEqual([]);
  });

  it('does not starve lower priorities while high-priority writes keep a full batch pending', async () => {
    const FEEDS = 12;
    const LOW_BATCHES = 3;
    let fed = 0;
    let feeder: Instance | undefined;
    // Each high-priority flush queues a new full batch before it commits: the high table alone
    // always has work, so a flusher that served it first until empty would never get further.
    const hooks: FlusherHooks = {
      beforeCommit: async (table) => {
        if (table !== HIGH || !feeder || fed >= FEEDS) return;
        fed++;
        await queue(feeder, HIGH, BATCH);
      },
    };
    const app = instance(false);
    await queue(app, HIGH, 2 * BATCH);
    await queue(app, NORMAL, LOW_BATCHES * BATCH);
    await queue(app, LOW, LOW_BATCHES * BATCH);
    feeder = app;

    instance(true, hooks);
    const total = (2 + FEEDS) * BATCH + 2 * LOW_BATCHES * BATCH;
    await waitFor(async () => (await applied()) === total);

    const order = await flushes();
    const lastLow = order.map((f) => f.table).lastIndexOf(LOW);
    const before = order.slice(0, lastLow + 1);
    const highBefore = before.filter((f) => f.table === HIGH);
    // The low table finished while the high table still had a backlog...
    expect(order.slice(lastLow + 1).filter((f) => f.table === HIGH).length).toBeGreaterThan(0);
    expect(highBefore.every((f) => f.rows === BATCH)).toBe(true);
    // ...after at most one high-priority batch per batch of its own.
    expect(before.filter((f) => f.table === LOW)).toHaveLength(LOW_BATCHES);
    expect(highBefore.length).toBeLessThanOrEqual(LOW_BATCHES);
    expect(before.filter((f) => f.table === NORMAL)).toHaveLength(LOW_BATCHES);
    expect(fed).toBe(FEEDS);
  });
});

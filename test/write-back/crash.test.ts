import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBackOf } from '../../src/write-back/attach.js';
import * as schema from '../fixtures/write-back-schema.js';
import { WRITE_BACK_DDL } from '../fixtures/write-back-schema.js';
import { databaseUrl, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startRedis } from './support/redis-server.js';
import { type Instance, openInstance } from './support/setup.js';

const { pageViews } = schema;
const ENTRY = fileURLToPath(new URL('./support/worker-entry.ts', import.meta.url));
const SCHEMA = fileURLToPath(new URL('../fixtures/write-back-schema.ts', import.meta.url));

let database: IsolatedDatabase;
let redis: OwnRedis;
let check: pg.Pool;
let dir: string;

beforeAll(async () => {
  [database, redis] = await Promise.all([isolatedDatabase(WRITE_BACK_DDL), startRedis()]);
  check = database.pool(2);
  dir = await mkdtemp(join(tmpdir(), 'tc-wb-crash-'));
});
afterAll(async () => {
  await database.drop();
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A policy file the app and the worker processes share. */
async function policyFile(namespace: string, every: string, batch: number): Promise<string> {
  const tables = Object.fromEntries(
    ['page_views', 'events', 'scores', 'typed'].map((t) => [t, { pattern: 'write-back', flush: { every, batch } }]),
  );
  const file = join(dir, `${namespace}.json`);
  await writeFile(
    file,
    JSON.stringify({
      namespace,
      version: 1,
      defaults: { pattern: 'none' },
      tables: { ...tables, pages: { pattern: 'cache-aside' } },
    }),
  );
  return file;
}

interface Worker {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnWorker(policy: string, crash?: string): Worker {
  const url = new URL(databaseUrl());
  url.searchParams.set('options', `-c search_path=${database.schema}`);
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      ENTRY,
      '--policy',
      policy,
      '--schema',
      SCHEMA,
      '--database-url',
      url.toString(),
      '--redis-url',
      redis.url,
      '--lease-ttl',
      '1s',
    ],
    { env: { ...process.env, TABLECACHE_WORKER_CRASH: crash ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d) => {
    output += String(d);
  });
  child.stderr?.on('data', (d) => {
    output += String(d);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

async function pending(app: Instance): Promise<number> {
  const runtime = writeBackOf(app.cache.attach({ tables: [] }))!;
  return (await runtime.status()).reduce((n, s) => n + s.length, 0);
}

/** True once every write-back table was claimed by a flusher (its lease epoch counter exists). */
async function allClaimed(app: Instance): Promise<boolean> {
  const runtime = writeBackOf(app.cache.attach({ tables: [] }))!;
  const client = new Redis(redis.url);
  try {
    const epochs = await client.mget(...[...runtime.tables.values()].map((t) => t.keys.epoch));
    return epochs.every((epoch) => epoch !== null);
  } finally {
    client.disconnect();
  }
}

async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the flusher process killed with SIGKILL', () => {
  it('loses nothing and applies nothing twice, deltas included, wherever it dies', async () => {
    const namespace = `crash-${randomUUID().slice(0, 8)}`;
    const policy = await policyFile(namespace, '50ms', 100);
    const app = openInstance({ pool: database.pool(3), redisUrl: redis.url, namespace, writeBack: { worker: false } });
    try {
      await app.db.insert(pageViews).values({ id: 'hot' });
      for (let i = 0; i < 250; i++) await app.cache.increment('page_views', 'hot', { views: 1, bytes: 2 });
      for (let i = 0; i < 150; i++) await app.db.insert(pageViews).values({ id: `r${i}`, views: i });
      expect(await pending(app)).toBe(401);

      // Dies right after the second batch committed, before acknowledging it.
      const first = spawnWorker(policy, 'after-commit:2');
      expect(await first.exited).toMatchObject({ signal: 'SIGKILL' });
      const afterFirst = await check.query<{ n: string }>('select count(*) as n from page_views');
      expect(Number(afterFirst.rows[0]?.n)).toBeGreaterThan(0);
      expect(await pending(app)).toBe(301);

      // Dies inside its first transaction, right before COMMIT: nothing of that batch lands.
      const before = (await check.query('select id, views, bytes from page_views order by id')).rows;
      const second = spawnWorker(policy, 'before-commit:1');
      expect(await second.exited).toMatchObject({ signal: 'SIGKILL' });
      expect((await check.query('select id, views, bytes from page_views order by id')).rows).toEqual(before);

      // A healthy worker takes over once the dead ones' leases expire, replays, and skips what was applied.
      const third = spawnWorker(policy);
      await waitFor(async () => (await pending(app)) === 0);
      third.child.kill('SIGTERM');
      expect(await third.exited).toEqual({ code: 0, signal: null });
      expect(third.output()).toMatch(/draining[\s\S]*stopped/);

      const hot = await check.query('select views, bytes from page_views where id = $1', ['hot']);
      expect(hot.rows).toEqual([{ views: 250, bytes: '500' }]);
      const rest = await check.query<{ n: string; sum: string }>(
        `select count(*) as n, sum(views) as sum from page_views where id like 'r%'`,
      );
      expect(rest.rows[0]).toEqual({ n: '150', sum: String((149 * 150) / 2) });
      const offsets = await check.query(
        'select namespace, table_name, epoch from tablecache_write_back_offsets where namespace = $1',
        [`${namespace}:v1`],
      );
      expect(offsets.rows).toEqual([
        { namespace: `${namespace}:v1`, table_name: 'page_views', epoch: expect.any(String) },
      ]);
      expect(Number(offsets.rows[0]?.epoch)).toBeGreaterThanOrEqual(3);
    } finally {
      await app.cache.close();
    }
  }, 90_000);

  it('drains on SIGTERM before exiting', async () => {
    const namespace = `term-${randomUUID().slice(0, 8)}`;
    const policy = await policyFile(namespace, '1h', 500);
    const app = openInstance({ pool: database.pool(3), redisUrl: redis.url, namespace, writeBack: { worker: false } });
    try {
      const worker = spawnWorker(policy);
      await waitFor(() => worker.output().includes('flushing'));
      // Wait out the worker's start-up pass (it claims every table once): the next flush is an hour away.
      await waitFor(() => allClaimed(app));
      await app.db.insert(pageViews).values({ id: 'term', views: 1 });
      for (let i = 0; i < 20; i++) await app.cache.increment('page_views', 'term', { views: 1 });
      // Its next scheduled flush is an hour away: only the drain on SIGTERM can apply these.
      await new Promise((r) => setTimeout(r, 300));
      expect(await pending(app)).toBeGreaterThan(0);
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect((await check.query(`select views from page_views where id = 'term'`)).rows).toEqual([{ views: 21 }]);
      expect(await pending(app)).toBe(0);
    } finally {
      await app.cache.close();
    }
  }, 60_000);
});

import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { command as worker } from '../../cli/commands/worker.js';
import { command as writeback } from '../../cli/commands/writeback.js';
import * as schema from '../fixtures/write-back-schema.js';
import { WRITE_BACK_DDL } from '../fixtures/write-back-schema.js';
import { databaseUrl, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startRedis } from './support/redis-server.js';
import { openInstance } from './support/setup.js';

const { pageViews } = schema;
const SCHEMA = fileURLToPath(new URL('../fixtures/write-back-schema.ts', import.meta.url));

let database: IsolatedDatabase;
let redis: OwnRedis;
let check: pg.Pool;
let dir: string;

beforeAll(async () => {
  [database, redis] = await Promise.all([isolatedDatabase(WRITE_BACK_DDL), startRedis()]);
  check = database.pool(2);
  dir = await mkdtemp(join(tmpdir(), 'tc-wb-cli-'));
});
afterAll(async () => {
  await database.drop();
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs a command, returning its exit code and what it printed. */
async function run(cmd: typeof writeback, args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(' ')));
  try {
    return { code: await cmd.run(args), out: lines.join('\n') };
  } finally {
    vi.restoreAllMocks();
  }
}

describe('tablecache writeback', () => {
  it('shows status, drains, and lists, replays and drops dead letters', async () => {
    const namespace = `cli-${randomUUID().slice(0, 8)}`;
    const policy = join(dir, `${namespace}.json`);
    const tables = Object.fromEntries(
      ['page_views', 'events', 'scores', 'typed'].map((t) => [t, { pattern: 'write-back', flush: { every: '100ms' } }]),
    );
    await writeFile(policy, JSON.stringify({ namespace, version: 1, tables }));
    const url = new URL(databaseUrl());
    url.searchParams.set('options', `-c search_path=${database.schema}`);
    const common = ['--policy', policy, '--schema', SCHEMA, '--redis-url', redis.url];
    const withDb = [...common, '--database-url', url.toString()];

    const app = openInstance({ pool: database.pool(2), redisUrl: redis.url, namespace, writeBack: { worker: false } });
    try {
      await app.db.insert(pageViews).values([{ id: 'a', views: 1 }, { id: 'b' }]);
      await app.cache.flush();
      await app.cache.increment('page_views', 'a', { views: 1 });
      await app.cache.increment('page_views', 'b', { views: -1 });
    } finally {
      await app.cache.close();
    }
    // close() drained: the poison increment is a dead letter now, the other one landed.
    expect((await check.query(`select id, views from page_views order by id`)).rows).toEqual([
      { id: 'a', views: 2 },
      { id: 'b', views: 0 },
    ]);

    const status = await run(writeback, ['status', ...common, '--json']);
    expect(status.code).toBe(0);
    const rows = JSON.parse(status.out) as { table: string; length: number; deadLetters: number }[];
    expect(rows.find((r) => r.table === 'page_views')).toMatchObject({ length: 0, deadLetters: 1 });
    expect((await run(writeback, ['status', ...common])).out).toMatch(/page_views\s+0\s+-\s+\S+\s+-\s+1/);

    const listed = await run(writeback, ['dlq', 'list', ...common, '--json']);
    const letters = JSON.parse(listed.out) as { id: string; table: string; error: string; write: unknown }[];
    expect(letters).toEqual([
      expect.objectContaining({
        table: 'page_views',
        error: expect.stringMatching(/^23514/),
        write: expect.objectContaining({ pk: ['b'] }),
      }),
    ]);

    await expect(run(writeback, ['dlq', 'replay', ...withDb])).rejects.toMatchObject({ code: 'E_CLI_USAGE' });
    await database.run('alter table page_views drop constraint page_views_views_check');
    const replayed = await run(writeback, ['dlq', 'replay', ...withDb, '--table', 'page_views', '--all']);
    expect(replayed).toEqual({ code: 0, out: expect.stringMatching(/replayed 1 dead letter/) });
    expect((await run(writeback, ['drain', ...withDb])).code).toBe(0);
    expect((await check.query(`select views from page_views where id = 'b'`)).rows).toEqual([{ views: -1 }]);
    await database.run(`update page_views set views = 0 where views < 0`);
    await database.run('alter table page_views add constraint page_views_views_check check (views >= 0)');

    const dropped = await run(writeback, ['dlq', 'drop', ...common, '--table', 'page_views', '--id', '1-1']);
    expect(dropped).toEqual({ code: 2, out: expect.stringMatching(/dropped 0 .*not found: 1-1/) });
    expect(JSON.parse((await run(writeback, ['dlq', 'list', ...common, '--json'])).out)).toEqual([]);
  });

  it('explains its usage', async () => {
    expect((await run(writeback, ['--help'])).out).toMatch(/dlq replay/);
    expect((await run(worker, ['--help'])).out).toMatch(/SIGTERM/);
    await expect(run(writeback, ['explode', '--policy', 'x'])).rejects.toMatchObject({ code: 'E_CLI_USAGE' });
    await expect(run(worker, ['--policy', join(dir, 'missing.json')])).rejects.toMatchObject({ code: 'E_CLI_POLICY' });
  });
});

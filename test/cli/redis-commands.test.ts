import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, loadPolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisClient, redisUrl } from '../support/redis.js';
import * as schema from './fixtures/schema.js';
import { runCli, SCHEMA } from './run-cli.js';

const { cliItems, cliTags, cliPairs } = schema;

let database: IsolatedDatabase;
let redis: Redis;
let dir: string;
let policyPath: string;
let namespace: string;
let cache: TableCache | undefined;

beforeAll(async () => {
  database = await isolatedDatabase(schema.CLI_DDL);
  redis = redisClient();
  dir = mkdtempSync(join(tmpdir(), 'tablecache-cli-redis-'));
});
afterAll(async () => {
  await database.drop();
  await redis.quit();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  namespace = `cli-${randomBytes(4).toString('hex')}`;
  policyPath = join(dir, `${namespace}.yaml`);
  writeFileSync(
    policyPath,
    `namespace: ${namespace}\nversion: 1\ndefaults: { pattern: cache-aside, ttl: 1h }\ntables:\n  cliTags: { pattern: cache-aside }\n`,
  );
  await database.run('truncate cli_items, cli_tags, cli_pairs');
  await database.run(
    "insert into cli_items values (1, 'old item'); insert into cli_tags values (1, 'old tag'); insert into cli_pairs values (1, 2, 'old pair')",
  );
});
afterEach(async () => {
  await cache?.close();
  cache = undefined;
});

/** An app instance: the cached client, and the raw one for writes that bypass the cache. */
async function app() {
  const raw = drizzle(database.pool(2), { schema });
  cache = createCache({ store: redisStore(redis), policy: await loadPolicy(policyPath) });
  const db = withCache(raw, cache);
  const c = cache;
  const read = async () => {
    const [item] = await db.select().from(cliItems).where(eq(cliItems.id, 1));
    const [tag] = await db.select().from(cliTags).where(eq(cliTags.id, 1));
    const [pair] = await db.select().from(cliPairs);
    await c.flush();
    return { item: item?.name, tag: tag?.label, pair: pair?.note };
  };
  /** Changes every row behind the cache's back, as psql or another service would. */
  const writeBehindTheCache = async () => {
    await raw.update(cliItems).set({ name: 'new item' });
    await raw.update(cliTags).set({ label: 'new tag' });
    await raw.update(cliPairs).set({ note: 'new pair' });
  };
  return { read, writeBehindTheCache };
}

const STALE = { item: 'old item', tag: 'old tag', pair: 'old pair' };
const common = () => ['--policy', policyPath, '--schema', SCHEMA, '--redis-url', redisUrl()];

describe('tablecache invalidate', () => {
  it('invalidates exactly the named tables: the next read through the app sees the fresh rows', async () => {
    const { read, writeBehindTheCache } = await app();
    expect(await read()).toEqual(STALE);
    await writeBehindTheCache();
    expect(await read()).toEqual(STALE); // served from the cache: the premise of the test

    const run = await runCli(['invalidate', 'cli_items', 'cliPairs', ...common()]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('invalidated tables cli_items, cli_pairs');

    expect(await read()).toEqual({ item: 'new item', tag: 'old tag', pair: 'new pair' });
  });

  it('with --row evicts that row, composite keys too, and leaves other tables cached', async () => {
    const { read, writeBehindTheCache } = await app();
    await read();
    await writeBehindTheCache();
    const run = await runCli(['invalidate', 'cli_pairs', '--row', '[1,2]', ...common()]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('evicted row [1,2] of cli_pairs and invalidated its query results');
    expect(await read()).toEqual({ item: 'old item', tag: 'old tag', pair: 'new pair' });
  });

  it('with --row serves the fresh row to a primary-key read', async () => {
    const { read, writeBehindTheCache } = await app();
    await read();
    await writeBehindTheCache();
    const run = await runCli(['invalidate', 'cliItems', '--row', '1', ...common()]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('evicted row 1 of cli_items');
    expect((await read()).item).toBe('new item');
  });

  it('rejects a --row that does not match a composite primary key', async () => {
    const run = await runCli(['invalidate', 'cli_pairs', '--row', '7', ...common()]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('composite primary key (a, b)');
  });

  it('exits 2 and lists the known tables for an unknown table', async () => {
    const run = await runCli(['invalidate', 'cli_itemz', ...common()]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown table "cli_itemz"; the schema has: cli_items, cli_pairs, cli_tags');
  });
});

describe('tablecache bump', () => {
  it('invalidates every table of the namespace', async () => {
    const { read, writeBehindTheCache } = await app();
    await read();
    await writeBehindTheCache();
    expect(await read()).toEqual(STALE);
    const run = await runCli(['bump', '--policy', policyPath, '--redis-url', redisUrl()]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`bumped namespace "${namespace}" version 1`);
    expect(await read()).toEqual({ item: 'new item', tag: 'new tag', pair: 'new pair' });
  });
});

describe('tablecache stats', () => {
  it('reports the generations the app and the CLI bumped', async () => {
    const before = await runCli(['stats', ...common(), '--json']);
    expect(before.code).toBe(0);
    const fresh = JSON.parse(before.stdout);
    expect(fresh).toMatchObject({ namespace, version: 1, generation: 0 });
    expect(fresh.tables.cli_items).toEqual({ pattern: 'cache-aside', queryGeneration: 0, rowGeneration: 0 });

    await runCli(['invalidate', 'cli_items', ...common()]);
    const after = JSON.parse((await runCli(['stats', ...common(), '--json'])).stdout);
    expect(after.tables.cli_items.queryGeneration).toBeGreaterThan(0);
    expect(after.tables.cli_tags.queryGeneration).toBe(0);

    const text = await runCli(['stats', ...common()]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`cli_items\\s+cache-aside\\s+${after.tables.cli_items.queryGeneration}`));
  });
});

describe('environment errors', () => {
  let silent: Server;
  let silentPort: number;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    // Accepts connections and never answers: a Redis that hangs.
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('exits 2 with a clear message when nothing listens at the Redis URL', async () => {
    const run = await runCli(['bump', '--policy', policyPath, '--redis-url', 'redis://127.0.0.1:1']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('cannot reach Redis at redis://127.0.0.1:1: connection refused');
  });

  it('exits 2 instead of hanging when Redis accepts connections but never answers', async () => {
    const url = `redis://127.0.0.1:${silentPort}`;
    const bump = await runCli(['bump', '--policy', policyPath, '--redis-url', url, '--timeout', '300ms']);
    expect(bump.code).toBe(2);
    expect(bump.stderr).toContain(`could not bump namespace "${namespace}" at ${url}`);
    const stats = await runCli(['stats', ...common(), '--redis-url', url, '--timeout', '300ms']);
    expect(stats.code).toBe(2);
    expect(stats.stderr).toContain(`Redis at ${url} did not answer`);
  });

  it.each([
    ['http://127.0.0.1:6379', 'unsupported scheme "http:"'],
    ['not a url', 'invalid Redis URL "not a url"'],
    ['redis://127.0.0.1:6379/cache', 'database "cache" is not a number'],
  ])('exits 2 for the malformed Redis URL %s', async (url, message) => {
    const run = await runCli(['invalidate', 'cli_items', ...common(), '--redis-url', url]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('masks the password of a Redis URL in messages', async () => {
    const run = await runCli(['bump', '--policy', policyPath, '--redis-url', 'redis://:s3cret@127.0.0.1:1']);
    expect(run.code).toBe(2);
    expect(run.stderr).not.toContain('s3cret');
    expect(run.stderr).toContain('redis://:***@127.0.0.1:1');
  });
});

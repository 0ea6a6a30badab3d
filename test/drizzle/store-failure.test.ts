import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheError, createCache, definePolicy } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startOwnRedis } from '../support/redis-server.js';

const { users, products } = schema;
let database: IsolatedDatabase;
let server: OwnRedis;

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
  server = await startOwnRedis();
});
afterAll(async () => {
  await database.drop();
  await server.stop();
});
beforeEach(async () => {
  await database.run('truncate users, products restart identity cascade');
  await database.run("insert into users (name) values ('ada'), ('bob')");
});

function setup(options: { timeout?: '50ms' | '200ms' | '2s'; failures?: number } = {}) {
  const errors: CacheError[] = [];
  const client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: true });
  client.on('error', () => {});
  const cache = createCache({
    store: redisStore(client, { commandTimeoutMs: 0 }),
    policy: definePolicy<typeof schema>({
      namespace: `fail-${Math.random()}`,
      version: 1,
      tables: { users: { pattern: 'cache-aside' }, products: { pattern: 'cache-aside', maxValueBytes: 64 } },
    }),
    storeTimeout: options.timeout ?? '50ms',
    breaker: { failures: options.failures ?? 3, cooldown: '200ms' },
    onError: (e) => errors.push(e),
  });
  const db = withCache(drizzle(database.pool(3), { schema }), cache);
  return { cache, db, errors, client };
}

const nameOf = async (db: ReturnType<typeof setup>['db'], id: number) =>
  (await db.select().from(users).where(eq(users.id, id)))[0]?.name;

describe('a failing store never fails a query', () => {
  it('serves reads and writes from PostgreSQL while Redis is down, reports errors, and opens the breaker', async () => {
    const { cache, db, errors, client } = setup();
    expect(await nameOf(db, 1)).toBe('ada');
    await server.kill();
    for (let i = 0; i < 6; i++) expect(await nameOf(db, 1)).toBe('ada');
    await db.update(users).set({ name: 'ada-down' }).where(eq(users.id, 1));
    expect(await nameOf(db, 1)).toBe('ada-down');
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => e.code === 'E_STORE')).toBe(true);
    expect(cache.stats().breakerOpen).toBe(true);
    expect(cache.stats().tables.users?.bypasses).toBeGreaterThan(0);
    await server.start();
    await cache.close();
    client.disconnect();
  });

  it('a hung store costs at most the store timeout, then the breaker stops the waiting', async () => {
    const { cache, db, client } = setup({ timeout: '200ms', failures: 2 });
    expect(await nameOf(db, 2)).toBe('bob');
    server.freeze();
    try {
      const timings: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        expect(await nameOf(db, 2)).toBe('bob');
        timings.push(performance.now() - t);
      }
      expect(cache.stats().breakerOpen).toBe(true);
      // The answers came from PostgreSQL; the breaker opened after `failures` timeouts.
      expect(cache.stats().storeErrors).toBeGreaterThanOrEqual(2);
    } finally {
      server.thaw();
    }
    await cache.close();
    client.disconnect();
  });

  it('never serves a stale row after recovery, although the invalidation was lost during the outage', async () => {
    const reader = setup();
    // The writer's connection fails fast while Redis itself (and the stale entry in it) lives on.
    const writerClient = new Redis(server.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    writerClient.on('error', () => {});
    await writerClient.connect();
    const writerCache = createCache({
      store: redisStore(writerClient, { commandTimeoutMs: 0 }),
      policy: reader.cache.policy,
      storeTimeout: '50ms',
      onError: () => {},
    });
    const writerDb = withCache(drizzle(database.pool(2), { schema }), writerCache);
    expect(await nameOf(reader.db, 1)).toBe('ada');
    expect(await nameOf(writerDb, 1)).toBe('ada');
    await reader.cache.flush();
    writerClient.disconnect();
    // The write commits in PostgreSQL; its invalidation cannot be delivered.
    await writerDb.update(users).set({ name: 'ada-2' }).where(eq(users.id, 1));
    expect(writerCache.stats().storeErrors).toBeGreaterThan(0);
    expect(await nameOf(writerDb, 1)).toBe('ada-2');
    // The store is back for the writer: the stale entry is still in Redis, yet the writer never serves it.
    await writerClient.connect();
    expect(await nameOf(writerDb, 1)).toBe('ada-2');
    await writerCache.flush();
    expect(await nameOf(writerDb, 1)).toBe('ada-2');
    // Once delivered, every instance sees the write.
    expect(await nameOf(reader.db, 1)).toBe('ada-2');
    await Promise.all([writerCache.close(), reader.cache.close()]);
    writerClient.disconnect();
    reader.client.disconnect();
  });

  it('serves results larger than maxValueBytes uncached and counts them', async () => {
    // Redis is up here: a timeout long enough that a loaded machine never turns a read into a bypass.
    const { cache, db, client } = setup({ timeout: '2s' });
    await db.insert(products).values({ id: 1, title: 'x'.repeat(500), price: '1' });
    expect((await db.select().from(products))[0]?.title).toHaveLength(500);
    expect((await db.select().from(products))[0]?.title).toHaveLength(500);
    expect(cache.stats().tables.products).toMatchObject({ oversized: 2, hits: 0 });
    await cache.close();
    client.disconnect();
  });
});

// Redis rolled back in time: a server restored from an older snapshot (or a failover to a replica
// that missed the last writes) holds entries and generations from before an invalidation, which
// match each other again. The Redis store notices the new server (its run_id) on reconnect, holds
// reads, and the cache restarts the namespace generation above any value it had.
import { asc, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startOwnRedis } from '../support/redis-server.js';

const { products } = schema;
let database: IsolatedDatabase;

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
});
afterAll(async () => {
  await database.drop();
});
beforeEach(async () => {
  await database.run('truncate products');
  await database.run("insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3)");
});

async function withServer(args: string[], fn: (server: OwnRedis) => Promise<void>): Promise<void> {
  const server = await startOwnRedis(args);
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

function setup(server: OwnRedis, user?: { username: string; password: string }, storeTimeout: `${number}s` = '1s') {
  const client = new Redis(server.url, {
    maxRetriesPerRequest: 1,
    retryStrategy: () => 50,
    ...(user ? { ...user, enableReadyCheck: false } : {}),
  });
  client.on('error', () => {});
  const cache = createCache({
    store: redisStore(client, { commandTimeoutMs: 10_000 }),
    storeTimeout,
    policy: definePolicy<typeof schema>({
      namespace: 'restore',
      version: 1,
      tables: { products: { pattern: 'write-through', ttl: '10m' } },
    }),
    recoveryQuarantine: false,
    onError: () => {},
  });
  const db = withCache(drizzle(database.pool(2), { schema }), cache);
  const list = async () => (await db.select().from(products).orderBy(asc(products.id))).map((p) => p.title);
  const byKey = async () => (await db.select().from(products).where(eq(products.id, 1)))[0]?.title;
  const close = async () => {
    await cache.close();
    client.disconnect();
  };
  return { cache, db, client, list, byKey, close };
}

/** Waits until the client is connected again and a read went through the store. */
async function reconnected(client: Redis): Promise<void> {
  for (let i = 0; i < 200 && client.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 25));
  expect(client.status).toBe('ready');
}

describe('a Redis server restored from an older snapshot', () => {
  it('never serves what was invalidated after the snapshot (query and row entries)', async () => {
    await withServer([], async (server) => {
      const s = setup(server);
      try {
        expect(await s.list()).toEqual(['pen', 'ink']);
        expect(await s.byKey()).toBe('pen');
        await s.cache.flush();
        expect(await s.list()).toEqual(['pen', 'ink']); // hits now
        expect(s.cache.stats().tables.products?.hits).toBeGreaterThan(0);

        const admin = new Redis(server.url);
        await admin.save(); // the snapshot holds the entries of 'pen' and their generations
        admin.disconnect();

        await s.db.update(products).set({ title: 'pen 2' }).where(eq(products.id, 1));
        expect(await s.list()).toEqual(['pen 2', 'ink']);
        expect(await s.byKey()).toBe('pen 2');
        await s.cache.flush();

        await server.kill(); // nothing saved since: a restart loads the older snapshot
        await server.start();
        await reconnected(s.client);

        expect(await s.list()).toEqual(['pen 2', 'ink']);
        expect(await s.byKey()).toBe('pen 2');
        await s.cache.flush();
        // The cache works on the new server: entries fill and hit again.
        const hits = s.cache.stats().tables.products?.hits ?? 0;
        expect(await s.list()).toEqual(['pen 2', 'ink']);
        expect(s.cache.stats().tables.products?.hits).toBe(hits + 1);
      } finally {
        await s.close();
      }
    });
  });

  it('a read sent before the connection dropped is not answered from the restored server', async () => {
    await withServer([], async (server) => {
      const s = setup(server, undefined, '10s');
      try {
        expect(await s.list()).toEqual(['pen', 'ink']);
        await s.cache.flush();
        const admin = new Redis(server.url);
        await admin.save();
        admin.disconnect();
        await s.db.update(products).set({ title: 'pen 2' }).where(eq(products.id, 1));
        expect(await s.list()).toEqual(['pen 2', 'ink']);
        await s.cache.flush();

        server.freeze(); // the next read's MGET is sent and never answered by this server
        const read = s.list();
        await new Promise((r) => setTimeout(r, 100));
        await server.kill(); // ioredis re-sends the MGET to whatever answers the reconnect
        await server.start();
        expect(await read).toEqual(['pen 2', 'ink']);
        await reconnected(s.client);
        expect(await s.list()).toEqual(['pen 2', 'ink']);
      } finally {
        await s.close();
      }
    });
  });

  it('where INFO is denied (as on some managed Redis) the server is not identified and reads go on', async () => {
    await withServer([], async (server) => {
      const admin = new Redis(server.url);
      await admin.call('ACL', 'SETUSER', 'app', 'on', '>secret', '~*', '&*', '+@all', '-info');
      const restoreUser = () => admin.call('ACL', 'SETUSER', 'app', 'on', '>secret', '~*', '&*', '+@all', '-info');
      const s = setup(server, { username: 'app', password: 'secret' });
      try {
        await expect(s.client.info('server')).rejects.toThrow(/NOPERM/);
        expect(await s.list()).toEqual(['pen', 'ink']);
        await s.cache.flush();
        await server.kill();
        await server.start();
        await admin.connect().catch(() => undefined);
        await restoreUser();
        await reconnected(s.client);
        await s.db.update(products).set({ title: 'after' }).where(eq(products.id, 1));
        expect(await s.list()).toEqual(['after', 'ink']);
        await s.cache.flush();
        expect(await s.list()).toEqual(['after', 'ink']);
        expect(s.cache.stats().tables.products?.hits).toBeGreaterThan(0);
      } finally {
        admin.disconnect();
        await s.close();
      }
    });
  });
});

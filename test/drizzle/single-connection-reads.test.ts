// On a single-connection client (a node-postgres Client), statements run in the order they reach
// the connection. A cached read reaches it only after its cache lookup: a transaction the app
// opens right after issuing the read must not receive that read's query (uncached Drizzle would
// have run it first), and what such a query sees must never be cached.
import { eq } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { databaseUrl, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { type OwnRedis, startOwnRedis } from '../support/redis-server.js';

const { users } = schema;
let database: IsolatedDatabase;
let server: OwnRedis;
let client: pg.Client;

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
  await database.run("insert into users (name, email) values ('ada', 'ada@x'), ('bob', 'bob@x')");
  server = await startOwnRedis();
  client = new pg.Client({ connectionString: databaseUrl(), options: `-c search_path=${database.schema}` });
  await client.connect();
});
afterAll(async () => {
  await client.end();
  server.thaw();
  await server.stop();
  await database.drop();
});

describe('a read issued just before a transaction on the same connection', () => {
  it.each([
    ['a query entry', (db: Db) => db.select().from(users).where(eq(users.email, 'ada@x'))],
    ['a row entry', (db: Db) => db.select().from(users).where(eq(users.id, 1))],
  ] as const)('runs before the transaction and never caches its rolled-back write (%s)', async (_, read) => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const cache = createCache({
      store: redisStore(redis, { commandTimeoutMs: 0 }),
      policy: definePolicy<typeof schema>({
        namespace: `single-${Math.random().toString(36).slice(2)}`,
        version: 1,
        defaults: { pattern: 'none' },
        tables: { users: { pattern: 'cache-aside', ttl: '1h' } },
      }),
      // The lookup below waits for a frozen Redis: it must not time out into a bypass.
      storeTimeout: '30s',
    });
    const db = withCache(drizzle(client, { schema }), cache);
    try {
      // Loads the catalog and connects, so the only statement held below is the read's.
      await db.select().from(users).where(eq(users.email, 'bob@x'));
      await redis.ping();
      // The read's cache lookup is held by a frozen Redis while a transaction is opened.
      server.freeze();
      const issued = read(db).then((rows) => rows[0]?.name);
      let updated: () => void = () => {};
      const didUpdate = new Promise<void>((resolve) => {
        updated = resolve;
      });
      let thawed: () => void = () => {};
      const didThaw = new Promise<void>((resolve) => {
        thawed = resolve;
      });
      const transaction = db
        .transaction(async (tx) => {
          await tx.update(users).set({ name: 'never' }).where(eq(users.id, 1));
          updated();
          await didThaw;
          // The lookup's answer precedes this PING's on the store's connection; once the
          // microtasks after it ran, the read has sent its query if it is going to.
          await redis.ping();
          await new Promise((resolve) => setImmediate(resolve));
          tx.rollback();
        })
        .then(
          () => false,
          () => true,
        );
      // A transaction that does not wait for the earlier read writes while its lookup is held;
      // one that waits never gets there before the thaw (this wait only bounds the test).
      await Promise.race([didUpdate, new Promise((resolve) => setTimeout(resolve, 300))]);
      server.thaw();
      thawed();
      expect(await transaction).toBe(true);
      // Uncached, the read ran before BEGIN: it sees the committed row.
      expect(await issued).toBe('ada');
      await cache.flush();
      expect((await read(db))[0]?.name).toBe('ada');
    } finally {
      server.thaw();
      await cache.close();
      redis.disconnect();
    }
  });
});

type Db = Pick<NodePgDatabase<typeof schema>, 'select'>;

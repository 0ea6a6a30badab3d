import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { databaseUrl, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisClient } from '../support/redis.js';

const { users, allTypes } = schema;
let database: IsolatedDatabase;
let sql: postgres.Sql;
const redis = redisClient();

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
  sql = postgres(databaseUrl(), { max: 3, connection: { search_path: database.schema }, onnotice: () => {} });
  await database.run("insert into users (name) values ('ada'), ('bob')");
  await database.run(
    "insert into all_types (id, ts, big, doc, blob, num) values (1, now(), 9007199254740993, '{\"a\":1}', '\\x0102', '1.50')",
  );
});
afterAll(async () => {
  await sql.end();
  await database.drop();
  await redis.quit();
});

describe('postgres-js driver', () => {
  it('caches, invalidates across transactions, and keeps JS types', async () => {
    const raw = drizzle(sql, { schema });
    const cache = createCache({
      store: redisStore(redis),
      policy: definePolicy<typeof schema>({
        namespace: `pgjs-${Math.random()}`,
        version: 1,
        tables: { users: { pattern: 'cache-aside' }, allTypes: { pattern: 'cache-aside' } },
      }),
    });
    const db = withCache(raw, cache);
    const uncached = await raw.select().from(allTypes);
    await db.select().from(allTypes);
    await cache.flush();
    expect(await db.select().from(allTypes)).toStrictEqual(uncached);
    expect(cache.stats().tables.all_types).toMatchObject({ hits: 1, misses: 1 });

    const name = async () => (await db.select().from(users).where(eq(users.id, 1)))[0]?.name;
    expect(await name()).toBe('ada');
    await db.transaction(async (tx) => {
      await tx.update(users).set({ name: 'ada-tx' }).where(eq(users.id, 1));
      await tx.transaction(async (sp) => {
        await sp.update(users).set({ name: 'ada-sp' }).where(eq(users.id, 1));
      });
    });
    expect(await name()).toBe('ada-sp');
    const rows = await db.query.users.findMany({ orderBy: (u, { asc }) => [asc(u.id)] });
    expect(rows.map((r) => r.name)).toEqual(['ada-sp', 'bob']);
    await cache.close();
  });
});

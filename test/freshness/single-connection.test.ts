// On a single-connection client (a node-postgres Client: BEGIN is one more statement in its
// queue), the background queries of an early refresh and of the drift sampler are sent before
// the hit returns, so they run before the caller's next statement: never inside a transaction the
// caller opens next (whose rolled-back writes they would otherwise see).
import { asc, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheOptions, createCache, definePolicy } from '../../src/index.js';
import { memoryStore } from '../../stores/memory.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { databaseUrl, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';

const { products } = schema;
const T0 = 1_700_000_000_000;
let database: IsolatedDatabase;
let client: pg.Client;

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
  await database.run("insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3)");
  client = new pg.Client({ connectionString: databaseUrl(), options: `-c search_path=${database.schema}` });
  await client.connect();
});
afterAll(async () => {
  await client.end();
  await database.drop();
});

function setup(options: Pick<CacheOptions, 'verify'>) {
  const clock = { t: T0 };
  const cache = createCache({
    store: memoryStore({ now: () => clock.t }),
    policy: definePolicy<typeof schema>({
      namespace: 'single',
      version: 1,
      tables: { products: { pattern: 'cache-aside', ttl: '10s', earlyRefresh: { beta: 1 } } },
    }),
    now: () => clock.t,
    random: () => 1e-300,
    ...options,
  });
  const db = withCache(drizzle(client, { schema }), cache);
  return { cache, db, clock };
}

/** A transaction that writes and rolls back, started right after a hit. */
async function rolledBack(db: ReturnType<typeof setup>['db']): Promise<void> {
  await db
    .transaction(async (tx) => {
      await tx.update(products).set({ title: 'rolled back' }).where(eq(products.id, 1));
      tx.rollback();
    })
    .catch(() => undefined);
}

describe('background queries on a single connection', () => {
  it('an early refresh never fills what a following transaction wrote and rolled back', async () => {
    const { cache, db, clock } = setup({});
    const list = () => db.select().from(products).orderBy(asc(products.id));
    await list();
    await cache.flush();
    clock.t = T0 + 9000;
    await list(); // a hit that starts a refresh (random is tiny)
    await rolledBack(db);
    await cache.flush();
    clock.t = T0 + 12_000; // past the old expiry: served from the refreshed entry
    expect((await list()).map((p) => p.title)).toEqual(['pen', 'ink']);
    expect(cache.stats().tables.products).toMatchObject({ hits: 2, misses: 1, fills: 2 });
    await cache.close();
  });

  it('the drift sampler never compares with what a following transaction rolled back', async () => {
    const { cache, db } = setup({ verify: { rate: 1, confirmAfter: '10ms' } });
    const byKey = () => db.select().from(products).where(eq(products.id, 1));
    const list = () => db.select().from(products).orderBy(asc(products.id));
    await list();
    await byKey();
    await cache.flush();
    await list(); // sampled query-entry hit
    await rolledBack(db);
    await byKey(); // sampled row-entry hit
    await rolledBack(db);
    await cache.flush();
    expect(cache.stats().tables.products).toMatchObject({ driftChecks: 2, drift: 0 });
    await cache.close();
  });
});

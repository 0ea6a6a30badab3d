import { AsyncLocalStorage } from 'node:async_hooks';
import { PGlite } from '@electric-sql/pglite';
import { eq } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy } from '../../src/index.js';
import { memoryStore } from '../../stores/memory.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';

const { users, allTypes } = schema;
let client: PGlite;

beforeAll(async () => {
  client = new PGlite();
  const raw = drizzle(client, { schema });
  // PGlite runs one statement per extended-protocol query; exec() takes a script.
  await client.exec(new PgDialect().sqlToQuery(SHOP_DDL).sql);
  await raw.insert(users).values([
    { name: 'ada', tenant: 'a' },
    { name: 'bob', tenant: 'b' },
  ]);
  await raw.insert(allTypes).values({
    id: 1,
    ts: new Date('2024-01-02T03:04:05.678Z'),
    big: 12345678901234567n,
    doc: { x: [1, 2] },
    blob: Buffer.from([1, 2, 3]),
    num: '1.10',
  });
});
afterAll(async () => {
  await client.close();
});

describe('PGlite and the memory store (the embedded default)', () => {
  it('caches, invalidates, and returns the same JS types as the uncached client', async () => {
    const raw = drizzle(client, { schema });
    const cache = createCache({
      store: memoryStore(),
      policy: definePolicy<typeof schema>({
        namespace: 'pglite',
        version: 1,
        tables: { users: { pattern: 'cache-aside' }, allTypes: { pattern: 'cache-aside' } },
      }),
    });
    const db = withCache(raw, cache);
    const uncached = await raw.select().from(allTypes);
    await db.select().from(allTypes);
    const hit = await db.select().from(allTypes);
    expect(hit).toStrictEqual(uncached);
    expect(cache.stats().tables.all_types).toMatchObject({ hits: 1, misses: 1 });

    expect((await db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada');
    await db.update(users).set({ name: 'ada2' }).where(eq(users.id, 1));
    expect((await db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada2');
    await db.transaction(async (tx) => {
      await tx.update(users).set({ name: 'ada3' }).where(eq(users.id, 1));
    });
    expect((await db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada3');
    await cache.close();
  });

  it('partitions entries by scope: one tenant never receives another tenant’s cached rows', async () => {
    const tenant = new AsyncLocalStorage<string>();
    const raw = drizzle(client, { schema });
    const cache = createCache({
      store: memoryStore(),
      policy: definePolicy<typeof schema>({
        namespace: 'scoped',
        version: 1,
        tables: { users: { pattern: 'cache-aside' } },
      }),
      scope: () => tenant.getStore(),
    });
    const db = withCache(raw, cache);
    // A per-tenant view of the data the SQL text alone does not reveal (like row-level security):
    // the same statement, with the tenant applied through a session setting.
    const visible = async () => {
      const t = tenant.getStore() ?? '';
      const rows = await db.select().from(users).orderBy(users.id);
      return rows.filter((r) => r.tenant === t).map((r) => r.name);
    };
    const a1 = await tenant.run('a', visible);
    const b1 = await tenant.run('b', visible);
    expect(a1).not.toEqual(b1);
    expect(cache.stats().tables.users).toMatchObject({ misses: 2, hits: 0 });
    await tenant.run('a', visible);
    expect(cache.stats().tables.users).toMatchObject({ misses: 2, hits: 1 });
    await cache.close();
  });
});

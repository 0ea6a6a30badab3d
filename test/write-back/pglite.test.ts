import { PGlite } from '@electric-sql/pglite';
import { eq, inArray } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheError, createCache } from '../../src/index.js';
import { memoryStore } from '../../stores/memory.js';
import * as schema from '../fixtures/write-back-schema.js';
import { WRITE_BACK_DDL } from '../fixtures/write-back-schema.js';
import { writeBackPolicy } from './support/setup.js';

const { pageViews, typed } = schema;
let client: PGlite;

beforeAll(async () => {
  client = new PGlite();
  await client.exec(new PgDialect().sqlToQuery(WRITE_BACK_DDL).sql);
});
afterAll(async () => {
  await client.close();
});

describe('write-back on PGlite with the memory store (no servers)', () => {
  it('acknowledges, serves and flushes writes, decoding values as PGlite does', async () => {
    const errors: CacheError[] = [];
    const raw = drizzle(client, { schema });
    const cache = createCache({
      store: memoryStore(),
      policy: writeBackPolicy('pglite'),
      onError: (e) => errors.push(e),
    });
    const db = withCache(raw, cache);
    try {
      await db.insert(pageViews).values({ id: 'p', views: 1 });
      for (let i = 0; i < 9; i++) await cache.increment('page_views', 'p', { views: 1, bytes: 10 });
      expect(await db.select().from(pageViews).where(eq(pageViews.id, 'p'))).toEqual([
        { id: 'p', views: 10, bytes: 90, title: null },
      ]);
      await db.insert(typed).values({
        id: 1,
        i8: 9007199254740993n,
        n2: '2.5',
        jb: { b: 1, a: [true] },
        ts: new Date('2024-01-02T03:04:05.678Z'),
        by: Buffer.from([1, 2]),
        dd: new Date('2024-03-01T00:00:00Z'),
      });
      const cached = await db
        .select()
        .from(typed)
        .where(inArray(typed.id, [1]));
      await cache.flush();
      expect(await raw.select().from(pageViews)).toEqual([{ id: 'p', views: 10, bytes: 90, title: null }]);
      expect(cached).toStrictEqual(await raw.select().from(typed).where(eq(typed.id, 1)));
      // The journal lives in this process: the cache says so once.
      expect(errors.filter((e) => e.code === 'E_WRITE_BACK_DURABILITY')).toHaveLength(1);
    } finally {
      await cache.close();
    }
  });
});

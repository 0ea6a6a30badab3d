import { and, asc, eq, gt, inArray, or, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { parseWriteShape } from '../../adapters/drizzle/write-scan.js';
import { createCache, definePolicy, type TableCache } from '../../src/index.js';
import type { CacheStore } from '../../src/store.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { useShopServices } from '../support/shop.js';

const { users, products, lineItems, allTypes } = schema;

const shop = useShopServices();

function policy(namespace: string) {
  return definePolicy<typeof schema>({
    namespace,
    version: 1,
    defaults: { pattern: 'none' },
    tables: {
      users: { pattern: 'cache-aside', ttl: '1h' },
      products: { pattern: 'cache-aside', ttl: '5m' },
      orders: { pattern: 'cache-aside' },
      lineItems: { pattern: 'cache-aside' },
      allTypes: { pattern: 'cache-aside' },
    },
  });
}

/** Every statement a pool runs, with its parameters. */
function recordQueries(pool: pg.Pool): { readonly list: { text: string; values: unknown[] }[]; reset(): void } {
  const list: { text: string; values: unknown[] }[] = [];
  pool.on('connect', (client) => {
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const [first, second] = args as [{ text?: string; values?: unknown[] } | string, unknown[] | undefined];
      const text = typeof first === 'string' ? first : (first.text ?? '');
      list.push({ text, values: second ?? (typeof first === 'object' ? (first.values ?? []) : []) });
      return original(...args);
    };
  });
  return {
    list,
    reset() {
      list.length = 0;
    },
  };
}

/** The real Redis store, with a count of each method called (to prove round trips). */
function countingStore(store: CacheStore): { store: CacheStore; calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  const counted = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls[String(prop)] = (calls[String(prop)] ?? 0) + 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: counted, calls };
}

interface Instance {
  cache: TableCache;
  db: ReturnType<typeof drizzle<typeof schema>>;
  raw: ReturnType<typeof drizzle<typeof schema>>;
  queries: ReturnType<typeof recordQueries>;
  storeCalls: Record<string, number>;
}

let namespace: string;

function instance(options: { hooks?: Parameters<typeof createCache>[0]['hooks'] } = {}): Instance {
  const pool = shop.database.pool(5);
  const queries = recordQueries(pool);
  const raw = drizzle(pool, { schema });
  const { store, calls } = countingStore(redisStore(shop.redis));
  const cache = createCache({ store, policy: policy(namespace), hooks: options.hooks });
  const db = withCache(raw, cache);
  const inst = { cache, db, raw, queries, storeCalls: calls };
  return shop.track(inst);
}

beforeEach(async () => {
  namespace = `re-${Math.random().toString(36).slice(2)}`;
  await shop.database.run('truncate users, products, orders, payments, line_items, all_types restart identity cascade');
  await shop.database.run(
    "insert into users (name, email) values ('ada', 'ada@x'), ('bob', 'bob@x'); " +
      "insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3), (3, 'pad', '12.00', 0), (4, 'nib', '20.00', 7), (5, 'cap', '2.00', 1); " +
      "insert into line_items values (1, 1, 'a'), (1, 2, 'b'), (2, 1, 'c')",
  );
});

describe('primary-key reads use row entries', () => {
  it('serves any column selection and relational findFirst of a cached row without the database', async () => {
    const { db, raw, cache, queries } = instance();
    const [full] = await db.select().from(users).where(eq(users.id, 1));
    await cache.flush();
    queries.reset();
    expect(await db.select({ name: users.name }).from(users).where(eq(users.id, 1))).toEqual([{ name: 'ada' }]);
    expect(await db.select().from(users).where(eq(users.id, 1)).limit(1)).toEqual([full]);
    const found = await db.query.users.findFirst({ where: eq(users.id, 1) });
    expect(queries.list).toEqual([]);
    expect(found).toEqual(await raw.query.users.findFirst({ where: eq(users.id, 1) }));
    expect(cache.stats().tables.users).toMatchObject({ hits: 3, misses: 1 });
  });

  it('fetches only the missing rows of an inArray read, in one database query and one store read', async () => {
    const inst = instance();
    const { db, cache, queries, storeCalls } = inst;
    await db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 3]));
    await cache.flush();
    queries.reset();
    for (const k of Object.keys(storeCalls)) delete storeCalls[k];
    const rows = await db
      .select({ id: products.id, title: products.title })
      .from(products)
      .where(inArray(products.id, [1, 2, 3, 4, 99]));
    expect(rows.sort((a, b) => a.id - b.id)).toEqual([
      { id: 1, title: 'pen' },
      { id: 2, title: 'ink' },
      { id: 3, title: 'pad' },
      { id: 4, title: 'nib' },
    ]);
    expect(queries.list).toHaveLength(1);
    expect(queries.list[0]?.values).toEqual([2, 4, 99]);
    expect(queries.list[0]?.text).toMatch(/ where "id" in \(\$1, \$2, \$3\)$/);
    expect(storeCalls.getMany).toBe(1);
    await cache.flush();
    queries.reset();
    const again = await db
      .select()
      .from(products)
      .where(inArray(products.id, [4, 2, 1]));
    expect(again.map((p) => p.id)).toEqual([4, 2, 1]);
    expect(queries.list).toHaveLength(0);
  });

  it('respects LIMIT and serves duplicates in an IN list once, as the database does', async () => {
    const { db, cache, queries } = instance();
    await db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2, 3]));
    await cache.flush();
    queries.reset();
    expect(
      await db
        .select()
        .from(products)
        .where(inArray(products.id, [2, 2, 3])),
    ).toHaveLength(2);
    expect(
      await db
        .select()
        .from(products)
        .where(inArray(products.id, [1, 2, 3]))
        .limit(2),
    ).toHaveLength(2);
    expect(queries.list).toHaveLength(0);
  });

  it('does not cache rows that do not exist: a later insert is visible at once', async () => {
    const { db, cache } = instance();
    expect(await db.select().from(products).where(eq(products.id, 42))).toEqual([]);
    await cache.flush();
    await shop.database.run("insert into products values (42, 'new', '1', 1)");
    expect((await db.select().from(products).where(eq(products.id, 42)))[0]?.title).toBe('new');
  });

  it('handles composite primary keys, as AND and as OR-of-ANDs reads', async () => {
    const { db, cache, queries } = instance();
    const one = (order: number, line: number) =>
      db
        .select()
        .from(lineItems)
        .where(and(eq(lineItems.orderId, order), eq(lineItems.line, line)));
    expect(await one(1, 2)).toEqual([{ orderId: 1, line: 2, note: 'b' }]);
    await cache.flush();
    queries.reset();
    const both = await db
      .select()
      .from(lineItems)
      .where(
        or(and(eq(lineItems.orderId, 1), eq(lineItems.line, 1)), and(eq(lineItems.orderId, 1), eq(lineItems.line, 2))),
      );
    expect(both).toEqual([
      { orderId: 1, line: 1, note: 'a' },
      { orderId: 1, line: 2, note: 'b' },
    ]);
    expect(queries.list).toHaveLength(1);
    expect(queries.list[0]?.values).toEqual([1, 1]);
    await cache.flush();
    await db
      .update(lineItems)
      .set({ note: 'a2' })
      .where(and(eq(lineItems.orderId, 1), eq(lineItems.line, 1)));
    queries.reset();
    expect(await one(1, 2)).toEqual([{ orderId: 1, line: 2, note: 'b' }]);
    expect(queries.list).toHaveLength(0);
    expect(await one(1, 1)).toEqual([{ orderId: 1, line: 1, note: 'a2' }]);
    expect(queries.list).toHaveLength(1);
  });

  it('returns exactly what the database returns for every column type, on a miss and on a hit', async () => {
    const { db, raw, cache, queries } = instance();
    await shop.database.run(`insert into all_types values (1, '2024-01-02 03:04:05.678', '2024-01-02 03:04:05+02', '2024-05-06 07:08:09',
      '2024-02-29', '2023-12-31', 9007199254740993, 42, 12345.6789, 0.1, true, '{"a":[1,{"b":null}]}', '{x,"y z"}', '{1,2}',
      '\\xdeadbeef', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:03:04'), (2, null, null, null, null, null, null, null,
      null, null, null, null, null, null, null, null, null)`);
    const expected = await raw
      .select()
      .from(allTypes)
      .where(inArray(allTypes.id, [1, 2]))
      .orderBy(asc(allTypes.id));
    const miss = await db
      .select()
      .from(allTypes)
      .where(inArray(allTypes.id, [1, 2]));
    await cache.flush();
    queries.reset();
    const hit = await db
      .select()
      .from(allTypes)
      .where(inArray(allTypes.id, [1, 2]));
    expect(queries.list).toHaveLength(0);
    expect(miss).toEqual(expected);
    expect(hit).toEqual(expected);
    expect(hit[0]?.big).toBe(9007199254740993n);
    expect(Buffer.isBuffer(hit[0]?.blob)).toBe(true);
    expect(hit[0]?.ts).toBeInstanceOf(Date);
  });
});

describe('writes evict exactly the rows they touched', () => {
  it('a write to row 1 does not evict row 2, and query entries of the table are invalidated', async () => {
    const { db, cache, queries } = instance();
    const list = () => db.select().from(users).orderBy(asc(users.id));
    await db.select().from(users).where(eq(users.id, 1));
    await db.select().from(users).where(eq(users.id, 2));
    await list();
    await cache.flush();
    await db.update(users).set({ name: 'ada2' }).where(eq(users.id, 1));
    queries.reset();
    expect((await db.select().from(users).where(eq(users.id, 2)))[0]?.name).toBe('bob');
    expect(queries.list).toHaveLength(0);
    expect((await db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada2');
    expect((await list()).map((u) => u.name)).toEqual(['ada2', 'bob']);
    expect(queries.list).toHaveLength(2);
  });

  it('predicate updates evict the touched rows only, and the caller gets exactly what it asked for', async () => {
    const { db, raw, cache, queries } = instance();
    const readAll = () =>
      Promise.all([1, 2, 3, 4, 5].map((id) => db.select().from(products).where(eq(products.id, id))));
    await readAll();
    await cache.flush();

    // No RETURNING: the driver result still has no rows, with the right count.
    const plain = (await db
      .update(products)
      .set({ stock: sql`${products.stock} + 1` })
      .where(gt(products.price, '10'))) as unknown as pg.QueryResult;
    expect(plain.rowCount).toBe(2);
    expect(plain.rows).toEqual([]);
    expect(plain.fields).toEqual([]);
    queries.reset();
    const after = await readAll();
    expect(queries.list).toHaveLength(2);
    expect(queries.list.flatMap((q) => q.values).sort()).toEqual([3, 4]);
    expect(after.map((r) => r[0]?.stock)).toEqual([10, 3, 1, 8, 1]);
    await cache.flush();

    // Full and partial RETURNING: no extra columns, same as an uncached client.
    const full = await db
      .update(products)
      .set({ title: sql`upper(${products.title})` })
      .where(gt(products.price, '5'))
      .returning();
    expect(full.sort((a, b) => a.id - b.id)).toEqual(
      await raw.select().from(products).where(gt(products.price, '5')).orderBy(asc(products.id)),
    );
    const partial = await db
      .update(products)
      .set({ stock: 0 })
      .where(gt(products.price, '15'))
      .returning({ id: products.id });
    expect(partial).toEqual([{ id: 4 }]);
    queries.reset();
    const titles = (await readAll()).map((r) => r[0]?.title);
    expect(titles).toEqual(['pen', 'INK', 'PAD', 'NIB', 'cap']);
    expect(queries.list.flatMap((q) => q.values).sort()).toEqual([2, 3, 4]);
  });

  it('inserts and deletes evict their rows; a delete by predicate too', async () => {
    const { db, cache } = instance();
    await db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2, 6]));
    await cache.flush();
    const inserted = await db
      .insert(products)
      .values({ id: 6, title: 'six', price: '6' })
      .returning({ id: products.id });
    expect(inserted).toEqual([{ id: 6 }]);
    expect((await db.select().from(products).where(eq(products.id, 6)))[0]?.title).toBe('six');
    await db.delete(products).where(eq(products.id, 1));
    await db.delete(products).where(gt(products.price, '7'));
    const left = await db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2, 3, 4, 6]));
    expect(left.map((p) => p.id)).toEqual([6]);
  });

  it('an update that changes a primary key invalidates the table (the old key is not served)', async () => {
    const { db, cache } = instance();
    await db.select().from(products).where(eq(products.id, 1));
    await cache.flush();
    await db.update(products).set({ id: 10 }).where(eq(products.id, 1));
    expect(await db.select().from(products).where(eq(products.id, 1))).toEqual([]);
    expect((await db.select().from(products).where(eq(products.id, 10)))[0]?.title).toBe('pen');
  });

  it('a failed statement the database rejected leaves the cached rows alone', async () => {
    const { db, cache, queries } = instance();
    await db.select().from(products).where(eq(products.id, 2));
    await cache.flush();
    const error = await db
      .insert(products)
      .values({ id: 1, title: 'dup', price: '1' })
      .catch((e: unknown) => e);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('23505');
    queries.reset();
    await db.select().from(products).where(eq(products.id, 2));
    expect(queries.list).toHaveLength(0);
  });

  it('a foreign-key cascade invalidates the dependent table whole', async () => {
    const { db, cache } = instance();
    await db.insert(schema.orders).values({ id: 1, userId: 2, productId: 1, qty: 1 });
    expect(await db.select().from(schema.orders).where(eq(schema.orders.id, 1))).toHaveLength(1);
    await cache.flush();
    await db.delete(users).where(eq(users.id, 2));
    expect(await db.select().from(schema.orders).where(eq(schema.orders.id, 1))).toEqual([]);
  });
});

describe('how writes learn their rows', () => {
  it('reuses a full caller RETURNING instead of appending columns, and appends to a partial one', async () => {
    const { db, queries } = instance();
    queries.reset();
    await db.update(products).set({ stock: 1 }).where(eq(products.id, 1)).returning();
    await db.update(products).set({ stock: 2 }).where(eq(products.id, 1)).returning({ id: products.id });
    await db.update(products).set({ stock: 3 }).where(eq(products.id, 1));
    expect(queries.list.map((q) => q.text.slice(q.text.indexOf(' returning ')))).toEqual([
      ' returning "id", "title", "price", "stock"',
      ' returning "id", "id", "title", "price", "stock"',
      ' returning "id", "title", "price", "stock"',
    ]);
  });

  it('reads the keys a statement names and the columns it assigns, and refuses shapes it cannot read', () => {
    expect(
      parseWriteShape(
        'insert into "products" ("id", "title", "price", "stock") values ($1, $2, $3, default), ($4, $5::text, $6, default) on conflict ("id") do update set "title" = $7',
      ),
    ).toEqual({
      verb: 'insert',
      target: '"products"',
      assigned: ['title'],
      joins: false,
      values: {
        columns: ['id', 'title', 'price', 'stock'],
        rows: [
          [1, 2, 3, null],
          [4, null, 6, null],
        ],
      },
    });
    expect(
      parseWriteShape(
        'update "t" set ("a", "b") = ($1, $2), "c" = coalesce("c", $3) where "t"."id" = $4 returning "id"',
      ),
    ).toEqual({
      verb: 'update',
      target: '"t"',
      assigned: ['a', 'b', 'c'],
      joins: false,
      where: '"t"."id" = $4',
    });
    expect(parseWriteShape('delete from "s"."t" "x" using "u" where "x"."id" = "u"."id"')).toMatchObject({
      joins: true,
    });
    expect(parseWriteShape('with x as (select 1) update "t" set "a" = 1')).toBeNull();
    expect(parseWriteShape('insert into "t" ("a") select "a" from "u" join "v" on true')).toBeNull();
    expect(parseWriteShape('update "t" set "a" = 1; delete from "t"')).toBeNull();
  });
});

describe('transactions', () => {
  it('evicts written rows at commit only, and nothing on rollback', async () => {
    const { db, cache, queries } = instance();
    await db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2]));
    await cache.flush();
    await expect(
      db.transaction(async (tx) => {
        await tx.update(products).set({ title: 'never' }).where(eq(products.id, 1));
        tx.rollback();
      }),
    ).rejects.toThrow();
    queries.reset();
    expect((await db.select().from(products).where(eq(products.id, 1)))[0]?.title).toBe('pen');
    expect(queries.list).toHaveLength(0);
    await db.transaction(async (tx) => {
      await tx.update(products).set({ title: 'committed' }).where(eq(products.id, 1));
      // Before commit, outside the transaction: the committed value, still from the cache.
      expect((await db.select().from(products).where(eq(products.id, 1)))[0]?.title).toBe('pen');
    });
    queries.reset();
    expect((await db.select().from(products).where(eq(products.id, 1)))[0]?.title).toBe('committed');
    expect((await db.select().from(products).where(eq(products.id, 2)))[0]?.title).toBe('ink');
    expect(queries.list).toHaveLength(1);
  });
});

describe('invalidateRow', () => {
  it('evicts one row changed behind the cache, by value or by column object for composite keys', async () => {
    const { db, cache, queries } = instance();
    await db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2]));
    await db
      .select()
      .from(lineItems)
      .where(and(eq(lineItems.orderId, 1), eq(lineItems.line, 2)));
    await cache.flush();
    await shop.database.run("update products set title = 'behind' where id = 1; update line_items set note = 'behind'");
    expect((await db.select().from(products).where(eq(products.id, 1)))[0]?.title).toBe('pen');
    await cache.invalidateRow('products', 1);
    await cache.invalidateRow('line_items', { order_id: 1, line: 2 });
    queries.reset();
    expect((await db.select().from(products).where(eq(products.id, 1)))[0]?.title).toBe('behind');
    expect((await db.select().from(products).where(eq(products.id, 2)))[0]?.title).toBe('ink');
    expect(
      (
        await db
          .select()
          .from(lineItems)
          .where(and(eq(lineItems.orderId, 1), eq(lineItems.line, 2)))
      )[0]?.note,
    ).toBe('behind');
    expect(queries.list).toHaveLength(2);
    await expect(cache.invalidateRow('products', 'not a number')).rejects.toMatchObject({ code: 'E_ROW_KEY' });
  });
});

describe('the stale-set race on rows', () => {
  it('rejects the fill of a reader that read a row before a writer changed it', async () => {
    let release: () => void = () => {};
    let reached: () => void = () => {};
    const fillReached = new Promise<void>((r) => {
      reached = r;
    });
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const reader = instance({
      hooks: {
        beforeFill: async () => {
          reached();
          await gate;
        },
      },
    });
    const writer = instance();
    const old = await reader.db
      .select()
      .from(products)
      .where(inArray(products.id, [1]));
    await fillReached;
    expect(old[0]?.title).toBe('pen');
    await writer.db.update(products).set({ title: 'new' }).where(eq(products.id, 1));
    release();
    await reader.cache.flush();
    expect(reader.cache.stats().tables.products?.fillsRejected).toBe(1);
    expect((await writer.db.select().from(products).where(eq(products.id, 1)))[0]?.title).toBe('new');
  });
});

import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { beforeEach, describe, expect, it } from 'vitest';
import { cacheable, withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { countQueries } from '../support/pg.js';
import { useShopServices } from '../support/shop.js';

const { users, products, orders, payments, userOrderCounts } = schema;

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
      userOrderCounts: { pattern: 'cache-aside', reads: ['orders'] },
    },
  });
}

interface Instance {
  cache: TableCache;
  db: ReturnType<typeof drizzle<typeof schema>>;
  raw: ReturnType<typeof drizzle<typeof schema>>;
  queries: { readonly count: number; reset(): void };
}

let namespace: string;

function instance(
  options: {
    hooks?: Parameters<typeof createCache>[0]['hooks'];
    lease?: Parameters<typeof createCache>[0]['lease'];
  } = {},
): Instance {
  const pool = shop.database.pool(5);
  const queries = countQueries(pool);
  const raw = drizzle(pool, { schema });
  const cache = createCache({
    store: redisStore(shop.redis),
    policy: policy(namespace),
    hooks: options.hooks,
    lease: options.lease,
  });
  const db = withCache(raw, cache);
  const inst = { cache, db, raw, queries };
  return shop.track(inst);
}

beforeEach(async () => {
  namespace = `ca-${Math.random().toString(36).slice(2)}`;
  await shop.database.run('truncate users, products, orders, payments restart identity cascade');
  await shop.database.run(
    "insert into users (name, email) values ('ada', 'ada@x'), ('bob', 'bob@x'); insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3)",
  );
});

describe('cache-aside reads', () => {
  it('serves the second identical read from the cache without asking the database', async () => {
    const { db, cache, queries } = instance();
    const first = await db.select().from(users).orderBy(asc(users.id));
    await cache.flush();
    queries.reset();
    const second = await db.select().from(users).orderBy(asc(users.id));
    expect(second).toEqual(first);
    expect(queries.count).toBe(0);
    expect(cache.stats().tables.users).toMatchObject({ hits: 1, misses: 1 });
  });

  it('keys on parameters: different parameters are different entries', async () => {
    const { db } = instance();
    const ada = await db.select().from(users).where(eq(users.name, 'ada'));
    const bob = await db.select().from(users).where(eq(users.name, 'bob'));
    expect(ada.map((u) => u.name)).toEqual(['ada']);
    expect(bob.map((u) => u.name)).toEqual(['bob']);
    const adaAgain = await db.select().from(users).where(eq(users.name, 'ada'));
    expect(adaAgain).toEqual(ada);
  });

  it('serves cached rows even when the database changed behind its back (proves the hit), until invalidated', async () => {
    const { db, cache } = instance();
    await db.select().from(users).where(eq(users.id, 1));
    await cache.flush();
    await shop.database.run("update users set name = 'changed-behind' where id = 1");
    const [cached] = await db.select().from(users).where(eq(users.id, 1));
    expect(cached?.name).toBe('ada');
    await cache.invalidate('users');
    const [fresh] = await db.select().from(users).where(eq(users.id, 1));
    expect(fresh?.name).toBe('changed-behind');
  });

  it('runs concurrent identical misses once (single-flight)', async () => {
    const { db, queries } = instance();
    queries.reset();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => db.select().from(products).orderBy(products.id)),
    );
    expect(queries.count).toBe(1);
    for (const r of results) expect(r).toEqual(results[0]);
    results[0]?.pop();
    expect(results[1]).toHaveLength(2);
  });

  it('caches relational queries with nested relations and prepared statements with placeholders', async () => {
    const { db, cache, queries } = instance();
    await db.insert(orders).values({ userId: 1, productId: 1, qty: 2 });
    const rq = () => db.query.users.findMany({ with: { orders: true }, orderBy: (u, { asc }) => [asc(u.id)] });
    const first = await rq();
    const prepared = db
      .select()
      .from(products)
      .where(eq(products.id, sql.placeholder('id')))
      .prepare('tc_products_by_id');
    const p1 = await prepared.execute({ id: 1 });
    const p2 = await prepared.execute({ id: 2 });
    await cache.flush();
    queries.reset();
    expect(await rq()).toEqual(first);
    expect(await prepared.execute({ id: 1 })).toEqual(p1);
    expect(await prepared.execute({ id: 2 })).toEqual(p2);
    expect(p1[0]?.title).toBe('pen');
    expect(p2[0]?.title).toBe('ink');
    expect(queries.count).toBe(0);
    expect(first[0]?.orders).toHaveLength(1);
  });

  it('caches joins, subqueries, set operations, CTEs and $count, and invalidates them on writes to any table read', async () => {
    const { db, cache } = instance();
    await db.insert(orders).values([
      { userId: 1, productId: 1, qty: 2 },
      { userId: 2, productId: 2, qty: 1 },
    ]);
    const join = () =>
      db
        .select({ name: users.name, title: products.title })
        .from(orders)
        .innerJoin(users, eq(orders.userId, users.id))
        .innerJoin(products, eq(orders.productId, products.id))
        .orderBy(users.name);
    const sub = () =>
      db
        .select({ name: users.name })
        .from(users)
        .where(inArray(users.id, db.select({ id: orders.userId }).from(orders).where(gt(orders.qty, 1))));
    const union = () =>
      db
        .select({ n: users.name })
        .from(users)
        .union(db.select({ n: products.title }).from(products));
    const cte = db.$with('big').as(db.select().from(products).where(gt(products.price, '5')));
    const withCte = () => db.with(cte).select().from(cte);
    const count = () => db.$count(orders);

    const before = [await join(), await sub(), await union(), await withCte(), await count()];
    await cache.flush();
    expect(before[1]).toEqual([{ name: 'ada' }]);
    expect(before[4]).toBe(2);

    await db.update(products).set({ title: 'quill' }).where(eq(products.id, 1));
    await db.update(orders).set({ qty: 1 }).where(eq(orders.userId, 1));
    await db.insert(orders).values({ userId: 2, productId: 1, qty: 5 });
    await db.update(products).set({ price: '9.00' }).where(eq(products.id, 1));

    expect((await join()).map((r) => r.title)).toContain('quill');
    expect(await sub()).toEqual([{ name: 'bob' }]);
    expect((await union()).map((r) => r.n)).toContain('quill');
    expect((await withCte()).map((r) => r.id).sort()).toEqual([1, 2]);
    expect(await count()).toBe(3);
  });

  it('never caches tables with pattern none, nor views without declared base tables', async () => {
    const { db, cache, queries } = instance();
    await db.insert(payments).values({ amount: 5 });
    await db.select().from(payments);
    await db.select().from(payments);
    await cache.flush();
    queries.reset();
    await db.select().from(payments);
    expect(queries.count).toBe(1);
    expect(cache.stats().tables.payments?.hits ?? 0).toBe(0);
  });

  it('caches a view by its declared base tables and invalidates it when they change', async () => {
    const { db, cache } = instance();
    await db.insert(orders).values({ userId: 1, productId: 1, qty: 1 });
    expect(await db.select().from(userOrderCounts)).toEqual([{ userId: 1, count: 1 }]);
    await cache.flush();
    await db.insert(orders).values({ userId: 1, productId: 2, qty: 1 });
    expect(await db.select().from(userOrderCounts)).toEqual([{ userId: 1, count: 2 }]);
    expect(cache.stats().tables.user_order_counts?.misses).toBe(2);
  });

  it('caches raw reads only when their tables are declared, and raw writes invalidate what they write', async () => {
    const { db, cache, queries } = instance();
    const declared = () => db.execute(cacheable(sql`select name from users order by id`, { tables: ['users'] }));
    const undeclared = () => db.execute(sql`select name from users order by id`);
    expect((await declared()).rows).toEqual([{ name: 'ada' }, { name: 'bob' }]);
    await undeclared();
    await cache.flush();
    queries.reset();
    await declared();
    expect(queries.count).toBe(0);
    await undeclared();
    expect(queries.count).toBe(1);
    await db.execute(sql`update users set name = 'ann' where id = 1`);
    expect((await declared()).rows).toEqual([{ name: 'ann' }, { name: 'bob' }]);
  });

  it('invalidates a table changed by a foreign-key cascade', async () => {
    const { db, cache } = instance();
    await db.insert(orders).values({ userId: 2, productId: 1, qty: 1 });
    expect(await db.select().from(orders)).toHaveLength(1);
    await cache.flush();
    await db.delete(users).where(eq(users.id, 2));
    expect(await db.select().from(orders)).toHaveLength(0);
  });

  it('does not cache locking reads (FOR UPDATE)', async () => {
    const { db, cache, queries } = instance();
    await db.select().from(users).for('update');
    await cache.flush();
    queries.reset();
    await db.select().from(users).for('update');
    expect(queries.count).toBe(1);
  });
});

describe('cache-aside writes', () => {
  it('invalidates after insert, update, delete, upsert, with and without returning', async () => {
    const { db } = instance();
    const list = async () => (await db.select().from(products).orderBy(products.id)).map((p) => `${p.id}:${p.title}`);
    expect(await list()).toEqual(['1:pen', '2:ink']);
    await db.insert(products).values({ id: 3, title: 'pad', price: '2' });
    expect(await list()).toEqual(['1:pen', '2:ink', '3:pad']);
    const [updated] = await db.update(products).set({ title: 'nib' }).where(eq(products.id, 2)).returning();
    expect(updated?.title).toBe('nib');
    expect(await list()).toEqual(['1:pen', '2:nib', '3:pad']);
    await db
      .insert(products)
      .values({ id: 3, title: 'pad2', price: '2' })
      .onConflictDoUpdate({ target: products.id, set: { title: 'pad2' } });
    expect(await list()).toEqual(['1:pen', '2:nib', '3:pad2']);
    await db.insert(products).values({ id: 3, title: 'ignored', price: '2' }).onConflictDoNothing();
    expect(await list()).toEqual(['1:pen', '2:nib', '3:pad2']);
    await db.delete(products).where(and(eq(products.id, 1), eq(products.title, 'pen')));
    expect(await list()).toEqual(['2:nib', '3:pad2']);
  });

  it('a second app instance sharing Redis sees the first one’s invalidations at once', async () => {
    const a = instance();
    const b = instance();
    expect((await b.db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada');
    await b.cache.flush();
    await a.db.update(users).set({ name: 'ada2' }).where(eq(users.id, 1));
    expect((await b.db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada2');
  });

  it('surfaces database errors unchanged in kind (DrizzleQueryError with the driver error as cause)', async () => {
    const { db } = instance();
    const error = await db
      .insert(products)
      .values({ id: 1, title: 'dup', price: '1' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('23505');
  });
});

describe('transactions', () => {
  it('defers invalidation to the commit: a concurrent reader never caches the uncommitted or the old value after it', async () => {
    const { db, cache } = instance();
    expect((await db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada');
    await db.transaction(async (tx) => {
      await tx.update(users).set({ name: 'in-tx' }).where(eq(users.id, 1));
      // Inside: the transaction reads its own write (never from the shared cache).
      expect((await tx.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('in-tx');
      // Outside, before commit: the old committed value.
      expect((await db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada');
    });
    expect((await db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('in-tx');
    expect(cache.stats().tables.users?.bypasses).toBeGreaterThanOrEqual(1);
  });

  it('drops invalidations on rollback (the generation does not move)', async () => {
    const { db, cache } = instance();
    await db.select().from(users);
    await cache.flush();
    const before = cache.stats().tables.users?.invalidations;
    await expect(
      db.transaction(async (tx) => {
        await tx.update(users).set({ name: 'never' }).where(eq(users.id, 1));
        tx.rollback();
      }),
    ).rejects.toThrow();
    expect(cache.stats().tables.users?.invalidations).toBe(before);
    const rows = await db.select().from(users);
    expect(rows.map((r) => r.name)).not.toContain('never');
    expect(cache.stats().tables.users?.hits).toBe(1);
  });

  it('nested savepoints: a rolled-back savepoint’s write never shows, the committed outer one does', async () => {
    const { db } = instance();
    await db.select().from(users);
    await db.transaction(async (tx) => {
      await tx.update(users).set({ name: 'outer' }).where(eq(users.id, 1));
      await expect(
        tx.transaction(async (sp) => {
          await sp.update(users).set({ name: 'inner' }).where(eq(users.id, 2));
          sp.rollback();
        }),
      ).rejects.toThrow();
    });
    const names = (await db.select().from(users).orderBy(users.id)).map((u) => u.name);
    expect(names).toEqual(['outer', 'bob']);
  });
});

describe('the stale-set race', () => {
  it('rejects the fill of a reader that read the old row before a writer committed and invalidated', async () => {
    let releaseFill: () => void = () => {};
    let fillReached: () => void = () => {};
    const reached = new Promise<void>((r) => {
      fillReached = r;
    });
    const gate = new Promise<void>((r) => {
      releaseFill = r;
    });
    let armed = true;
    const slow = instance({
      hooks: {
        beforeFill: async () => {
          if (!armed) return;
          armed = false;
          fillReached();
          await gate;
        },
      },
    });
    const writer = instance();
    // 1. The reader misses and reads the old row; its fill is held back.
    const read = slow.db.select().from(users).where(eq(users.id, 1));
    const oldRows = await read;
    await reached;
    expect(oldRows[0]?.name).toBe('ada');
    // 2. The writer commits and invalidates while the fill is in flight.
    await writer.db.update(users).set({ name: 'new' }).where(eq(users.id, 1));
    // 3. The late fill arrives: it must be rejected.
    releaseFill();
    await slow.cache.flush();
    expect(slow.cache.stats().tables.users?.fillsRejected).toBe(1);
    // 4. Every later reader sees the new row.
    expect((await slow.db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('new');
    expect((await writer.db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('new');
  });
});

describe('cross-process stampede lease', () => {
  it('lets one process run a missing query while another waits for its fill', async () => {
    const a = instance({ lease: '3s' });
    const b = instance({ lease: '3s' });
    // Hold the table so A's query blocks while it owns the lease.
    const locker = shop.database.pool(1);
    const lockClient = await locker.connect();
    await lockClient.query('begin');
    await lockClient.query('lock table products in access exclusive mode');
    a.queries.reset();
    b.queries.reset();
    const readA = a.db.select().from(products).orderBy(products.id);
    const readAResult = readA.then((rows) => rows);
    // Wait until A holds the lease (its key exists), then start B.
    const leaseKeys = async () => (await shop.redis.keys(`tc:{${namespace}:v1}:l:*`)).length;
    for (let i = 0; i < 100 && (await leaseKeys()) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await leaseKeys()).toBe(1);
    const readB = b.db.select().from(products).orderBy(products.id);
    await new Promise((r) => setTimeout(r, 100));
    await lockClient.query('commit');
    lockClient.release();
    const [rowsA, rowsB] = await Promise.all([readAResult, readB]);
    expect(rowsB).toEqual(rowsA);
    expect(rowsA.map((p) => p.title)).toEqual(['pen', 'ink']);
    expect(a.queries.count).toBe(1);
    expect(b.queries.count).toBe(0);
  });
});

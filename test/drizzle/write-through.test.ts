import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { type PgDatabase, PgDialect, type PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgresJs } from 'drizzle-orm/postgres-js';
import { Redis } from 'ioredis';
import type pg from 'pg';
import postgres from 'postgres';
import { beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, type Duration, definePolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { countQueries, databaseUrl } from '../support/pg.js';
import { redisUrl } from '../support/redis.js';
import { useShopServices } from '../support/shop.js';

const { users, products, lineItems } = schema;

const shop = useShopServices();

function policy(namespace: string) {
  return definePolicy<typeof schema>({
    namespace,
    version: 1,
    defaults: { pattern: 'none' },
    tables: {
      users: { pattern: 'write-through', ttl: '1h' },
      products: { pattern: 'write-through', ttl: '5m' },
      orders: { pattern: 'cache-aside' },
      lineItems: { pattern: 'write-through' },
    },
  });
}

type Hooks = Parameters<typeof createCache>[0]['hooks'];

interface Instance {
  cache: TableCache;
  db: ReturnType<typeof drizzle<typeof schema>>;
  raw: ReturnType<typeof drizzle<typeof schema>>;
  queries: { readonly count: number; reset(): void };
}

let namespace: string;

function instance(options: { hooks?: Hooks; redis?: Redis; storeTimeout?: Duration } = {}): Instance {
  const pool = shop.database.pool(5);
  const queries = countQueries(pool);
  const raw = drizzle(pool, { schema });
  const cache = createCache({
    store: redisStore(options.redis ?? shop.redis),
    policy: policy(namespace),
    hooks: options.hooks,
    storeTimeout: options.storeTimeout,
    onError: () => {},
  });
  const db = withCache(raw, cache);
  const inst = { cache, db, raw, queries };
  return shop.track(inst);
}

/** A promise with its resolver, for ordering two writers step by step. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire: () => void = () => {};
  const promise = new Promise<void>((r) => {
    fire = r;
  });
  return { promise, fire };
}

beforeEach(async () => {
  namespace = `wt-${Math.random().toString(36).slice(2)}`;
  await shop.database.run('truncate users, products, orders, payments, line_items restart identity cascade');
  await shop.database.run(
    "insert into users (name, email) values ('ada', 'ada@x'), ('bob', 'bob@x'); " +
      "insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3), (3, 'pad', '12.00', 0); " +
      "insert into line_items values (1, 1, 'a'), (1, 2, 'b')",
  );
});

const product = async (inst: Instance, id: number) =>
  (await inst.db.select().from(products).where(eq(products.id, id)))[0];

describe('read-after-write', () => {
  it('an update by key is read back from the cache with the new value', async () => {
    const inst = instance();
    await product(inst, 1);
    await inst.cache.flush();
    await inst.db.update(products).set({ title: 'quill', price: '3.10' }).where(eq(products.id, 1));
    inst.queries.reset();
    const got = await product(inst, 1);
    expect(inst.queries.count).toBe(0);
    expect(got).toEqual({ id: 1, title: 'quill', price: '3.10', stock: 10 });
    expect(got).toEqual((await inst.raw.select().from(products).where(eq(products.id, 1)))[0]);
  });

  it('inserts (generated and explicit keys), upserts and composite keys are hits right after the write', async () => {
    const inst = instance();
    const [created] = await inst.db.insert(users).values({ name: 'cy' }).returning({ id: users.id });
    await inst.db.insert(products).values({ id: 7, title: 'seven', price: '7' });
    await inst.db
      .insert(products)
      .values({ id: 2, title: 'upserted', price: '1' })
      .onConflictDoUpdate({ target: products.id, set: { title: 'upserted' } });
    await inst.db.insert(lineItems).values({ orderId: 1, line: 3, note: 'c' });
    inst.queries.reset();
    expect(created).toEqual({ id: 3 });
    expect(await inst.db.query.users.findFirst({ where: eq(users.id, 3) })).toMatchObject({ name: 'cy', tenant: 'a' });
    expect((await product(inst, 7))?.title).toBe('seven');
    expect((await product(inst, 2))?.title).toBe('upserted');
    expect(
      await inst.db
        .select({ note: lineItems.note })
        .from(lineItems)
        .where(and(eq(lineItems.orderId, 1), eq(lineItems.line, 3))),
    ).toEqual([{ note: 'c' }]);
    expect(inst.queries.count).toBe(0);
  });

  it('a delete removes the row entry', async () => {
    const inst = instance();
    await product(inst, 3);
    await inst.cache.flush();
    await inst.db.delete(products).where(eq(products.id, 3));
    expect(await product(inst, 3)).toBeUndefined();
  });

  it('invalidates the query entries of the table on every write', async () => {
    const inst = instance();
    const list = async () => (await inst.db.select().from(products).orderBy(asc(products.id))).map((p) => p.title);
    expect(await list()).toEqual(['pen', 'ink', 'pad']);
    await inst.cache.flush();
    await inst.db.update(products).set({ title: 'nib' }).where(eq(products.id, 2));
    expect(await list()).toEqual(['pen', 'nib', 'pad']);
  });
});

describe('predicate writes', () => {
  it('refresh exactly the touched rows, and the caller sees no extra columns', async () => {
    const inst = instance();
    await inst.db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2, 3]));
    await inst.cache.flush();
    const plain = (await inst.db
      .update(products)
      .set({ stock: sql`${products.stock} + 5` })
      .where(gt(products.price, '5'))) as unknown as pg.QueryResult;
    expect(plain.rowCount).toBe(2);
    expect(plain.rows).toEqual([]);
    const partial = await inst.db
      .update(products)
      .set({ title: sql`upper(${products.title})` })
      .where(gt(products.price, '10'))
      .returning({ title: products.title });
    expect(partial).toEqual([{ title: 'PAD' }]);
    inst.queries.reset();
    const rows = await inst.db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2, 3]));
    expect(rows.map((r) => `${r.id}:${r.title}:${r.stock}`)).toEqual(['1:pen:10', '2:ink:8', '3:PAD:5']);
    // Row 1 was untouched and row 2 refreshed by the first write; row 3, written twice by
    // writers that could not announce it beforehand, is evicted rather than risk an order.
    expect(inst.queries.count).toBe(1);
  });
});

describe('ordering of concurrent writers of one row', () => {
  it('A intends, B intends, A commits, B commits, B publishes, A publishes: A’s older value is never left cached', async () => {
    const aIntended = signal();
    const bIntended = signal();
    const aCommitted = signal();
    const bPublished = signal();
    const a = instance({
      hooks: {
        afterIntent: async () => {
          aIntended.fire();
          await bIntended.promise;
        },
        beforePublish: async () => {
          aCommitted.fire();
          await bPublished.promise;
        },
      },
    });
    const b = instance({
      hooks: {
        afterIntent: async () => {
          bIntended.fire();
          await aCommitted.promise;
        },
      },
    });
    const reader = instance();
    const writeA = a.db.update(products).set({ title: 'A' }).where(eq(products.id, 1)).execute();
    await aIntended.promise;
    await b.db.update(products).set({ title: 'B' }).where(eq(products.id, 1));
    // B published last-writer's value: a hit for everyone.
    reader.queries.reset();
    expect((await product(reader, 1))?.title).toBe('B');
    expect(reader.queries.count).toBe(0);
    bPublished.fire();
    await writeA;
    // A's late publication must not overwrite B's newer row: it evicts instead.
    expect((await product(reader, 1))?.title).toBe('B');
    expect(reader.queries.count).toBe(1);
    expect((await product(reader, 1))?.title).toBe('B');
    expect(reader.queries.count).toBe(1);
  });

  it('the same, with A publishing before B: both evict, the newest value is read back', async () => {
    const aCommitted = signal();
    const bIntended = signal();
    const aIntended = signal();
    const a = instance({
      hooks: {
        afterIntent: async () => {
          aIntended.fire();
          await bIntended.promise;
        },
        beforePublish: async () => {
          aCommitted.fire();
        },
      },
    });
    const b = instance({
      hooks: {
        afterIntent: async () => {
          bIntended.fire();
          await aCommitted.promise;
        },
      },
    });
    const writeA = a.db.update(products).set({ title: 'A' }).where(eq(products.id, 1)).execute();
    await aIntended.promise;
    const writeB = b.db.update(products).set({ title: 'B' }).where(eq(products.id, 1)).execute();
    await Promise.all([writeA, writeB]);
    expect((await product(a, 1))?.title).toBe('B');
  });

  it('writers that learn the row only after the statement (predicates) never leave the older value', async () => {
    const aCommitted = signal();
    const bPublished = signal();
    const a = instance({
      hooks: {
        beforePublish: async () => {
          aCommitted.fire();
          await bPublished.promise;
        },
      },
    });
    const b = instance();
    const writeA = a.db.update(products).set({ title: 'A' }).where(gt(products.price, '10')).execute();
    await aCommitted.promise;
    await b.db.update(products).set({ title: 'B' }).where(gt(products.price, '10'));
    bPublished.fire();
    await writeA;
    expect((await product(b, 3))?.title).toBe('B');
  });

  it('a reader that read the old row cannot overwrite a newer published row', async () => {
    const fillReached = signal();
    const releaseFill = signal();
    const reader = instance({
      hooks: {
        beforeFill: async () => {
          fillReached.fire();
          await releaseFill.promise;
        },
      },
    });
    const writer = instance();
    expect((await product(reader, 1))?.title).toBe('pen');
    await fillReached.promise;
    await writer.db.update(products).set({ title: 'new' }).where(eq(products.id, 1));
    releaseFill.fire();
    await reader.cache.flush();
    expect(reader.cache.stats().tables.products?.fillsRejected).toBe(1);
    reader.queries.reset();
    expect((await product(reader, 1))?.title).toBe('new');
    expect(reader.queries.count).toBe(0);
  });
});

describe('transactions', () => {
  it('a rolled-back transaction publishes nothing; a committed one evicts its rows at commit', async () => {
    const inst = instance();
    await inst.db
      .select()
      .from(products)
      .where(inArray(products.id, [1, 2]));
    await inst.cache.flush();
    const invalidations = inst.cache.stats().tables.products?.invalidations;
    await expect(
      inst.db.transaction(async (tx) => {
        await tx.update(products).set({ title: 'never' }).where(eq(products.id, 1));
        await tx.insert(products).values({ id: 9, title: 'never', price: '1' });
        tx.rollback();
      }),
    ).rejects.toThrow();
    expect(inst.cache.stats().tables.products?.invalidations).toBe(invalidations);
    inst.queries.reset();
    expect((await product(inst, 1))?.title).toBe('pen');
    expect(inst.queries.count).toBe(0);

    await inst.db.transaction(async (tx) => {
      await tx.update(products).set({ title: 'tx' }).where(eq(products.id, 1));
      await tx
        .transaction(async (sp) => {
          await sp.update(products).set({ title: 'sp' }).where(eq(products.id, 2));
          sp.rollback();
        })
        .catch(() => {});
      // Never published from inside the transaction.
      expect((await product(inst, 1))?.title).toBe('pen');
    });
    inst.queries.reset();
    expect((await product(inst, 1))?.title).toBe('tx');
    expect((await product(inst, 2))?.title).toBe('ink');
    expect(inst.queries.count).toBe(2);
  });
});

describe('two app instances sharing Redis', () => {
  it('the second instance reads the first one’s write from the cache', async () => {
    const a = instance();
    const b = instance();
    expect((await product(b, 1))?.title).toBe('pen');
    await b.cache.flush();
    await a.db.update(products).set({ title: 'from-a' }).where(eq(products.id, 1));
    b.queries.reset();
    expect((await product(b, 1))?.title).toBe('from-a');
    expect(b.queries.count).toBe(0);
  });
});

/** A TCP proxy in front of the test Redis that can be cut and restored, to fail the store for real. */
class CuttableProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly host: string,
    private readonly targetPort: number,
  ) {}

  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (address && typeof address === 'object') this.port = address.port;
    this.server = server;
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

describe('the store failing during write-through', () => {
  it('the write succeeds, and no stale row is served once the store is back', async () => {
    const target = new URL(redisUrl());
    const proxy = new CuttableProxy(target.hostname, Number(target.port || 6379));
    await proxy.up();
    const flaky = new Redis({
      host: '127.0.0.1',
      port: proxy.port,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 50,
    });
    // Errors are expected while the proxy is down; the store reports them through onError.
    flaky.on('error', () => {});
    await flaky.connect();
    try {
      const writer = instance({ redis: flaky, storeTimeout: '100ms' });
      const other = instance();
      expect((await product(writer, 1))?.title).toBe('pen');
      await writer.cache.flush();
      expect((await product(other, 1))?.title).toBe('pen');

      await proxy.down();
      await writer.db.update(products).set({ title: 'during-outage' }).where(eq(products.id, 1));
      expect((await writer.raw.select().from(products).where(eq(products.id, 1)))[0]?.title).toBe('during-outage');
      // This process knows its invalidation is undelivered: it reads the database meanwhile.
      expect((await product(writer, 1))?.title).toBe('during-outage');
      expect(writer.cache.stats().storeErrors).toBeGreaterThan(0);

      await proxy.up();
      if (flaky.status !== 'ready') await once(flaky, 'ready');
      await writer.cache.flush();
      expect((await product(other, 1))?.title).toBe('during-outage');
      expect((await product(writer, 1))?.title).toBe('during-outage');
    } finally {
      await proxy.down();
      flaky.disconnect();
    }
  });
});

/** A Drizzle client on another driver, with a count of the statements it sends. */
interface DriverClient {
  raw: PgDatabase<PgQueryResultHKT, typeof schema>;
  statements: () => number;
  close: () => Promise<void>;
}

async function driverClient(driver: 'postgres-js' | 'pglite'): Promise<DriverClient> {
  let statements = 0;
  if (driver === 'postgres-js') {
    const client = postgres(databaseUrl(), {
      max: 2,
      connection: { search_path: shop.database.schema },
      onnotice: () => {},
      debug: () => {
        statements++;
      },
    });
    const raw = drizzlePostgresJs(client, { schema });
    return { raw, statements: () => statements, close: () => client.end() };
  }
  const client = new PGlite();
  await client.exec(new PgDialect().sqlToQuery(SHOP_DDL).sql);
  await client.exec(
    "insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3), (3, 'pad', '12.00', 0)",
  );
  const query = client.query.bind(client);
  client.query = ((...args: Parameters<typeof query>) => {
    statements++;
    return query(...args);
  }) as typeof client.query;
  const raw = drizzlePglite(client, { schema });
  return { raw, statements: () => statements, close: () => client.close() };
}

describe.each(['postgres-js', 'pglite'] as const)('the %s driver', (driver) => {
  it('serves key reads from row entries and reads write-through writes back from the cache', async () => {
    const client = await driverClient(driver);
    const cache = createCache({ store: redisStore(shop.redis), policy: policy(namespace) });
    const db = withCache(client.raw, cache) as typeof client.raw;
    try {
      const byIds = (ids: number[]) => db.select().from(products).where(inArray(products.id, ids));
      expect(await byIds([1])).toEqual(await client.raw.select().from(products).where(eq(products.id, 1)));
      await cache.flush();
      const before = client.statements();
      const three = await byIds([3, 1, 2]);
      expect(client.statements() - before).toBe(1);
      expect(three.map((p) => p.id)).toEqual([3, 1, 2]);
      await cache.flush();

      await db.update(products).set({ title: 'quill' }).where(eq(products.id, 1));
      const partial = await db
        .update(products)
        .set({ stock: sql`${products.stock} + 1` })
        .where(gt(products.price, '5'))
        .returning({ id: products.id });
      expect(partial.map((p) => p.id).sort()).toEqual([2, 3]);
      const plain = await db.update(products).set({ stock: 0 }).where(eq(products.id, 3));
      const expected = await client.raw.update(products).set({ stock: 0 }).where(eq(products.id, 3));
      expect(Array.from(plain as unknown as unknown[])).toEqual(Array.from(expected as unknown as unknown[]));
      const reads = client.statements();
      const rows = await byIds([1, 2]);
      expect(client.statements()).toBe(reads);
      expect(rows).toEqual(
        await client.raw
          .select()
          .from(products)
          .where(inArray(products.id, [1, 2]))
          .orderBy(products.id),
      );
      expect(rows[0]?.title).toBe('quill');
    } finally {
      await cache.close();
      await client.close();
    }
  });
});

// On a single-connection client (a node-postgres Client), statements run in the order they reach
// the connection. A write-through write announces its row in Redis before its statement: a
// transaction the app opens right after issuing the write must not receive that statement
// (uncached Drizzle would have run and committed it first), and a row the transaction then rolls
// back must never be published.
import { eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { transactionControl } from '../../adapters/drizzle/manual-transaction.js';
import { createCache, definePolicy } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { databaseUrl, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisUrl } from '../support/redis.js';

const { users } = schema;
let database: IsolatedDatabase;
let client: pg.Client;

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
  await database.run("insert into users (name, email) values ('ada', 'ada@x'), ('bob', 'bob@x')");
  client = new pg.Client({ connectionString: databaseUrl(), options: `-c search_path=${database.schema}` });
  await client.connect();
});
afterAll(async () => {
  await client.end();
  await database.drop();
});

describe('a write-through write issued just before a transaction on the same connection', () => {
  it('runs and commits before the transaction, and the rolled-back transaction publishes nothing', async () => {
    let begun: () => void = () => {};
    const transactionBegun = new Promise<void>((resolve) => {
      begun = resolve;
    });
    const redis = new Redis(redisUrl());
    const cache = createCache({
      store: redisStore(redis),
      policy: definePolicy<typeof schema>({
        namespace: `single-w-${Math.random().toString(36).slice(2)}`,
        version: 1,
        defaults: { pattern: 'none' },
        tables: { users: { pattern: 'write-through', ttl: '1h' } },
      }),
      hooks: {
        // Holds the write between its announcement and its statement until the transaction's
        // callback runs; a transaction that waits for the write never gets there first (this
        // wait only bounds the test).
        afterIntent: () => Promise.race([transactionBegun, new Promise<void>((resolve) => setTimeout(resolve, 300))]),
      },
    });
    const raw = drizzle(client, { schema });
    const db = withCache(raw, cache);
    try {
      // Loads the catalog, so the only statements held below are the write's.
      await db.select().from(users).where(eq(users.id, 2));
      const write = db.update(users).set({ name: 'outside' }).where(eq(users.id, 2)).execute();
      const rolledBack = await db
        .transaction(async (tx) => {
          begun();
          await write;
          await tx.update(users).set({ name: 'inside' }).where(eq(users.id, 1));
          tx.rollback();
        })
        .then(
          () => false,
          () => true,
        );
      expect(rolledBack).toBe(true);
      // Uncached, the write ran before BEGIN: it committed.
      const truth = await raw.select().from(users).where(eq(users.id, 2));
      expect(truth[0]?.name).toBe('outside');
      await cache.flush();
      expect(await db.select().from(users).where(eq(users.id, 2))).toEqual(truth);
      expect((await db.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('ada');
    } finally {
      await cache.close();
      redis.disconnect();
    }
  });
});

describe('a transaction opened with raw SQL on the connection', () => {
  it('publishes nothing of a rolled-back one, caches nothing read inside it, and publishes a committed one at COMMIT', async () => {
    const redis = new Redis(redisUrl());
    const cache = createCache({
      store: redisStore(redis),
      policy: definePolicy<typeof schema>({
        namespace: `single-raw-${Math.random().toString(36).slice(2)}`,
        version: 1,
        defaults: { pattern: 'none' },
        tables: { users: { pattern: 'write-through', ttl: '1h' } },
      }),
    });
    const raw = drizzle(client, { schema });
    const db = withCache(raw, cache);
    const name = async (id: number) => (await db.select().from(users).where(eq(users.id, id)))[0]?.name;
    try {
      await database.run("update users set name = 'ada' where id = 1");
      expect(await name(1)).toBe('ada');
      await db.execute(sql`begin`);
      await db.update(users).set({ name: 'never' }).where(eq(users.id, 1));
      // Inside it, reads see its own uncommitted write, as uncached.
      expect(await name(1)).toBe('never');
      await db.execute(sql`rollback`);
      await cache.flush();
      expect(await name(1)).toBe('ada');

      await db.execute(sql`start transaction`);
      await db.update(users).set({ name: 'committed' }).where(eq(users.id, 1));
      await db.execute(sql`commit`);
      await cache.flush();
      expect(await name(1)).toBe('committed');
      expect((await raw.select().from(users).where(eq(users.id, 1)))[0]?.name).toBe('committed');
    } finally {
      await cache.close();
      redis.disconnect();
    }
  });
});

describe('transactionControl', () => {
  it('reads BEGIN, COMMIT and ROLLBACK in their spellings, and leaves savepoints and prepared transactions alone', () => {
    for (const sql of ['begin', 'BEGIN ISOLATION LEVEL SERIALIZABLE;', 'start transaction read only', 'begin work']) {
      expect(transactionControl(sql)).toEqual({ verb: 'begin' });
    }
    expect(transactionControl('commit')).toEqual({ verb: 'commit', chain: false });
    expect(transactionControl('end transaction')).toEqual({ verb: 'commit', chain: false });
    expect(transactionControl('commit and chain')).toEqual({ verb: 'commit', chain: true });
    expect(transactionControl('commit and no chain')).toEqual({ verb: 'commit', chain: false });
    expect(transactionControl('abort')).toEqual({ verb: 'rollback', chain: false });
    expect(transactionControl('rollback work and chain')).toEqual({ verb: 'rollback', chain: true });
    for (const sql of [
      'rollback to savepoint a',
      'rollback transaction to a',
      'commit prepared $$x$$',
      'begin; select 1',
      'savepoint a',
    ]) {
      expect(transactionControl(sql)).toBeUndefined();
    }
  });
});

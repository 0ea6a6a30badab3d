// Write-through and row entries against what PostgreSQL does beside the statement: cascades of a
// table into itself, BEFORE triggers and generated columns, upserts that hit another unique key,
// rejected statements after the intent, and a reader whose counter read follows the intent.
import { eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { type AnyPgColumn, integer, pgTable, text } from 'drizzle-orm/pg-core';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import { countQueries, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisClient } from '../support/redis.js';

const nodes = pgTable('nodes', {
  id: integer('id').primaryKey(),
  code: text('code').notNull().unique(),
  parentId: integer('parent_id').references((): AnyPgColumn => nodes.id, { onDelete: 'cascade' }),
  parentCode: text('parent_code').references((): AnyPgColumn => nodes.code, { onUpdate: 'cascade' }),
  label: text('label').notNull(),
});

const accounts = pgTable('accounts', {
  id: integer('id').primaryKey(),
  email: text('email').notNull().unique(),
  name: text('name').notNull(),
  slug: text('slug').generatedAlwaysAs(sql`lower(name)`),
  version: integer('version').notNull().default(0),
});

const schema = { nodes, accounts };

const DDL = `
  create table nodes (id integer primary key, code text not null unique,
    parent_id integer references nodes(id) on delete cascade,
    parent_code text references nodes(code) on update cascade, label text not null);
  create table accounts (id integer primary key, email text not null unique, name text not null,
    slug text generated always as (lower(name)) stored, version integer not null default 0);
  create function accounts_touch() returns trigger language plpgsql as $f$
    begin new.name := trim(new.name); new.version := coalesce(old.version, 0) + 1; return new; end $f$;
  create trigger accounts_touch before insert or update on accounts
    for each row execute function accounts_touch();
`;

let database: IsolatedDatabase;
let redis: Redis;
let namespace: string;
const open: TableCache[] = [];

beforeAll(async () => {
  database = await isolatedDatabase(sql.raw(DDL));
  redis = redisClient();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await database.drop();
  await redis.quit();
});
beforeEach(async () => {
  namespace = `wtr-${Math.random().toString(36).slice(2)}`;
  await database.run('truncate nodes, accounts');
  await database.run(
    "insert into nodes values (1, 'a', null, null, 'root'), (2, 'b', 1, 'a', 'child'), (3, 'c', 2, 'b', 'grandchild'); " +
      "insert into accounts (id, email, name) values (1, 'ada@x', 'Ada'), (2, 'bob@x', 'Bob')",
  );
});

type Hooks = Parameters<typeof createCache>[0]['hooks'];

/** One app instance: its own pool and cache over the shared Redis. */
function instance(hooks?: Hooks) {
  const pool = database.pool(3);
  const queries = countQueries(pool);
  const raw = drizzle(pool, { schema });
  const cache = createCache({
    store: redisStore(redis),
    policy: definePolicy<typeof schema>({
      namespace,
      version: 1,
      defaults: { pattern: 'none' },
      tables: { nodes: { pattern: 'write-through', ttl: '1h' }, accounts: { pattern: 'write-through', ttl: '1h' } },
    }),
    hooks,
  });
  open.push(cache);
  return { cache, db: withCache(raw, cache), raw, queries };
}

type Instance = ReturnType<typeof instance>;

const node = async (inst: Instance, id: number) => (await inst.db.select().from(nodes).where(eq(nodes.id, id)))[0];
const account = async (inst: Instance, id: number) =>
  (await inst.db.select().from(accounts).where(eq(accounts.id, id)))[0];
const stored = async (inst: Instance, id: number) =>
  (await inst.raw.select().from(accounts).where(eq(accounts.id, id)))[0];

function signal(): { promise: Promise<void>; fire: () => void } {
  let fire: () => void = () => {};
  const promise = new Promise<void>((r) => {
    fire = r;
  });
  return { promise, fire };
}

describe('a table whose foreign keys change its own rows', () => {
  it('a delete that cascades to child rows of the same table leaves none of them cached', async () => {
    const reader = instance();
    const writer = instance();
    expect((await node(reader, 2))?.label).toBe('child');
    expect((await node(reader, 3))?.label).toBe('grandchild');
    await reader.cache.flush();
    await writer.db.delete(nodes).where(eq(nodes.id, 1));
    expect(await node(reader, 2)).toBeUndefined();
    expect(await node(reader, 3)).toBeUndefined();
  });

  it('an update of a referenced unique column cascades to child rows, which are read back changed', async () => {
    const reader = instance();
    const writer = instance();
    expect((await node(reader, 2))?.parentCode).toBe('a');
    await reader.cache.flush();
    await writer.db.update(nodes).set({ code: 'z' }).where(eq(nodes.id, 1));
    expect((await node(reader, 2))?.parentCode).toBe('z');
    expect((await node(reader, 1))?.code).toBe('z');
  });

  it('the same inside a transaction: the cascaded rows are dropped at commit', async () => {
    const inst = instance();
    expect((await node(inst, 3))?.label).toBe('grandchild');
    await inst.cache.flush();
    await inst.db.transaction(async (tx) => {
      await tx.delete(nodes).where(eq(nodes.id, 2));
    });
    expect(await node(inst, 3)).toBeUndefined();
  });
});

describe('the published row is the one PostgreSQL stored', () => {
  it('an upsert that conflicts on another unique key publishes the existing row as triggers and generated columns left it', async () => {
    const inst = instance();
    const other = instance();
    expect((await account(other, 1))?.name).toBe('Ada');
    await other.cache.flush();
    // The values name id 7; the conflict is on email, so row 1 is the one updated.
    const returned = await inst.db
      .insert(accounts)
      .values({ id: 7, email: 'ada@x', name: '  ADA LOVELACE  ' })
      .onConflictDoUpdate({ target: accounts.email, set: { name: sql`excluded.name` } })
      .returning({ id: accounts.id });
    expect(returned).toEqual([{ id: 1 }]);
    const truth = await stored(inst, 1);
    expect(truth).toEqual({ id: 1, email: 'ada@x', name: 'ADA LOVELACE', slug: 'ada lovelace', version: 2 });
    other.queries.reset();
    expect(await account(other, 1)).toEqual(truth);
    expect(other.queries.count).toBe(0);
    expect(await account(other, 7)).toBeUndefined();
  });
});

describe('a statement rejected after its intent', () => {
  it('leaves the cached row served, and the next write of the row is published again', async () => {
    const inst = instance();
    const reader = instance();
    expect((await account(reader, 1))?.email).toBe('ada@x');
    await reader.cache.flush();
    const error = await inst.db
      .update(accounts)
      .set({ email: 'bob@x' })
      .where(eq(accounts.id, 1))
      .catch((e: unknown) => e);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('23505');
    reader.queries.reset();
    expect((await account(reader, 1))?.email).toBe('ada@x');
    expect(reader.queries.count).toBe(0);
    await inst.db.update(accounts).set({ email: 'ada@y' }).where(eq(accounts.id, 1));
    const truth = await stored(inst, 1);
    expect(truth?.email).toBe('ada@y');
    expect(await account(reader, 1)).toEqual(truth);
    expect(reader.queries.count).toBe(0);
  });
});

describe('a reader racing a keyed writer', () => {
  it('a reader that read the counter after the intent and the row before the commit cannot fill', async () => {
    const intended = signal();
    const resume = signal();
    const fillReached = signal();
    const releaseFill = signal();
    const writer = instance({
      afterIntent: async () => {
        intended.fire();
        await resume.promise;
      },
    });
    const reader = instance({
      beforeFill: async () => {
        fillReached.fire();
        await releaseFill.promise;
      },
    });
    const write = writer.db.update(accounts).set({ name: 'New' }).where(eq(accounts.id, 2)).execute();
    await intended.promise;
    // The reader reads the counter as the intent left it, and the row before the statement.
    expect((await account(reader, 2))?.name).toBe('Bob');
    await fillReached.promise;
    resume.fire();
    await write;
    releaseFill.fire();
    await reader.cache.flush();
    reader.queries.reset();
    expect((await account(reader, 2))?.name).toBe('New');
    expect(reader.queries.count).toBe(0);
  });
});

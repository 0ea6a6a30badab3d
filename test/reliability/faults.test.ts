import { DrizzleQueryError, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type ChaosDatabase, createDatabase, databaseUrl } from '../../chaos/database.js';
import { type RedisServer, startRedisServer } from '../../chaos/redis-server.js';
import { type CacheError, createCache, definePolicy } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';

// What each fault does to reads and writes (docs/reliability.md). Timing is measured by
// chaos/fault-figures.ts; these tests assert behaviour only: answers, errors and counters.

const people = pgTable('people', { id: integer('id').primaryKey(), name: text('name').notNull() });
const schema = { people };

let database: ChaosDatabase;
let server: RedisServer;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  database = await createDatabase('faults');
  await database.admin.query('create table people (id int primary key, name text not null)');
  server = await startRedisServer();
});
afterAll(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
  await server.stop();
  await database.drop();
});
beforeEach(async () => {
  server.thaw();
  await database.admin.query("truncate people; insert into people values (1, 'ada'), (2, 'bob')");
});

interface Options {
  namespace: string;
  failures?: number;
  cooldown?: '200ms' | '1h';
  pool?: pg.Pool;
}

function instance(options: Options) {
  const errors: CacheError[] = [];
  const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  const cache = createCache({
    store: redisStore(client),
    policy: definePolicy<typeof schema>({
      namespace: options.namespace,
      version: 1,
      tables: { people: { pattern: 'cache-aside' } },
    }),
    // Well above a loaded machine's hiccups: only a frozen or killed Redis makes a call time out.
    storeTimeout: '300ms',
    breaker: { failures: options.failures ?? 2, cooldown: options.cooldown ?? '200ms' },
    // Shorter than the waits below, so recovery shows within the test (default 2 s).
    recoveryQuarantine: '150ms',
    onError: (e) => errors.push(e),
  });
  const db = withCache(drizzle(options.pool ?? database.pool('app', 3), { schema }), cache);
  open.push({
    async close() {
      await cache.close();
      client.disconnect();
    },
  });
  const nameOf = async (id: number) => (await db.select().from(people).where(eq(people.id, id)))[0]?.name;
  return { cache, db, errors, nameOf, client };
}

const ns = () => `faults-${Math.random().toString(36).slice(2)}`;

describe('Redis hangs (SIGSTOP)', () => {
  it('answers every read from PostgreSQL; only reads before the breaker opens wait for the store', async () => {
    const { cache, errors, nameOf } = instance({ namespace: ns(), failures: 3, cooldown: '1h' });
    expect(await nameOf(1)).toBe('ada');
    await cache.flush();
    server.freeze();
    try {
      for (let i = 0; i < 10; i++) expect(await nameOf(1)).toBe('ada');
    } finally {
      server.thaw();
    }
    // Three reads timed out (one store error each) and opened the breaker; the seven after it
    // never touched the store: no timeout, no error, straight to PostgreSQL.
    expect(errors.filter((e) => e.code === 'E_STORE')).toHaveLength(3);
    expect(errors.every((e) => /timed out/.test(e.message))).toBe(true);
    expect(cache.stats()).toMatchObject({ breakerOpen: true, storeErrors: 3 });
    expect(cache.stats().tables.people?.bypasses).toBe(10);
  });

  it('recovers when Redis answers again: reads are hits again after the cooldown', async () => {
    const { cache, nameOf } = instance({ namespace: ns(), failures: 1, cooldown: '200ms' });
    expect(await nameOf(2)).toBe('bob');
    await cache.flush();
    server.freeze();
    expect(await nameOf(2)).toBe('bob');
    server.thaw();
    expect(cache.stats().breakerOpen).toBe(true);
    await new Promise((r) => setTimeout(r, 250));
    const hitsBefore = cache.stats().tables.people?.hits ?? 0;
    expect(await nameOf(2)).toBe('bob');
    expect(cache.stats().breakerOpen).toBe(false);
    // The recovery quarantine (reads bypass while every instance delivers lost invalidations).
    await new Promise((r) => setTimeout(r, 200));
    expect(await nameOf(2)).toBe('bob');
    expect(cache.stats().tables.people?.hits).toBeGreaterThan(hitsBefore);
  });

  it('never serves a stale read after recovery, although the invalidation of a write was lost', async () => {
    const { cache, db, nameOf } = instance({ namespace: ns(), failures: 1, cooldown: '200ms' });
    expect(await nameOf(1)).toBe('ada');
    await cache.flush();
    server.freeze();
    await db.update(people).set({ name: 'ada-2' }).where(eq(people.id, 1));
    expect(await nameOf(1)).toBe('ada-2');
    server.thaw();
    for (let i = 0; i < 5; i++) expect(await nameOf(1)).toBe('ada-2');
    await new Promise((r) => setTimeout(r, 250));
    for (let i = 0; i < 5; i++) expect(await nameOf(1)).toBe('ada-2');
    await cache.flush();
    expect(await nameOf(1)).toBe('ada-2');
  });

  it('an instance whose breaker is open still delivers the invalidations of its writes to the others', async () => {
    const namespace = ns();
    const writer = instance({ namespace, failures: 1, cooldown: '1h' });
    const reader = instance({ namespace, failures: 1, cooldown: '1h' });
    expect(await reader.nameOf(1)).toBe('ada');
    await reader.cache.flush();
    // The writer alone sees the store fail once: its breaker opens, the reader's stays closed.
    server.freeze();
    expect(await writer.nameOf(2)).toBe('bob');
    server.thaw();
    expect(writer.cache.stats().breakerOpen).toBe(true);
    expect(reader.cache.stats().breakerOpen).toBe(false);
    // Redis works again; the writer commits. The reader must not keep serving the old row.
    await writer.db.update(people).set({ name: 'ada-3' }).where(eq(people.id, 1));
    expect(await reader.nameOf(1)).toBe('ada-3');
  });
});

describe('Redis restarts (SIGKILL, data lost)', () => {
  it('serves from PostgreSQL while it is down and from fresh entries after; a write while down is never hidden', async () => {
    const { cache, db, errors, nameOf, client } = instance({ namespace: ns(), failures: 2, cooldown: '200ms' });
    expect(await nameOf(1)).toBe('ada');
    await cache.flush();
    await server.kill();
    try {
      for (let i = 0; i < 4; i++) expect(await nameOf(1)).toBe('ada');
      await db.update(people).set({ name: 'ada-down' }).where(eq(people.id, 1));
      expect(await nameOf(1)).toBe('ada-down');
    } finally {
      await server.start();
    }
    expect(errors.length).toBeGreaterThan(0);
    // ioredis reconnects with its own backoff (up to 2 s by default); then the breaker's cooldown.
    await waitFor(async () => client.status === 'ready');
    await new Promise((r) => setTimeout(r, 250));
    for (let i = 0; i < 3; i++) expect(await nameOf(1)).toBe('ada-down');
    // flush() delivers the lost invalidation now (the retry timer would, with backoff); then the
    // entry is filled again and served.
    await cache.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(await nameOf(1)).toBe('ada-down');
    await cache.flush();
    const hits = cache.stats().tables.people?.hits ?? 0;
    expect(await nameOf(1)).toBe('ada-down');
    expect(cache.stats().tables.people?.hits).toBe(hits + 1);
  });
});

describe('PostgreSQL errors reach the caller as the driver’s errors', () => {
  it('a terminated backend: DrizzleQueryError with the pg error (57P01) as cause, and nothing cached', async () => {
    const pool = database.pool('victim', 2);
    const { db, cache } = instance({ namespace: ns(), pool });
    const byName = async (name: string) =>
      (await db.select().from(people).where(eq(people.name, name))).map((p) => p.id);
    // Hold a lock so the cached read is in flight at the database, then kill its backend.
    const locker = await database.admin.connect();
    try {
      await locker.query('begin; lock table people in access exclusive mode');
      const read = db
        .select()
        .from(people)
        .where(eq(people.name, 'ada'))
        .catch((e: unknown) => e);
      await waitFor(async () => {
        const { rows } = await database.admin.query(
          "select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'",
          [`${database.schema}-victim`],
        );
        return (rows[0] as { n: number }).n > 0;
      });
      expect(await database.terminate('victim')).toBeGreaterThan(0);
      const error = await read;
      expect(error).toBeInstanceOf(DrizzleQueryError);
      expect((error as DrizzleQueryError).cause).toMatchObject({ code: '57P01' });
    } finally {
      await locker.query('rollback');
      locker.release();
    }
    await database.admin.query("insert into people values (3, 'ada')");
    await cache.flush();
    // The failed read filled nothing: the next one asks PostgreSQL.
    expect(await byName('ada')).toEqual([1, 3]);
  });

  it('PostgreSQL unreachable: a miss fails with the connection error as cause, a write fails too', async () => {
    const port = 1;
    const down = new pg.Pool({ connectionString: databaseUrl().replace(/:\d+\//, `:${port}/`), max: 1 });
    down.on('error', () => {});
    const { db } = instance({ namespace: ns(), pool: down });
    const read = await db
      .select()
      .from(people)
      .where(eq(people.name, 'ada'))
      .catch((e: unknown) => e);
    expect(read).toBeInstanceOf(DrizzleQueryError);
    expect((read as DrizzleQueryError).cause).toMatchObject({ code: 'ECONNREFUSED' });
    const write = await db
      .insert(people)
      .values({ id: 9, name: 'x' })
      .catch((e: unknown) => e);
    expect(write).toBeInstanceOf(DrizzleQueryError);
    const raw = await db.execute(sql`select 1`).catch((e: unknown) => e);
    expect(raw).toBeInstanceOf(DrizzleQueryError);
    await down.end();
  });

  it('a primary-key read (row entries) fails with the same error shape as uncached Drizzle', async () => {
    const down = new pg.Pool({ connectionString: databaseUrl().replace(/:\d+\//, ':1/'), max: 1 });
    down.on('error', () => {});
    const { db } = instance({ namespace: ns(), pool: down });
    const plain = drizzle(down, { schema });
    const cached = await db
      .select()
      .from(people)
      .where(eq(people.id, 1))
      .catch((e: unknown) => e);
    const uncached = await plain
      .select()
      .from(people)
      .where(eq(people.id, 1))
      .catch((e: unknown) => e);
    expect(uncached).toBeInstanceOf(DrizzleQueryError);
    expect((uncached as DrizzleQueryError).cause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(cached).toBeInstanceOf(DrizzleQueryError);
    // `error.cause` is the driver's error, as without tablecache (not a second DrizzleQueryError).
    expect((cached as DrizzleQueryError).cause).toMatchObject({ code: 'ECONNREFUSED' });
    await down.end();
  });

  it('a constraint violation is the pg error (23505), with the store down as well', async () => {
    const { db } = instance({ namespace: ns() });
    await server.kill();
    try {
      const error = await db
        .insert(people)
        .values({ id: 1, name: 'dup' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DrizzleQueryError);
      expect((error as DrizzleQueryError).cause).toMatchObject({ code: '23505' });
    } finally {
      await server.start();
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}

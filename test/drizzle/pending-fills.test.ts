// A miss's fill is sent after the caller got its result and, until Redis acknowledges it, serves
// this process's reads of the same generations. These tests hold one fill back (the beforeFill
// hook) and check what a pending fill may and may not answer. The reads are not primary-key reads:
// those use row entries, which never go through pending fills.
import { asc, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheError, createCache, definePolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { countQueries } from '../support/pg.js';
import { type OwnRedis, startOwnRedis } from '../support/redis-server.js';
import { useShopServices } from '../support/shop.js';

const { users } = schema;
const shop = useShopServices();
let namespace: string;

const policy = (ns: string) =>
  definePolicy<typeof schema>({
    namespace: ns,
    version: 1,
    defaults: { pattern: 'none' },
    tables: { users: { pattern: 'cache-aside', ttl: '1h' } },
  });

interface Instance {
  cache: TableCache;
  db: ReturnType<typeof drizzle<typeof schema>>;
  queries: { readonly count: number; reset(): void };
}

function instance(hooks?: Parameters<typeof createCache>[0]['hooks']): Instance {
  const pool = shop.database.pool(5);
  const queries = countQueries(pool);
  const cache = createCache({ store: redisStore(shop.redis), policy: policy(namespace), hooks });
  return shop.track({ cache, db: withCache(drizzle(pool, { schema }), cache), queries });
}

/** An instance whose first fill is held until `release()`: it stays pending in this process. */
function holdingFirstFill() {
  let release: () => void = () => {};
  let reached: () => void = () => {};
  const held = new Promise<void>((r) => {
    reached = r;
  });
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let armed = true;
  const inst = instance({
    beforeFill: async () => {
      if (!armed) return;
      armed = false;
      reached();
      await gate;
    },
  });
  return { ...inst, held, release };
}

/** Ada's name, read by email (a query entry, not a row entry). */
async function adaName(db: Pick<Instance['db'], 'select'>): Promise<string | undefined> {
  return (await db.select().from(users).where(eq(users.email, 'ada@x')))[0]?.name;
}

beforeEach(async () => {
  namespace = `pending-${Math.random().toString(36).slice(2)}`;
  await shop.database.run('truncate users, products, orders, payments restart identity cascade');
  await shop.database.run("insert into users (name, email) values ('ada', 'ada@x'), ('bob', 'bob@x')");
});

describe('a fill Redis has not acknowledged yet', () => {
  it.each([
    ['another instance sharing Redis', false],
    ['this instance', true],
  ] as const)('is never served after a write through %s invalidated it', async (_, sameInstance) => {
    const reader = holdingFirstFill();
    const writer = sameInstance ? reader : instance();
    try {
      expect(await adaName(reader.db)).toBe('ada');
      await reader.held;
      // While held, the pending fill answers this process (no database query): the path is live.
      reader.queries.reset();
      expect(await adaName(reader.db)).toBe('ada');
      expect(reader.queries.count).toBe(0);
      // The write's invalidation completes while the pre-write fill is still pending.
      await writer.db.update(users).set({ name: 'ada2' }).where(eq(users.email, 'ada@x'));
      reader.queries.reset();
      expect(await adaName(reader.db)).toBe('ada2');
      expect(reader.queries.count).toBe(1);
    } finally {
      reader.release();
    }
    await reader.cache.flush();
    expect(reader.cache.stats().tables.users?.fillsRejected).toBe(1);
    expect(await adaName(reader.db)).toBe('ada2');
    expect(await adaName(writer.db)).toBe('ada2');
  });

  it('is never served to a read that runs inside a transaction', async () => {
    const reader = holdingFirstFill();
    let inside: string | undefined;
    try {
      expect(await adaName(reader.db)).toBe('ada');
      await reader.held;
      // The transaction's write moves no generation before the commit: only the bypass protects it.
      const rolledBack = await reader.db
        .transaction(async (tx) => {
          await tx.update(users).set({ name: 'in-tx' }).where(eq(users.email, 'ada@x'));
          inside = await adaName(tx);
          tx.rollback();
        })
        .then(
          () => false,
          () => true,
        );
      expect(rolledBack).toBe(true);
    } finally {
      reader.release();
    }
    expect(inside).toBe('in-tx');
    await reader.cache.flush();
    expect(await adaName(reader.db)).toBe('ada');
  });
});

describe('a fill the store refuses', () => {
  let server: OwnRedis;
  beforeAll(async () => {
    server = await startOwnRedis();
    const admin = new Redis(server.url);
    // Reads and counters work; the fill script does not (NOPERM).
    await admin.call('ACL', 'SETUSER', 'noscripts', 'on', '>pw', '~*', '+@all', '-eval', '-evalsha');
    admin.disconnect();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('is dropped from the process: later reads ask PostgreSQL, and no reader gets an error', async () => {
    const errors: CacheError[] = [];
    const client = new Redis(server.url, { username: 'noscripts', password: 'pw', maxRetriesPerRequest: 1 });
    const pool = shop.database.pool(2);
    const queries = countQueries(pool);
    const cache = createCache({
      store: redisStore(client),
      policy: policy(namespace),
      onError: (e) => errors.push(e),
      breaker: { failures: 1000 },
      // Each refused fill is a failure and the next read a recovery: no quarantine, so reads look.
      recoveryQuarantine: false,
    });
    const db = withCache(drizzle(pool, { schema }), cache);
    try {
      const list = () => db.select().from(users).orderBy(asc(users.id));
      expect((await list()).map((u) => u.name)).toEqual(['ada', 'bob']);
      await cache.flush();
      expect((await list()).map((u) => u.name)).toEqual(['ada', 'bob']);
      await cache.flush();
      expect(queries.count).toBe(2);
      expect(cache.stats().tables.users).toMatchObject({ hits: 0, misses: 2, fills: 0 });
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(errors[0]?.message).toMatch(/NOPERM|permission/i);
    } finally {
      await cache.close();
      client.disconnect();
    }
  });
});

import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { asc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type ChaosDatabase, createDatabase } from '../../chaos/database.js';
import { type RedisServer, startRedisServer } from '../../chaos/redis-server.js';
import { type CacheError, createCache, definePolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';

// Marker values in parameters and row contents; then every string tablecache emits by default
// (span names, attributes, events, status messages; onError reports with their causes; errors
// it throws) is searched for them and for raw keys. Errors from the database are the driver's
// (Drizzle puts parameters in its own messages): tablecache must add nothing to them.

const PARAM = 'SECRET-PARAM-3f9c';
const ROW = 'SECRET-ROW-77ab';
const KEY_PREFIX = 'tc:{';

const accounts = pgTable('accounts', {
  id: integer('id').primaryKey(),
  email: text('email').notNull(),
  note: text('note'),
});
const schema = { accounts };

let database: ChaosDatabase;
let server: RedisServer;
let filler: Redis;
const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

beforeAll(async () => {
  database = await createDatabase('secrets');
  await database.admin.query(
    `create table accounts (id int primary key, email text not null unique, note text);
     insert into accounts values (1, '${PARAM}@x', '${ROW}'), (2, 'b@x', '${ROW}-2')`,
  );
  // A Redis that refuses writes once full (OOM), so fills fail with Redis reply errors.
  server = await startRedisServer({ args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'] });
  filler = new Redis(server.url);
  filler.on('error', () => {});
});
afterAll(async () => {
  filler.disconnect();
  await server.stop();
  await database.drop();
});

/** Every string reachable from `value` (own and inherited-enumerable properties, Buffers decoded). */
function strings(value: unknown, out: string[] = [], seen = new Set<unknown>(), depth = 0): string[] {
  if (depth > 8 || value === null || value === undefined) return out;
  if (typeof value === 'string') out.push(value);
  else if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    out.push(String(value));
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('latin1'));
  else if (typeof value === 'object' && !seen.has(value)) {
    seen.add(value);
    if (value instanceof Error) out.push(value.message, value.stack ?? '');
    for (const key of Object.getOwnPropertyNames(value)) {
      strings((value as Record<string, unknown>)[key], out, seen, depth + 1);
    }
  }
  return out;
}

function leaks(where: string, value: unknown): string[] {
  const found: string[] = [];
  for (const s of strings(value)) {
    for (const marker of [PARAM, ROW, KEY_PREFIX]) {
      if (s.includes(marker))
        found.push(
          `${where}: ${marker} in ${JSON.stringify(s.slice(Math.max(0, s.indexOf(marker) - 60), s.indexOf(marker) + 40))}`,
        );
    }
  }
  return found;
}

async function workload(cache: TableCache) {
  const db = withCache(drizzle(database.pool(`w${Math.random().toString(36).slice(2, 6)}`, 3), { schema }), cache);
  const thrown: unknown[] = [];
  const attempt = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (error) {
      thrown.push(error);
    }
  };
  for (let i = 0; i < 3; i++) {
    await attempt(() =>
      db
        .select()
        .from(accounts)
        .where(eq(accounts.email, `${PARAM}@x`)),
    );
    await attempt(() => db.select().from(accounts).where(eq(accounts.id, 1)));
    await attempt(() => db.select().from(accounts).orderBy(asc(accounts.id)));
    await cache.flush();
  }
  await attempt(() =>
    db
      .update(accounts)
      .set({ note: `${ROW}-updated` })
      .where(eq(accounts.email, `${PARAM}@x`)),
  );
  await attempt(() =>
    db.transaction(async (tx) => {
      await tx.insert(accounts).values({ id: 3, email: `${PARAM}-3@x`, note: ROW });
      await tx
        .select()
        .from(accounts)
        .where(eq(accounts.email, `${PARAM}-3@x`));
    }),
  );
  // Database errors: a unique violation and an invalid cast, both carrying the marker.
  await attempt(() => db.insert(accounts).values({ id: 9, email: `${PARAM}@x`, note: ROW }));
  await attempt(() => db.select().from(accounts).where(sql`${accounts.id} = ${PARAM}::int`));
  await attempt(() => db.execute(sql`select ${PARAM}::int`));
  // Cached read paths that fail in the database: a primary-key read and a list read.
  await attempt(() =>
    db
      .select()
      .from(accounts)
      .where(eq(accounts.id, PARAM as unknown as number)),
  );
  await attempt(() =>
    db
      .select()
      .from(accounts)
      .where(eq(accounts.note, sql`${PARAM}::int::text`)),
  );
  await attempt(() => cache.invalidateRow('accounts', { email: PARAM }));
  await cache.flush();
  return thrown;
}

describe('no parameter values, row contents or raw keys in what tablecache emits', () => {
  it('spans and onError reports while Redis works, refuses writes (OOM) and is down', async () => {
    const reports: CacheError[] = [];
    const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    const cacheIn = (namespace: string) =>
      createCache({
        store: redisStore(client),
        policy: definePolicy<typeof schema>({
          namespace,
          version: 1,
          tables: { accounts: { pattern: 'cache-aside' } },
        }),
        tracerProvider,
        onError: (e) => reports.push(e),
      });
    const thrown: unknown[] = [];
    const working = cacheIn('secrets');
    thrown.push(...(await workload(working)));
    await working.close();
    // Redis refuses every write (noeviction, a limit below what it uses); a fresh namespace then
    // misses and its fills fail (OOM). Filling it up instead left room at times: memory freed
    // after the filling (client buffers shrinking) took small writes.
    await filler.set('filler', 'x'.repeat(100_000));
    await filler.config('SET', 'maxmemory', '1');
    await expect(filler.set('probe', 'x')).rejects.toThrow(/OOM/);
    const full = cacheIn('secrets-oom');
    thrown.push(...(await workload(full)));
    expect(reports.some((e) => /OOM/.test(`${e.message} ${(e.cause as Error | undefined)?.message}`))).toBe(true);
    await server.kill();
    thrown.push(...(await workload(full)));
    await server.start();
    await full.close();
    client.disconnect();

    expect(reports.length).toBeGreaterThan(0);
    expect(thrown.length).toBeGreaterThan(5);
    const spans = exporter.getFinishedSpans();
    expect(spans.length).toBeGreaterThan(10);
    const found = [
      ...spans.flatMap((s) =>
        leaks(`span ${s.name}`, {
          name: s.name,
          attributes: s.attributes,
          events: s.events,
          status: s.status,
          links: s.links,
        }),
      ),
      ...reports.flatMap((e) => leaks(`onError ${e.code}`, e)),
      ...thrown
        .filter((e) => (e as CacheError).code !== undefined)
        .flatMap((e) => leaks(`thrown ${(e as CacheError).code}`, e)),
    ];
    expect([...new Set(found)]).toEqual([]);
  }, 60_000);

  it('errors from the database reach the caller exactly as uncached Drizzle raises them', async () => {
    const plain = drizzle(database.pool('plain', 2), { schema });
    const client = new Redis(server.url);
    const cache = createCache({
      store: redisStore(client),
      policy: definePolicy<typeof schema>({
        namespace: 'secrets-2',
        version: 1,
        tables: { accounts: { pattern: 'cache-aside' } },
      }),
      onError: () => {},
    });
    const db = withCache(plain, cache);
    const run = async (d: typeof plain) =>
      d
        .select()
        .from(accounts)
        .where(sql`${accounts.id} = ${PARAM}::int`)
        .catch((e: unknown) => e as Error);
    const [cached, uncached] = [(await run(db)) as Error, (await run(plain)) as Error];
    expect(cached.message).toBe(uncached.message);
    expect((cached.cause as Error).message).toBe((uncached.cause as Error).message);
    await cache.close();
    client.disconnect();
  });
});

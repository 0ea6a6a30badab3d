import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { asc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type ChaosDatabase, createDatabase, databaseUrl } from '../../chaos/database.js';
import { Prng } from '../../chaos/prng.js';
import { createCache, definePolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import { redisClient } from '../support/redis.js';

// Row-level security: the same SQL returns different rows per tenant, and the SQL text alone
// cannot tell. With `scope` reading the tenant from AsyncLocalStorage, entries are partitioned
// per tenant and nothing crosses; without it, one tenant's cached rows are served to the other.

const docs = pgTable('docs', {
  id: serial('id').primaryKey(),
  tenant: text('tenant').notNull(),
  body: text('body').notNull(),
  rev: integer('rev').notNull(),
});
const schema = { docs };
const TENANTS = ['acme', 'globex'] as const;
type Tenant = (typeof TENANTS)[number];

const role = `tc_rls_${randomBytes(4).toString('hex')}`;
let database: ChaosDatabase;
let redis: Redis;
const pools: pg.Pool[] = [];

/** A pool whose sessions run as the non-owner role; with `tenant`, app.tenant is set for the session. */
function pool(tenant?: Tenant): pg.Pool {
  const options = [
    `-c search_path=${database.schema}`,
    `-c role=${role}`,
    ...(tenant ? [`-c app.tenant=${tenant}`] : []),
  ];
  const p = new pg.Pool({ connectionString: databaseUrl(), max: 4, options: options.join(' ') });
  p.on('error', () => {});
  pools.push(p);
  return p;
}

beforeAll(async () => {
  database = await createDatabase('rls');
  const s = database.schema;
  await database.admin.query(`
    create role ${role} nologin;
    create table ${s}.docs (id serial primary key, tenant text not null default current_setting('app.tenant'), body text not null, rev int not null default 0);
    alter table ${s}.docs enable row level security;
    create policy tenant_rows on ${s}.docs using (tenant = current_setting('app.tenant', true)) with check (tenant = current_setting('app.tenant', true));
    grant usage on schema ${s} to ${role};
    grant select, insert, update, delete on ${s}.docs to ${role};
    grant usage on sequence ${s}.docs_id_seq to ${role};
  `);
  redis = redisClient();
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await redis.quit();
  await database.drop();
  await database.admin.end().catch(() => undefined);
  const cleanup = new pg.Client({ connectionString: databaseUrl() });
  await cleanup.connect();
  await cleanup.query(`drop role if exists ${role}`);
  await cleanup.end();
});

async function reseed(): Promise<void> {
  await database.admin.query(`truncate ${database.schema}.docs restart identity`);
  for (let i = 1; i <= 10; i++) {
    for (const t of TENANTS) {
      await database.admin.query(`insert into ${database.schema}.docs (tenant, body) values ($1, $2)`, [
        t,
        `${t}-seed-${i}`,
      ]);
    }
  }
}

/** Two tenant-bound clients and one shared client (tenant set per transaction), all on one cache. */
function setup(cache: TableCache) {
  const perTenant = {
    acme: withCache(drizzle(pool('acme'), { schema }), cache),
    globex: withCache(drizzle(pool('globex'), { schema }), cache),
  };
  const shared = withCache(drizzle(pool(), { schema }), cache);
  return { perTenant, shared };
}

const policy = (namespace: string) =>
  definePolicy<typeof schema>({ namespace, version: 1, tables: { docs: { pattern: 'cache-aside', ttl: '1h' } } });

describe('tenant isolation with row-level security', () => {
  it('with a scope: 10,000 mixed operations by two tenants, zero rows of one served to the other', async () => {
    await reseed();
    const tenant = new AsyncLocalStorage<Tenant>();
    const cache = createCache({
      store: redisStore(redis),
      policy: policy(`rls-${role}`),
      scope: () => tenant.getStore(),
    });
    const { perTenant, shared } = setup(cache);
    const rng = new Prng(0x7e4a47);
    let leaked = 0;
    let rowsSeen = 0;
    const counts: Record<string, number> = {};
    const check = (t: Tenant, rows: readonly { tenant: string }[]) => {
      rowsSeen += rows.length;
      for (const r of rows) if (r.tenant !== t) leaked++;
    };
    const op = async (t: Tenant, r: Prng): Promise<void> => {
      const db = perTenant[t];
      const id = r.between(1, 60);
      const kind = r.weighted([
        ['list', 35],
        ['point', 35],
        ['count', 5],
        ['insert', 2],
        ['update', 3],
        ['delete', 1],
        ['ro-tx', 19],
      ] as const);
      counts[kind] = (counts[kind] ?? 0) + 1;
      switch (kind) {
        case 'list':
          return check(t, await db.select().from(docs).orderBy(asc(docs.id)));
        case 'point':
          return check(t, await db.select().from(docs).where(eq(docs.id, id)));
        case 'count': {
          const n = await db.$count(docs);
          const own = await database.admin.query(
            `select count(*)::int as n from ${database.schema}.docs where tenant = $1`,
            [t],
          );
          // A count can race a concurrent insert or delete of the same tenant, never include the other's rows.
          if (n > (own.rows[0] as { n: number }).n + 8) leaked++;
          return;
        }
        case 'insert':
          await db.insert(docs).values({ tenant: t, body: `${t}-new`, rev: 0 });
          return;
        case 'update':
          check(
            t,
            await db
              .update(docs)
              .set({ rev: sql`${docs.rev} + 1` })
              .where(eq(docs.id, id))
              .returning(),
          );
          return;
        case 'delete':
          check(t, await db.delete(docs).where(eq(docs.id, id)).returning());
          return;
        case 'ro-tx':
          check(
            t,
            await shared.transaction(
              async (tx) => {
                await tx.execute(sql`select set_config('app.tenant', ${t}, true)`);
                const rows = await tx.select().from(docs).orderBy(asc(docs.id));
                const one = await tx.select().from(docs).where(eq(docs.id, id));
                return [...rows, ...one];
              },
              { accessMode: 'read only' },
            ),
          );
          return;
      }
    };
    const workers = Array.from({ length: 8 }, () => {
      const r = rng.fork();
      return (async () => {
        for (let i = 0; i < 1250; i++) {
          const t = r.pick(TENANTS);
          await tenant.run(t, () => op(t, r));
        }
      })();
    });
    await Promise.all(workers);
    await cache.flush();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(10_000);
    expect(rowsSeen).toBeGreaterThan(10_000);
    expect(leaked).toBe(0);
    // The cache was really used: the isolation is not the result of bypassing it.
    // (Writes every ~17 operations invalidate the table, so the hit ratio is low; hits are what matter.)
    expect(cache.stats().tables.docs?.hits).toBeGreaterThan(100);
    expect(cache.stats().tables.docs?.fills).toBeGreaterThan(100);
    await cache.close();
  }, 120_000);

  it('without a scope, one tenant is served the other tenant’s cached rows (why docs require a scope with RLS)', async () => {
    await reseed();
    const cache = createCache({ store: redisStore(redis), policy: policy(`rls-noscope-${role}`) });
    const { perTenant, shared } = setup(cache);
    const acmeList = await perTenant.acme.select().from(docs).orderBy(asc(docs.id));
    expect(acmeList.every((d) => d.tenant === 'acme')).toBe(true);
    const acmePoint = await perTenant.acme.select().from(docs).where(eq(docs.id, 1));
    expect(acmePoint[0]?.tenant).toBe('acme');
    await cache.flush();
    // Same SQL, same parameters, another tenant: the cached answer is acme's.
    const globexList = await perTenant.globex.select().from(docs).orderBy(asc(docs.id));
    const globexPoint = await perTenant.globex.select().from(docs).where(eq(docs.id, 1));
    expect(globexList.map((d) => d.tenant)).toContain('acme');
    expect(globexPoint[0]?.tenant).toBe('acme');
    // Transactions never use the shared cache, so they stay correct even without a scope.
    const inTx = await shared.transaction(
      async (tx) => {
        await tx.execute(sql`select set_config('app.tenant', 'globex', true)`);
        return tx.select().from(docs).orderBy(asc(docs.id));
      },
      { accessMode: 'read only' },
    );
    expect(inTx.every((d) => d.tenant === 'globex')).toBe(true);
    await cache.close();
  });
});

// `tablecache verify`: the verification of row entries against real Redis and PostgreSQL (run
// in-process with a SCAN-based key scanner), the report and its exit code, and the command's
// argument handling in a child process.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildCatalog } from '../../adapters/drizzle/catalog.js';
import { withCache } from '../../adapters/drizzle/index.js';
import { jsonReport, pgRowReader, renderReport, type VerifyReport, verify } from '../../cli/commands/verify.js';
import type { KeyScanCapable } from '../../src/engine/verify-rows.js';
import { globEscape, rowKeyPrefix } from '../../src/engine/verify-rows.js';
import { createCache, definePolicy, type TableCache } from '../../src/index.js';
import { KeySpace } from '../../src/keys.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { databaseUrl, type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisClient, redisUrl } from '../support/redis.js';

const { products, users, allTypes } = schema;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let database: IsolatedDatabase;
let redis: Redis;
let client: pg.PoolClient;
let namespace: string;
let cache: TableCache | undefined;

/** SCAN with MATCH and COUNT: what a Redis store offers operator tools. */
function scanner(r: Redis): KeyScanCapable {
  return {
    async *scanKeys(match, count) {
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', match, 'COUNT', count);
        cursor = next;
        yield* keys;
      } while (cursor !== '0');
    },
  };
}

beforeAll(async () => {
  database = await isolatedDatabase(SHOP_DDL);
  redis = redisClient();
  client = await database.pool(1).connect();
});
afterAll(async () => {
  client.release();
  await database.drop();
  await redis.quit();
});
beforeEach(async () => {
  namespace = `verify-${Math.random().toString(36).slice(2)}`;
  await database.run('truncate products, users, line_items, all_types restart identity cascade');
  await database.run(
    "insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3), (3, 'cap', '0.10', 0)",
  );
  await database.run("insert into users (name, email) values ('ada', 'ada@x'), ('bob', 'bob@x')");
  await database.run("insert into line_items values (1, 1, 'a'), (1, 2, 'b')");
  await database.run(`insert into all_types values (1, '2024-01-02 03:04:05.678', '2024-01-02 03:04:05+02',
    '2024-01-02 03:04:05', '2024-01-02', '2024-01-03', 9007199254740993, 42, 12.345, 1.5, true,
    '{"a": [1, {"b": null}], "c": "d"}', '{x,"y z"}', '{1,2}', '\\xdeadbeef',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:03:04')`);
});
afterEach(async () => {
  await cache?.close();
  cache = undefined;
});

const policy = () =>
  definePolicy<typeof schema>({
    namespace,
    version: 1,
    tables: {
      products: { pattern: 'cache-aside' },
      users: { pattern: 'write-through' },
      lineItems: { pattern: 'write-through' },
      allTypes: { pattern: 'cache-aside' },
    },
  });

/** The app: fills row entries of every table through primary-key reads. */
async function fillCache() {
  cache = createCache({ store: redisStore(redis), policy: policy() });
  const db = withCache(drizzle(database.pool(2), { schema }), cache);
  for (const id of [1, 2, 3]) await db.select().from(products).where(eq(products.id, id));
  for (const id of [1, 2]) await db.select().from(users).where(eq(users.id, id));
  await db.query.lineItems.findFirst({ where: (t, { and }) => and(eq(t.orderId, 1), eq(t.line, 2)) });
  await db.select().from(allTypes).where(eq(allTypes.id, 1));
  await cache.flush();
  return { db, cache };
}

async function run(tables: string[] = [], sample = 200, confirmMs = 20): Promise<VerifyReport> {
  const p = policy();
  const keys = new KeySpace('tc', p.namespace, p.version);
  return verify(
    {
      policy: p,
      catalog: buildCatalog(schema),
      keys,
      store: redisStore(redis),
      scanner: scanner(redis),
      fetch: pgRowReader(client),
    },
    { tables, sample, confirmMs },
  );
}

const byTable = (report: VerifyReport) => Object.fromEntries(report.tables.map((t) => [t.table, t]));

describe('verifying row entries', () => {
  it('finds no drift when the cache agrees with the database, for every column type', async () => {
    await fillCache();
    const report = await run();
    expect(report.drifted).toBe(0);
    const tables = byTable(report);
    expect(Object.keys(tables).sort()).toEqual(['all_types', 'line_items', 'products', 'users']);
    expect(tables.products).toMatchObject({ sampled: 3, checked: 3, drift: [] });
    expect(tables.users).toMatchObject({ sampled: 2, checked: 2 });
    expect(tables.line_items).toMatchObject({ sampled: 1, checked: 1 });
    expect(tables.all_types).toMatchObject({ sampled: 1, checked: 1, drift: [] });
  });

  it('reports changed and deleted rows by key hash, with the columns that differ', async () => {
    await fillCache();
    await database.run("update products set price = '2.00', stock = 9 where id = 2");
    await database.run('delete from products where id = 3');
    await database.run('update all_types set doc = \'{"a": 2}\' where id = 1');
    const report = await run();
    expect(report.drifted).toBe(3);
    const { products: p, all_types: t, users: u } = byTable(report);
    expect(u?.drift).toEqual([]);
    const kinds = p?.drift.map((d) => [d.kind, d.columns]).sort();
    expect(kinds).toEqual([
      ['changed', ['price', 'stock']],
      ['deleted', ['id', 'title', 'price', 'stock']],
    ]);
    expect(t?.drift.map((d) => d.columns)).toEqual([['doc']]);
    const keys = await redis.keys(`tc:{${namespace}:v1}:r:products:*`);
    for (const d of p?.drift ?? []) expect(keys.some((k) => k.endsWith(`:${d.keyHash}`))).toBe(true);

    const text = renderReport(report, 'namespace', false);
    expect(text).toMatch(/products\s+3\s+3\s+2/);
    expect(text).toContain('changed: price, stock');
    expect(text).toContain('deleted in the database');
    expect(text).not.toContain('2.00');
    expect(text).not.toContain('pen');
    const shown = renderReport(report, 'namespace', true);
    expect(shown).toContain('price: cached "7.25", database "2.00"');
    expect(shown).toContain('stock: cached 3, database 9');
    expect(JSON.stringify(jsonReport(report, false))).not.toContain('7.25');
    expect(JSON.stringify(jsonReport(report, true))).toContain('7.25');
  });

  it('skips entries the cache would not serve (outdated generations) and honours --table and --sample', async () => {
    const { cache: app } = await fillCache();
    await database.run("update products set title = 'changed' where id = 1");
    await app.invalidate('products');
    const report = await run(['products', 'line_items']);
    expect(report.tables.map((t) => t.table)).toEqual(['products', 'line_items']);
    expect(byTable(report).products).toMatchObject({ sampled: 3, checked: 0, drift: [] });
    expect((await run(['users'], 1)).tables[0]).toMatchObject({ sampled: 1, checked: 1 });
  });

  it('does not report a row the app evicts while the difference is being confirmed', async () => {
    const { db } = await fillCache();
    // The app's own write: committed before the database read, evicted right after it.
    await database.run("update products set title = 'new' where id = 1");
    const p = policy();
    const read = pgRowReader(client);
    const report = await verify(
      {
        policy: p,
        catalog: buildCatalog(schema),
        keys: new KeySpace('tc', p.namespace, p.version),
        store: redisStore(redis),
        scanner: scanner(redis),
        fetch: async (table, keys) => {
          const rows = await read(table, keys);
          await cache?.invalidateRow('products', 1);
          return rows;
        },
      },
      { tables: ['products'], sample: 200, confirmMs: 20 },
    );
    expect(byTable(report).products).toMatchObject({ checked: 3, drift: [] });
    const [row] = await db.select().from(products).where(eq(products.id, 1));
    expect(row?.title).toBe('new');
  });

  it('a table without row entries cannot be named', async () => {
    await expect(run(['payments'])).rejects.toThrow(/payments" has no row entries/);
    await expect(run(['nope'])).rejects.toThrow(/unknown table "nope"/);
  });

  it('matches only the namespace prefix of the table (glob characters escaped)', () => {
    const keys = new KeySpace('t[c]*', 'ns', 1);
    keys.addTable(buildCatalog(schema).tables.find((t) => t.id === 'products')!);
    const prefix = rowKeyPrefix(keys, 'products');
    expect(prefix.startsWith('t[c]*:{ns:v1}:r:products:')).toBe(true);
    expect(globEscape(prefix)).toBe(prefix.replace('t[c]*', 't\\[c\\]\\*'));
  });
});

describe('tablecache verify (command line)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tablecache-verify-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function runVerify(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'test/freshness/verify-entry.ts', ...args],
        { cwd: ROOT, timeout: 25_000, env: { ...process.env, REDIS_URL: '', DATABASE_URL: '' } },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  it('prints its help and rejects bad arguments with exit code 2', async () => {
    const help = await runVerify(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tablecache verify');
    expect(help.stdout).toContain('--show-values');

    const file = join(dir, 'policy.yaml');
    writeFileSync(file, `namespace: ${namespace}\nversion: 1\ntables:\n  products: { pattern: cache-aside }\n`);
    const common = ['--policy', file, '--schema', 'test/fixtures/shop-schema.ts', '--redis-url', redisUrl()];
    const noDb = await runVerify(common);
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toContain('missing --database-url');
    const badSample = await runVerify([...common, '--database-url', databaseUrl(), '--sample', '0']);
    expect(badSample.code).toBe(2);
    expect(badSample.stderr).toContain('invalid --sample');
    const badTable = await runVerify([...common, '--database-url', databaseUrl(), '--table', 'payments']);
    expect(badTable.code).toBe(2);
    expect(badTable.stderr).toContain('has no row entries');
  });
});

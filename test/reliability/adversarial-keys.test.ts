import { randomBytes } from 'node:crypto';
import { and, arrayContains, asc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { getTableConfig, integer, pgSchema, primaryKey, text } from 'drizzle-orm/pg-core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheable, withCache } from '../../adapters/drizzle/index.js';
import { type ChaosDatabase, createDatabase } from '../../chaos/database.js';
import { createCache, definePolicy, type TableCache } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import { countQueries } from '../support/pg.js';
import { redisClient } from '../support/redis.js';

// Names and key values built to collide under a naive key encoding: `a:b` + `c` against `a` +
// `b:c`, `{x}` against `x`, a space against its percent-encoding, NFC against NFD, `.` in schema
// and table names. Every table and row must get its own entries: never another one's data.

const tag = `rk${randomBytes(3).toString('hex')}_`;
const cols = { id: integer('id').primaryKey(), v: text('v').notNull() };
const named = (schema: string, table: string) => pgSchema(`${tag}${schema}`).table(table, cols);

const tables = {
  colonSchema: named('a:b', 'c'),
  colonTable: named('a', 'b:c'),
  dotSchema: named('a.b', 'c'),
  dotTable: named('a', 'b.c'),
  braces: named('p', '{x}'),
  plain: named('p', 'x'),
  space: named('p', 'sp ace'),
  percent: named('p', 'sp%20ace'),
  nfc: named('p', '\u00e9'),
  nfd: named('p', 'e\u0301'),
  emoji: named('😀 {s}', '表 :t'),
};
const keysText = pgSchema(`${tag}p`).table('keys_text', { k: text('k').primaryKey(), v: text('v').notNull() });
const keysPair = pgSchema(`${tag}p`).table(
  'keys_pair',
  { k1: text('k1').notNull(), k2: text('k2').notNull(), v: text('v').notNull() },
  (t) => [primaryKey({ columns: [t.k1, t.k2] })],
);
const tagged = pgSchema(`${tag}p`).table('tagged', {
  id: integer('id').primaryKey(),
  tags: text('tags').array().notNull(),
});
const schema = { ...tables, keysText, keysPair, tagged };

const TEXT_KEYS = ['a:b', 'a', 'b', '{x}', 'x', ' ', '', 'a b', 'a%20b', '\u00e9', 'e\u0301', '😀', 'ａ', '{a:v1}:q'];
const PAIRS: [string, string][] = [
  ['a:', 'b'],
  ['a', ':b'],
  ['a', 'b:'],
  ['', 'a:b'],
  ['a:b', ''],
  ['{', '}'],
  ['{}', ''],
];

let database: ChaosDatabase;
let redis: Redis;
let cache: TableCache;
let db: ReturnType<typeof drizzle<typeof schema>>;
let queries: { readonly count: number; reset(): void };
const schemas = new Set<string>();

const q = (ident: string) => `"${ident.replace(/"/g, '""')}"`;

beforeAll(async () => {
  database = await createDatabase('adv');
  for (const [name, table] of Object.entries(tables)) {
    const { schema: s, name: t } = tableName(table);
    if (!schemas.has(s)) {
      schemas.add(s);
      await database.admin.query(`create schema ${q(s)}`);
    }
    await database.admin.query(`create table ${q(s)}.${q(t)} (id int primary key, v text not null)`);
    await database.admin.query(`insert into ${q(s)}.${q(t)} values (1, $1), (2, $2)`, [`${name}-1`, `${name}-2`]);
  }
  const p = q(`${tag}p`);
  await database.admin.query(`create table ${p}.keys_text (k text primary key, v text not null)`);
  for (const [i, k] of TEXT_KEYS.entries())
    await database.admin.query(`insert into ${p}.keys_text values ($1, $2)`, [k, `t${i}`]);
  await database.admin.query(`create table ${p}.keys_pair (k1 text, k2 text, v text not null, primary key (k1, k2))`);
  for (const [i, [a, b]] of PAIRS.entries())
    await database.admin.query(`insert into ${p}.keys_pair values ($1, $2, $3)`, [a, b, `p${i}`]);
  await database.admin.query(`create table ${p}.tagged (id int primary key, tags text[] not null)`);
  await database.admin.query(`insert into ${p}.tagged values (1, '{"a,sb"}'), (2, '{a,b}'), (3, '{"o{\\"a\\":sx"}')`);
  redis = redisClient();
  cache = createCache({
    store: redisStore(redis),
    policy: definePolicy({ namespace: `adv {x}:${tag}`, version: 1, defaults: { pattern: 'cache-aside' } }),
  });
  const pool = database.pool('app', 4);
  queries = countQueries(pool);
  db = withCache(drizzle(pool, { schema }), cache);
});
afterAll(async () => {
  await cache.close();
  await redis.quit();
  for (const s of schemas) await database.admin.query(`drop schema if exists ${q(s)} cascade`);
  await database.admin.query(`drop schema if exists ${q(`${tag}p`)} cascade`);
  await database.drop();
});

function tableName(table: (typeof tables)[keyof typeof tables]): { schema: string; name: string } {
  const config = getTableConfig(table);
  return { schema: config.schema ?? 'public', name: config.name };
}

async function readAll() {
  const out: Record<string, { point: string | undefined; list: string[] }> = {};
  for (const [name, t] of Object.entries(tables)) {
    const point = (await db.select().from(t).where(eq(t.id, 1)))[0]?.v;
    const list = (await db.select().from(t).orderBy(asc(t.id))).map((r) => r.v);
    out[name] = { point, list };
  }
  return out;
}

describe('table and schema names that collide under naive key encodings', () => {
  it('every table serves its own rows, cached or not, before and after writes to the others', async () => {
    const expected = Object.fromEntries(
      Object.keys(tables).map((name) => [name, { point: `${name}-1`, list: [`${name}-1`, `${name}-2`] }]),
    );
    expect(await readAll()).toEqual(expected);
    await cache.flush();
    expect(await readAll()).toEqual(expected);
    for (const [name, t] of Object.entries(tables)) {
      await db
        .update(t)
        .set({ v: `${name}-new` })
        .where(eq(t.id, 1));
      (expected[name] as { point: string; list: string[] }).point = `${name}-new`;
      (expected[name] as { point: string; list: string[] }).list[0] = `${name}-new`;
      expect(await readAll()).toEqual(expected);
      await cache.flush();
    }
  });

  it('each of these tables gets its own cache entries: once warm, no read reaches PostgreSQL', async () => {
    await readAll();
    await cache.flush();
    await readAll();
    await cache.flush();
    const uncached: string[] = [];
    for (const [name, t] of Object.entries(tables)) {
      queries.reset();
      await db.select().from(t).where(eq(t.id, 1));
      await db.select().from(t).orderBy(asc(t.id));
      if (queries.count > 0) uncached.push(name);
    }
    expect(uncached).toEqual([]);
  });
});

describe('primary-key values with separators, braces, spaces and unicode', () => {
  it('text keys: each point read returns its own row, from the cache too', async () => {
    const read = async () => {
      const out: (string | undefined)[] = [];
      for (const k of TEXT_KEYS) out.push((await db.select().from(keysText).where(eq(keysText.k, k)))[0]?.v);
      return out;
    };
    const expected = TEXT_KEYS.map((_, i) => `t${i}`);
    expect(await read()).toEqual(expected);
    await cache.flush();
    queries.reset();
    expect(await read()).toEqual(expected);
    expect(queries.count).toBe(0);
    await db.update(keysText).set({ v: 'changed' }).where(eq(keysText.k, 'a:b'));
    expect(await read()).toEqual(expected.map((v, i) => (TEXT_KEYS[i] === 'a:b' ? 'changed' : v)));
  });

  it('composite keys whose parts join to the same string stay apart', async () => {
    const read = async () => {
      const out: (string | undefined)[] = [];
      for (const [a, b] of PAIRS) {
        out.push(
          (
            await db
              .select()
              .from(keysPair)
              .where(and(eq(keysPair.k1, a), eq(keysPair.k2, b)))
          )[0]?.v,
        );
      }
      return out;
    };
    const expected = PAIRS.map((_, i) => `p${i}`);
    expect(await read()).toEqual(expected);
    await cache.flush();
    expect(await read()).toEqual(expected);
  });
});

describe('parameter values that encode alike', () => {
  it('raw SQL with array parameters: ["a,sb"] and ["a","b"] are different entries', async () => {
    const byTags = async (tags: string[]) =>
      (
        await db.execute(
          cacheable(sql`select id from ${tagged} where tags @> ${sql.param(tags)}::text[] order by id`, {
            tables: [`${tag}p.tagged`],
          }),
        )
      ).rows;
    expect(await byTags(['a,sb'])).toEqual([{ id: 1 }]);
    await cache.flush();
    expect(await byTags(['a', 'b'])).toEqual([{ id: 2 }]);
  });

  it('prepared statements with an array placeholder: different values are different entries', async () => {
    const prepared = db
      .select({ id: tagged.id })
      .from(tagged)
      .where(arrayContains(tagged.tags, sql.placeholder('tags')))
      .prepare(`${tag}by_tags`);
    expect(await prepared.execute({ tags: ['a,sb'] })).toEqual([{ id: 1 }]);
    await cache.flush();
    expect(await prepared.execute({ tags: ['a', 'b'] })).toEqual([{ id: 2 }]);
    await cache.flush();
    expect(await prepared.execute({ tags: ['o{"a":sx'] })).toEqual([{ id: 3 }]);
  });
});

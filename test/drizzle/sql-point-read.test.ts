import { and, asc, eq, gt, inArray, or, relations, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { alias, integer, pgSchema, pgTable, primaryKey, QueryBuilder, serial, text } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PointRead, parsePointRead } from '../../adapters/drizzle/sql-scan.js';

const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// Relations created by this file start with sqlpoint_ so files can run in parallel.
const items = pgTable('sqlpoint_items', {
  id: serial('id').primaryKey(),
  name: text('name'),
  ownerId: integer('owner_id'),
});
const pairs = pgTable(
  'sqlpoint_pairs',
  { a: integer('a').notNull(), b: integer('b').notNull(), note: text('note') },
  (t) => [primaryKey({ columns: [t.a, t.b] })],
);
const ns = pgSchema('sqlpoint_ns');
const scoped = ns.table('scoped', { id: serial('id').primaryKey(), label: text('label') });
const odd = pgTable('sqlpoint "odd":{}', { id: serial('id').primaryKey(), 'we"ird': text('we"ird') });

const schema = {
  items,
  pairs,
  scoped,
  itemsRelations: relations(items, ({ one }) => ({
    owner: one(items, { fields: [items.ownerId], references: [items.id] }),
  })),
};
const pool = new pg.Pool({ connectionString: url, max: 2 });
const db = drizzle({ client: pool, schema });
const qb = new QueryBuilder();

beforeAll(async () => {
  await pool.query(`
    drop schema if exists sqlpoint_ns cascade;
    drop table if exists sqlpoint_items, sqlpoint_pairs, "sqlpoint ""odd"":{}";
    create schema sqlpoint_ns;
    create table sqlpoint_items (id serial primary key, name text, owner_id int);
    create table sqlpoint_pairs (a int not null, b int not null, note text, primary key (a, b));
    create table sqlpoint_ns.scoped (id serial primary key, label text);
    create table "sqlpoint ""odd"":{}" (id serial primary key, "we""ird" text);
    insert into sqlpoint_items (id, name) select g, 'item ' || g from generate_series(1, 9) g;
    insert into sqlpoint_pairs (a, b, note) select x, y, x || '-' || y from generate_series(1, 4) x, generate_series(1, 4) y;
    insert into sqlpoint_ns.scoped (id, label) values (1, 'one'), (2, 'two');
  `);
});

afterAll(async () => {
  await pool.query(`
    drop schema if exists sqlpoint_ns cascade;
    drop table if exists sqlpoint_items, sqlpoint_pairs, "sqlpoint ""odd"":{}";
  `);
  await pool.end();
});

type Built = { toSQL(): { sql: string; params: unknown[] } };

/**
 * Runs the query and checks the parse against PostgreSQL: the rows returned are exactly the rows
 * whose key columns equal one of the parsed keys (with the params substituted).
 */
async function expectKeysMatchRows(builder: Built, read: PointRead, keyColumns: string[]): Promise<void> {
  const { sql: text, params } = builder.toSQL();
  const fq = read.table.schema ? `"${read.table.schema}"."${read.table.name}"` : `"${read.table.name}"`;
  const all = await pool.query(`select ${keyColumns.map((c) => `"${c}"`).join(', ')} from ${fq}`);
  const wanted = all.rows.filter((row) =>
    read.keys.some((key) => Object.entries(key).every(([col, p]) => row[col] === params[p - 1])),
  );
  const got = await pool.query({ text, values: params, rowMode: 'array' });
  const limit = read.limitParam === undefined ? Number.POSITIVE_INFINITY : Number(params[read.limitParam - 1]);
  expect(got.rows.length).toBe(Math.min(wanted.length, limit));
}

describe('parsePointRead on the SQL Drizzle 0.45 emits', () => {
  it('select().from(t).where(eq(t.id, 1))', async () => {
    const b = db.select().from(items).where(eq(items.id, 3));
    expect(b.toSQL().sql).toBe(
      'select "id", "name", "owner_id" from "sqlpoint_items" where "sqlpoint_items"."id" = $1',
    );
    const read = parsePointRead(b.toSQL().sql);
    expect(read).toEqual({
      table: { name: 'sqlpoint_items' },
      columns: [{ column: 'id' }, { column: 'name' }, { column: 'owner_id' }],
      predicate: { id: 1 },
      keys: [{ id: 1 }],
    });
    await expectKeysMatchRows(b, read as PointRead, ['id']);
  });

  it('inArray and .limit()', async () => {
    const b = qb
      .select()
      .from(items)
      .where(inArray(items.id, [2, 4, 99]))
      .limit(10);
    const read = parsePointRead(b.toSQL().sql);
    expect(read).toEqual({
      table: { name: 'sqlpoint_items' },
      columns: [{ column: 'id' }, { column: 'name' }, { column: 'owner_id' }],
      predicate: { id: [1, 2, 3] },
      keys: [{ id: 1 }, { id: 2 }, { id: 3 }],
      limitParam: 4,
    });
    await expectKeysMatchRows(b, read as PointRead, ['id']);
  });

  it('a single-element inArray', () => {
    expect(
      parsePointRead(
        qb
          .select()
          .from(items)
          .where(inArray(items.id, [5]))
          .toSQL().sql,
      )?.predicate,
    ).toEqual({
      id: [1],
    });
  });

  it('partial selections keep column order', () => {
    const b = qb.select({ n: items.name, i: items.id }).from(items).where(eq(items.id, 1));
    expect(parsePointRead(b.toSQL().sql)?.columns).toEqual([{ column: 'name' }, { column: 'id' }]);
  });

  it('and(eq, eq) on a composite key', async () => {
    const b = db
      .select()
      .from(pairs)
      .where(and(eq(pairs.a, 2), eq(pairs.b, 3)));
    const read = parsePointRead(b.toSQL().sql);
    expect(read).toMatchObject({
      table: { name: 'sqlpoint_pairs' },
      predicate: { a: 1, b: 2 },
      keys: [{ a: 1, b: 2 }],
    });
    await expectKeysMatchRows(b, read as PointRead, ['a', 'b']);
  });

  it('and(eq, inArray) broadcasts the scalar over the list', async () => {
    const b = db
      .select()
      .from(pairs)
      .where(and(eq(pairs.a, 1), inArray(pairs.b, [2, 4])));
    const read = parsePointRead(b.toSQL().sql);
    expect(read).toMatchObject({
      predicate: { a: 1, b: [2, 3] },
      keys: [
        { a: 1, b: 2 },
        { a: 1, b: 3 },
      ],
    });
    await expectKeysMatchRows(b, read as PointRead, ['a', 'b']);
  });

  it('or(and(eq, eq), ...) lists composite keys position by position', async () => {
    const b = db
      .select()
      .from(pairs)
      .where(or(and(eq(pairs.a, 1), eq(pairs.b, 2)), and(eq(pairs.b, 4), eq(pairs.a, 3))));
    const read = parsePointRead(b.toSQL().sql);
    expect(read).toMatchObject({
      predicate: { a: [1, 4], b: [2, 3] },
      keys: [
        { a: 1, b: 2 },
        { a: 4, b: 3 },
      ],
    });
    await expectKeysMatchRows(b, read as PointRead, ['a', 'b']);
  });

  it('or(eq, eq) on one column', () => {
    const read = parsePointRead(
      qb
        .select()
        .from(items)
        .where(or(eq(items.id, 1), eq(items.id, 2)))
        .toSQL().sql,
    );
    expect(read?.predicate).toEqual({ id: [1, 2] });
  });

  it('db.query findFirst (alias and limit)', async () => {
    const b = db.query.items.findFirst({ where: eq(items.id, 7) });
    expect(b.toSQL().sql).toBe(
      'select "id", "name", "owner_id" from "sqlpoint_items" "items" where "items"."id" = $1 limit $2',
    );
    const read = parsePointRead(b.toSQL().sql);
    expect(read).toEqual({
      table: { name: 'sqlpoint_items' },
      alias: 'items',
      columns: [{ column: 'id' }, { column: 'name' }, { column: 'owner_id' }],
      predicate: { id: 1 },
      keys: [{ id: 1 }],
      limitParam: 2,
    });
    await expectKeysMatchRows(b, read as PointRead, ['id']);
  });

  it('db.query findMany with inArray, columns and limit', async () => {
    const b = db.query.items.findMany({ columns: { name: true }, where: inArray(items.id, [1, 8]), limit: 5 });
    const read = parsePointRead(b.toSQL().sql);
    expect(read).toMatchObject({
      alias: 'items',
      columns: [{ column: 'name' }],
      predicate: { id: [1, 2] },
      limitParam: 3,
    });
    await expectKeysMatchRows(b, read as PointRead, ['id']);
  });

  it('db.query findMany with a callback where and composite and()', () => {
    const b = db.query.pairs.findMany({ where: (p, { and, eq }) => and(eq(p.a, 1), eq(p.b, 1)) });
    expect(parsePointRead(b.toSQL().sql)).toMatchObject({ alias: 'pairs', predicate: { a: 1, b: 2 } });
  });

  it('pgSchema tables, qualified three ways', async () => {
    const plain = db.select().from(scoped).where(eq(scoped.id, 2));
    expect(plain.toSQL().sql).toContain('"sqlpoint_ns"."scoped"."id" = $1');
    const read = parsePointRead(plain.toSQL().sql);
    expect(read).toMatchObject({ table: { schema: 'sqlpoint_ns', name: 'scoped' }, predicate: { id: 1 } });
    await expectKeysMatchRows(plain, read as PointRead, ['id']);
    const relational = db.query.scoped.findFirst({ where: eq(scoped.id, 1) });
    expect(parsePointRead(relational.toSQL().sql)).toMatchObject({ alias: 'scoped', table: { schema: 'sqlpoint_ns' } });
    const aliased = alias(scoped, 's');
    expect(parsePointRead(qb.select().from(aliased).where(eq(aliased.id, 1)).toSQL().sql)).toMatchObject({
      alias: 's',
      predicate: { id: 1 },
    });
  });

  it('table and column names with quotes and punctuation', () => {
    const b = qb.select().from(odd).where(eq(odd.id, 1));
    expect(parsePointRead(b.toSQL().sql)).toEqual({
      table: { name: 'sqlpoint "odd":{}' },
      columns: [{ column: 'id' }, { column: 'we"ird' }],
      predicate: { id: 1 },
      keys: [{ id: 1 }],
    });
  });

  it('qualified select lists', () => {
    expect(
      parsePointRead('select "items"."id", "items"."name" from "sqlpoint_items" "items" where "items"."id" = $1'),
    ).toMatchObject({
      columns: [
        { table: 'items', column: 'id' },
        { table: 'items', column: 'name' },
      ],
    });
  });
});

describe('parsePointRead rejects everything else', () => {
  const rejected: [string, Built | string][] = [
    ['order by', db.query.items.findMany({ where: eq(items.id, 1), orderBy: asc(items.id) })],
    ['offset', db.query.items.findMany({ where: eq(items.id, 1), offset: 1 })],
    ['relational with', db.query.items.findFirst({ where: eq(items.id, 1), with: { owner: true } })],
    ['join', qb.select().from(items).leftJoin(pairs, eq(pairs.a, items.id)).where(eq(items.id, 1))],
    [
      'function in select list',
      qb
        .select({ n: sql`upper(${items.name})` })
        .from(items)
        .where(eq(items.id, 1)),
    ],
    ['count', qb.select({ n: sql`count(*)` }).from(items).where(eq(items.id, 1))],
    ['other operator', qb.select().from(items).where(gt(items.id, 1))],
    ['literal instead of a param', qb.select().from(items).where(sql`${items.id} = 1`)],
    ['empty inArray', qb.select().from(items).where(inArray(items.id, []))],
    [
      'or inside and',
      qb
        .select()
        .from(pairs)
        .where(and(or(eq(pairs.a, 1), eq(pairs.a, 2)), eq(pairs.b, 1))),
    ],
    [
      'same column twice',
      qb
        .select()
        .from(items)
        .where(and(eq(items.id, 1), eq(items.id, 2))),
    ],
    [
      'two IN lists',
      qb
        .select()
        .from(pairs)
        .where(and(inArray(pairs.a, [1, 2]), inArray(pairs.b, [1, 2]))),
    ],
    [
      'alternatives over different columns',
      qb
        .select()
        .from(pairs)
        .where(or(eq(pairs.a, 1), eq(pairs.b, 2))),
    ],
    ['no where', qb.select().from(items)],
    ['for update', qb.select().from(items).where(eq(items.id, 1)).for('update')],
    ['distinct', qb.selectDistinct().from(items).where(eq(items.id, 1))],
    ['select *', 'select * from "sqlpoint_items" where "sqlpoint_items"."id" = $1'],
    ['bare names', 'select id from sqlpoint_items where id = $1'],
    ['qualifier that is not the table', 'select "id" from "sqlpoint_items" where "other"."id" = $1'],
    ['table name once aliased', 'select "id" from "sqlpoint_items" "i" where "sqlpoint_items"."id" = $1'],
    ['literal limit', 'select "id" from "sqlpoint_items" where "sqlpoint_items"."id" = $1 limit 1'],
    ['param on the left', 'select "id" from "sqlpoint_items" where $1 = "sqlpoint_items"."id"'],
    ['trailing statement', 'select "id" from "sqlpoint_items" where "sqlpoint_items"."id" = $1; delete from "x"'],
    ['not a select', 'delete from "sqlpoint_items" where "sqlpoint_items"."id" = $1'],
  ];
  for (const [name, q] of rejected) {
    it(name, () => {
      const text = typeof q === 'string' ? q : q.toSQL().sql;
      expect(parsePointRead(text), text).toBeNull();
    });
  }

  it('garbage', () => {
    for (const text of ['', 'select', 'select "a" from', `select "a" from "t" where "t"."a" in (`, '((((']) {
      expect(parsePointRead(text)).toBeNull();
    }
  });
});

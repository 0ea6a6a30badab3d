import { eq, inArray } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendReturning, findReturning } from '../../adapters/drizzle/sql-scan.js';
import { CacheError } from '../../src/errors.js';

const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// Relations created by this file start with sqlret_ so files can run in parallel.
const things = pgTable('sqlret_things', {
  id: serial('id').primaryKey(),
  name: text('name'),
  returning: text('returning'),
  version: integer('version').default(0),
});

const pool = new pg.Pool({ connectionString: url, max: 2 });
const db = drizzle({ client: pool });

beforeAll(async () => {
  await pool.query(`
    drop table if exists sqlret_things, sqlret_log;
    create table sqlret_things (id serial primary key, name text, "returning" text, version int default 0);
    create table sqlret_log (id serial primary key, thing_id int);
  `);
});

afterAll(async () => {
  await pool.query('drop table if exists sqlret_things, sqlret_log');
  await pool.end();
});

/** Runs SQL inside a transaction that is rolled back; returns the result's field names and rows. */
async function runRolledBack(text: string, params: unknown[]): Promise<{ fields: string[]; rows: unknown[][] }> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(`insert into sqlret_things (id, name) values (101, 'one'), (102, 'two')`);
    const res = await client.query({ text, values: params, rowMode: 'array' });
    return { fields: res.fields.map((f) => f.name), rows: res.rows };
  } finally {
    await client.query('rollback');
    client.release();
  }
}

const at = (sql: string) => {
  const found = findReturning(sql);
  return found === null ? null : sql.slice(found.index, found.index + 'returning'.length);
};

describe('findReturning', () => {
  it('finds RETURNING in Drizzle insert / update / delete', () => {
    expect(at(db.insert(things).values({ name: 'x' }).returning().toSQL().sql)).toBe('returning');
    expect(at(db.update(things).set({ name: 'y' }).where(eq(things.id, 1)).returning().toSQL().sql)).toBe('returning');
    expect(at(db.delete(things).where(eq(things.id, 1)).returning({ id: things.id }).toSQL().sql)).toBe('returning');
    const upsert = db
      .insert(things)
      .values({ id: 1, name: 'x' })
      .onConflictDoUpdate({ target: things.id, set: { name: 'z' } })
      .returning({ id: things.id });
    expect(at(upsert.toSQL().sql)).toBe('returning');
  });

  it('returns the position of the keyword, even upper-case', () => {
    const text = `INSERT INTO t (a) VALUES ('returning') RETURNING a`;
    expect(findReturning(text)).toEqual({ index: text.lastIndexOf('RETURNING') });
  });

  it('ignores a column named "returning", strings, comments and RETURNING inside a CTE', () => {
    const noReturning = [
      db.insert(things).values({ name: 'x', returning: 'returning' }).toSQL().sql,
      db.update(things).set({ returning: 'v' }).where(eq(things.returning, 'w')).toSQL().sql,
      `delete from t where a = 'returning' -- returning a`,
      `update t set a = $$returning$$ /* returning */`,
      'with d as (delete from t returning id) insert into u select id from d',
      'with d as (delete from t returning id) select * from d',
    ];
    for (const text of noReturning) expect(findReturning(text), text).toBeNull();
  });

  it('finds the top-level RETURNING after a data-modifying CTE', () => {
    const text = 'with d as (delete from t returning id) insert into u select id from d returning u.id';
    expect(findReturning(text)?.index).toBe(text.lastIndexOf('returning'));
  });

  it('is null for anything but a single INSERT/UPDATE/DELETE', () => {
    for (const text of [
      'select 1 as returning',
      'merge into t using u on true when matched then delete',
      'insert into t values (1) returning a; insert into t values (2) returning a',
      '',
    ]) {
      expect(findReturning(text), text).toBeNull();
    }
  });
});

describe('appendReturning', () => {
  it('adds a RETURNING clause to a Drizzle update without one, and PostgreSQL returns the columns', async () => {
    const q = db
      .update(things)
      .set({ name: 'renamed' })
      .where(inArray(things.id, [101, 102]))
      .toSQL();
    const text = appendReturning(q.sql, ['"id"', '"version"']);
    expect(text).toBe(`${q.sql} returning "id", "version"`);
    const res = await runRolledBack(text, q.params);
    expect(res.fields).toEqual(['id', 'version']);
    expect(res.rows.map((r) => r[0]).sort()).toEqual([101, 102]);
  });

  it('extends an existing RETURNING list', async () => {
    const q = db.insert(things).values({ name: 'new' }).returning({ name: things.name }).toSQL();
    const text = appendReturning(q.sql, ['"id"', '"returning"']);
    expect(text).toBe(`${q.sql}, "id", "returning"`);
    const res = await runRolledBack(text, q.params);
    expect(res.fields).toEqual(['name', 'id', 'returning']);
    expect(res.rows[0]?.[0]).toBe('new');
  });

  it('works on a delete, an upsert and a write with a CTE', async () => {
    const del = db.delete(things).where(eq(things.id, 102)).toSQL();
    expect((await runRolledBack(appendReturning(del.sql, ['"id"']), del.params)).rows).toEqual([[102]]);
    const upsert = db
      .insert(things)
      .values({ id: 101, name: 'x' })
      .onConflictDoUpdate({ target: things.id, set: { name: 'z' } })
      .toSQL();
    const up = await runRolledBack(appendReturning(upsert.sql, ['"id"', '"name"']), upsert.params);
    expect(up.rows).toEqual([[101, 'z']]);
    const cte =
      'with d as (delete from sqlret_things where id = $1 returning id) insert into sqlret_log (thing_id) select id from d';
    const res = await runRolledBack(appendReturning(cte, ['"thing_id"']), [101]);
    expect(res).toEqual({ fields: ['thing_id'], rows: [[101]] });
  });

  it('strips a trailing semicolon, whitespace and comments first', async () => {
    const text = "update sqlret_things set name = 'a;b' where id = $1 ; -- done\n  /* really */ ";
    const out = appendReturning(text, ['"id"']);
    expect(out).toBe(`update sqlret_things set name = 'a;b' where id = $1 returning "id"`);
    expect((await runRolledBack(out, [101])).rows).toEqual([[101]]);
    expect(appendReturning('delete from t returning * ;', ['"x"'])).toBe('delete from t returning *, "x"');
  });

  it('accepts quoted names with escaped quotes', () => {
    expect(appendReturning('delete from t', ['"we""ird"', '"a b"'])).toBe('delete from t returning "we""ird", "a b"');
  });

  it('throws a CacheError for unquoted or unsafe column names', () => {
    for (const bad of ['id', '"a"b"', '""', '"x"; drop table y --', '"x", "y"', '"unterminated', 'x"']) {
      expect(() => appendReturning('delete from t', [bad]), bad).toThrow(CacheError);
    }
    expect(() => appendReturning('delete from t', ['id'])).toThrow(expect.objectContaining({ code: 'E_SQL_SHAPE' }));
  });

  it('throws for statements it cannot extend and for an empty column list', () => {
    expect(() => appendReturning('select 1', ['"a"'])).toThrow(CacheError);
    expect(() => appendReturning('delete from t; delete from u', ['"a"'])).toThrow(CacheError);
    expect(() => appendReturning('delete from t', [])).toThrow(CacheError);
  });
});

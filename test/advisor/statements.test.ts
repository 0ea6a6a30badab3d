import { describe, expect, it } from 'vitest';
import { classifyWrite, countKeyedWrites, writesByKey } from '../../src/advisor/index.js';

function pinned(sql: string): string[] | undefined {
  const write = classifyWrite(sql);
  return write === undefined ? undefined : [...write.pinned].sort();
}

describe('classifyWrite', () => {
  it('reads the kind and table of INSERT, UPDATE and DELETE, with an optional schema', () => {
    expect(classifyWrite('update "counters" set "n" = $1 where "counters"."id" = $2')).toMatchObject({
      kind: 'update',
      table: 'counters',
      schema: undefined,
    });
    expect(classifyWrite('DELETE FROM "Sales"."Orders" WHERE id = $1')).toMatchObject({
      kind: 'delete',
      schema: 'Sales',
      table: 'Orders',
    });
    expect(classifyWrite('insert into Items (ID) values ($1)')).toMatchObject({ kind: 'insert', table: 'items' });
    expect(classifyWrite('/* app=web */ -- note\n UPDATE ONLY t AS x SET a = $1 WHERE $2 = x.id')).toMatchObject({
      kind: 'update',
      table: 't',
    });
  });

  it('ignores statements that are not plain writes', () => {
    for (const sql of ['select * from t where id = $1', 'with x as (select 1) update t set a = $1', 'truncate t', '']) {
      expect(classifyWrite(sql), sql).toBeUndefined();
    }
  });

  it('finds columns pinned by =, IN and = ANY in the top-level conjuncts of WHERE', () => {
    expect(pinned('update "c" set "n" = "c"."n" + $1 where "c"."id" = $2')).toEqual(['id']);
    expect(pinned('delete from "t" where ("t"."a" = $1 and "t"."b" = $2) returning "t"."a"')).toEqual(['a', 'b']);
    expect(pinned('delete from t where id in ($1, $2, $3)')).toEqual(['id']);
    expect(pinned('delete from t where id = any($1::int[])')).toEqual(['id']);
    expect(pinned("update t set a = 1 where id = 'x'::uuid and (s = $1 or s = $2)")).toEqual(['id']);
    expect(pinned('update t set a = $1 where $2 = t.id')).toEqual(['id']);
  });

  it('pins nothing for ORs, ranges, joins, column comparisons and missing WHERE', () => {
    for (const sql of [
      'update t set x = $1 where id = $2 or id = $3',
      'update t set x = $1 where id > $2',
      'update t set x = $1 where id between $2 and $3',
      'update t set x = $1 from u where t.id = u.id and t.id = $2',
      'delete from t using u where t.id = u.id',
      'update t set x = $1 where id = other_id',
      'update t set x = $1',
      'delete from t where id = (select max(id) from t)',
    ]) {
      expect(pinned(sql), sql).toEqual([]);
    }
  });

  it('pins the column list of INSERT ... VALUES (with ON CONFLICT), nothing for INSERT ... SELECT', () => {
    expect(pinned('insert into "t" ("id", "name") values ($1, $2), ($3, $4) on conflict do nothing')).toEqual([
      'id',
      'name',
    ]);
    expect(pinned('insert into t as x (id) overriding system value values ($1)')).toEqual(['id']);
    expect(pinned('insert into t (name) select name from u')).toEqual([]);
    expect(pinned('insert into t default values')).toEqual([]);
  });

  it('writesByKey needs every primary-key column pinned', () => {
    const write = classifyWrite('update t set x = $1 where a = $2');
    if (write === undefined) throw new Error('not classified');
    expect(writesByKey(write, ['a'])).toBe(true);
    expect(writesByKey(write, ['a', 'b'])).toBe(false);
    expect(writesByKey(write, [])).toBe(false);
  });
});

describe('countKeyedWrites', () => {
  const tables = [
    { schema: 'app', name: 'counters', primaryKey: ['id'] },
    { schema: 'app', name: 'events', primaryKey: ['id'] },
  ];

  it('sums calls per table and the calls by primary key', () => {
    const counts = countKeyedWrites(
      [
        { query: 'update "counters" set "n" = "n" + $1 where "id" = $2', calls: 900 },
        { query: 'update counters set n = $1', calls: 100 },
        { query: 'insert into "app"."events" ("kind") values ($1)', calls: 40 },
        { query: 'insert into events (id, kind) values ($1, $2)', calls: 60 },
        { query: 'select * from counters where id = $1', calls: 5000 },
        { query: 'update other.counters set n = $1 where id = $2', calls: 7 },
        { query: 'update unknown set n = $1 where id = $2', calls: 7 },
      ],
      tables,
    );
    expect(counts).toEqual([
      { statements: 1000, byKey: 900 },
      { statements: 100, byKey: 60 },
    ]);
  });

  it('skips unqualified statements when two given tables share the name', () => {
    const counts = countKeyedWrites(
      [
        { query: 'update t set a = $1 where id = $2', calls: 3 },
        { query: 'update "b"."t" set a = $1 where id = $2', calls: 2 },
      ],
      [
        { schema: 'a', name: 't', primaryKey: ['id'] },
        { schema: 'b', name: 't', primaryKey: ['id'] },
      ],
    );
    expect(counts).toEqual([
      { statements: 0, byKey: 0 },
      { statements: 2, byKey: 2 },
    ]);
  });
});

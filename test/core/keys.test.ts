import { describe, expect, it } from 'vitest';
import type { TableInfo } from '../../src/catalog.js';
import { stableParams } from '../../src/hash.js';
import { encodeSegment, KeySpace, tableFingerprint } from '../../src/keys.js';

const table = (over: Partial<TableInfo> = {}): TableInfo => ({
  id: 'users',
  name: 'users',
  aliases: ['users'],
  columns: [
    { name: 'id', type: 'serial' },
    { name: 'name', type: 'text' },
  ],
  primaryKey: ['id'],
  kind: 'table',
  ...over,
});

describe('keys', () => {
  it('puts prefix, namespace, version and one hash tag in every key', () => {
    const keys = new KeySpace('tc', 'shop', 3);
    keys.addTable(table());
    for (const key of [
      keys.globalGeneration(),
      keys.queryGeneration('users'),
      keys.rowGeneration('users'),
      keys.queryEntry(['users'], 'select 1'),
      keys.rowEntry('users', '1'),
      keys.rowCounter('users', '1'),
      keys.writeBack('users', 'stream'),
    ]) {
      expect(key.startsWith('tc:{shop:v3}:')).toBe(true);
      expect(key.match(/[{}]/g)).toEqual(['{', '}']);
    }
  });

  it('changes every entry key when the policy version or the schema fingerprint changes', () => {
    const v1 = new KeySpace('tc', 'shop', 1);
    const v2 = new KeySpace('tc', 'shop', 2);
    v1.addTable(table());
    v2.addTable(table());
    expect(v1.queryEntry(['users'], 'q')).not.toBe(v2.queryEntry(['users'], 'q'));
    const migrated = new KeySpace('tc', 'shop', 1);
    migrated.addTable(table({ columns: [...table().columns, { name: 'email', type: 'text' }] }));
    expect(migrated.queryEntry(['users'], 'q')).not.toBe(v1.queryEntry(['users'], 'q'));
    expect(migrated.rowEntry('users', '1')).not.toBe(v1.rowEntry('users', '1'));
    expect(tableFingerprint(table({ columns: [{ name: 'id', type: 'bigint' }] }))).not.toBe(
      tableFingerprint(table({ columns: [{ name: 'id', type: 'integer' }] })),
    );
  });

  it('never lets separator characters in names make two names share a key segment', () => {
    const names = ['a:b', 'a%3Ab', 'a{b}', 'a b', 'ü', 'a', 'a.b', 'a/b', 'A', '', '%', '%25'];
    const encoded = names.map(encodeSegment);
    expect(new Set(encoded).size).toBe(names.length);
    for (const e of encoded) expect(e).not.toMatch(/[:{} ]/);
    const keys = new KeySpace('tc', 'n:{x}', 1);
    expect(keys.globalGeneration().match(/[{}]/g)).toEqual(['{', '}']);
  });

  it('contains no raw parameter values', () => {
    const keys = new KeySpace('tc', 'shop', 1);
    const key = keys.queryEntry(['users'], `select * from users where email = $1\u0001${stableParams(['secret@x'])}`);
    expect(key).not.toContain('secret');
    expect(keys.rowEntry('users', 'secret')).not.toContain('secret');
  });

  it('serializes parameters so values JSON would merge stay apart', () => {
    const distinct = [
      [1],
      ['1'],
      [1n],
      [true],
      ['true'],
      [null],
      [undefined],
      ['null'],
      [new Date(0)],
      [0],
      [-0],
      [Buffer.from('a')],
      ['a'],
      [[1, 2]],
      ['1,2'],
      [{ a: 1 }],
      [{ a: '1' }],
      [1, 2],
      ['1\u00002'],
      [['a,sb']],
      [['a', 'b']],
      [['a', 's1:b']],
      [{ 'a:1': 'b' }],
      [{ a: '1:b' }],
    ].map((p) => stableParams(p));
    expect(new Set(distinct).size).toBe(distinct.length);
    expect(stableParams([{ b: 1, a: 2 }])).toBe(stableParams([{ a: 2, b: 1 }]));
  });
});

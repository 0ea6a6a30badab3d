import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { textArrayLiteral } from '../../adapters/drizzle/pg-array.js';
import { databaseUrl } from '../support/pg.js';

let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
});

afterAll(async () => {
  await client.end();
});

describe('text array literals (one parameter per column of a flush batch)', () => {
  it('round-trip every element exactly through PostgreSQL, NULL and awkward texts included', async () => {
    const values = [
      'plain',
      '',
      'NULL',
      'null',
      'with "quotes"',
      'back\\slash',
      '\\"',
      '{braces},commas',
      ' leading and trailing ',
      'line\nbreak\ttab',
      'ünïcødé ✓ 🎉',
      null,
      '2025-01-02 03:04:05.678+00',
      '{"a": [1, "x\\"y"]}',
    ];
    const { rows } = await client.query<{ v: string | null; n: string }>(
      'select u.v, u.n::text as n from unnest($1::text::text[]) with ordinality as u(v, n) order by u.n',
      [textArrayLiteral(values)],
    );
    expect(rows.map((r) => r.v)).toEqual(values);
  });

  it('is empty for no rows', async () => {
    const { rows } = await client.query('select * from unnest($1::text::text[])', [textArrayLiteral([])]);
    expect(rows).toEqual([]);
  });
});

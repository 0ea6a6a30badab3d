import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWrite } from '../../adapters/drizzle/write-back-parse.js';
import { coalesce, type RowPlan } from '../../src/write-back/coalesce.js';
import { addDecimal } from '../../src/write-back/decimal.js';
import type { Change, RowWrite } from '../../src/write-back/ops.js';
import { canonicalDelta, canonicalValue, NOT_EXACT, parseColumnType } from '../../src/write-back/pg-types.js';
import { databaseUrl } from '../support/pg.js';

let client: pg.Client;
beforeAll(async () => {
  client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  await client.query(`set timezone = 'UTC'`);
});
afterAll(async () => {
  await client.end();
});

/** What PostgreSQL outputs for `value` stored as `type`, or undefined when it rejects it. */
async function pgText(value: unknown, type: string): Promise<string | null | undefined> {
  try {
    await client.query('savepoint s');
    // The text on the wire (the type's output function), not a cast to text (which differs for boolean).
    const r = await client.query<{ t: string | null }>({
      text: `select $1::${type} as t`,
      values: [value],
      types: { getTypeParser: () => (text: string) => text },
    });
    return r.rows[0]?.t ?? null;
  } catch {
    return undefined;
  } finally {
    await client.query('rollback to savepoint s').catch(() => undefined);
  }
}

/** Checks that every value whose canonical text we predict matches PostgreSQL's; returns how many were exact. */
async function agree(
  sqlType: string,
  values: readonly unknown[],
  same = (a: string, b: string) => a === b,
): Promise<number> {
  const type = parseColumnType(sqlType);
  if (!type) throw new Error(`unsupported ${sqlType}`);
  let exact = 0;
  await client.query('begin');
  try {
    for (const value of values) {
      const predicted = canonicalValue(type, value);
      if (predicted === NOT_EXACT) continue;
      const actual = await pgText(value, type.cast);
      expect(actual, `${sqlType} ${JSON.stringify(String(value))}`).not.toBeUndefined();
      if (predicted === null) expect(actual).toBeNull();
      else
        expect(same(predicted, actual as string), `${sqlType} ${String(value)}: ${predicted} vs ${actual}`).toBe(true);
      exact++;
    }
  } finally {
    await client.query('rollback');
  }
  return exact;
}

const rand = (n: number) => Math.floor(Math.random() * n);
const digits = (n: number) => Array.from({ length: n }, () => String(rand(10))).join('');

describe('canonical text matches PostgreSQL output', () => {
  it('integers, numeric and numeric(p, s), including exponents and rounding', async () => {
    const ints = [0, -1, 2147483647, '  42 ', '+7', '-0', 32767, 9007199254740991n, '9223372036854775807'];
    expect(await agree('integer', ints)).toBeGreaterThan(5);
    expect(await agree('smallint', [32767, -32768, '12'])).toBe(3);
    expect(await agree('bigint', ints)).toBe(ints.length);
    const decimals: unknown[] = [
      '1.50e1',
      '1e3',
      '-0.00',
      '.5',
      '5.',
      '  +0012.3400 ',
      0.1 + 0.2,
      1e21,
      1.5e-7,
      123456789n,
      'NaN',
    ];
    for (let i = 0; i < 200; i++) {
      const whole = digits(1 + rand(12));
      const frac = rand(2) ? `.${digits(rand(8))}` : '';
      const exp = rand(4) === 0 ? `e${rand(2) ? '-' : ''}${rand(12)}` : '';
      decimals.push(`${rand(2) ? '-' : ''}${whole}${frac}${exp}`);
    }
    expect(await agree('numeric', decimals)).toBeGreaterThan(200);
    expect(await agree('numeric(10, 2)', decimals)).toBeGreaterThan(50);
    expect(await agree('numeric(5)', ['1.5', '-2.5', '99999.4', '0.49'])).toBe(4);
  });

  it('doubles (decoded the same), booleans, text, varchar(n), uuid and bytea', async () => {
    const floats: unknown[] = [
      0.1 + 0.2,
      -0,
      1e21,
      5e-324,
      1.7976931348623157e308,
      '1e-5',
      'NaN',
      '-Infinity',
      ' 3.25 ',
    ];
    for (let i = 0; i < 100; i++) floats.push((Math.random() - 0.5) * 10 ** (rand(40) - 20));
    expect(
      await agree(
        'double precision',
        floats,
        (a, b) => Object.is(Number.parseFloat(a), Number.parseFloat(b)) || (a === 'NaN' && b === 'NaN'),
      ),
    ).toBe(floats.length);
    expect(await agree('boolean', [true, false, 't', 'FALSE'])).toBe(4);
    expect(await agree('text', ['', 'a\nb', '\u00e9\u{1F600}', "'; drop table x; --"])).toBe(4);
    expect(await agree('varchar(3)', ['abc', 'ab   ', 'a'])).toBe(3);
    expect(
      await agree('uuid', [
        randomUUID(),
        randomUUID().toUpperCase(),
        `{${randomUUID()}}`,
        randomUUID().replace(/-/g, ''),
      ]),
    ).toBe(4);
    expect(await agree('bytea', [Buffer.from([0, 1, 255]), Buffer.alloc(0), '\\xDEADbeef'])).toBe(3);
  });

  it('timestamps, timestamptz and dates in ISO forms, with offsets', async () => {
    const times: unknown[] = [
      '2024-01-01T10:00:00.000Z',
      '2024-02-29 23:59:59.999999',
      '2024-01-01 10:00',
      '0099-12-31T00:00:00+14:00',
    ];
    for (let i = 0; i < 100; i++) {
      const d = new Date(rand(4102444800000));
      const iso = d.toISOString();
      const offset =
        rand(3) === 0 ? 'Z' : rand(2) ? `+${String(rand(15)).padStart(2, '0')}:${rand(2) ? '30' : '00'}` : '-05';
      times.push(rand(2) ? iso : `${iso.slice(0, 19)}.${digits(rand(7))}${offset}`);
    }
    expect(await agree('timestamp', times)).toBeGreaterThan(50);
    expect(await agree('timestamp(3)', times)).toBeGreaterThan(20);
    expect(await agree('timestamp with time zone', times)).toBeGreaterThan(50);
    expect(await agree('date', times)).toBeGreaterThan(50);
  });

  it('jsonb: keys ordered and deduplicated, numbers as numeric', async () => {
    const docs: unknown[] = [
      '{"b": 1, "aa": 2, "a": [1, 1.0, 1e2, -0, 1E-2], "a": 3, "é": 1, "z": 1}',
      '[]',
      '"x"',
      '{"nested": {"y": [true, false, null], "x": {"b": 2, "a": 1}}}',
      { z: 1, a: 2 },
    ];
    const randomJson = (depth: number): unknown => {
      const pick = rand(depth > 2 ? 4 : 6);
      if (pick === 0)
        return rand(2) ? Number(`${rand(2) ? '-' : ''}${digits(1 + rand(5))}.${digits(rand(4))}`) : rand(1000);
      if (pick === 1) return `s${digits(rand(3))}\u00e9`;
      if (pick === 2) return rand(2) === 0;
      if (pick === 3) return null;
      if (pick === 4) return Array.from({ length: rand(4) }, () => randomJson(depth + 1));
      return Object.fromEntries(Array.from({ length: rand(5) }, () => [`k${digits(rand(4))}`, randomJson(depth + 1)]));
    };
    for (let i = 0; i < 100; i++) docs.push(JSON.stringify(randomJson(0)));
    const sameJson = (a: string, b: string) => JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
    expect(await agree('jsonb', docs, sameJson)).toBe(docs.length);
  });

  it('refuses what it cannot predict (fractions for integers, too many decimals, lone surrogates, local times)', () => {
    const t = (s: string) => parseColumnType(s)!;
    expect(canonicalValue(t('integer'), 1.5)).toBe(NOT_EXACT);
    expect(canonicalValue(t('integer'), 2 ** 31)).toBe(NOT_EXACT);
    expect(canonicalValue(t('text'), 'a\u0000b')).toBe(NOT_EXACT);
    expect(canonicalValue(t('text'), '\ud800')).toBe(NOT_EXACT);
    expect(canonicalValue(t('varchar(2)'), 'abc')).toBe(NOT_EXACT);
    expect(canonicalValue(t('timestamp with time zone'), '2024-01-01 10:00:00')).toBe(NOT_EXACT);
    expect(canonicalValue(t('timestamp(3)'), '2024-01-01 10:00:00.1234')).toBe(NOT_EXACT);
    expect(canonicalValue(t('jsonb'), '{"a": "\\u0000"}')).toBe(NOT_EXACT);
    expect(canonicalValue(t('numeric(4, 2)'), '123.4')).toBe(NOT_EXACT);
    expect(canonicalDelta(t('integer'), 0.5)).toBe(NOT_EXACT);
    expect(canonicalDelta(t('numeric(10, 2)'), '0.001')).toBe(NOT_EXACT);
    expect(canonicalDelta(t('numeric(10, 2)'), '0.100')).toBe('0.10');
    expect(canonicalDelta(t('double precision'), 1)).toBe(NOT_EXACT);
    for (const unsupported of ['real', 'interval', 'text[]', 'integer[]', 'character(3)', 'time', 'inet']) {
      expect(parseColumnType(unsupported), unsupported).toBeUndefined();
    }
  });

  it('adds decimals exactly as PostgreSQL does', async () => {
    for (let i = 0; i < 200; i++) {
      const a = `${rand(2) ? '-' : ''}${digits(1 + rand(20))}${rand(2) ? `.${digits(1 + rand(6))}` : ''}`.replace(
        /^(-?)0+(\d)/,
        '$1$2',
      );
      const b = `${rand(2) ? '-' : ''}${digits(1 + rand(20))}${rand(2) ? `.${digits(1 + rand(6))}` : ''}`.replace(
        /^(-?)0+(\d)/,
        '$1$2',
      );
      const ca = canonicalValue(parseColumnType('numeric')!, a) as string;
      const cb = canonicalValue(parseColumnType('numeric')!, b) as string;
      const r = await client.query<{ t: string }>('select ($1::numeric + $2::numeric)::text as t', [ca, cb]);
      expect(addDecimal(ca, cb), `${ca} + ${cb}`).toBe(r.rows[0]?.t);
    }
  });
});

describe('coalescing', () => {
  type State = { exists: false } | { exists: true; cols: Record<string, string> };
  const DEFAULTS: Record<string, string> = { a: 'v100', b: 'v7' };

  const applyChanges = (cols: Record<string, string>, changes: readonly Change[]): Record<string, string> => {
    const out = { ...cols };
    for (const c of changes) {
      if (c.k === 's') out[c.c] = c.v === 'u' ? (DEFAULTS[c.c] as string) : c.v;
      else if (out[c.c] !== 'n') out[c.c] = `v${addDecimal((out[c.c] as string).slice(1), c.v)}`;
    }
    return out;
  };
  const insertCols = (values: readonly Change[]) => applyChanges({ a: 'n', b: 'n' }, values);

  /** What the database does with one statement; 'error' for a duplicate key (the statement then changes nothing). */
  const sequential = (state: State, w: RowWrite): State | 'error' => {
    switch (w.k) {
      case 'del':
        return { exists: false };
      case 'ins':
        return state.exists ? 'error' : { exists: true, cols: insertCols(w.v ?? []) };
      case 'insn':
        return state.exists ? state : { exists: true, cols: insertCols(w.v ?? []) };
      case 'ups':
        return state.exists
          ? { exists: true, cols: applyChanges(state.cols, w.s ?? []) }
          : { exists: true, cols: insertCols(w.v ?? []) };
      case 'upd':
        return state.exists ? { exists: true, cols: applyChanges(state.cols, w.s ?? []) } : state;
    }
  };

  /** What the flusher's statements do with one row plan. */
  const planned = (state: State, plan: RowPlan): State | 'error' => {
    let s = state;
    for (const round of plan.rounds) {
      if (round.del) s = { exists: false };
      if (round.ins) {
        const values = [...round.ins.values].map(([c, v]): Change => ({ k: 's', c, v }));
        if (round.ins.kind === 'ins' && s.exists) return 'error';
        if (!s.exists) s = { exists: true, cols: insertCols(values) };
        else if (round.ins.kind === 'ups') {
          const ops = [...(round.ins.conflict ?? new Map())].map(
            ([c, op]): Change => ('delta' in op ? { k: 'd', c, v: op.delta } : { k: 's', c, v: op.set }),
          );
          s = { exists: true, cols: applyChanges(s.cols, ops) };
        }
      }
      if (round.upd && s.exists) {
        const ops = [...round.upd].map(
          ([c, op]): Change => ('delta' in op ? { k: 'd', c, v: op.delta } : { k: 's', c, v: op.set }),
        );
        s = { exists: true, cols: applyChanges(s.cols, ops) };
      }
    }
    return s;
  };

  const randomChange = (allowDefault: boolean): Change => {
    const c = rand(2) ? 'a' : 'b';
    if (rand(2)) return { k: 'd', c, v: String(rand(7) - 3) };
    const values = ['v1', 'v2', 'n', ...(allowDefault ? ['u'] : [])];
    return { k: 's', c, v: values[rand(values.length)] as string };
  };
  const randomWrite = (): RowWrite => {
    const kinds: RowWrite['k'][] = ['ins', 'insn', 'ups', 'upd', 'del'];
    const k = kinds[rand(kinds.length)] as RowWrite['k'];
    const v: Change[] = ['a', 'b'].map((c) => ({ k: 's', c, v: ['v3', 'n', 'u'][rand(3)] as string }));
    // A statement assigns each column at most once.
    const first = randomChange(k === 'ups');
    const second = randomChange(k === 'ups');
    const s = rand(2) && second.c !== first.c ? [first, second] : [first];
    if (k === 'del') return { k, pk: ['1'] };
    if (k === 'upd') return { k, pk: ['1'], s };
    if (k === 'ups') return { k, pk: ['1'], v, s };
    return { k, pk: ['1'], v };
  };

  it('gives the same outcome as applying the writes one by one, for random histories', () => {
    let failing = 0;
    for (let trial = 0; trial < 5000; trial++) {
      const writes = Array.from({ length: 1 + rand(8) }, randomWrite);
      const initial: State = rand(2) ? { exists: false } : { exists: true, cols: { a: 'v5', b: 'n' } };
      // One by one, a rejected statement changes nothing and the next ones still run.
      let expected: State = initial;
      let rejected = false;
      for (const w of writes) {
        const next = sequential(expected, w);
        if (next === 'error') rejected = true;
        else expected = next;
      }
      const [plan] = coalesce(writes.map((write, i) => ({ id: `1-${i}`, write })));
      const actual = planned(initial, plan as RowPlan);
      const context = JSON.stringify({ initial, writes });
      if (!rejected) expect(actual, context).toEqual(expected);
      else {
        // A history with a write the database rejects: the row fails as a whole (dead-lettered), or
        // folding dropped the rejected write without changing what the others do.
        failing++;
        if (actual !== 'error') expect(actual, context).toEqual(expected);
      }
    }
    expect(failing).toBeGreaterThan(0);
  });

  it('folds counters into one update and keeps rows apart', () => {
    const writes = Array.from({ length: 1000 }, (_, i) => ({
      id: `1-${i}`,
      write: { k: 'upd', pk: [String(i % 2)], s: [{ k: 'd', c: 'a', v: '1' }] } as RowWrite,
    }));
    const plans = coalesce(writes);
    expect(plans.map((p) => [p.pk, p.rounds.length, p.rounds[0]?.upd?.get('a'), p.ids.length])).toEqual([
      [['0'], 1, { delta: '500' }, 500],
      [['1'], 1, { delta: '500' }, 500],
    ]);
  });
});

describe('recognising writes', () => {
  it('reads the statements Drizzle generates', () => {
    expect(
      parseWrite('insert into "t" ("id", "n") values ($1, default), ($2, $3) on conflict ("id") do nothing'),
    ).toEqual({
      kind: 'insert',
      table: { name: 't' },
      columns: ['id', 'n'],
      rows: [
        [{ param: 1 }, { keyword: 'default' }],
        [{ param: 2 }, { param: 3 }],
      ],
      conflict: { target: ['id'], action: 'nothing' },
    });
    expect(
      parseWrite(
        'update "s"."t" set "n" = "s"."t"."n" + $1, "x" = $2 where ("s"."t"."a" = $3 and "s"."t"."b" = $4) returning "n"',
      ),
    ).toEqual({
      kind: 'update',
      table: { schema: 's', name: 't' },
      set: [
        { column: 'n', value: { delta: 1, negative: false } },
        { column: 'x', value: { param: 2 } },
      ],
      keys: [{ a: 3, b: 4 }],
      returning: ['n'],
    });
    expect(parseWrite('delete from "t" where "t"."id" in ($1, $2)')).toEqual({
      kind: 'delete',
      table: { name: 't' },
      keys: [{ id: 1 }, { id: 2 }],
    });
    expect(
      parseWrite(
        'insert into "t" ("id", "n") values ($1, $2) on conflict ("id") do update set "n" = excluded.n, "m" = ("t"."m" - $3)',
      ),
    ).toMatchObject({
      conflict: { action: 'update', set: [{ value: { excluded: 'n' } }, { value: { delta: 3, negative: true } }] },
    });
  });

  it('rejects anything it cannot read exactly', () => {
    for (const text of [
      'update "t" set "n" = $1 where "t"."n" > $2',
      'update "t" set "n" = $1 where "t"."id" = $2 or "t"."id" = $3',
      'update "t" set "n" = "t"."n" * $1 where "t"."id" = $2',
      'update "t" set "n" = "t"."m" + $1 where "t"."id" = $2',
      'update "t" set "n" = $1 from "u" where "t"."id" = "u"."id"',
      'delete from "t" where "u"."id" = $1',
      'insert into "t" ("id") select 1',
      'insert into "t" ("id") values (1)',
      'insert into "t" ("id") values ($1) returning "id" + 1',
      'insert into "t" ("id") values ($1); delete from "t"',
      'with x as (delete from "t") insert into "t" ("id") values ($1)',
      'update "t" set "n" = $1::int where "t"."id" = $2',
    ]) {
      expect(parseWrite(text), text).toBeNull();
    }
  });
});

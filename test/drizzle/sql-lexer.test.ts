import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { foldIdentifier, type Token, tokenize } from '../../adapters/drizzle/sql-lexer.js';

const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pool = new pg.Pool({ connectionString: url, max: 1 });

afterAll(async () => {
  await pool.end();
});

const kinds = (sql: string) => tokenize(sql).map((t) => [t.kind, t.value]);

/** The single token of `sql`, failing when there is not exactly one. */
function only(sql: string): Token {
  const toks = tokenize(sql);
  expect(toks, sql).toHaveLength(1);
  return toks[0] as Token;
}

/** With trivia, the tokens must tile the input exactly. */
function expectTiling(sql: string): void {
  const toks = tokenize(sql, { trivia: true });
  let at = 0;
  for (const t of toks) {
    expect(t.start).toBe(at);
    expect(t.end).toBeGreaterThan(t.start);
    expect(t.text).toBe(sql.slice(t.start, t.end));
    at = t.end;
  }
  expect(at).toBe(sql.length);
}

describe('tokenize', () => {
  it('splits a Drizzle query into words, identifiers, params and punctuation', () => {
    expect(kinds('select "id", "users"."name" from "users" where "users"."id" = $1 limit $2')).toEqual([
      ['word', 'select'],
      ['ident', 'id'],
      ['op', ','],
      ['ident', 'users'],
      ['op', '.'],
      ['ident', 'name'],
      ['word', 'from'],
      ['ident', 'users'],
      ['word', 'where'],
      ['ident', 'users'],
      ['op', '.'],
      ['ident', 'id'],
      ['op', '='],
      ['param', '1'],
      ['word', 'limit'],
      ['param', '2'],
    ]);
  });

  it('lowercases words but keeps the original text and offsets', () => {
    const [t] = tokenize('  SeLeCt');
    expect(t).toEqual({ kind: 'word', start: 2, end: 8, text: 'SeLeCt', value: 'select' });
  });

  it('folds only ASCII letters, like PostgreSQL does in a UTF-8 database', async () => {
    expect(foldIdentifier('ÜNÏCODE_Ab')).toBe('ÜnÏcode_ab');
    expect(only('ÜNÏCODE_Ab').value).toBe('ÜnÏcode_ab');
    const res = await pool.query('select 1 as ÜNÏCODE_Ab');
    expect(res.fields[0]?.name).toBe(only('ÜNÏCODE_Ab').value);
  });

  it('unescapes quoted identifiers, as PostgreSQL names them', async () => {
    const cases = ['"we""ird"', '"weird:name{}"', '"MiXeD"', 'U&"d\\0061t\\+000061"', '"über ""x"""'];
    for (const text of cases) {
      const t = only(text);
      expect(t.kind).toBe('ident');
      const res = await pool.query(`select 1 as ${text}`);
      expect(res.fields[0]?.name, text).toBe(t.value);
    }
  });

  it('decodes string literals exactly as PostgreSQL reads them', async () => {
    const cases = [
      `'it''s'`,
      `''`,
      `E'a\\\\b\\'c\\n\\t\\x41\\101\\u00e9\\U0001F600'`,
      `e'\\\\'`,
      `E'it''s'`,
      '$$it\'s "x" -- not a comment$$',
      '$tag$ $$ nested $$ $t$ $tag$',
      '$a1$x$a1$',
      `U&'d\\0061t\\+000061'`,
      `N'national'`,
      `B'0101'`,
    ];
    for (const text of cases) {
      const t = only(text);
      expect(t.kind).toBe('string');
      const res = await pool.query(`select (${text})::text as v`);
      expect(res.rows[0].v, text).toBe(t.value);
    }
  });

  it('skips line comments and nested block comments', () => {
    expect(kinds('select -- from "x"\n1 /* a /* b */ from "y" */ + 2')).toEqual([
      ['word', 'select'],
      ['number', '1'],
      ['op', '+'],
      ['number', '2'],
    ]);
    const withTrivia = tokenize('a/* x /* y */ z */b--c', { trivia: true }).map((t) => t.kind);
    expect(withTrivia).toEqual(['word', 'comment', 'word', 'comment']);
  });

  it('ends an operator where a comment starts', () => {
    expect(kinds('1+--2\n3')).toEqual([
      ['number', '1'],
      ['op', '+'],
      ['number', '3'],
    ]);
    expect(kinds('a->>b::int<>c')).toEqual([
      ['word', 'a'],
      ['op', '->>'],
      ['word', 'b'],
      ['op', '::'],
      ['word', 'int'],
      ['op', '<>'],
      ['word', 'c'],
    ]);
  });

  it('reads numbers', () => {
    for (const n of ['1', '1.5', '.5', '1e10', '1.5E-3', '1_000', '0x1F', '0o17', '0b101', '42.']) {
      expect(only(n)).toMatchObject({ kind: 'number', value: n });
    }
  });

  it('tells $n params, dollar quotes and $ inside words apart', () => {
    expect(kinds('$1 $12 a$b $$x$$ $q$y$q$')).toEqual([
      ['param', '1'],
      ['param', '12'],
      ['word', 'a$b'],
      ['string', 'x'],
      ['string', 'y'],
    ]);
  });

  it('reads prefixed strings as strings, not words', () => {
    expect(kinds(`E'\\'' x'1f' b'01' n'a'`)).toEqual([
      ['string', "'"],
      ['string', '1f'],
      ['string', '01'],
      ['string', 'a'],
    ]);
  });

  it('flags plain strings with a backslash (meaning depends on standard_conforming_strings)', () => {
    expect(only(`'a\\b'`).backslash).toBe(true);
    expect(only(`E'a\\b'`).backslash).toBeUndefined();
    expect(only(`'ab'`).backslash).toBeUndefined();
  });

  it('runs unterminated strings, identifiers and comments to the end and flags them', () => {
    for (const text of [`'abc`, `"abc`, '$$abc', '$t$abc$$', `E'abc\\'`, `U&"x`]) {
      const t = only(`${text}`);
      expect(t.unterminated, text).toBe(true);
      expect(t.end).toBe(text.length);
    }
    const [comment] = tokenize('/* a /* b */', { trivia: true });
    expect(comment).toMatchObject({ kind: 'comment', end: 12, unterminated: true });
  });

  it('returns parentheses, brackets and punctuation', () => {
    expect(kinds('f((a)[1]);').map(([k, v]) => `${k}:${v}`)).toEqual([
      'word:f',
      'open:(',
      'open:(',
      'word:a',
      'close:)',
      'op:[',
      'number:1',
      'op:]',
      'close:)',
      'op:;',
    ]);
  });

  it('tiles the input exactly when asked for trivia', () => {
    expectTiling(`select  "a""b" , E'x\\'y' -- c\n/* d /* e */ */ $t$ z $t$ 1.5e3 $1 :: ü 🙂 {}`);
  });
});

/** A small deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('tokenize robustness', () => {
  const alphabet = [...`abcXYZ_019 \n\t'"$;,.()[]{}*/-+=<>:!\\&Uuüé🙂`];

  it('never throws on random input and always tiles it', () => {
    const next = rng(1234);
    for (let n = 0; n < 3000; n++) {
      const len = Math.floor(next() * 80);
      let text = '';
      for (let k = 0; k < len; k++) text += alphabet[Math.floor(next() * alphabet.length)];
      expectTiling(text);
    }
  });

  it('handles long pathological inputs', () => {
    const inputs = [
      '/*'.repeat(100_000),
      '$a$'.repeat(100_000),
      "'".repeat(100_001),
      '"'.repeat(100_001),
      "E'\\".repeat(50_000),
      '-'.repeat(100_000),
      '('.repeat(100_000),
      'U&"'.repeat(50_000),
      '$'.repeat(100_000),
    ];
    for (const text of inputs) {
      const toks = tokenize(text, { trivia: true });
      expect(toks.length).toBeGreaterThan(0);
      expect(toks[toks.length - 1]?.end).toBe(text.length);
    }
  });
});

// Validation of the TTL strategy fields: values, defaults and inheritance, explicit "off",
// cross-field rules, and where each problem is reported.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../src/errors.js';
import { loadPolicy, validatePolicy } from '../../src/policy/index.js';

const base = { namespace: 'n', version: 1 };

function problems(input: unknown): { message: string; field: string | undefined; table: string | undefined }[] {
  try {
    validatePolicy(input);
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    return error.issues.map((i) => ({ message: i.message, field: i.location.field, table: i.location.table }));
  }
  throw new Error('expected a PolicyError');
}

describe('TTL strategy fields', () => {
  it('are absent from resolved policies that do not use them', () => {
    const p = validatePolicy({ ...base, tables: { t: { pattern: 'cache-aside' } } });
    const t = p.tables.get('t')!;
    for (const key of ['ttlJitter', 'sliding', 'earlyRefresh', 'graceMs', 'serveStaleOnDbError']) {
      expect(Object.hasOwn(t, key), key).toBe(false);
    }
  });

  it('resolve with units, and a table inherits them from defaults field by field', () => {
    const p = validatePolicy({
      ...base,
      defaults: { pattern: 'cache-aside', ttl: '10m', ttlJitter: 0.1, grace: '30s', earlyRefresh: {} },
      tables: {
        a: { pattern: 'cache-aside', sliding: { maxAge: '1h' }, serveStaleOnDbError: true },
        b: { pattern: 'write-through', ttlJitter: '20s', earlyRefresh: { beta: 2.5 }, grace: 5 },
      },
    });
    expect(p.tables.get('a')).toMatchObject({
      ttlMs: 600_000,
      ttlJitter: { fraction: 0.1 },
      graceMs: 30_000,
      earlyRefresh: { beta: 1 },
      sliding: { maxAgeMs: 3_600_000 },
      serveStaleOnDbError: true,
    });
    expect(p.tables.get('b')).toMatchObject({
      ttlJitter: { ms: 20_000 },
      graceMs: 5000,
      earlyRefresh: { beta: 2.5 },
    });
    expect(Object.isFrozen(p.tables.get('a')?.sliding)).toBe(true);
  });

  it('false (or 0) in a table turns off what defaults turned on', () => {
    const p = validatePolicy({
      ...base,
      defaults: {
        ttlJitter: 0.1,
        grace: '30s',
        serveStaleOnDbError: true,
        earlyRefresh: { beta: 1 },
        sliding: { maxAge: '2h' },
      },
      tables: {
        t: {
          pattern: 'cache-aside',
          ttlJitter: false,
          grace: false,
          serveStaleOnDbError: false,
          earlyRefresh: false,
          sliding: false,
        },
        u: { pattern: 'cache-aside', ttlJitter: 0, grace: 0, serveStaleOnDbError: false },
      },
    });
    for (const name of ['t', 'u']) {
      const t = p.tables.get(name)!;
      expect(t.ttlJitter).toBeUndefined();
      expect(t.graceMs).toBeUndefined();
      expect(t.serveStaleOnDbError).toBeUndefined();
    }
    expect(p.tables.get('t')?.earlyRefresh).toBeUndefined();
    expect(p.tables.get('t')?.sliding).toBeUndefined();
    expect(p.tables.get('u')?.sliding).toEqual({ maxAgeMs: 7_200_000 });
  });

  it('reports bad values at their field', () => {
    expect(
      problems({
        ...base,
        tables: {
          t: {
            pattern: 'cache-aside',
            ttlJitter: 1,
            sliding: { maxAg: '1h' },
            earlyRefresh: { beta: 11 },
            grace: 'soon',
            serveStaleOnDbError: 'yes',
          },
        },
      }),
    ).toEqual([
      {
        message:
          'ttlJitter must be a fraction of the TTL from 0 to below 1 (0.1 = ±10%), a duration string like "30s", or false, got 1',
        field: 'tables.t.ttlJitter',
        table: 't',
      },
      { message: 'unknown key "maxAg" (did you mean "maxAge"?)', field: 'tables.t.sliding.maxAg', table: 't' },
      {
        message: 'sliding.maxAge is required: the longest an entry lives after its fill',
        field: 'tables.t.sliding.maxAge',
        table: 't',
      },
      {
        message: 'beta must be a number above 0 and at most 10 (1 is the usual choice), got 11',
        field: 'tables.t.earlyRefresh.beta',
        table: 't',
      },
      {
        message: 'grace: invalid duration "soon": use seconds or a string like "250ms", "30s", "5m", "1h", "7d"',
        field: 'tables.t.grace',
        table: 't',
      },
      {
        message: 'serveStaleOnDbError must be true or false, got "yes"',
        field: 'tables.t.serveStaleOnDbError',
        table: 't',
      },
    ]);
    expect(problems({ ...base, defaults: { sliding: '1h', earlyRefresh: true, ttlJitter: -0.1 } })).toEqual([
      {
        message:
          'ttlJitter must be a fraction of the TTL from 0 to below 1 (0.1 = ±10%), a duration string like "30s", or false, got -0.1',
        field: 'defaults.ttlJitter',
        table: undefined,
      },
      {
        message: 'sliding must be a mapping of maxAge, or false, got "1h"',
        field: 'defaults.sliding',
        table: undefined,
      },
      {
        message: 'earlyRefresh must be a mapping of beta, or false, got true',
        field: 'defaults.earlyRefresh',
        table: undefined,
      },
    ]);
  });

  it('checks the rules between fields on the resolved entry, naming the field the entry gave', () => {
    expect(
      problems({
        ...base,
        defaults: { ttl: '5m', ttlJitter: '2m', sliding: { maxAge: '10m' } },
        tables: {
          a: { pattern: 'cache-aside', ttl: '1m' },
          b: { pattern: 'cache-aside', ttl: '1h', ttlJitter: '1h', sliding: { maxAge: '30m' } },
          c: { pattern: 'cache-aside', serveStaleOnDbError: true },
          d: { pattern: 'cache-aside', grace: false },
        },
      }),
    ).toEqual([
      { message: 'ttlJitter (±2m) must be shorter than ttl (1m)', field: 'tables.a.ttl', table: 'a' },
      { message: 'ttlJitter (±1h) must be shorter than ttl (1h)', field: 'tables.b.ttlJitter', table: 'b' },
      { message: 'sliding.maxAge (30m) must be at least ttl (1h)', field: 'tables.b.sliding.maxAge', table: 'b' },
      {
        message: 'serveStaleOnDbError needs grace: an expired entry is only kept (and served) for grace after its TTL',
        field: 'tables.c.serveStaleOnDbError',
        table: 'c',
      },
    ]);
    expect(problems({ ...base, defaults: { ttl: '10m', sliding: { maxAge: '5m' } } })).toEqual([
      { message: 'sliding.maxAge (5m) must be at least ttl (10m)', field: 'defaults.sliding.maxAge', table: undefined },
    ]);
  });

  it('rejects strategies on tables that do not cache reads, but lets them inherit defaults', () => {
    expect(
      problems({
        ...base,
        tables: {
          a: { pattern: 'none', grace: '1m', ttlJitter: false },
          b: { pattern: 'write-back', earlyRefresh: {} },
        },
      }),
    ).toEqual([
      {
        message:
          'grace only applies to patterns "cache-aside" and "write-through" (cached reads), but the pattern is "none"',
        field: 'tables.a.grace',
        table: 'a',
      },
      {
        message:
          'earlyRefresh only applies to patterns "cache-aside" and "write-through" (cached reads), but the pattern is "write-back"',
        field: 'tables.b.earlyRefresh',
        table: 'b',
      },
    ]);
    const p = validatePolicy({ ...base, defaults: { grace: '1m', ttl: '1s' }, tables: { a: { pattern: 'none' } } });
    expect(p.tables.get('a')?.graceMs).toBe(60_000);
  });

  it('reads the fields from YAML, with line numbers in errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tc-freshness-'));
    const file = join(dir, 'policy.yaml');
    writeFileSync(
      file,
      [
        'namespace: shop',
        'version: 1',
        'tables:',
        '  products:',
        '    pattern: cache-aside',
        '    ttl: 10m',
        '    ttlJitter: 0.1',
        '    sliding: { maxAge: 1h }',
        '    earlyRefresh: { beta: 1 }',
        '    grace: 30s',
        '    serveStaleOnDbError: true',
        '',
      ].join('\n'),
    );
    const p = await loadPolicy(file);
    expect(p.tables.get('products')).toMatchObject({
      ttlJitter: { fraction: 0.1 },
      sliding: { maxAgeMs: 3_600_000 },
      earlyRefresh: { beta: 1 },
      graceMs: 30_000,
      serveStaleOnDbError: true,
    });
    writeFileSync(
      file,
      [
        'namespace: shop',
        'version: 1',
        'tables:',
        '  products:',
        '    pattern: cache-aside',
        '    grace: never',
        '',
      ].join('\n'),
    );
    await expect(loadPolicy(file)).rejects.toThrow(
      /field "tables\.products\.grace": grace: invalid duration "never".*\(line 6\)/,
    );
  });
});

import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../src/errors.js';
import { validatePolicy } from '../../src/policy/index.js';

const base = { namespace: 'shop', version: 1 };

/** Runs validatePolicy on input that must fail, and returns the PolicyError. */
function fail(input: unknown, source?: Parameters<typeof validatePolicy>[1]): PolicyError {
  try {
    validatePolicy(input, source);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error('expected validatePolicy to throw');
}

/** The single issue of a failing input: its message and field. */
function only(input: unknown): { message: string; field: string | undefined; table: string | undefined } {
  const err = fail(input);
  expect(err.issues).toHaveLength(1);
  const issue = err.issues[0]!;
  return { message: issue.message, field: issue.location.field, table: issue.location.table };
}

describe('validatePolicy: defaults', () => {
  it('applies the built-in defaults to a minimal policy', () => {
    const policy = validatePolicy(base);
    expect(policy.namespace).toBe('shop');
    expect(policy.version).toBe(1);
    expect(policy.tables.size).toBe(0);
    expect(policy.defaults).toEqual({
      pattern: 'none',
      ttlMs: 3_600_000,
      maxValueBytes: 1_048_576,
      reads: undefined,
      flush: { everyMs: 1000, batch: 500, maxPending: 100_000, onBackpressure: 'wait', priority: 'normal' },
    });
  });

  it('layers table over defaults over built-ins, field by field (flush too)', () => {
    const policy = validatePolicy({
      ...base,
      defaults: { pattern: 'cache-aside', ttl: '5m', flush: { batch: 100, priority: 'low' } },
      tables: {
        users: { pattern: 'write-back', maxValueBytes: 2048, flush: { every: 0.25, priority: 'high' } },
        posts: { pattern: 'none', ttl: 30 },
      },
    });
    expect(policy.defaults.ttlMs).toBe(300_000);
    expect(policy.tables.get('users')).toEqual({
      pattern: 'write-back',
      ttlMs: 300_000,
      maxValueBytes: 2048,
      reads: undefined,
      flush: { everyMs: 250, batch: 100, maxPending: 100_000, onBackpressure: 'wait', priority: 'high' },
    });
    expect(policy.tables.get('posts')?.ttlMs).toBe(30_000);
    expect(policy.tables.get('posts')?.pattern).toBe('none');
  });

  it('returns frozen resolved policies', () => {
    const policy = validatePolicy({ ...base, tables: { users: { pattern: 'cache-aside' } } });
    expect(Object.isFrozen(policy.tables.get('users'))).toBe(true);
    expect(Object.isFrozen(policy.defaults.flush)).toBe(true);
  });

  it('accepts a null-prototype input and version 0', () => {
    const input = Object.assign(Object.create(null), { namespace: 'n', version: 0 });
    expect(validatePolicy(input).version).toBe(0);
  });

  it('records the source file of every table', () => {
    const policy = validatePolicy(
      { ...base, tables: { users: { pattern: 'none' }, posts: { pattern: 'none' } } },
      { file: 'dir/_policy.yaml', tableFiles: new Map([['users', 'dir/users.yaml']]) },
    );
    expect(policy.source).toBe('dir/_policy.yaml');
    expect(policy.tableSources?.get('users')).toBe('dir/users.yaml');
    expect(policy.tableSources?.get('posts')).toBe('dir/_policy.yaml');
  });
});

describe('validatePolicy: top level', () => {
  it.each([null, undefined, 42, 'policy', [], [base], new Date(), new Map()])('rejects a non-mapping %#', (input) => {
    expect(only(input).message).toMatch(/a policy must be a mapping/);
  });

  it('requires a namespace string', () => {
    expect(only({ version: 1 })).toMatchObject({ field: 'namespace', message: expect.stringMatching(/is required/) });
    expect(only({ namespace: 'n' })).toMatchObject({ field: 'version', message: expect.stringMatching(/is required/) });
    expect(only({ ...base, namespace: 7 }).message).toMatch(/got 7/);
  });

  it.each([
    ['', /must not be empty/],
    ['x'.repeat(65), /at most 64 characters/],
    ['a\nb', /control characters/],
    ['a\u0000b', /control characters/],
    ['a\uD800b', /unpaired surrogates/],
  ])('rejects namespace %j', (namespace, message) => {
    expect(only({ ...base, namespace })).toMatchObject({ field: 'namespace', message: expect.stringMatching(message) });
  });

  it('counts namespace length in characters, not UTF-16 units', () => {
    const namespace = `ünï-😀${'x'.repeat(59)}`;
    expect([...namespace]).toHaveLength(64);
    expect(validatePolicy({ ...base, namespace }).namespace).toBe(namespace);
    expect(only({ ...base, namespace: `${namespace}x` }).message).toMatch(/at most 64 characters/);
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1e308, '1', true, null])(
    'rejects version %j',
    (version) => {
      expect(only({ ...base, version })).toMatchObject({ field: 'version', message: expect.stringMatching(/version/) });
    },
  );

  it('names unknown top-level keys and suggests the closest one', () => {
    const issue = only({ ...base, tabels: {} });
    expect(issue.field).toBe('tabels');
    expect(issue.message).toContain('unknown key "tabels" (did you mean "tables"?)');
  });

  it('treats prototype keys as unknown data, never as prototypes', () => {
    const input = JSON.parse('{"namespace":"n","version":1,"__proto__":{"namespace":"evil"},"constructor":1}');
    const err = fail(input);
    expect(err.issues.map((i) => i.location.field).sort()).toEqual(['__proto__', 'constructor']);
    expect(({} as Record<string, unknown>).namespace).toBeUndefined();
  });

  it('does not read inherited properties', () => {
    const input = Object.create({ namespace: 'inherited', version: 1 });
    expect(fail(input).message).toMatch(/a policy must be a mapping/);
    const child = Object.assign(Object.create(null), { version: 1 });
    expect(only(child).field).toBe('namespace');
  });

  it('rejects tables that is not a mapping', () => {
    expect(only({ ...base, tables: [] })).toMatchObject({ field: 'tables', message: expect.stringMatching(/a list/) });
  });
});

describe('validatePolicy: table fields', () => {
  const table = (entry: unknown) => only({ ...base, tables: { users: entry } });

  it('requires pattern on a table entry and checks its value', () => {
    expect(table({ ttl: 5 })).toMatchObject({ field: 'tables.users.pattern', table: 'users' });
    expect(table({ pattern: 'cache_aside' }).message).toContain('(did you mean "cache-aside"?)');
    expect(table({ pattern: 3 }).message).toMatch(/must be one of/);
  });

  it('accepts all four patterns', () => {
    for (const pattern of ['cache-aside', 'write-through', 'write-back', 'none']) {
      expect(validatePolicy({ ...base, tables: { t: { pattern } } }).tables.get('t')?.pattern).toBe(pattern);
    }
  });

  it.each([
    [0, /greater than zero/],
    [-5, /greater than zero/],
    ['5x', /invalid duration/],
    ['', /invalid duration/],
    ['1'.repeat(100), /invalid duration/],
    [Number.NaN, /greater than zero/],
    [1e300, /at most one year/],
    [null, /got object/],
    [[5], /got object/],
  ])('rejects ttl %j', (ttl, message) => {
    expect(table({ pattern: 'cache-aside', ttl })).toMatchObject({
      field: 'tables.users.ttl',
      message: expect.stringMatching(message),
    });
  });

  it('parses durations as seconds or unit strings', () => {
    const p = validatePolicy({
      ...base,
      tables: { a: { pattern: 'none', ttl: '250ms' }, b: { pattern: 'none', ttl: '7d' } },
    });
    expect(p.tables.get('a')?.ttlMs).toBe(250);
    expect(p.tables.get('b')?.ttlMs).toBe(7 * 86_400_000);
  });

  it.each([0, -1, 1.5, 512 * 1024 * 1024 + 1, Number.MAX_VALUE, '1024', Number.NaN])(
    'rejects maxValueBytes %j',
    (maxValueBytes) => {
      expect(table({ pattern: 'cache-aside', maxValueBytes }).field).toBe('tables.users.maxValueBytes');
    },
  );

  it('accepts maxValueBytes up to 512 MiB', () => {
    const p = validatePolicy({ ...base, tables: { t: { pattern: 'none', maxValueBytes: 512 * 1024 * 1024 } } });
    expect(p.tables.get('t')?.maxValueBytes).toBe(512 * 1024 * 1024);
  });

  it('checks reads: a list of non-empty names, deduplicated', () => {
    expect(table({ pattern: 'cache-aside', reads: 'users' }).field).toBe('tables.users.reads');
    expect(table({ pattern: 'cache-aside', reads: ['a', ''] })).toMatchObject({
      field: 'tables.users.reads[1]',
      message: expect.stringMatching(/must not be empty/),
    });
    expect(table({ pattern: 'cache-aside', reads: ['a', 5] }).field).toBe('tables.users.reads[1]');
    const p = validatePolicy({ ...base, tables: { v: { pattern: 'cache-aside', reads: ['a', 'b', 'a'] } } });
    expect(p.tables.get('v')?.reads).toEqual(['a', 'b']);
  });

  it('rejects reads in defaults', () => {
    expect(only({ ...base, defaults: { reads: ['a'] } })).toMatchObject({
      field: 'defaults.reads',
      message: expect.stringMatching(/view's own entry/),
    });
  });

  it('suggests the closest key for a misspelled table field', () => {
    const issue = table({ pattern: 'cache-aside', tll: '5m' });
    expect(issue).toMatchObject({ field: 'tables.users.tll', table: 'users' });
    expect(issue.message).toContain('unknown key "tll" (did you mean "ttl"?)');
    expect(table({ pattern: 'cache-aside', max_value_bytes: 1 }).message).toContain('did you mean "maxValueBytes"?');
    expect(table({ pattern: 'cache-aside', zzzzzz: 1 }).message).toContain('known keys: pattern, ttl');
  });

  it('rejects a table entry that is not a mapping', () => {
    expect(table('cache-aside')).toMatchObject({ field: 'tables.users', message: expect.stringMatching(/mapping/) });
  });

  it.each([
    ['', /must not be empty/],
    ['a\tb', /control characters/],
    ['t'.repeat(257), /at most 256/],
  ])('rejects table name %j', (name, message) => {
    expect(only({ ...base, tables: { [name]: { pattern: 'none' } } }).message).toMatch(message);
  });

  it('keeps prototype-like table names as plain names', () => {
    const input = JSON.parse(
      '{"namespace":"n","version":1,"tables":{"__proto__":{"pattern":"none"},"constructor":{"pattern":"cache-aside"}}}',
    );
    const policy = validatePolicy(input);
    expect([...policy.tables.keys()].sort()).toEqual(['__proto__', 'constructor']);
    expect(policy.tables.get('constructor')?.pattern).toBe('cache-aside');
  });
});

describe('validatePolicy: flush', () => {
  const wb = (flush: unknown) => only({ ...base, tables: { jobs: { pattern: 'write-back', flush } } });

  it('is only allowed with write-back', () => {
    expect(only({ ...base, tables: { t: { pattern: 'cache-aside', flush: { batch: 5 } } } })).toMatchObject({
      field: 'tables.t.flush',
      message: expect.stringMatching(/only allowed with pattern "write-back"/),
    });
  });

  it('is allowed in defaults whatever their pattern', () => {
    const p = validatePolicy({ ...base, defaults: { pattern: 'cache-aside', flush: { batch: 7 } } });
    expect(p.defaults.flush.batch).toBe(7);
  });

  it.each([
    [{ every: 'soon' }, 'every'],
    [{ every: 0 }, 'every'],
    [{ batch: 0 }, 'batch'],
    [{ batch: 10_001 }, 'batch'],
    [{ batch: 2.5 }, 'batch'],
    [{ maxPending: 0 }, 'maxPending'],
    [{ maxPending: 10_000_001 }, 'maxPending'],
    [{ onBackpressure: 'drop' }, 'onBackpressure'],
    [{ priority: 'urgent' }, 'priority'],
    [{ pritority: 'high' }, 'pritority'],
  ])('rejects %j', (flush, field) => {
    expect(wb(flush).field).toBe(`tables.jobs.flush.${field}`);
  });

  it('rejects a non-mapping flush', () => {
    expect(wb('1s').field).toBe('tables.jobs.flush');
  });

  it('accepts every flush field at its bounds', () => {
    const p = validatePolicy({
      ...base,
      tables: {
        jobs: {
          pattern: 'write-back',
          flush: { every: '5m', batch: 10_000, maxPending: 10_000_000, onBackpressure: 'sync', priority: 'low' },
        },
      },
    });
    expect(p.tables.get('jobs')?.flush).toEqual({
      everyMs: 300_000,
      batch: 10_000,
      maxPending: 10_000_000,
      onBackpressure: 'sync',
      priority: 'low',
    });
  });

  it('rejects a batch larger than maxPending', () => {
    expect(wb({ batch: 200, maxPending: 100 })).toMatchObject({
      field: 'tables.jobs.flush.batch',
      message: expect.stringMatching(/must not exceed flush.maxPending/),
    });
    expect(only({ ...base, defaults: { flush: { maxPending: 10 } } }).field).toBe('defaults.flush.maxPending');
  });
});

describe('validatePolicy: collected issues', () => {
  it('reports every problem at once, each with its location', () => {
    const err = fail(
      {
        namespace: '',
        version: -1,
        defaults: { ttl: 'never' },
        tables: {
          users: { pattern: 'cache-aside', tll: 5 },
          posts: { pattern: 'write-back', flush: { batch: 0 } },
        },
      },
      { file: 'policy.yaml' },
    );
    expect(err.code).toBe('E_POLICY');
    expect(err.issues.map((i) => i.location)).toEqual([
      { file: 'policy.yaml', field: 'namespace' },
      { file: 'policy.yaml', field: 'version' },
      { file: 'policy.yaml', field: 'defaults.ttl' },
      { file: 'policy.yaml', table: 'users', field: 'tables.users.tll' },
      { file: 'policy.yaml', table: 'posts', field: 'tables.posts.flush.batch' },
    ]);
    expect(err.location).toEqual({ file: 'policy.yaml' });
    expect(err.message).toMatch(/^policy\.yaml: 5 problems in the policy:\n/);
    for (const issue of err.issues) expect(err.message).toContain(issue.message);
  });

  it('names the table file of a table problem', () => {
    const err = fail(
      { ...base, tables: { users: { pattern: 'nope' } } },
      { file: 'p/_policy.yaml', tableFiles: new Map([['users', 'p/users.yaml']]) },
    );
    expect(err.location).toEqual({ file: 'p/users.yaml', table: 'users', field: 'tables.users.pattern' });
    expect(err.message).toMatch(/^p\/users\.yaml: table "users": field "tables\.users\.pattern": /);
  });

  it('adds the line when the source knows it', () => {
    const err = fail({ ...base, tables: { t: { pattern: 'x' } } }, { file: 'f.yaml', lineOf: () => 4 });
    expect(err.issues[0]?.message).toMatch(/\(line 4\)$/);
  });

  it('caps the number of issues kept while counting them all', () => {
    const tables: Record<string, unknown> = {};
    for (let i = 0; i < 500; i++) tables[`t${i}`] = { pattern: 'bad' };
    const err = fail({ ...base, tables });
    expect(err.issues).toHaveLength(100);
    expect(err.message).toMatch(/^500 problems in the policy/);
    expect(err.message).toContain('...and 400 more');
  });

  it('shortens very long keys and values in messages', () => {
    const long = 'k'.repeat(100_000);
    const err = fail({ ...base, [long]: 'v'.repeat(100_000), tables: { t: { pattern: long } } });
    expect(err.message.length).toBeLessThan(2000);
  });
});

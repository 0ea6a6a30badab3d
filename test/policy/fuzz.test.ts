import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog.js';
import { PolicyError } from '../../src/errors.js';
import { bindPolicy, validatePolicy } from '../../src/policy/index.js';
import { parsePolicyText } from '../../src/policy/parse-file.js';

/** mulberry32: a small seeded PRNG, so a failing case can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = [
  'namespace',
  'version',
  'defaults',
  'tables',
  'pattern',
  'ttl',
  'maxValueBytes',
  'reads',
  'flush',
  'every',
  'batch',
  'maxPending',
  'onBackpressure',
  'priority',
  'tll',
  'Pattern',
  'max_value_bytes',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'users',
  'orders',
  'active',
  '',
  ' ',
  ':',
  '{}',
  'a:b {c}',
  '😀',
  'ü\u0301',
  '\u0000',
  '\uD800',
  '\n',
];

const STRINGS = [
  ...KEYS,
  'cache-aside',
  'write-through',
  'write-back',
  'none',
  'wait',
  'fail',
  'sync',
  'high',
  'low',
  '5m',
  '1h',
  '250ms',
  '0s',
  '-1s',
  '1e309s',
  '99999999999999999999d',
  'NaN',
  '1.5.5s',
  ': { } ',
  '{{{{',
  '}}}}',
  '\u202Eevil',
  '\uFEFF',
  '\t\r\n',
];

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.5,
  1.5,
  500,
  10_000,
  10_001,
  100_000,
  10_000_000,
  10_000_001,
  512 * 1024 * 1024,
  512 * 1024 * 1024 + 1,
  2 ** 53,
  2 ** 53 + 2,
  1e308,
  -1e308,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
];

class Gen {
  constructor(private readonly rand: () => number) {}

  int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  string(): string {
    switch (this.int(5)) {
      case 0:
        return this.pick(STRINGS).repeat(1 + this.int(3));
      case 1:
        return 'x'.repeat(this.int(3) === 0 ? 100_000 : this.int(300));
      case 2:
        return String.fromCodePoint(...Array.from({ length: this.int(12) }, () => this.int(0x110000 - 0x800)));
      default:
        return this.pick(STRINGS);
    }
  }

  key(): string {
    return this.int(4) === 0 ? this.string() : this.pick(KEYS);
  }

  /** Any value at all, nested up to `depth`. */
  value(depth: number): unknown {
    const kind = depth <= 0 ? this.int(7) : this.int(12);
    switch (kind) {
      case 0:
        return this.string();
      case 1:
        return this.pick(NUMBERS);
      case 2:
        return this.pick([true, false, null, undefined]);
      case 3:
        return this.pick([10n ** 30n, Symbol('s'), () => 1, new Date(0), new Map([['a', 1]]), /re/]);
      case 4:
        return this.int(1e9) * (this.int(2) ? 1 : -1);
      case 5:
        return this.nested(1 + this.int(5000));
      case 6:
        return Object.create(null);
      case 7:
      case 8:
        return Array.from({ length: this.int(5) }, () => this.value(depth - 1));
      default:
        return this.record(depth - 1, () => this.key());
    }
  }

  record(depth: number, key: () => string): Record<string, unknown> {
    const out: Record<string, unknown> = this.int(3) === 0 ? Object.create(null) : {};
    for (let i = this.int(6); i > 0; i--) {
      // defineProperty, so "__proto__" becomes an own key as JSON.parse and YAML make it.
      Object.defineProperty(out, key(), {
        value: this.value(depth),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }

  nested(depth: number): unknown {
    let v: unknown = this.pick(NUMBERS);
    for (let i = 0; i < depth; i++) v = this.int(2) ? [v] : { [this.pick(KEYS)]: v };
    return v;
  }

  /** Mostly well-formed entries with a random field broken, so the deeper checks run. */
  entry(): unknown {
    if (this.int(8) === 0) return this.value(2);
    const out: Record<string, unknown> = {};
    if (this.int(6))
      out.pattern = this.int(4) ? this.pick(['cache-aside', 'write-through', 'write-back', 'none']) : this.value(1);
    if (this.int(2)) out.ttl = this.int(3) ? this.pick(['5m', 30, '1h', 0.001]) : this.value(1);
    if (this.int(3) === 0) out.maxValueBytes = this.int(2) ? 4096 : this.value(1);
    if (this.int(3) === 0) out.reads = this.int(2) ? ['users', 'orders'] : this.value(2);
    if (this.int(3) === 0)
      out.flush = this.int(2) ? { batch: 10, every: '1s', priority: 'high' } : this.record(1, () => this.key());
    if (this.int(5) === 0) out[this.key()] = this.value(1);
    return out;
  }

  policy(): unknown {
    if (this.int(10) === 0) return this.value(3);
    const out: Record<string, unknown> = {};
    if (this.int(8)) out.namespace = this.int(3) ? 'shop' : this.value(1);
    if (this.int(8)) out.version = this.int(3) ? this.int(10) : this.value(1);
    if (this.int(2)) out.defaults = this.entry();
    if (this.int(5)) {
      const tables: Record<string, unknown> = {};
      for (let i = this.int(6); i > 0; i--) {
        Object.defineProperty(
          tables,
          this.int(3) ? this.pick(['users', 'orders', 'active', 'usersTable']) : this.key(),
          {
            value: this.entry(),
            enumerable: true,
            writable: true,
            configurable: true,
          },
        );
      }
      out.tables = this.int(10) === 0 ? this.value(1) : tables;
    }
    if (this.int(6) === 0) out[this.key()] = this.value(2);
    return out;
  }

  /** Random text made of YAML/JSON punctuation, keywords and unicode. */
  text(): string {
    const tokens = [
      ':',
      ': ',
      '{',
      '}',
      '[',
      ']',
      ',',
      ' ',
      '  ',
      '\n',
      '\n  ',
      '- ',
      '"',
      "'",
      '#',
      '&a ',
      '*a',
      '!tag ',
      '!!binary ',
      '<<: ',
      '---\n',
      '%YAML 1.1\n',
      '? ',
      '|',
      '>',
      '\t',
      ...KEYS,
      ...STRINGS.slice(0, 40),
      '5m',
      '1',
      '-1',
      '1e999',
      '0x1F',
      '.inf',
      '.nan',
      'null',
      '~',
      'true',
    ];
    let out = '';
    for (let i = this.int(60); i > 0; i--) out += this.pick(tokens);
    return out;
  }
}

const catalog: Catalog = {
  tables: [
    { id: 'users', name: 'users', aliases: ['usersTable'], columns: [], primaryKey: ['id'], kind: 'table' },
    { id: 'orders', name: 'orders', aliases: [], columns: [], primaryKey: [], kind: 'table' },
    { id: 'active', name: 'active', aliases: [], columns: [], primaryKey: [], kind: 'view' },
  ],
};

/** Validates and binds; returns 'ok' or 'policy-error', and rethrows anything else. */
function outcome(run: () => unknown): 'ok' | 'policy-error' {
  try {
    run();
    return 'ok';
  } catch (err) {
    if (err instanceof PolicyError) {
      expect(err.issues.length).toBeGreaterThan(0);
      expect(typeof err.message).toBe('string');
      return 'policy-error';
    }
    throw err;
  }
}

describe('policy fuzzing', () => {
  it('validates or throws PolicyError for 2000 random policies, never anything else', () => {
    const gen = new Gen(prng(0x7ab1e));
    const seen = { ok: 0, 'policy-error': 0 };
    for (let i = 0; i < 2000; i++) {
      const input = gen.policy();
      const result = outcome(() => bindPolicy(validatePolicy(input, { file: 'fuzz.yaml' }), catalog));
      seen[result]++;
    }
    // Both branches are exercised, so the generator is not trivially all-bad or all-good.
    expect(seen.ok).toBeGreaterThan(20);
    expect(seen['policy-error']).toBeGreaterThan(1000);
  });

  it('parses or rejects 1000 random YAML and JSON texts, never anything else', () => {
    const gen = new Gen(prng(0xcafe));
    for (let i = 0; i < 1000; i++) {
      const text = gen.text();
      for (const format of ['yaml', 'json'] as const) {
        outcome(() => {
          const parsed = parsePolicyText(text, format);
          if ('error' in parsed) throw new PolicyError(parsed.error, { file: `fuzz.${format}` });
          const located = validatePolicy(parsed.value, { file: 'f', lineOf: (_file, path) => parsed.lineOf(path) });
          return bindPolicy(located, catalog);
        });
      }
    }
  });

  it('survives a 100000-deep nested value in every position', () => {
    const gen = new Gen(prng(1));
    const deep = gen.nested(100_000);
    for (const input of [
      deep,
      { namespace: deep, version: 1 },
      { namespace: 'n', version: 1, defaults: deep },
      { namespace: 'n', version: 1, tables: { users: deep } },
      { namespace: 'n', version: 1, tables: { users: { pattern: 'write-back', flush: deep, reads: [deep] } } },
    ]) {
      expect(outcome(() => validatePolicy(input))).toBe('policy-error');
    }
  });
});

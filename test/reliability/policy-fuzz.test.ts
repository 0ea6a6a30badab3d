import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { integer, pgSchema, pgTable, text } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCatalog } from '../../adapters/drizzle/index.js';
import { Prng } from '../../chaos/prng.js';
import { bindPolicy, definePolicy, loadPolicy, PolicyError } from '../../src/index.js';

// 10,000 generated malformed and adversarial policy files (YAML and JSON), loaded with
// loadPolicy and bound to a real schema: each is a valid policy or a PolicyError naming the file
// (and the field, when the file parsed). Never another exception, never a hang. A separate
// file from test/policy/fuzz.test.ts, which fuzzes validatePolicy with in-memory values.

const catalog = buildCatalog({
  users: pgTable('users', { id: integer('id').primaryKey(), name: text('name') }),
  orders: pgTable('orders', { id: integer('id').primaryKey() }),
  odd: pgSchema('a:b {c}').table('t ü:{x}', { id: integer('id').primaryKey() }),
  events: pgTable('events', { at: integer('at') }),
});

const NAMES = [
  'users',
  'orders',
  'a:b {c}.t ü:{x}',
  'events',
  'usres',
  '',
  ' ',
  ':',
  '{}',
  '}{',
  'a:b',
  '\u202Eevil',
  'ｕsers',
  'users\u0000',
  '😀',
  'e\u0301',
  '.',
  '..',
  '"users"',
  '__proto__',
  'constructor',
];
const PATTERNS = ['cache-aside', 'write-through', 'write-back', 'none', 'Cache-Aside', 'cacheaside', '', 'write_back'];
const DURATIONS = [
  '5m',
  '1h',
  '250ms',
  '0s',
  '-1s',
  '-5m',
  '1e309s',
  '99999999999999999999999d',
  'NaN',
  '1.5.5s',
  '5 m',
  '∞',
  '1h30m',
  '9007199254740993ms',
  '0x10s',
];
const NUMBERS = [
  '0',
  '-0',
  '1',
  '-1',
  '0.5',
  '1e308',
  '1e400',
  '-1e400',
  '.inf',
  '-.inf',
  '.nan',
  '9007199254740993',
  '0x7fffffffffffffffffff',
  '0o777',
  '1_000',
  '99999999999999999999999999999999',
];

/** One generated file: its name (extension decides the format) and text. */
interface Case {
  file: string;
  text: string;
}

function yamlString(rng: Prng): string {
  const s = rng.pick(NAMES);
  return rng.int(2) === 0
    ? JSON.stringify(s)
    : s.length > 0 && !/[:{}\s"#&*!|>'%@`,[\]]/.test(s)
      ? s
      : JSON.stringify(s);
}

const GENERATORS: ((rng: Prng, i: number) => Case)[] = [
  // Mostly-valid YAML with one broken field.
  (rng, i) => {
    if (rng.int(4) === 0) {
      // A valid one now and then, so the generator is not trivially all-bad.
      const t = rng.pick(['users', 'orders', '"a:b {c}.t ü:{x}"']);
      return {
        file: `valid-${i}.yaml`,
        text: `namespace: shop\nversion: 2\ntables:\n  ${t}:\n    pattern: ${rng.pick(['cache-aside', 'write-through', 'none'])}\n    ttl: 5m\n`,
      };
    }
    const lines = [
      'namespace: shop',
      `version: ${rng.pick(['1', '2', ...NUMBERS])}`,
      'defaults:',
      `  pattern: ${rng.pick(PATTERNS)}`,
      'tables:',
    ];
    for (let t = rng.int(4); t >= 0; t--) {
      lines.push(`  ${yamlString(rng)}:`, `    pattern: ${rng.pick(PATTERNS)}`);
      if (rng.int(2)) lines.push(`    ttl: ${rng.int(2) ? rng.pick(DURATIONS) : rng.pick(NUMBERS)}`);
      if (rng.int(3) === 0) lines.push(`    maxValueBytes: ${rng.pick(NUMBERS)}`);
      if (rng.int(4) === 0)
        lines.push(`    flush: { batch: ${rng.pick(NUMBERS)}, every: ${JSON.stringify(rng.pick(DURATIONS))} }`);
      if (rng.int(5) === 0)
        lines.push(
          `    ${rng.pick(['tll', 'reads', 'Pattern', 'flush', 'ttl'])}: ${rng.pick(['[]', '{}', '~', '[users]', 'x'])}`,
        );
    }
    return { file: `mostly-${i}.yaml`, text: lines.join('\n') };
  },
  // Alias bombs ("billion laughs"), at several depths and in several positions.
  (rng, i) => {
    const width = 2 + rng.int(9);
    const depth = 3 + rng.int(8);
    const lines = [`a0: &a0 [${Array(width).fill('"lol"').join(', ')}]`];
    for (let d = 1; d < depth; d++)
      lines.push(
        `a${d}: &a${d} [${Array(width)
          .fill(`*a${d - 1}`)
          .join(', ')}]`,
      );
    lines.push(
      `namespace: ${rng.int(2) ? `*a${depth - 1}` : 'shop'}`,
      'version: 1',
      `tables: { users: { pattern: cache-aside, reads: *a${depth - 1} } }`,
    );
    return { file: `bomb-${i}.yaml`, text: lines.join('\n') };
  },
  // Deep nesting: flow and block, in YAML and JSON.
  (rng, i) => {
    const depth = rng.pick([50, 500, 2000]);
    const json = rng.int(2) === 0;
    const open = rng.int(2) ? '[' : '{"a":';
    const close = open === '[' ? ']' : '}';
    const deep = `${open.repeat(depth)}1${close.repeat(depth)}`;
    if (json) return { file: `deep-${i}.json`, text: `{"namespace":"n","version":1,"tables":{"users":${deep}}}` };
    if (rng.int(2))
      return { file: `deep-${i}.yaml`, text: `namespace: n\nversion: 1\ndefaults: ${deep.replaceAll('"a":', 'a: ')}` };
    let block = 'namespace: n\nversion: 1\ntables:\n';
    const levels = Math.min(depth, 300);
    for (let d = 0; d < levels; d++) block += `${'  '.repeat(d + 1)}k${d}:\n`;
    return { file: `deep-${i}.yaml`, text: `${block}${'  '.repeat(levels + 1)}x: 1` };
  },
  // Huge, negative and non-finite numbers everywhere a number goes.
  (rng, i) => ({
    file: `numbers-${i}.json`,
    text: `{"namespace":"n","version":${rng.pick(['1e400', '-1', '1.5', '9007199254740993', '-0', '1e308'])},"defaults":{"pattern":"write-back","ttl":${rng.pick(['-1', '1e400', '0', '1e-400', '"-5m"'])},"maxValueBytes":${rng.pick(['1e400', '-1', '0', '536870913', '1.5'])},"flush":{"batch":${rng.pick(['0', '-1', '10001', '1e400'])},"maxPending":${rng.pick(['1e400', '-1', '10000001'])},"every":${rng.pick(['"-1s"', '0', '"1e999ms"', '1e400'])}}}}`,
  }),
  // Unicode, separators and control characters in names and values.
  (rng, i) => {
    const name = String.fromCodePoint(
      ...Array.from({ length: 1 + rng.int(12) }, () =>
        rng.pick([
          0x3a, 0x7b, 0x7d, 0x20, 0x2e, 0x22, 0x5c, 0x200b, 0x202e, 0xfeff, 0x1f600, 0x0301, 0x4e2d, 0x0, 0x7f, 0x85,
          0x2028, 0xd800,
        ]),
      ),
    );
    const ns = rng.int(3) === 0 ? name : 'shop';
    return {
      file: `unicode-${i}.json`,
      text: JSON.stringify({
        namespace: ns,
        version: 1,
        tables: { [name]: { pattern: 'cache-aside', reads: [name] } },
      }),
    };
  },
  // YAML features that must not be interpreted: tags, merge keys, multiple documents, complex keys, duplicates.
  (rng, i) => ({
    file: `yamlisms-${i}.yml`,
    text: rng.pick([
      'namespace: !!python/object:os.system "rm -rf /"\nversion: 1',
      'base: &b { pattern: cache-aside }\nnamespace: n\nversion: 1\ntables:\n  users:\n    <<: *b\n',
      'namespace: n\nversion: 1\n---\nnamespace: m\nversion: 2\n',
      'namespace: n\nnamespace: m\nversion: 1\n',
      '? [a, b]\n: 1\nnamespace: n\nversion: 1\n',
      'namespace: !custom n\nversion: !!int "1"\n',
      'namespace: n\nversion: 1\ntables: { users: { pattern: cache-aside, ttl: !!binary aGVsbG8= } }\n',
      '%YAML 1.1\n---\nnamespace: n\nversion: 1\ntables: { users: { pattern: cache-aside, ttl: 1:30 } }\n',
      'namespace: n\nversion: 1\ntables:\n\tusers: { pattern: none }\n',
      '&a [*a]',
      'namespace: &x n\nversion: 1\ntables: { *x : { pattern: none } }\n',
    ]),
  }),
  // Wrong shapes at every level.
  (rng, i) => ({
    file: `shapes-${i}.json`,
    text: JSON.stringify(
      rng.pick<unknown>([
        [],
        'policy',
        42,
        null,
        { namespace: ['n'], version: '1' },
        { namespace: 'n', version: 1, tables: [] },
        { namespace: 'n', version: 1, tables: { users: 'cache-aside' } },
        { namespace: 'n', version: 1, tables: { users: { pattern: 'cache-aside', reads: 'orders' } } },
        { namespace: 'n', version: 1, defaults: [] },
        { namespace: 'n', version: 1, tables: { users: { pattern: 'none', flush: { batch: 1 } } } },
        { namespace: 'n', version: 1, tables: { events: { pattern: 'write-back' } } },
        {
          namespace: 'n',
          version: 1,
          tables: { users: { pattern: 'cache-aside' }, 'public.users': { pattern: 'none' } },
        },
        { namespace: 'n', version: 1, __proto__: { polluted: true }, constructor: { prototype: {} } },
      ]),
    ),
  }),
  // Random punctuation soup, and JSON with syntax errors.
  (rng, i) => {
    const tokens = [
      ':',
      ': ',
      '{',
      '}',
      '[',
      ']',
      ',',
      ' ',
      '\n',
      '\n  ',
      '- ',
      '"',
      "'",
      '#',
      '&a ',
      '*a',
      '!t ',
      '<<: ',
      '---\n',
      '? ',
      '|',
      '>',
      '\t',
      'namespace',
      'version',
      'tables',
      'users',
      '1',
      '.inf',
      'null',
      '~',
      '\u0000',
      '\uFFFE',
    ];
    let text = '';
    for (let n = rng.int(80); n > 0; n--) text += rng.pick(tokens);
    return { file: `soup-${i}.${rng.int(2) ? 'yaml' : 'json'}`, text };
  },
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tablecache-policy-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('policy fuzzing: 10,000 malformed and adversarial policy files', () => {
  it('each is a valid policy or a PolicyError with a location, never another error or a hang', async () => {
    const rng = new Prng(0x7ab1e7);
    const seen = { valid: 0, rejected: 0 };
    const byGenerator = GENERATORS.map(() => ({ valid: 0, rejected: 0 }));
    for (let i = 0; i < 10_000; i++) {
      const g = i % GENERATORS.length;
      const { file, text } = (GENERATORS[g] as (rng: Prng, i: number) => Case)(rng, i);
      const path = join(dir, file);
      await writeFile(path, text);
      try {
        const policy = await loadPolicy(path);
        bindPolicy(policy, catalog);
        seen.valid++;
        (byGenerator[g] as { valid: number }).valid++;
      } catch (error) {
        if (!(error instanceof PolicyError)) {
          throw new Error(`case ${i} (${file}) threw ${String(error)}:\n${text.slice(0, 500)}`, { cause: error });
        }
        // Where: the file always (validation errors come with the field or the table too).
        const located = error.issues.every(
          (issue) => issue.location.file !== undefined || issue.location.field !== undefined,
        );
        expect(located, `${file}: ${error.message.slice(0, 300)}`).toBe(true);
        expect(error.location.file ?? error.issues[0]?.location.file, file).toBeDefined();
        expect(error.code).toBe('E_POLICY');
        seen.rejected++;
        (byGenerator[g] as { rejected: number }).rejected++;
      }
      await rm(path);
    }
    expect(seen.valid + seen.rejected).toBe(10_000);
    // Every generator produced rejections; the mostly-valid one produced valid policies too.
    for (const counts of byGenerator) expect(counts.rejected).toBeGreaterThan(0);
    expect(byGenerator[0]?.valid).toBeGreaterThan(0);
  }, 120_000);

  it('a 50,000-deep YAML flow and a 50,000-deep JSON document are PolicyErrors', async () => {
    for (const [file, text] of [
      ['deepest.yaml', `namespace: n\nversion: 1\ndefaults: ${'['.repeat(50_000)}${']'.repeat(50_000)}`],
      [
        'deepest.json',
        `{"namespace":"n","version":1,"tables":{"users":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}}`,
      ],
    ] as const) {
      const path = join(dir, file);
      await writeFile(path, text);
      const error = await loadPolicy(path).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PolicyError);
      expect((error as PolicyError).location.file).toBe(path);
    }
  });

  it('a policy file over 1 MiB is refused before it is parsed', async () => {
    const path = join(dir, 'huge.yaml');
    await writeFile(path, `namespace: n\nversion: 1\n# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    await expect(loadPolicy(path)).rejects.toBeInstanceOf(PolicyError);
  });

  it('definePolicy refuses the same adversarial values in code, with the field', () => {
    const bad: unknown[] = [
      { namespace: 'n:{x}', version: 1 },
      { namespace: 'n', version: Number.POSITIVE_INFINITY },
      { namespace: 'n', version: 1, defaults: { ttl: -1 } },
      { namespace: 'n', version: 1, defaults: { ttl: '-5m' } },
      { namespace: 'n', version: 1, defaults: { maxValueBytes: Number.NaN } },
      { namespace: 'n', version: 1, tables: { users: { pattern: 'cache-aside', ttl: Number.POSITIVE_INFINITY } } },
    ];
    for (const input of bad) {
      let error: unknown;
      try {
        definePolicy(input as Parameters<typeof definePolicy>[0]);
      } catch (e) {
        error = e;
      }
      // A namespace with separators is accepted only if keys stay unambiguous; everything else is refused.
      if (error === undefined) {
        expect((input as { namespace: string }).namespace).toBe('n:{x}');
        continue;
      }
      expect(error).toBeInstanceOf(PolicyError);
      expect((error as PolicyError).issues[0]?.location.field).toBeDefined();
    }
  });
});

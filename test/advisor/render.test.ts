import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Advice, adviseTables, renderTypeScript, renderYaml } from '../../src/advisor/index.js';
import { loadPolicy, type Policy } from '../../src/policy/index.js';
import { workload } from './workloads.js';

const POLICY_MODULE = fileURLToPath(new URL('../../src/policy/index.ts', import.meta.url));
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tablecache-advise-render-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One table for each pattern, plus names that need quoting in YAML and TypeScript. */
function sampleAdvice(): Advice[] {
  return adviseTables([
    workload({ name: 'products', idxScans: 5000, updates: 10 }),
    workload({ name: 'profiles', idxScans: 300, updates: 100 }),
    workload({
      name: 'page_counters',
      idxScans: 2000,
      updates: 2000,
      writesByKey: { known: true, statements: 9, byKey: 9 },
    }),
    workload({ name: 'payments', idxScans: 2000, inserts: 30 }),
    workload({ schema: 'odd schema', name: 'it\'s: #"weird" name', idxScans: 100 }),
    workload({ name: 'line\u2028sep', idxScans: 100 }),
    workload({ name: 'tab\tname', idxScans: 100 }),
    workload({ name: '__proto__', idxScans: 100 }),
    workload({ name: '2024', idxScans: 100, updates: 50 }),
  ]);
}

function patternsOf(policy: Policy): Record<string, string> {
  return Object.fromEntries([...policy.tables].map(([name, p]) => [name, p.pattern]));
}

const EXPECTED = {
  products: 'cache-aside',
  profiles: 'write-through',
  page_counters: 'write-back',
  payments: 'none',
  'odd schema.it\'s: #"weird" name': 'cache-aside',
  'line\u2028sep': 'cache-aside',
  // A computed key: a plain `__proto__:` would set the literal's prototype.
  ['__proto__']: 'cache-aside',
  '2024': 'write-through',
};

describe('renderYaml', () => {
  it('renders a policy file that loadPolicy accepts, with each reason as a comment above its table', async () => {
    const advice = sampleAdvice();
    const text = renderYaml(advice, { namespace: 'shop', header: ['Generated for a test', 'second\nline'] });
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, text);
    const policy = await loadPolicy(file);
    expect(policy.namespace).toBe('shop');
    expect(policy.version).toBe(1);
    expect(policy.defaults.pattern).toBe('none');
    expect(patternsOf(policy)).toEqual(EXPECTED);
    const lines = text.split('\n');
    expect(lines[0]).toBe('# Generated for a test');
    expect(lines[1]).toBe('# second line');
    for (const a of advice.filter((x) => /^[a-z][a-z_]*$/.test(x.table))) {
      const at = lines.findIndex((l) => l.startsWith(`  ${a.table}: `));
      expect(lines[at - 1], a.table).toBe(`  # ${a.pattern}: ${a.reason}`);
      expect(lines[at], a.table).toBe(`  ${a.table}: { pattern: ${a.pattern} }`);
    }
    const year = lines.indexOf('  "2024": { pattern: write-through }');
    expect(lines[year - 1]).toMatch(/^ {2}# write-through: moderate writes: 10 reads\/s vs 5 writes\/s/);
    expect(text).toContain('# write-back: write-heavy: 200 reads/s vs 200 writes/s (1:1), over 100 writes/s');
    expect(text).toContain(
      '# none: looks like money/audit/security data (the table name "payments" contains "payment")',
    );
    // A name no policy accepts is left out (it gets defaults: none) and the header says so.
    expect(text).toContain(
      '# Left out "tab\\tname" (pattern none): a policy table name must not contain control characters or unpaired surrogates.',
    );
  });
});

describe('renderTypeScript', () => {
  it('renders a module whose definePolicy call validates, with each reason as a comment', async () => {
    const advice = sampleAdvice();
    const text = renderTypeScript(advice, {
      namespace: 'shop',
      version: 3,
      header: ['Generated for a test'],
      importFrom: pathToFileURL(POLICY_MODULE).href,
    });
    const file = join(dir, 'policy.ts');
    writeFileSync(file, text);
    const module = (await import(pathToFileURL(file).href)) as { policy: Policy };
    expect(module.policy.namespace).toBe('shop');
    expect(module.policy.version).toBe(3);
    expect(patternsOf(module.policy)).toEqual(EXPECTED);
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines[0]).toBe('// Generated for a test');
    expect(lines[1]).toMatch(/^\/\/ Left out "tab\\tname" \(pattern none\)/);
    for (const a of advice.filter((x) => /^[a-z][a-z_]*$/.test(x.table))) {
      const at = lines.findIndex((l) => l.startsWith(`    ${a.table}: `));
      expect(lines[at - 1], a.table).toBe(`    // ${a.pattern}: ${a.reason}`);
      expect(lines[at], a.table).toBe(`    ${a.table}: { pattern: '${a.pattern}' },`);
    }
    expect(lines).toContain("    ['__proto__']: { pattern: 'cache-aside' },");
    // Every line comment stays on its line (no raw line terminators inside it).
    for (const line of lines) expect(line).not.toMatch(/[\u2028\u2029\r]/);
  });

  it('imports definePolicy from tablecache by default', () => {
    expect(renderTypeScript([], { namespace: 'app' })).toContain("import { definePolicy } from 'tablecache';");
  });
});

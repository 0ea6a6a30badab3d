import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicy, type Policy } from '../../src/policy/index.js';
import { databaseUrl } from '../support/pg.js';
import { type AdvisorSchema, advisorSchema } from './pg-workload.js';
import { ROOT, runAdvise } from './run-advise.js';

let db: AdvisorSchema;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tablecache-advise-cli-'));
  db = await advisorSchema();
  await db.workload();
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

function patterns(policy: Policy): Record<string, string> {
  return Object.fromEntries([...policy.tables].map(([name, p]) => [name, p.pattern]));
}

describe('tablecache advise: usage', () => {
  it('prints its usage with --help', async () => {
    const run = await runAdvise(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: tablecache advise --database-url <url>');
    expect(run.stdout).toContain('--sample <time>');
  });

  it.each([
    [[], 'missing --database-url <url> (or set DATABASE_URL)'],
    [['--database-url', databaseUrl(), '--format', 'xml'], 'invalid --format "xml": use yaml or ts'],
    [['--database-url', databaseUrl(), '--sample', 'soon'], 'invalid --sample "soon"'],
    [['--database-url', databaseUrl(), '--min-rate=-1'], 'invalid --min-rate "-1"'],
    [['--database-url', databaseUrl(), '--schema', 'x'], "Unknown option '--schema'"],
  ])('exits 2 on bad arguments: %j', async (args, message) => {
    const run = await runAdvise(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stdout).toBe('');
  });

  it('exits 1 on a namespace a policy cannot have, before connecting', async () => {
    const run = await runAdvise(['--database-url', 'postgres://nobody@127.0.0.1:1/x', '--namespace', '']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('namespace');
  });

  it('exits 2 naming the database (without credentials) when it cannot connect', async () => {
    const run = await runAdvise(['--database-url', 'postgres://someone:hunter2@127.0.0.1:1/nowhere']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('cannot connect to PostgreSQL at postgres://127.0.0.1:1/nowhere');
    expect(run.stderr).not.toContain('hunter2');
  });

  it('exits 2 when the schema has no tables', async () => {
    const run = await runAdvise(['--database-url', databaseUrl(), '--schema-name', `${db.schema}_none`]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`schema "${db.schema}_none" has no tables`);
  });
});

describe('tablecache advise: output', () => {
  it('prints a YAML policy from the cumulative counters that loadPolicy accepts', async () => {
    const run = await runAdvise(['--database-url', databaseUrl(), '--schema-name', db.schema, '--min-rate', '0']);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`tablecache advise: 7 tables of schema "${db.schema}"`);
    const file = join(dir, 'cumulative.yaml');
    writeFileSync(file, run.stdout);
    const policy = await loadPolicy(file);
    expect(policy.namespace).toBe('app');
    const p = patterns(policy);
    const key = (name: string) => `${db.schema}.${name}`;
    // Seed rows and index builds count here: 401 reads against 20 inserted rows is still over 10:1.
    expect(p[key('catalog_items')]).toBe('cache-aside');
    expect(p[key('payments')]).toBe('none');
    // Building its primary key scanned "quiet" once: with --min-rate 0, one read is read-heavy.
    expect(p[key('quiet')]).toBe('cache-aside');
    expect(p[key('notes')]).toBe('write-through');
    expect(p[key('tags')]).toBe('none');
    expect(p[key('click_log')]).toBe('none');
    expect(run.stdout).toMatch(/^# Workload: cumulative counters since the (statistics reset|server started) at /m);
    expect(run.stdout).toContain('writes/s (20.1:1), over 10:1 (20 rows');
    expect(run.stdout).toContain(
      '# none: looks like money/audit/security data (the table name "payments" contains "payment")',
    );
  });

  it('samples the workload with --sample and prints a TypeScript module that validates', async () => {
    const run = await runAdvise([
      '--database-url',
      databaseUrl(),
      '--schema-name',
      db.schema,
      '--sample',
      '1s',
      '--format',
      'ts',
      '--namespace',
      'shop',
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('sampling the workload for 1s');
    expect(run.stdout).toContain("import { definePolicy } from 'tablecache';");
    expect(run.stdout).toMatch(/^\/\/ Workload: sampled over 1(\.\d)?s\.$/m);
    const file = join(dir, 'sampled.ts');
    const local = pathToFileURL(join(ROOT, 'src/policy/index.ts')).href;
    writeFileSync(file, run.stdout.replace("from 'tablecache'", `from '${local}'`));
    const { policy } = (await import(pathToFileURL(file).href)) as { policy: Policy };
    expect(policy.namespace).toBe('shop');
    // Nothing ran in the schema during the sample: every table is idle (and payments sensitive).
    expect(Object.values(patterns(policy))).toEqual(Array(7).fill('none'));
    expect(run.stdout.match(/\/\/ none: not worth caching: no reads and no writes recorded/g)).toHaveLength(6);
    expect(run.stdout).toContain('// none: looks like money/audit/security data (the table name "payments"');
  });
});

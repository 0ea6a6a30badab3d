import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, SCHEMA } from './run-cli.js';

let dir: string;

function policyFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tablecache-cli-check-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tablecache --help', () => {
  it('lists every command and exits 0', async () => {
    const run = await runCli(['--help']);
    expect(run.code).toBe(0);
    for (const name of ['check', 'stats', 'invalidate', 'bump', 'verify', 'advise', 'writeback', 'worker'])
      expect(run.stdout).toContain(`  ${name}`);
  });

  it.each(['check', 'stats', 'invalidate', 'bump', 'verify', 'advise', 'writeback', 'worker'])(
    'prints the usage of %s with --help',
    async (name) => {
      const run = await runCli([name, '--help']);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`Usage: tablecache ${name}`);
    },
  );

  it('rejects an unknown command with exit code 2', async () => {
    const run = await runCli(['frobnicate']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown command "frobnicate"');
  });
});

describe('tablecache check', () => {
  it('exits 0 and lists each table with its pattern when the policy fits the schema', async () => {
    const file = policyFile(
      'ok.yaml',
      'namespace: shop\nversion: 1\ntables:\n  cliItems: { pattern: cache-aside, ttl: 5m }\n  cli_tags: { pattern: none }\n',
    );
    const run = await runCli(['check', file, '--schema', SCHEMA]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('ok:');
    expect(run.stdout).toMatch(/cli_items\s+table\s+cache-aside\s+5m\s+tables\.cliItems/);
    expect(run.stdout).toMatch(/cli_pairs\s+table\s+none\s+-\s+defaults/);
  });

  it('exits 1 and names the file, table and field of every schema problem', async () => {
    const file = policyFile(
      'unknown-table.yaml',
      'namespace: shop\nversion: 1\ntables:\n  cli_itemz: { pattern: cache-aside }\n  cli_tags: { pattern: cache-aside }\n',
    );
    const run = await runCli(['check', file, '--schema', SCHEMA]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `${file}: table "cli_itemz": field "tables.cli_itemz": unknown table "cli_itemz" (did you mean "cli_items"?)`,
    );
  });

  it('exits 1 and names the file, table and field of malformed fields', async () => {
    const file = policyFile(
      'bad-fields.json',
      JSON.stringify({
        namespace: 'shop',
        version: 1,
        tables: { cli_items: { pattern: 'cache-aside', ttl: '5 years' } },
      }),
    );
    const run = await runCli(['check', file, '--schema', SCHEMA]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${file}: table "cli_items": field "tables.cli_items.ttl":`);
    expect(run.stderr).toContain('invalid duration');
  });

  it('accepts a TypeScript policy module exporting `policy`', async () => {
    const file = policyFile(
      'policy.ts',
      `export const policy = { namespace: 'shop', version: 2, tables: { cli_items: { pattern: 'cache-aside' } } };\n`,
    );
    const run = await runCli(['check', file, '--schema', SCHEMA]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('version 2');
  });

  it('exits 2 with a clear message when the schema module is missing', async () => {
    const file = policyFile('fine.yaml', 'namespace: shop\nversion: 1\n');
    const run = await runCli(['check', file, '--schema', 'test/cli/fixtures/no-such-schema.ts']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('schema module not found: test/cli/fixtures/no-such-schema.ts');
  });

  it('exits 2 when the schema module exports no table', async () => {
    const file = policyFile('fine2.yaml', 'namespace: shop\nversion: 1\n');
    const empty = policyFile('empty-schema.ts', 'export const answer = 42;\n');
    const run = await runCli(['check', file, '--schema', empty]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('exports no Drizzle PostgreSQL table or view');
  });

  it('exits 2 when the policy file is missing or --schema is not given', async () => {
    const missing = await runCli(['check', join(dir, 'nope.yaml'), '--schema', SCHEMA]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('policy not found');
    const noSchema = await runCli(['check', join(dir, 'nope.yaml')]);
    expect(noSchema.code).toBe(2);
    expect(noSchema.stderr).toContain('missing --schema <module>');
  });
});

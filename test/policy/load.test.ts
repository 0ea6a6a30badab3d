import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyError } from '../../src/errors.js';
import { loadPolicy } from '../../src/policy/index.js';

let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tablecache-policy-load-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes files (name -> content) into a fresh directory and returns its path. */
async function dirWith(files: Record<string, string | Buffer>): Promise<string> {
  const dir = join(root, `case-${++counter}`);
  await mkdir(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

/** Writes one file into a fresh directory and returns its path. */
async function fileWith(name: string, content: string | Buffer): Promise<string> {
  return join(await dirWith({ [name]: content }), name);
}

async function loadError(path: string): Promise<PolicyError> {
  const err: unknown = await loadPolicy(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PolicyError);
  return err as PolicyError;
}

describe('loadPolicy: single files', () => {
  it('loads a JSON policy', async () => {
    const file = await fileWith(
      'policy.json',
      JSON.stringify({
        namespace: 'shop',
        version: 3,
        defaults: { ttl: '10m' },
        tables: { users: { pattern: 'cache-aside' } },
      }),
    );
    const policy = await loadPolicy(file);
    expect(policy.namespace).toBe('shop');
    expect(policy.version).toBe(3);
    expect(policy.source).toBe(file);
    expect(policy.tableSources?.get('users')).toBe(file);
    expect(policy.tables.get('users')?.ttlMs).toBe(600_000);
  });

  it('loads a YAML policy (.yaml and .yml)', async () => {
    const text = [
      'namespace: shop',
      'version: 1',
      'defaults:',
      '  pattern: cache-aside',
      '  ttl: 5m',
      'tables:',
      '  orders:',
      '    pattern: write-back',
      '    flush: { every: 2s, batch: 100, onBackpressure: fail }',
      '  active_users:',
      '    pattern: cache-aside',
      '    reads: [users, orders]',
      '',
    ].join('\n');
    for (const name of ['policy.yaml', 'policy.yml']) {
      const policy = await loadPolicy(await fileWith(name, text));
      expect(policy.defaults.ttlMs).toBe(300_000);
      expect(policy.tables.get('orders')?.flush).toMatchObject({ everyMs: 2000, batch: 100, onBackpressure: 'fail' });
      expect(policy.tables.get('active_users')?.reads).toEqual(['users', 'orders']);
    }
  });

  it('accepts a byte-order mark', async () => {
    const policy = await loadPolicy(await fileWith('p.json', '\uFEFF{"namespace":"n","version":1}'));
    expect(policy.namespace).toBe('n');
  });

  it('names the line of a validation problem in YAML', async () => {
    const file = await fileWith(
      'policy.yaml',
      'namespace: shop\nversion: 1\ntables:\n  users:\n    pattern: cache-aside\n    tll: 5m\n',
    );
    const err = await loadError(file);
    expect(err.location).toEqual({ file, table: 'users', field: 'tables.users.tll' });
    expect(err.message).toContain('did you mean "ttl"?');
    expect(err.message).toMatch(/\(line 6\)$/);
  });

  it('names the line of a validation problem in JSON', async () => {
    const file = await fileWith('policy.json', '{\n  "namespace": "shop",\n  "version": 1.5\n}\n');
    const err = await loadError(file);
    expect(err.location).toEqual({ file, field: 'version' });
    expect(err.message).toMatch(/\(line 3\)$/);
  });

  it('reports malformed YAML with its line', async () => {
    const file = await fileWith('bad.yaml', 'namespace: shop\nversion: 1\ntables:\n  users: [unclosed\n');
    const err = await loadError(file);
    expect(err.location.file).toBe(file);
    expect(err.message).toMatch(/invalid YAML at line \d+, column \d+/);
  });

  it('rejects duplicate YAML keys with their line', async () => {
    const file = await fileWith('dup.yaml', 'namespace: a\nversion: 1\nnamespace: b\n');
    const err = await loadError(file);
    expect(err.message).toMatch(/invalid YAML at line 3, column 1: .*unique/);
  });

  it('reports malformed JSON with its line', async () => {
    const file = await fileWith('bad.json', '{\n  "namespace": "shop",\n  "version": 1,\n}\n');
    const err = await loadError(file);
    expect(err.location.file).toBe(file);
    expect(err.message).toMatch(/invalid JSON at line 4, column 1/);
  });

  it('rejects an alias bomb', async () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 30; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    lines.push('namespace: n', 'version: 1');
    const err = await loadError(await fileWith('bomb.yaml', lines.join('\n')));
    expect(err.message).toMatch(/alias/);
  });

  it('allows a few ordinary aliases', async () => {
    const text = [
      'namespace: n',
      'version: 1',
      'tables:',
      '  users: &cached { pattern: cache-aside, ttl: 1m }',
      '  orders: *cached',
    ].join('\n');
    const policy = await loadPolicy(await fileWith('aliases.yaml', text));
    expect(policy.tables.get('orders')?.ttlMs).toBe(60_000);
  });

  it('rejects custom and YAML 1.1 tags', async () => {
    for (const value of ['!js/function "x"', '!!binary aGVsbG8=', '!!set {a}']) {
      const err = await loadError(await fileWith('tags.yaml', `namespace: ${value}\nversion: 1\n`));
      expect(err.message).toMatch(/invalid YAML at line 1/);
    }
  });

  it('does not treat << as a merge key', async () => {
    const text = 'base: &b { pattern: none }\nnamespace: n\nversion: 1\n';
    const err = await loadError(await fileWith('merge.yaml', `${text}defaults:\n  <<: *b\n`));
    expect(err.issues.map((i) => i.location.field)).toEqual(['base', 'defaults.<<']);
  });

  it('rejects multiple YAML documents', async () => {
    const err = await loadError(await fileWith('multi.yaml', 'namespace: a\nversion: 1\n---\nnamespace: b\n'));
    expect(err.message).toMatch(/invalid YAML/);
  });

  it('rejects a file over 1 MiB without parsing it', async () => {
    const big = `namespace: n\nversion: 1\n# ${'x'.repeat(1024 * 1024)}\n`;
    const err = await loadError(await fileWith('big.yaml', big));
    expect(err.message).toMatch(/limited to 1 MiB/);
  });

  it('accepts a file of exactly 1 MiB', async () => {
    const head = 'namespace: n\nversion: 1\n# ';
    const text = head + 'x'.repeat(1024 * 1024 - head.length);
    expect(Buffer.byteLength(text)).toBe(1024 * 1024);
    expect((await loadPolicy(await fileWith('edge.yaml', text))).namespace).toBe('n');
  });

  it('rejects invalid UTF-8', async () => {
    const err = await loadError(await fileWith('latin1.yaml', Buffer.from([0x6e, 0x3a, 0x20, 0xe9, 0x0a])));
    expect(err.message).toMatch(/not valid UTF-8/);
  });

  it('rejects deeply nested YAML as an error, not a crash', async () => {
    const text = `namespace: n\nversion: 1\ndefaults: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`;
    const err = await loadError(await fileWith('deep.yaml', text));
    expect(err.location.file).toMatch(/deep\.yaml$/);
  });

  it('rejects an empty file and a non-mapping document', async () => {
    expect((await loadError(await fileWith('empty.yaml', ''))).message).toMatch(/must be a mapping.*got null/);
    expect((await loadError(await fileWith('list.json', '[1,2]'))).message).toMatch(/got a list/);
  });

  it('rejects missing paths and unknown extensions', async () => {
    const missing = join(root, 'nope.yaml');
    expect(await loadError(missing)).toMatchObject({ location: { file: missing } });
    expect((await loadError(await fileWith('policy.toml', 'x = 1'))).message).toMatch(/\.json, \.yaml or \.yml/);
  });
});

describe('loadPolicy: directories', () => {
  it('loads _policy plus one file per table, naming each table file', async () => {
    const dir = await dirWith({
      '_policy.yaml': 'namespace: shop\nversion: 2\ndefaults:\n  ttl: 30s\n',
      'users.yaml': 'pattern: write-through\n',
      'orders.json': '{"pattern": "write-back", "flush": {"batch": 10}}',
      'auth.sessions.yml': 'pattern: cache-aside\nttl: 1m\n',
      'README.md': '# not a policy',
      '.hidden.yaml': 'this: is ignored',
    });
    await mkdir(join(dir, 'sub.yaml'));
    const policy = await loadPolicy(dir);
    expect(policy.namespace).toBe('shop');
    expect(policy.source).toBe(join(dir, '_policy.yaml'));
    expect([...policy.tables.keys()].sort()).toEqual(['auth.sessions', 'orders', 'users']);
    expect(policy.tables.get('users')?.ttlMs).toBe(30_000);
    expect(policy.tables.get('orders')?.flush.batch).toBe(10);
    expect(policy.tableSources?.get('orders')).toBe(join(dir, 'orders.json'));
    expect(policy.tableSources?.get('auth.sessions')).toBe(join(dir, 'auth.sessions.yml'));
  });

  it('follows symlinked table files', async () => {
    const dir = await dirWith({ '_policy.json': '{"namespace":"n","version":1}' });
    const target = await fileWith('real.yaml', 'pattern: cache-aside\n');
    await symlink(target, join(dir, 'users.yaml'));
    expect((await loadPolicy(dir)).tables.get('users')?.pattern).toBe('cache-aside');
  });

  it('merges tables listed in _policy with table files', async () => {
    const dir = await dirWith({
      '_policy.yaml': 'namespace: n\nversion: 1\ntables:\n  users: { pattern: none }\n',
      'orders.yaml': 'pattern: cache-aside\n',
    });
    const policy = await loadPolicy(dir);
    expect([...policy.tables.keys()].sort()).toEqual(['orders', 'users']);
    expect(policy.tableSources?.get('users')).toBe(join(dir, '_policy.yaml'));
  });

  it('names the table file and its line in validation errors', async () => {
    const dir = await dirWith({
      '_policy.yaml': 'namespace: n\nversion: 1\n',
      'users.yaml': '# users\npattern: cache-aside\nttl: forever\n',
    });
    const err = await loadError(dir);
    expect(err.location).toEqual({ file: join(dir, 'users.yaml'), table: 'users', field: 'tables.users.ttl' });
    expect(err.message).toMatch(/\(line 3\)$/);
  });

  it('rejects a table defined by two files, naming both', async () => {
    const dir = await dirWith({
      '_policy.yaml': 'namespace: n\nversion: 1\n',
      'users.json': '{"pattern":"none"}',
      'users.yaml': 'pattern: none\n',
    });
    const err = await loadError(dir);
    expect(err.message).toContain(join(dir, 'users.json'));
    expect(err.message).toContain(join(dir, 'users.yaml'));
    expect(err.location.table).toBe('users');
  });

  it('rejects a table in both _policy and its own file', async () => {
    const dir = await dirWith({
      '_policy.yaml': 'namespace: n\nversion: 1\ntables:\n  users: { pattern: none }\n',
      'users.yaml': 'pattern: none\n',
    });
    const err = await loadError(dir);
    expect(err.message).toContain(`defined both in ${join(dir, '_policy.yaml')} and in ${join(dir, 'users.yaml')}`);
  });

  it('requires exactly one _policy file', async () => {
    const none = await dirWith({ 'users.yaml': 'pattern: none\n' });
    expect(await loadError(none)).toMatchObject({ location: { file: none } });
    expect((await loadError(none)).message).toMatch(/needs a _policy\.yaml/);
    const two = await dirWith({
      '_policy.yaml': 'namespace: n\nversion: 1\n',
      '_policy.json': '{"namespace":"n","version":1}',
    });
    expect((await loadError(two)).message).toMatch(/exactly one _policy file/);
  });

  it('reports parse errors of several files at once', async () => {
    const dir = await dirWith({
      '_policy.yaml': 'namespace: n\nversion: 1\n',
      'a.yaml': 'pattern: [\n',
      'b.json': '{',
    });
    const err = await loadError(dir);
    expect(err.issues.map((i) => i.location.file)).toEqual([join(dir, 'a.yaml'), join(dir, 'b.json')]);
  });
});

import { describe, expect, it } from 'vitest';
import type { Catalog, TableInfo } from '../../src/catalog.js';
import { PolicyError } from '../../src/errors.js';
import { bindPolicy, validatePolicy } from '../../src/policy/index.js';

function table(id: string, extra: Partial<TableInfo> = {}): TableInfo {
  return {
    id,
    name: extra.name ?? id,
    aliases: [],
    columns: [{ name: 'id', type: 'integer' }],
    primaryKey: ['id'],
    kind: 'table',
    ...extra,
  };
}

const catalog: Catalog = {
  tables: [
    table('users', { aliases: ['usersTable'] }),
    table('orders', { aliases: ['orders'] }),
    table('audit_log', { aliases: ['auditLog'], primaryKey: [] }),
    table('auth.users', { name: 'users', schema: 'auth', aliases: ['authUsers'] }),
    table('billing.invoices', { name: 'invoices', schema: 'billing', aliases: ['invoices'] }),
    table('active_users', { aliases: ['activeUsers'], kind: 'view', primaryKey: [] }),
    table('order_totals', { aliases: ['orderTotals'], kind: 'view', primaryKey: [] }),
  ],
};

const policy = (tables: Record<string, unknown>, defaults?: unknown, tableFiles?: Map<string, string>) =>
  validatePolicy(
    { namespace: 'shop', version: 1, tables, ...(defaults === undefined ? {} : { defaults }) },
    { file: 'policy.yaml', tableFiles },
  );

function bindError(tables: Record<string, unknown>, defaults?: unknown, tableFiles?: Map<string, string>): PolicyError {
  try {
    bindPolicy(policy(tables, defaults, tableFiles), catalog);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error('expected bindPolicy to throw');
}

describe('bindPolicy: name resolution', () => {
  it('gives every catalog table a policy, the defaults when the policy does not name it', () => {
    const bound = bindPolicy(policy({ users: { pattern: 'write-through' } }, { pattern: 'cache-aside' }), catalog);
    expect([...bound.tables.keys()]).toEqual(catalog.tables.map((t) => t.id));
    expect(bound.get('users')?.pattern).toBe('write-through');
    expect(bound.get('orders')).toBe(bound.policy.defaults);
    expect(bound.keys.get('users')).toBe('users');
    expect(bound.keys.has('orders')).toBe(false);
    expect(bound.get('nope')).toBeUndefined();
    expect(bound.policyOf('nope')).toBe(bound.policy.defaults);
    expect(bound.policyOf('users').pattern).toBe('write-through');
  });

  it('resolves export names (aliases), database names and ids', () => {
    const bound = bindPolicy(
      policy({
        usersTable: { pattern: 'write-through' },
        auditLog: { pattern: 'cache-aside' },
        'auth.users': { pattern: 'write-back' },
        invoices: { pattern: 'cache-aside', ttl: 5 },
      }),
      catalog,
    );
    expect(bound.get('users')?.pattern).toBe('write-through');
    expect(bound.keys.get('users')).toBe('usersTable');
    expect(bound.get('audit_log')?.pattern).toBe('cache-aside');
    expect(bound.get('auth.users')?.pattern).toBe('write-back');
    expect(bound.get('billing.invoices')?.ttlMs).toBe(5000);
  });

  it('lets the id win when a name is also another table’s database name', () => {
    // "users" is the id of public.users and the database name of auth.users.
    const bound = bindPolicy(policy({ users: { pattern: 'cache-aside' } }), catalog);
    expect(bound.get('users')?.pattern).toBe('cache-aside');
    expect(bound.get('auth.users')?.pattern).toBe('none');
  });

  it('rejects an ambiguous name', () => {
    const ambiguous: Catalog = {
      tables: [table('a.items', { name: 'items', schema: 'a' }), table('b.items', { name: 'items', schema: 'b' })],
    };
    let err: unknown;
    try {
      bindPolicy(policy({ items: { pattern: 'cache-aside' } }), ambiguous);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).message).toMatch(/ambiguous: it matches "a.items" and "b.items"; use the table id/);
  });

  it('rejects an unknown table with a suggestion, naming file and field', () => {
    const err = bindError({ usres: { pattern: 'cache-aside' } });
    expect(err.location).toEqual({ file: 'policy.yaml', table: 'usres', field: 'tables.usres' });
    expect(err.message).toContain('unknown table "usres" (did you mean "users"?)');
  });

  it('lists known tables when nothing is close', () => {
    const err = bindError({ zzzzzzzz: { pattern: 'none' } });
    expect(err.message).toContain('known tables: "users", "orders"');
  });

  it('names the table file of an unknown table', () => {
    const err = bindError({ ordrs: { pattern: 'none' } }, undefined, new Map([['ordrs', 'policy/ordrs.yaml']]));
    expect(err.location.file).toBe('policy/ordrs.yaml');
    expect(err.message).toContain('did you mean "orders"?');
  });

  it('rejects two keys that name the same table', () => {
    const err = bindError({ users: { pattern: 'none' }, usersTable: { pattern: 'cache-aside' } });
    expect(err.message).toContain('table "users" is configured twice: as "users" and as "usersTable"');
    expect(err.location.table).toBe('usersTable');
  });

  it('collects all binding problems in one error', () => {
    const err = bindError({ a1: { pattern: 'none' }, b2: { pattern: 'none' }, auditLog: { pattern: 'write-back' } });
    expect(err.issues).toHaveLength(3);
  });
});

describe('bindPolicy: pattern rules', () => {
  it('rejects write-back on a table without a primary key', () => {
    const err = bindError({ auditLog: { pattern: 'write-back' } });
    expect(err.location).toEqual({ file: 'policy.yaml', table: 'auditLog', field: 'tables.auditLog.pattern' });
    expect(err.message).toMatch(/"audit_log" has no primary key/);
  });

  it('rejects inheriting write-back on a table without a primary key', () => {
    const err = bindError({}, { pattern: 'write-back' });
    expect(err.location).toEqual({ file: 'policy.yaml', table: 'audit_log', field: 'defaults.pattern' });
  });

  it('allows write-back defaults when keyless tables have their own entry', () => {
    const bound = bindPolicy(policy({ auditLog: { pattern: 'cache-aside' } }, { pattern: 'write-back' }), catalog);
    expect(bound.get('orders')?.pattern).toBe('write-back');
    expect(bound.get('audit_log')?.pattern).toBe('cache-aside');
  });

  it.each(['write-back', 'write-through'])('rejects %s on a view', (pattern) => {
    const err = bindError({ activeUsers: { pattern, reads: ['users'] } });
    expect(err.location.field).toBe('tables.activeUsers.pattern');
    expect(err.message).toMatch(/is a view, which is read-only/);
  });

  it('requires reads on a cached view', () => {
    const err = bindError({ activeUsers: { pattern: 'cache-aside' } });
    expect(err.location.field).toBe('tables.activeUsers.reads');
    expect(err.message).toMatch(/needs "reads"/);
    expect(bindError({ activeUsers: { pattern: 'cache-aside', reads: [] } }).location.field).toBe(
      'tables.activeUsers.reads',
    );
  });

  it('resolves reads to table ids and indexes the readers', () => {
    const bound = bindPolicy(
      policy({
        activeUsers: { pattern: 'cache-aside', reads: ['usersTable', 'orders', 'users'] },
        orderTotals: { pattern: 'none', reads: ['orders'] },
      }),
      catalog,
    );
    expect(bound.get('active_users')?.reads).toEqual(['users', 'orders']);
    expect(bound.readersOf('users')).toEqual(['active_users']);
    // Uncached views do not need invalidating.
    expect(bound.readersOf('orders')).toEqual(['active_users']);
    expect(bound.readersOf('audit_log')).toEqual([]);
  });

  it('rejects reads that name unknown tables or views', () => {
    const err = bindError({ activeUsers: { pattern: 'cache-aside', reads: ['userz', 'orderTotals'] } });
    expect(err.issues.map((i) => i.message)).toEqual([
      'reads: unknown table "userz" (did you mean "users"?)',
      'reads: "orderTotals" is a view; list the tables it reads instead',
    ]);
    expect(err.issues.every((i) => i.location.field === 'tables.activeUsers.reads')).toBe(true);
  });

  it('rejects reads on a table', () => {
    const err = bindError({ users: { pattern: 'cache-aside', reads: ['orders'] } });
    expect(err.location.field).toBe('tables.users.reads');
    expect(err.message).toMatch(/is a table; "reads" is only for views/);
  });

  it('leaves views the policy does not name uncached', () => {
    const bound = bindPolicy(policy({}, { pattern: 'cache-aside', ttl: '2m' }), catalog);
    expect(bound.get('active_users')).toMatchObject({ pattern: 'none', ttlMs: 120_000 });
    expect(bound.get('users')?.pattern).toBe('cache-aside');
  });

  it('binds an empty catalog and reports unknown tables against it', () => {
    expect(bindPolicy(policy({}), { tables: [] }).tables.size).toBe(0);
    expect(() => bindPolicy(policy({ users: { pattern: 'none' } }), { tables: [] })).toThrow(
      /the schema has no tables/,
    );
  });
});

// The `@ts-expect-error` lines below are checked by `tsc -p tsconfig.json` (test/ is part of it):
// if a misspelled table stopped being a compile error, the unused directive would fail the build.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { PolicyError } from '../../src/errors.js';
import { definePolicy, type Policy, type TableNames, type TablePolicy } from '../../src/policy/index.js';

/** The shape of a Drizzle schema module: tables and views carry `_.name`; other exports do not. */
interface Schema {
  users: { _: { name: 'users'; schema: undefined }; id: unknown };
  orders: { _: { name: 'orders'; schema: undefined } };
  activeUsers: { _: { name: 'active_users' } };
  usersRelations: { table: unknown; config: unknown };
  helper: (n: number) => number;
}

describe('definePolicy types', () => {
  it('derives table names from the schema, skipping non-table exports', () => {
    expectTypeOf<TableNames<Schema>>().toEqualTypeOf<'users' | 'orders' | 'activeUsers'>();
    expectTypeOf<TableNames<never>>().toEqualTypeOf<string>();
    expectTypeOf(definePolicy<Schema>).returns.toEqualTypeOf<Policy>();
  });

  it('accepts schema table names and makes a misspelled one a compile error', () => {
    const policy = definePolicy<Schema>({
      namespace: 'shop',
      version: 1,
      tables: {
        users: { pattern: 'write-through', ttl: '5m' },
        activeUsers: { pattern: 'cache-aside', reads: ['users', 'orders'] },
      },
    });
    expect([...policy.tables.keys()]).toEqual(['users', 'activeUsers']);

    // At runtime definePolicy has no schema: the name is kept, and bindPolicy rejects it later.
    const typo = definePolicy<Schema>({
      namespace: 'shop',
      version: 1,
      // @ts-expect-error "usres" is not a table of Schema
      tables: { usres: { pattern: 'cache-aside' } },
    });
    expect([...typo.tables.keys()]).toEqual(['usres']);
  });

  it('types reads, patterns and durations', () => {
    expect(() =>
      definePolicy<Schema>({
        namespace: 'shop',
        version: 1,
        // @ts-expect-error "user" is not a table of Schema
        tables: { activeUsers: { pattern: 'cache-aside', reads: ['user'] } },
      }),
    ).not.toThrow();
    // @ts-expect-error not a pattern
    const badPattern: TablePolicy = { pattern: 'cache' };
    // @ts-expect-error a duration needs a unit
    const badTtl: TablePolicy = { pattern: 'none', ttl: '5 minutes' };
    expect(() =>
      // @ts-expect-error reads belongs to a view's entry, not to defaults
      definePolicy({ namespace: 'n', version: 1, defaults: { reads: ['a'] } }),
    ).toThrow(PolicyError);
    expect(badPattern.pattern).toBe('cache');
    expect(badTtl.ttl).toBe('5 minutes');
  });

  it('accepts any table name without a schema type', () => {
    const policy = definePolicy({ namespace: 'n', version: 2, tables: { anything: { pattern: 'none' } } });
    expect(policy.tables.get('anything')?.pattern).toBe('none');
  });

  it('still validates at runtime what the types cannot see', () => {
    expect(() => definePolicy({ namespace: 'n', version: -1 })).toThrow(/version/);
    expect(() =>
      definePolicy({ namespace: 'n', version: 1, tables: { t: { pattern: 'none', flush: { batch: 5 } } } }),
    ).toThrow(/only allowed with pattern "write-back"/);
  });
});

import { drizzle } from 'drizzle-orm/node-postgres';
import { pgTable, text } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy, PolicyError } from '../../src/index.js';
import { memoryStore } from '../../stores/memory.js';
import * as schema from '../fixtures/shop-schema.js';
import { databaseUrl } from '../support/pg.js';

const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
afterAll(() => pool.end());

describe('withCache', () => {
  it('returns a client of the same type', () => {
    const db = drizzle(pool, { schema });
    const cache = createCache({ store: memoryStore(), policy: definePolicy({ namespace: 't', version: 1 }) });
    const wrapped = withCache(db, cache);
    expectTypeOf(wrapped).toEqualTypeOf(db);
    expect(wrapped).not.toBe(db);
    expect(Object.getPrototypeOf(wrapped)).toBe(Object.getPrototypeOf(db));
    expect(wrapped.$client).toBe(db.$client);
  });

  it('validates the policy against the real schema and names the table and field', () => {
    const db = drizzle(pool, { schema });
    const cache = createCache({
      store: memoryStore(),
      // A plain string-keyed policy (as loaded from a file) can name a table that does not exist.
      policy: definePolicy({ namespace: 't', version: 1, tables: { usres: { pattern: 'cache-aside' } } }),
    });
    let error: unknown;
    try {
      withCache(db, cache);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PolicyError);
    expect((error as PolicyError).message).toContain('usres');
    expect((error as PolicyError).message).toContain('users');
    expect((error as PolicyError).location).toMatchObject({ table: 'usres' });
  });

  it('refuses write-back on a table without a primary key', () => {
    const logs = pgTable('logs', { line: text('line') });
    const db = drizzle(pool, { schema: { logs } });
    const cache = createCache({
      store: memoryStore(),
      policy: definePolicy({ namespace: 't', version: 1, tables: { logs: { pattern: 'write-back' } } }),
    });
    expect(() => withCache(db, cache)).toThrowError(PolicyError);
    expect(() => withCache(db, cache)).toThrowError(/logs/);
  });

  it('refuses write-through on a table without a primary key', () => {
    const logs = pgTable('logs', { line: text('line') });
    const db = drizzle(pool, { schema: { logs } });
    const cache = createCache({
      store: memoryStore(),
      policy: definePolicy({ namespace: 't', version: 1, tables: { logs: { pattern: 'write-through' } } }),
    });
    expect(() => withCache(db, cache)).toThrowError(/no primary key.*write-through/);
  });

  it('rejects what is not a Drizzle PostgreSQL client', () => {
    const cache = createCache({ store: memoryStore(), policy: definePolicy({ namespace: 't', version: 1 }) });
    expect(() => withCache({}, cache)).toThrowError(TypeError);
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../src/errors.js';
import { definePolicy, loadPolicy, validatePolicy } from '../../src/policy/index.js';
import type { PolicyInput } from '../../src/policy/types.js';

const base = { namespace: 'shop', version: 1 };

/** The PolicyError `run` throws (fails the test when it does not throw one). */
async function policyError(run: () => unknown): Promise<PolicyError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyError);
    return error as PolicyError;
  }
  throw new Error('expected a PolicyError');
}

describe('flush.priority validation', () => {
  it('rejects an unknown priority of a table, naming the table, the field and the allowed values', async () => {
    const err = await policyError(() =>
      validatePolicy({ ...base, tables: { orders: { pattern: 'write-back', flush: { priority: 'urgent' } } } }),
    );
    expect(err.code).toBe('E_POLICY');
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]?.location).toEqual({ table: 'orders', field: 'tables.orders.flush.priority' });
    expect(err.issues[0]?.message).toBe('priority must be one of "high", "normal", "low", got "urgent"');
    expect(err.message).toContain('table "orders"');
    expect(err.message).toContain('tables.orders.flush.priority');
  });

  it('rejects a priority of the wrong type and in defaults', async () => {
    const wrongType = await policyError(() =>
      validatePolicy({ ...base, tables: { orders: { pattern: 'write-back', flush: { priority: 1 } } } }),
    );
    expect(wrongType.issues[0]?.location).toEqual({ table: 'orders', field: 'tables.orders.flush.priority' });
    expect(wrongType.issues[0]?.message).toMatch(/^priority must be one of "high", "normal", "low", got 1$/);

    const inDefaults = await policyError(() => validatePolicy({ ...base, defaults: { flush: { priority: 'HIGH' } } }));
    expect(inDefaults.issues[0]?.location).toEqual({ field: 'defaults.flush.priority' });
    expect(inDefaults.issues[0]?.message).toMatch(/got "HIGH" \(did you mean "high"\?\)$/);
  });

  it('is checked at run time by definePolicy, whatever the types allowed', async () => {
    const input = { ...base, tables: { orders: { pattern: 'write-back', flush: { priority: 'later' } } } };
    const err = await policyError(() => definePolicy(input as unknown as PolicyInput));
    expect(err.issues[0]?.location).toEqual({ table: 'orders', field: 'tables.orders.flush.priority' });
  });

  it('names the file, table and field of a bad priority in a YAML policy', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tc-priority-'));
    try {
      const file = join(dir, 'policy.yaml');
      await writeFile(
        file,
        'namespace: shop\nversion: 1\ntables:\n  orders:\n    pattern: write-back\n    flush: { priority: urgent }\n',
      );
      const err = await policyError(() => loadPolicy(file));
      expect(err.issues[0]?.location).toMatchObject({ table: 'orders', field: 'tables.orders.flush.priority' });
      expect(err.message).toContain('policy.yaml');
      expect(err.message).toContain('table "orders"');
      expect(err.message).toContain('"urgent"');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

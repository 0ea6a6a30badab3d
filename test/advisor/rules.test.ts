import { describe, expect, it } from 'vitest';
import { adviseTable, adviseTables, policyKey } from '../../src/advisor/index.js';
import { workload } from './workloads.js';

describe('adviseTable rules', () => {
  it('proposes cache-aside for a read-heavy table (over 10:1), with the rates in the reason', () => {
    const a = adviseTable(workload({ name: 'products', seqScans: 100, idxScans: 4900, inserts: 10, updates: 40 }));
    expect(a.pattern).toBe('cache-aside');
    expect(a.rule).toBe('read-heavy');
    expect(a.readsPerSecond).toBe(500);
    expect(a.writesPerSecond).toBe(5);
    expect(a.reason).toBe('read-heavy: 500 reads/s vs 5 writes/s (100:1), over 10:1 (1,000 rows, 128 KiB)');
  });

  it('proposes cache-aside for a table that is only read', () => {
    const a = adviseTable(workload({ name: 'countries', idxScans: 50 }));
    expect(a.pattern).toBe('cache-aside');
    expect(a.reason).toContain('5 reads/s vs 0 writes/s (no writes)');
  });

  it('does not call exactly 10:1 read-heavy: it is moderate (write-through with a primary key)', () => {
    const a = adviseTable(workload({ name: 'profiles', idxScans: 1000, updates: 100 }));
    expect(a.pattern).toBe('write-through');
    expect(a.rule).toBe('write-through');
    expect(a.reason).toBe(
      'moderate writes: 100 reads/s vs 10 writes/s (10:1), at most 10:1 and at most 100 writes/s; write-through keeps cached rows current on every write',
    );
  });

  it('proposes none for moderate writes without a primary key', () => {
    const a = adviseTable(workload({ name: 'carts', primaryKey: [], idxScans: 60, updates: 20 }));
    expect(a.pattern).toBe('none');
    expect(a.rule).toBe('moderate-no-primary-key');
    expect(a.reason).toContain('6 reads/s vs 2 writes/s (3:1)');
    expect(a.reason).toContain('write-through needs a primary key and there is none');
  });

  it('proposes write-back above 100 writes/s when every write statement is by primary key', () => {
    const a = adviseTable(
      workload({
        name: 'page_hits',
        idxScans: 2000,
        updates: 2000,
        writesByKey: { known: true, statements: 2000, byKey: 2000 },
      }),
    );
    expect(a.pattern).toBe('write-back');
    expect(a.rule).toBe('write-back');
    expect(a.reason).toContain('write-heavy: 200 reads/s vs 200 writes/s (1:1), over 100 writes/s');
    expect(a.reason).toContain('2,000 of 2,000 write statements by primary key (100%)');
    expect(a.reason).toContain('tolerates a lag');
  });

  it('counts a table as write-heavy when writes outnumber reads over 10:1, even at a low rate', () => {
    const a = adviseTable(
      workload({ name: 'imports', idxScans: 2, inserts: 50, writesByKey: { known: true, statements: 50, byKey: 50 } }),
    );
    expect(a.pattern).toBe('write-back');
    expect(a.reason).toContain('0.2 reads/s vs 5 writes/s (1:25), writes over 10:1 reads');
  });

  it('counts a counters/events table as write-heavy when writes at least equal reads', () => {
    const a = adviseTable(
      workload({
        name: 'like_counters',
        idxScans: 300,
        updates: 300,
        writesByKey: { known: true, statements: 300, byKey: 297 },
      }),
    );
    expect(a.pattern).toBe('write-back');
    expect(a.reason).toContain('30 reads/s vs 30 writes/s (1:1), at least as many writes as reads');
    expect(a.reason).toContain('("counter")');
    expect(a.reason).toContain('297 of 300 write statements by primary key (99%)');
  });

  it('keeps the same traffic on an ordinary name moderate (write-through)', () => {
    const a = adviseTable(workload({ name: 'documents', idxScans: 300, updates: 300 }));
    expect(a.pattern).toBe('write-through');
    expect(a.reason).toContain('30 reads/s vs 30 writes/s (1:1)');
  });

  it('refuses write-back without a primary key', () => {
    const a = adviseTable(workload({ name: 'raw_events', primaryKey: [], inserts: 5000 }));
    expect(a.pattern).toBe('none');
    expect(a.rule).toBe('write-heavy-no-primary-key');
    expect(a.reason).toBe(
      'write-heavy: 0 reads/s vs 500 writes/s (no reads), over 100 writes/s; write-back needs a primary key and there is none',
    );
  });

  it('refuses write-back when whether writes are by key is unknown, and says why', () => {
    const a = adviseTable(workload({ name: 'page_views', inserts: 3000, idxScans: 10 }));
    expect(a.pattern).toBe('none');
    expect(a.rule).toBe('write-heavy-keys-unknown');
    expect(a.reason).toContain('1 reads/s vs 300 writes/s (1:300), over 100 writes/s');
    expect(a.reason).toContain('whether they are is unknown (pg_stat_statements is not installed in this database)');
    expect(a.reason).toContain('then consider write-back');
  });

  it('refuses write-back when too few write statements are by key, with the share', () => {
    const a = adviseTable(
      workload({ name: 'events', inserts: 3000, writesByKey: { known: true, statements: 400, byKey: 100 } }),
    );
    expect(a.pattern).toBe('none');
    expect(a.rule).toBe('write-heavy-not-by-key');
    expect(a.reason).toContain('at least 95%), found 100 of 400 write statements by primary key (25%)');
  });

  it('proposes none for money, audit and security tables whatever their traffic', () => {
    for (const name of [
      'payments',
      'invoice_lines',
      'audit_log',
      'userSessions',
      'api_tokens',
      'refunds',
      'login_attempts',
    ]) {
      const a = adviseTable(workload({ name, idxScans: 10_000, updates: 10 }));
      expect(a.pattern, name).toBe('none');
      expect(a.rule, name).toBe('sensitive');
      expect(a.reason, name).toMatch(/^looks like money\/audit\/security data \(the table name ".+" contains ".+"\)/);
      expect(a.reason, name).toContain('1,000 reads/s vs 1 writes/s (1,000:1)');
    }
  });

  it('proposes none for a table whose columns hold secrets', () => {
    const a = adviseTable(workload({ name: 'users', columns: ['id', 'email', 'password_hash'], idxScans: 10_000 }));
    expect(a.pattern).toBe('none');
    expect(a.reason).toContain('column "password_hash" contains "password"');
  });

  it('proposes none for tiny traffic: below the minimum rate, or none at all', () => {
    const slow = adviseTable(workload({ name: 'settings', idxScans: 5, updates: 1 }));
    expect(slow.pattern).toBe('none');
    expect(slow.rule).toBe('low-traffic');
    expect(slow.reason).toBe(
      'not worth caching: 0.5 reads/s vs 0.1 writes/s (5:1), below 1 operations/s (1,000 rows, 128 KiB)',
    );
    const idle = adviseTable(workload({ name: 'archive', liveRows: 0, sizeBytes: 8192 }), { minRate: 0 });
    expect(idle.rule).toBe('low-traffic');
    expect(idle.reason).toBe('not worth caching: no reads and no writes recorded (0 rows, 8 KiB)');
  });

  it('honours custom thresholds', () => {
    const table = workload({ name: 'settings', idxScans: 5, updates: 1 });
    expect(adviseTable(table, { minRate: 0.1 }).pattern).toBe('write-through');
    expect(adviseTable(table, { minRate: 0.1, readHeavyRatio: 4 }).pattern).toBe('cache-aside');
    const busy = workload({
      name: 'docs',
      idxScans: 1000,
      updates: 500,
      writesByKey: { known: true, statements: 5, byKey: 5 },
    });
    expect(adviseTable(busy).pattern).toBe('write-through');
    expect(adviseTable(busy, { highWriteRate: 20 }).pattern).toBe('write-back');
  });

  it('names tables outside public as schema.name and keeps the input order', () => {
    const advice = adviseTables([
      workload({ name: 'b', idxScans: 100 }),
      workload({ schema: 'sales', name: 'a', idxScans: 100 }),
    ]);
    expect(advice.map((a) => a.table)).toEqual(['b', 'sales.a']);
    expect(policyKey('public', 'x')).toBe('x');
    expect(policyKey('auth', 'x')).toBe('auth.x');
  });
});

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Advice,
  adviseTables,
  type QueryFn,
  readSnapshot,
  readStatements,
  sampledWindow,
  type WorkloadSnapshot,
  type WorkloadWindow,
} from '../../src/advisor/index.js';
import { databaseUrl } from '../support/pg.js';
import { type AdvisorSchema, advisorSchema, WORKLOAD_STATEMENTS } from './pg-workload.js';

let db: AdvisorSchema;
let query: QueryFn;
let before: WorkloadSnapshot;
let after: WorkloadSnapshot;

/** Thresholds that make the outcome independent of how fast the machine runs the workload. */
const RATE_FREE = { highWriteRate: 1e9, minRate: 0 };

beforeAll(async () => {
  db = await advisorSchema();
  query = async (text, params) => (await db.client.query(text, params ? [...params] : undefined)).rows;
  before = await readSnapshot(query, db.schema);
  await db.workload();
  after = await readSnapshot(query, db.schema);
});
afterAll(async () => {
  await db?.drop();
});

function byTable(advice: readonly Advice[]): Record<string, Advice> {
  return Object.fromEntries(advice.map((a) => [a.name, a]));
}

/** The sampled window with pg_stat_statements replaced by the workload's own statements. */
function withRecordedStatements(window: (b: WorkloadSnapshot, a: WorkloadSnapshot) => WorkloadWindow) {
  const statements = WORKLOAD_STATEMENTS.map((s, i) => ({ id: String(i), query: s.query, calls: s.calls }));
  return window(
    { ...before, statements: { available: true, statements: [] } },
    { ...after, statements: { available: true, statements } },
  );
}

describe('readSnapshot against PostgreSQL', () => {
  it('reads every ordinary table of the schema with its columns, primary key and size', () => {
    expect(after.tables.map((t) => t.name)).toEqual([
      'catalog_items',
      'click_log',
      'notes',
      'page_counters',
      'payments',
      'quiet',
      'tags',
    ]);
    const items = after.tables.find((t) => t.name === 'catalog_items');
    expect(items).toMatchObject({ schema: db.schema, columns: ['id', 'name'], primaryKey: ['id'] });
    expect(items?.sizeBytes).toBeGreaterThan(0);
    expect(after.tables.find((t) => t.name === 'tags')?.primaryKey).toEqual([]);
    expect(after.takenAt).toBeGreaterThan(before.takenAt);
    expect(after.countersSince).toBeLessThanOrEqual(before.takenAt);
  });

  it('sees exactly the workload between two snapshots', () => {
    const w = sampledWindow(before, after);
    const t = Object.fromEntries(w.tables.map((x) => [x.name, x]));
    const reads = (name: string) => (t[name]?.seqScans ?? 0) + (t[name]?.idxScans ?? 0);
    expect(reads('catalog_items')).toBe(400);
    expect(t.catalog_items).toMatchObject({ inserts: 0, updates: 0, deletes: 0 });
    expect(t.page_counters?.updates).toBe(300);
    expect(reads('page_counters')).toBe(300);
    expect(t.payments?.inserts).toBe(50);
    expect(t.notes?.updates).toBe(10);
    expect(reads('notes')).toBe(50);
    expect(t.click_log?.inserts).toBe(300);
    expect(reads('quiet')).toBe(0);
    expect(w.seconds).toBe((after.takenAt - before.takenAt) / 1000);
  });
});

describe('advice from a real workload', () => {
  it('proposes the pattern of each table, with the recorded numbers in the reasons', () => {
    const w = sampledWindow(
      { ...before, statements: { available: false, reason: 'pg_stat_statements is not installed in this database' } },
      { ...after, statements: { available: false, reason: 'pg_stat_statements is not installed in this database' } },
    );
    const a = byTable(adviseTables(w.tables, RATE_FREE));
    expect(a.catalog_items?.pattern).toBe('cache-aside');
    expect(a.catalog_items?.reason).toContain('(no writes), over 10:1 (20 rows');
    expect(a.catalog_items?.readsPerSecond).toBeCloseTo(400 / w.seconds, 6);
    expect(a.payments).toMatchObject({ pattern: 'none', rule: 'sensitive' });
    expect(a.notes).toMatchObject({ pattern: 'write-through', rule: 'write-through' });
    expect(a.notes?.reason).toContain('(5:1)');
    expect(a.quiet).toMatchObject({ pattern: 'none', rule: 'low-traffic' });
    expect(a.click_log).toMatchObject({ pattern: 'none', rule: 'write-heavy-no-primary-key' });
    expect(a.tags).toMatchObject({ pattern: 'none', rule: 'moderate-no-primary-key' });
    expect(a.tags?.reason).toContain('(4:1)');
    expect(a.page_counters).toMatchObject({ pattern: 'none', rule: 'write-heavy-keys-unknown' });
    expect(a.page_counters?.reason).toContain('(1:1), at least as many writes as reads');
    expect(a.page_counters?.reason).toContain('pg_stat_statements is not installed in this database');
  });

  it('proposes write-back for the counters once the statements show they are updated by key', () => {
    const w = withRecordedStatements(sampledWindow);
    const a = byTable(adviseTables(w.tables, RATE_FREE));
    expect(a.page_counters).toMatchObject({ pattern: 'write-back', rule: 'write-back' });
    expect(a.page_counters?.reason).toContain('300 of 300 write statements by primary key (100%)');
    expect(w.tables.find((t) => t.name === 'notes')?.writesByKey).toEqual({ known: true, statements: 10, byKey: 10 });
    // The click log's inserts name no key column: even with a key it would not qualify.
    expect(w.tables.find((t) => t.name === 'click_log')?.writesByKey).toEqual({
      known: true,
      statements: 300,
      byKey: 0,
    });
  });

  it('applies the rate thresholds to the measured window', () => {
    const w = sampledWindow(before, after);
    // Stretch the window so the quieter tables fall under the minimum rate of 1 operation/s.
    const stretched = w.tables.map((t) => ({ ...t, seconds: 100 }));
    const a = byTable(adviseTables(stretched));
    expect(a.catalog_items).toMatchObject({ pattern: 'cache-aside', readsPerSecond: 4 });
    expect(a.notes).toMatchObject({ pattern: 'none', rule: 'low-traffic' });
    expect(a.notes?.reason).toMatch(
      /^not worth caching: 0\.5 reads\/s vs 0\.1 writes\/s \(5:1\), below 1 operations\/s \(10 rows, \d+ KiB\)$/,
    );
  });
});

describe('readStatements', () => {
  it('reports pg_stat_statements missing, or installed but unreadable, instead of failing', async () => {
    const name = `tc_adv_${randomBytes(5).toString('hex')}`;
    const admin = new pg.Client({ connectionString: databaseUrl() });
    await admin.connect();
    await admin.query(`create database ${name}`);
    const url = new URL(databaseUrl());
    url.pathname = `/${name}`;
    const client = new pg.Client({ connectionString: url.toString() });
    try {
      await client.connect();
      const run: QueryFn = async (text, params) => (await client.query(text, params ? [...params] : undefined)).rows;
      expect(await readStatements(run)).toEqual({
        available: false,
        reason: 'pg_stat_statements is not installed in this database',
      });
      const [available] = (
        await client.query("select 1 from pg_available_extensions where name = 'pg_stat_statements'")
      ).rows;
      // The extension ships with PostgreSQL's contrib; where it does, installing it without
      // preloading it is the common mistake: the view exists but cannot be read.
      if (available !== undefined) {
        await client.query('create extension pg_stat_statements');
        const preload = String((await client.query('show shared_preload_libraries')).rows[0]?.shared_preload_libraries);
        const reading = await readStatements(run);
        if (preload.includes('pg_stat_statements')) expect(reading.available).toBe(true);
        else {
          expect(reading).toMatchObject({ available: false });
          expect(reading.available === false && reading.reason).toMatch(
            /^pg_stat_statements could not be read: .*shared_preload_libraries/,
          );
        }
      }
    } finally {
      await client.end();
      await admin.query(`drop database ${name} with (force)`);
      await admin.end();
    }
  });
});

import { describe, expect, it } from 'vitest';
import {
  cumulativeWindow,
  formatBytes,
  formatNumber,
  formatRatio,
  formatSeconds,
  sampledWindow,
  type TableCounters,
  type WorkloadSnapshot,
} from '../../src/advisor/index.js';

function counters(name: string, c: Partial<TableCounters> = {}): TableCounters {
  return {
    schema: 'app',
    name,
    columns: ['id', 'n'],
    primaryKey: ['id'],
    seqScans: 0,
    idxScans: 0,
    inserts: 0,
    updates: 0,
    deletes: 0,
    liveRows: 10,
    sizeBytes: 8192,
    ...c,
  };
}

function snapshot(takenAt: number, tables: TableCounters[], s: Partial<WorkloadSnapshot> = {}): WorkloadSnapshot {
  return {
    takenAt,
    countersSince: 0,
    countersSinceSource: 'stats reset',
    tables,
    statements: { available: false, reason: 'pg_stat_statements is not installed in this database' },
    ...s,
  };
}

describe('cumulativeWindow', () => {
  it('spans from the statistics reset to the snapshot and says so', () => {
    const w = cumulativeWindow(snapshot(86_400_000 + 7_200_000, [counters('t', { idxScans: 5 })]));
    expect(w.seconds).toBe(93_600);
    expect(w.description).toBe('cumulative counters since the statistics reset at 1970-01-01T00:00:00.000Z (1d 2h)');
    expect(w.tables[0]).toMatchObject({ name: 't', idxScans: 5, seconds: 93_600 });
  });

  it('falls back to the server start and warns that the rates may be too high', () => {
    const w = cumulativeWindow(snapshot(60_000, [], { countersSinceSource: 'server start' }));
    expect(w.description).toContain('since the server started at');
    expect(w.description).toContain('make the rates too high');
  });

  it('marks writes by key as unknown, with the reason, when pg_stat_statements is unavailable', () => {
    const w = cumulativeWindow(snapshot(10_000, [counters('t')]));
    expect(w.tables[0]?.writesByKey).toEqual({
      known: false,
      reason: 'pg_stat_statements is not installed in this database',
    });
    expect(w.statementsNote).toBe(
      'writes by primary key unknown: pg_stat_statements is not installed in this database',
    );
  });
});

describe('sampledWindow', () => {
  it('uses counter differences over the time between the snapshots', () => {
    const before = snapshot(1_000_000, [counters('a', { seqScans: 10, idxScans: 100, updates: 7 }), counters('gone')]);
    const after = snapshot(1_010_000, [
      counters('a', { seqScans: 12, idxScans: 600, updates: 57, liveRows: 11 }),
      counters('new', { inserts: 5 }),
    ]);
    const w = sampledWindow(before, after);
    expect(w.seconds).toBe(10);
    expect(w.description).toBe('sampled over 10s');
    expect(w.tables.map((t) => t.name)).toEqual(['a', 'new']);
    expect(w.tables[0]).toMatchObject({ seqScans: 2, idxScans: 500, updates: 50, liveRows: 11 });
    expect(w.tables[1]).toMatchObject({ inserts: 5 });
  });

  it('treats a counter that went down as reset: the new value is the growth', () => {
    const w = sampledWindow(
      snapshot(0, [counters('a', { idxScans: 900 })]),
      snapshot(5000, [counters('a', { idxScans: 30 })]),
    );
    expect(w.tables[0]?.idxScans).toBe(30);
  });

  it('counts only the statement calls made between the snapshots', () => {
    const update = 'update "a" set "n" = $1 where "id" = $2';
    const before = snapshot(0, [counters('a')], {
      statements: { available: true, statements: [{ id: '1', query: update, calls: 1000 }] },
    });
    const after = snapshot(10_000, [counters('a', { updates: 40 })], {
      statements: {
        available: true,
        statements: [
          { id: '1', query: update, calls: 1030 },
          { id: '2', query: 'update a set n = $1', calls: 10 },
        ],
      },
    });
    const w = sampledWindow(before, after);
    expect(w.tables[0]?.writesByKey).toEqual({ known: true, statements: 40, byKey: 30 });
    expect(w.statementsNote).toBe('writes by primary key from pg_stat_statements (2 distinct write statements)');
  });

  it('says when pg_stat_statements recorded no write of a table', () => {
    const reading = { available: true as const, statements: [] };
    const w = sampledWindow(
      snapshot(0, [counters('a')], { statements: reading }),
      snapshot(1000, [counters('a')], { statements: reading }),
    );
    expect(w.tables[0]?.writesByKey).toEqual({
      known: false,
      reason: 'pg_stat_statements recorded no INSERT, UPDATE or DELETE of it',
    });
  });
});

describe('formatting', () => {
  it('formats numbers, ratios, durations and sizes for reasons', () => {
    expect([0, 0.004, 0.25, 3.456, 12.34, 1234.5].map(formatNumber)).toEqual([
      '0',
      '0.004',
      '0.25',
      '3.46',
      '12.3',
      '1,235',
    ]);
    expect(formatRatio(240, 1)).toBe('240:1');
    expect(formatRatio(2, 7)).toBe('1:3.5');
    expect(formatRatio(5, 0)).toBe('no writes');
    expect(formatRatio(0, 5)).toBe('no reads');
    expect([0.4, 10, 75, 3605, 93_600].map(formatSeconds)).toEqual(['0.4s', '10s', '1m 15s', '1h', '1d 2h']);
    expect([512, 8192, 4_404_019].map(formatBytes)).toEqual(['512 B', '8 KiB', '4.2 MiB']);
  });
});

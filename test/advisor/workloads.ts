import type { TableWorkload } from '../../src/advisor/index.js';

/** A table workload over 10 seconds with a primary key `id` and no traffic; override what a test needs. */
export function workload(overrides: Partial<TableWorkload> & { name: string }): TableWorkload {
  return {
    schema: 'public',
    columns: ['id', 'title'],
    primaryKey: ['id'],
    seqScans: 0,
    idxScans: 0,
    inserts: 0,
    updates: 0,
    deletes: 0,
    liveRows: 1000,
    sizeBytes: 131_072,
    seconds: 10,
    writesByKey: { known: false, reason: 'pg_stat_statements is not installed in this database' },
    ...overrides,
  };
}

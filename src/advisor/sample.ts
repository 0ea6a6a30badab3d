import type { StatementsReading, TableCounters, WorkloadSnapshot } from './collect.js';
import { formatSeconds } from './format.js';
import { countKeyedWrites, type RecordedStatement } from './keyed-writes.js';
import type { TableWorkload, WritesByKey } from './types.js';

/** The workload of a schema's tables over one window, ready for `adviseTables`. */
export interface WorkloadWindow {
  /** Length of the window in seconds. */
  readonly seconds: number;
  /** How the window was measured, for the policy's header comment. */
  readonly description: string;
  /** Where the writes-by-key figures come from, or why there are none. */
  readonly statementsNote: string;
  /** Per-table workload. */
  readonly tables: readonly TableWorkload[];
}

/** The workload since the statistics were last reset (or the server started): one snapshot. */
export function cumulativeWindow(snapshot: WorkloadSnapshot): WorkloadWindow {
  const seconds = Math.max(0.001, (snapshot.takenAt - snapshot.countersSince) / 1000);
  const since = new Date(snapshot.countersSince).toISOString();
  const description =
    snapshot.countersSinceSource === 'stats reset'
      ? `cumulative counters since the statistics reset at ${since} (${formatSeconds(seconds)})`
      : `cumulative counters since the server started at ${since} (${formatSeconds(seconds)}); counters kept across a clean restart make the rates too high`;
  return window(seconds, description, snapshot.tables, snapshot.statements);
}

/** The workload between two snapshots: counter differences over the time between them. */
export function sampledWindow(before: WorkloadSnapshot, after: WorkloadSnapshot): WorkloadWindow {
  const seconds = Math.max(0.001, (after.takenAt - before.takenAt) / 1000);
  const earlier = new Map(before.tables.map((t) => [`${t.schema}\0${t.name}`, t]));
  const tables = after.tables.map((t) => difference(t, earlier.get(`${t.schema}\0${t.name}`)));
  return window(seconds, `sampled over ${formatSeconds(seconds)}`, tables, statementsBetween(before, after));
}

function window(
  seconds: number,
  description: string,
  tables: readonly TableCounters[],
  statements: StatementsReading,
): WorkloadWindow {
  const counts = statements.available ? countKeyedWrites(statements.statements, tables) : undefined;
  const workloads = tables.map((t, i): TableWorkload => {
    const count = counts?.[i];
    let writesByKey: WritesByKey;
    if (!statements.available) writesByKey = { known: false, reason: statements.reason };
    else if (count === undefined || count.statements === 0) {
      writesByKey = { known: false, reason: 'pg_stat_statements recorded no INSERT, UPDATE or DELETE of it' };
    } else writesByKey = { known: true, statements: count.statements, byKey: count.byKey };
    return { ...t, seconds, writesByKey };
  });
  const statementsNote = statements.available
    ? `writes by primary key from pg_stat_statements (${statements.statements.length} distinct write statements)`
    : `writes by primary key unknown: ${statements.reason}`;
  return { seconds, description, statementsNote, tables: workloads };
}

/** Counters grew by this much; a counter that went down was reset, so its new value is the growth. */
function grown(after: number, before: number | undefined): number {
  if (before === undefined || after < before) return after;
  return after - before;
}

function difference(after: TableCounters, before: TableCounters | undefined): TableCounters {
  return {
    ...after,
    seqScans: grown(after.seqScans, before?.seqScans),
    idxScans: grown(after.idxScans, before?.idxScans),
    inserts: grown(after.inserts, before?.inserts),
    updates: grown(after.updates, before?.updates),
    deletes: grown(after.deletes, before?.deletes),
  };
}

function statementsBetween(before: WorkloadSnapshot, after: WorkloadSnapshot): StatementsReading {
  if (!after.statements.available) return after.statements;
  const earlier = new Map(before.statements.available ? before.statements.statements.map((s) => [s.id, s.calls]) : []);
  const statements: (RecordedStatement & { id: string })[] = after.statements.statements
    .map((s) => ({ ...s, calls: grown(s.calls, earlier.get(s.id)) }))
    .filter((s) => s.calls > 0);
  return { available: true, statements };
}

import type { RecordedStatement } from './keyed-writes.js';

/**
 * Runs one SQL statement with parameters and resolves to its rows. The CLI passes node-postgres;
 * the core takes this function so it never imports a driver.
 */
export type QueryFn = (text: string, params?: readonly unknown[]) => Promise<readonly Record<string, unknown>[]>;

/** One table's cumulative counters from pg_stat_user_tables, with its size, columns and key. */
export interface TableCounters {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly string[];
  readonly primaryKey: readonly string[];
  readonly seqScans: number;
  readonly idxScans: number;
  readonly inserts: number;
  readonly updates: number;
  readonly deletes: number;
  readonly liveRows: number;
  readonly sizeBytes: number;
}

/** pg_stat_statements' write statements, or why they could not be read. */
export type StatementsReading =
  | { readonly available: true; readonly statements: readonly (RecordedStatement & { readonly id: string })[] }
  | { readonly available: false; readonly reason: string };

/** Everything the advisor reads from PostgreSQL at one moment. */
export interface WorkloadSnapshot {
  /** The database clock when the snapshot was taken, in epoch milliseconds. */
  readonly takenAt: number;
  /** Since when the counters count, in epoch milliseconds. */
  readonly countersSince: number;
  /** `stats reset` (pg_stat_database.stats_reset) or `server start` when never reset. */
  readonly countersSinceSource: 'stats reset' | 'server start';
  /** Ordinary tables of the schema, by name. */
  readonly tables: readonly TableCounters[];
  /** Recorded statements for the writes-by-key check. */
  readonly statements: StatementsReading;
}

const CLOCK_SQL = `select extract(epoch from clock_timestamp())::float8 * 1000 as now,
  extract(epoch from d.stats_reset)::float8 * 1000 as reset,
  extract(epoch from pg_postmaster_start_time())::float8 * 1000 as started
from pg_stat_database d where d.datname = current_database()`;

// Ordinary tables only: views have no counters, and a partitioned table's counters are its partitions'.
const TABLES_SQL = `select s.schemaname::text as schema, s.relname::text as name,
  s.seq_scan::float8 as seq_scans, coalesce(s.idx_scan, 0)::float8 as idx_scans,
  s.n_tup_ins::float8 as inserts, s.n_tup_upd::float8 as updates, s.n_tup_del::float8 as deletes,
  s.n_live_tup::float8 as live_rows, pg_total_relation_size(s.relid)::float8 as size_bytes,
  coalesce((select array_agg(a.attname::text order by a.attnum) from pg_attribute a
    where a.attrelid = s.relid and a.attnum > 0 and not a.attisdropped), '{}') as columns,
  coalesce((select array_agg(a.attname::text order by k.ord)
    from pg_index i cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
    where i.indrelid = s.relid and i.indisprimary), '{}') as primary_key
from pg_stat_user_tables s join pg_class c on c.oid = s.relid
where s.schemaname = $1 and c.relkind = 'r' and not c.relispartition
order by s.relname`;

/** Reads the schema's table counters, the statistics window and pg_stat_statements (when it can). */
export async function readSnapshot(query: QueryFn, schema: string): Promise<WorkloadSnapshot> {
  // Statistics are cached per transaction; drop any cached snapshot so this read is current.
  await query('select pg_stat_clear_snapshot()');
  const tables = (await query(TABLES_SQL, [schema])).map(toCounters);
  const statements = await readStatements(query);
  const [clock] = await query(CLOCK_SQL);
  const now = num(clock?.now);
  const reset = clock?.reset;
  return {
    takenAt: now,
    countersSince: reset === null || reset === undefined ? num(clock?.started) : num(reset),
    countersSinceSource: reset === null || reset === undefined ? 'server start' : 'stats reset',
    tables,
    statements,
  };
}

/**
 * Reads INSERT/UPDATE/DELETE statements of the current database from pg_stat_statements. Never
 * throws for a missing, unloaded or unreadable extension: it returns the reason instead.
 */
export async function readStatements(query: QueryFn): Promise<StatementsReading> {
  const [ext] = await query(
    `select n.nspname::text as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace
     where e.extname = 'pg_stat_statements'`,
  );
  if (ext === undefined) return { available: false, reason: 'pg_stat_statements is not installed in this database' };
  const view = `${quoteIdent(String(ext.schema))}.pg_stat_statements`;
  try {
    const rows = await query(
      `select queryid::text as id, min(query) as query, sum(calls)::float8 as calls from ${view}
       where dbid = (select oid from pg_database where datname = current_database())
         and query ~* '\\m(insert|update|delete)\\M'
       group by queryid`,
    );
    return {
      available: true,
      statements: rows.map((r) => ({ id: String(r.id), query: String(r.query), calls: num(r.calls) })),
    };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { available: false, reason: `pg_stat_statements could not be read: ${message}` };
  }
}

function toCounters(row: Record<string, unknown>): TableCounters {
  return {
    schema: String(row.schema),
    name: String(row.name),
    columns: strings(row.columns),
    primaryKey: strings(row.primary_key),
    seqScans: num(row.seq_scans),
    idxScans: num(row.idx_scans),
    inserts: num(row.inserts),
    updates: num(row.updates),
    deletes: num(row.deletes),
    liveRows: Math.max(0, num(row.live_rows)),
    sizeBytes: num(row.size_bytes),
  };
}

function num(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : 0;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

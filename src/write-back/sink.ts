/**
 * The database side of write-back, ORM-neutral: an adapter implements it (the Drizzle adapter in
 * adapters/drizzle/write-back-sink.ts) with parameterized SQL. The flusher drives it; identifiers
 * come from the schema, values are always bound parameters.
 */
import type { RowPlan } from './coalesce.js';
import type { ColumnType, NormalizeContext } from './pg-types.js';

/** A write-back table as the sink sees it. */
export interface SinkTable {
  /** Identity in keys and bookkeeping. */
  readonly id: string;
  /** The database name. */
  readonly name: string;
  /** The database schema, when not the default. */
  readonly schema?: string | undefined;
  /** Every column with its parsed type. */
  readonly columns: readonly { readonly name: string; readonly type: ColumnType }[];
  /** Primary-key column names, in key order. */
  readonly primaryKey: readonly string[];
}

/** A value the database computed for a column a write left to its DEFAULT. */
export interface Fill {
  readonly pk: string[];
  readonly column: string;
  /** The canonical text, or null. */
  readonly value: string | null;
}

/** What applying plans did. */
export interface ApplyResult {
  readonly fills: Fill[];
  /** Rows the statements reported as changed. */
  readonly affected: number;
}

/** The flusher's bookkeeping row of one table: what was last applied, and under which epoch. */
export interface Offset {
  /** The newest stream id applied, or undefined before the first flush. */
  readonly lastId: string | undefined;
  /** The lease epoch of the last commit (0 before the first). */
  readonly epoch: number;
}

/** One database transaction of the flusher. */
export interface SinkTransaction {
  /** Locks (creating if needed) and reads a table's bookkeeping row; held until commit. */
  lockOffset(namespace: string, table: string): Promise<Offset>;
  /** Records the newest applied stream id and the epoch, in this transaction. */
  setOffset(namespace: string, table: string, lastId: string, epoch: number): Promise<void>;
  /** Applies row plans with a few multi-row statements per round. */
  apply(table: SinkTable, plans: readonly RowPlan[]): Promise<ApplyResult>;
  /** Runs `fn` inside a savepoint: its failure rolls back only what it did, then rethrows. */
  savepoint<T>(fn: () => Promise<T>): Promise<T>;
}

/** Timeouts of a flusher transaction. */
export interface SinkTransactionOptions {
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
}

/** The database side of write-back. */
export interface WriteBackSink {
  /** Session settings the canonical text of dates, doubles and bytes depends on. */
  settings(): Promise<NormalizeContext>;
  /** Reads rows by primary key as canonical text (null: no such row), in `pks` order. */
  loadRows(table: SinkTable, pks: readonly (readonly string[])[]): Promise<(Record<string, string | null> | null)[]>;
  /** Runs `fn` in one transaction with the timeouts set; commits when it resolves. */
  transaction<T>(options: SinkTransactionOptions, fn: (tx: SinkTransaction) => Promise<T>): Promise<T>;
}

/**
 * The record of a chaos run: what every client operation asked for, saw and got back, plus the
 * database's own account of what it applied. The checker judges this data and nothing else.
 */

/** How the states of one table's keys are ordered for the staleness check. */
export type Ordering =
  /** The database numbers each key's states (a version column bumped by a trigger, audited). */
  | 'version'
  /** Only real-time order is known (write-back: the cache acknowledges before the database). */
  | 'realtime';

/** What the checker needs to know about one table of the workload. */
export interface TableModel {
  /** `items` rows carry a unique value per write; `counters` rows a number only ever incremented. */
  kind: 'items' | 'counters';
  /** The caching pattern (for the report). */
  pattern: string;
  /** How states are ordered. */
  ordering: Ordering;
  /** Whether list reads are held to the same guarantee as point reads. */
  checkLists: boolean;
}

/** How one write attempt ended. */
export type WriteStatus =
  /** Acknowledged to the caller: committed (or durably queued, for write-back). */
  | 'ok'
  /** Known not to have happened (transaction or savepoint rolled back). */
  | 'rolled-back'
  /** The caller got an error: it may or may not have happened. */
  | 'unknown';

/** One row written (or deleted, or incremented) by an operation. */
export interface WriteIntent {
  table: string;
  key: number;
  kind: 'put' | 'delete' | 'increment';
  /** The unique value a put wrote. */
  val?: string;
  /** Whether the statement changed a row (from RETURNING); undefined when unknown. */
  applied?: boolean;
  /**
   * An UPDATE whose effect is unknown (no RETURNING): it changes nothing when the row is absent,
   * so under real-time ordering it never proves a read stale, though its value may be read.
   */
  conditional?: boolean;
  /** The version RETURNING reported (put: the new row's, delete: the deleted row's). */
  version?: number;
  status: WriteStatus;
}

/** One key as a read saw it. */
export interface Observation {
  table: string;
  key: number;
  /** Whether it came from a list (or join) read rather than a primary-key read. */
  list: boolean;
  /** items: the value read, or null when the row was absent. */
  val?: string | null;
  /** items: the version read. */
  version?: number;
  /** counters: the number read. */
  n?: number;
}

/** One client operation. */
export interface Op {
  id: number;
  /** -1 for seeds and the final sweep. */
  worker: number;
  /** Which app instance ran it. */
  instance: string;
  /** A short name of what was done, e.g. `read-point`, `update`, `tx-commit`. */
  kind: string;
  /** `performance.now()` when the call was made and when it settled. */
  start: number;
  end: number;
  /** Whether the call returned normally. */
  ok: boolean;
  error?: string;
  writes: WriteIntent[];
  observations: Observation[];
}

/** A row of the audit table the database trigger fills: every applied write, in commit order. */
export interface AuditEntry {
  table: string;
  key: number;
  version: number;
  /** The row's value (for a delete, the value of the row deleted). */
  val: string;
  op: 'I' | 'U' | 'D';
}

/** A key's state in the database at the end of the run. */
export interface FinalState {
  table: string;
  key: number;
  /** items: the value, or null when absent. */
  val?: string | null;
  version?: number;
  /** counters: the number. */
  n?: number;
}

/** Everything a run recorded. */
export interface History {
  tables: Record<string, TableModel>;
  ops: Op[];
  /** The audit of `version`-ordered item tables (write-back tables may be audited too). */
  audit: AuditEntry[];
  final: FinalState[];
}

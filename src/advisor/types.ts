import type { Pattern } from '../policy/types.js';

/** How many write statements of a table pg_stat_statements saw, and how many were by primary key. */
export type WritesByKey =
  | {
      readonly known: true;
      /** Calls of INSERT, UPDATE and DELETE statements on the table. */
      readonly statements: number;
      /** Of those, calls addressing rows by their full primary key. */
      readonly byKey: number;
    }
  | {
      readonly known: false;
      /** Why it is unknown, e.g. "pg_stat_statements is not installed". */
      readonly reason: string;
    };

/** The workload PostgreSQL recorded for one table over a window of `seconds`. */
export interface TableWorkload {
  /** The table's schema. */
  readonly schema: string;
  /** The table's name. */
  readonly name: string;
  /** Column names, for the sensitivity heuristic. */
  readonly columns: readonly string[];
  /** Primary-key column names; empty when the table has none. */
  readonly primaryKey: readonly string[];
  /** Sequential scans started in the window (pg_stat_user_tables.seq_scan). */
  readonly seqScans: number;
  /** Index scans started in the window (pg_stat_user_tables.idx_scan). */
  readonly idxScans: number;
  /** Rows inserted in the window. */
  readonly inserts: number;
  /** Rows updated in the window. */
  readonly updates: number;
  /** Rows deleted in the window. */
  readonly deletes: number;
  /** Estimated live rows at the end of the window. */
  readonly liveRows: number;
  /** Size on disk, with indexes and TOAST. */
  readonly sizeBytes: number;
  /** Length of the window the counts cover, in seconds. */
  readonly seconds: number;
  /** Whether the table's writes address rows by primary key (needs pg_stat_statements). */
  readonly writesByKey: WritesByKey;
}

/** Which rule decided an advice; stable, for tests and tooling. */
export type AdviceRule =
  | 'sensitive'
  | 'low-traffic'
  | 'read-heavy'
  | 'write-back'
  | 'write-heavy-no-primary-key'
  | 'write-heavy-keys-unknown'
  | 'write-heavy-not-by-key'
  | 'write-through'
  | 'moderate-no-primary-key';

/** The pattern proposed for one table, and why. */
export interface Advice {
  /** The key of the table in a policy: `name`, or `schema.name` outside `public`. */
  readonly table: string;
  /** The table's schema. */
  readonly schema: string;
  /** The table's name. */
  readonly name: string;
  /** The proposed pattern. */
  readonly pattern: Pattern;
  /** The rule that decided it. */
  readonly rule: AdviceRule;
  /** One line explaining the choice, with the numbers it rests on. */
  readonly reason: string;
  /** Reads (sequential plus index scans) per second over the window. */
  readonly readsPerSecond: number;
  /** Written rows (inserted, updated, deleted) per second over the window. */
  readonly writesPerSecond: number;
}

/** Thresholds of the advisor's rules. */
export interface AdviseOptions {
  /** Reads per write above which a table is read-heavy (cache-aside). @default 10 */
  readHeavyRatio?: number;
  /** Written rows per second above which a table is write-heavy. @default 100 */
  highWriteRate?: number;
  /** Tables with fewer reads plus writes per second are not worth caching. @default 1 */
  minRate?: number;
  /** Share of write statements that must be by primary key for write-back. @default 0.95 */
  byKeyFraction?: number;
}

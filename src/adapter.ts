import type { TransactionFrame } from './engine/transaction.js';

/** A relation name as it appears in SQL: `name` or `schema.name`. */
export interface RelationName {
  /** The schema, when the SQL qualifies the name. */
  readonly schema?: string | undefined;
  /** The table or view name. */
  readonly name: string;
}

/** A read an adapter intercepted, in ORM-neutral terms. */
export interface ReadRequest<T> {
  /** Every relation the query reads; `null` when the set cannot be determined completely. */
  readonly relations: readonly RelationName[] | null;
  /** The query's identity: SQL text plus anything that changes the result's shape (row mode). */
  readonly identity: string;
  /** Bound parameter values (hashed into the key, never stored in it). */
  readonly params: readonly unknown[];
  /** The transaction the read runs in, if any: such reads never touch the shared cache. */
  readonly transaction: TransactionFrame | undefined;
  /** A locking read (`FOR UPDATE`/`FOR SHARE`) is never served from the cache. */
  readonly locking?: boolean;
  /** Runs the query against the database. */
  execute(): Promise<T>;
  /** The part of a result worth caching (drops driver internals); a hit returns this form. */
  toCacheable?(result: T): T;
}

/** A write an adapter intercepted, in ORM-neutral terms. */
export interface WriteRequest<T> {
  /** The relations the statement writes; `null` when unknown (everything is invalidated). */
  readonly relations: readonly RelationName[] | null;
  /** The transaction the write runs in, if any: invalidation waits for the outermost commit. */
  readonly transaction: TransactionFrame | undefined;
  /** Runs the statement against the database. */
  execute(): Promise<T>;
}

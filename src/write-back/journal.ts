/**
 * The optional store capability write-back needs: a durable per-table journal (a Redis Stream
 * with a consumer group in the Redis store) plus row entries that hold each row's state with its
 * pending writes. Every method is one atomic step on the store. Keys are built by the core.
 */
import type { RowWrite } from './ops.js';

/** The keys of one table's journal. All share one hash slot (the namespace hash tag). */
export interface JournalKeys {
  /** The stream of pending writes. */
  readonly stream: string;
  /** The dead-letter stream. */
  readonly dlq: string;
  /** The id of the newest entry acknowledged after its database commit. */
  readonly applied: string;
  /** The flusher lease (`consumer|epoch`). */
  readonly lease: string;
  /** The lease epoch counter (fencing token), never expires. */
  readonly epoch: string;
  /** The namespace-wide and the table's row generation counters (invalidation). */
  readonly generations: readonly [string, string];
  /** Prefix of the keys that remember an append's result by request id (`requests + id`). */
  readonly requests: string;
}

/** One row of an append: the row entry key, the write, and for a row not cached, its database state. */
export interface AppendRow {
  /** The row entry key. */
  readonly row: string;
  /** The write. */
  readonly write: RowWrite;
  /** The stream entry payload (`encodePayload(write)`). */
  readonly payload: string;
  /** The row's fields as read from the database (`x` plus `c:` fields), when the journal asked for it. */
  readonly base?: Readonly<Record<string, string>> | undefined;
}

/** Proof that a database read happened after the journal saw the rows uncached. */
export interface BaseToken {
  /** Store time (ms) when the rows were found missing; bases read after it are accepted for a TTL. */
  readonly t0: number;
  /** The generation stamp then. */
  readonly stamp: string;
}

/**
 * An atomic append of writes to rows of one table. Appends are idempotent per `requestId`: a
 * client library that re-sends a command whose reply was lost (ioredis does after a reconnect)
 * gets the first run's result instead of journaling the writes twice.
 */
export interface AppendRequest {
  readonly keys: JournalKeys;
  /** Unique per append call; its result is kept until `forget` names it (or for an hour). */
  readonly requestId: string;
  /** Request ids whose replies arrived: their results are no longer needed. */
  readonly forget?: readonly string[] | undefined;
  readonly rows: readonly AppendRow[];
  /** Past this many pending entries nothing is appended and the result is `full`. */
  readonly maxPending: number;
  /** Row entries without pending writes live this long (ms). */
  readonly ttlMs: number;
  /** Present when `rows` carry bases read after a `need` answer. */
  readonly token?: BaseToken | undefined;
  /** Columns to return the row state for (`del` returns the state before the write). */
  readonly want?: readonly string[] | undefined;
  /** A dead-letter entry id to delete in the same step (replay). */
  readonly dlqEntry?: string | undefined;
}

/** A row entry's fields as returned to the core. */
export type Fields = Record<string, string>;

/** What an append did. Every status but `ok` means nothing was written. */
export type AppendResult =
  | { status: 'ok'; rows: { count: number; fields?: Fields | undefined }[]; length: number; now: number }
  | { status: 'full'; length: number }
  | { status: 'need'; rows: number[]; token: BaseToken }
  /** `suspect`/`unknown`: drain the table and retry; `dup`/`range`/`value`: run the write synchronously. */
  | { status: 'suspect' | 'unknown' | 'dup' | 'range' | 'value'; rows: number[] };

/** A row as a read found it. */
export type ReadRow =
  | { kind: 'hit'; fields: Fields }
  | { kind: 'miss' }
  /** Pending writes the cache cannot show exactly: drain the table, then read again. */
  | { kind: 'wait' };

/** A fill of rows read from the database after a miss. */
export interface FillRequest {
  readonly keys: JournalKeys;
  readonly token: BaseToken;
  readonly ttlMs: number;
  readonly rows: readonly { row: string; base: Readonly<Record<string, string>> }[];
  readonly want: readonly string[];
}

/** Entries handed to a flusher, oldest first. */
export type ClaimResult =
  | { status: 'busy'; holder: string }
  | {
      status: 'ok';
      /** The lease epoch: the fencing token recorded with every commit. */
      epoch: number;
      /** The lease value (`consumer|epoch`) for renew, release and dead-lettering. */
      owner: string;
      entries: { id: string; payload: string }[];
      /** Entries pending in the stream. */
      length: number;
      /** Id of the oldest pending entry, or undefined when none. */
      oldest: string | undefined;
      now: number;
    };

/** A write moved out of the stream after it kept failing. */
export interface DeadLetter {
  /** Id in the dead-letter stream. */
  readonly id: string;
  /** Id it had in the journal. */
  readonly original: string;
  /** The write's payload. */
  readonly payload: string;
  /** The database error (SQLSTATE and message). */
  readonly error: string;
  /** When it was dead-lettered (store time, ms). */
  readonly at: number;
}

/** The state of one table's journal. */
export interface JournalStatus {
  readonly length: number;
  readonly oldest: string | undefined;
  readonly newest: string | undefined;
  readonly applied: string | undefined;
  readonly lease: string | undefined;
  readonly deadLetters: number;
  readonly now: number;
}

/** What `durability` found about the store's persistence (undefined: unknown). */
export interface JournalDurability {
  readonly appendonly: boolean | undefined;
  readonly maxmemoryPolicy: string | undefined;
  /** A store that keeps the journal in process memory only. */
  readonly volatile?: boolean;
}

/** The write-back journal capability of a store. */
export interface WriteBackJournal {
  /** Applies writes to row entries and appends them to the stream, atomically. */
  append(request: AppendRequest): Promise<AppendResult>;
  /** Reads row entries; stale ones without pending writes are dropped. Returns a token for fills. */
  readRows(request: {
    keys: JournalKeys;
    rows: readonly string[];
    want: readonly string[];
  }): Promise<{ token: BaseToken; rows: ReadRow[] }>;
  /** Creates row entries from database reads unless the token is too old; `stale` rows were not filled. */
  fillRows(request: FillRequest): Promise<(ReadRow | { kind: 'stale' })[]>;
  /** Takes or renews the table's lease, then returns pending entries (other consumers' first). */
  claim(request: {
    keys: JournalKeys;
    group: string;
    consumer: string;
    leaseTtlMs: number;
    count: number;
  }): Promise<ClaimResult>;
  /** Extends the lease if `owner` still holds it. */
  renewLease(request: { keys: JournalKeys; owner: string; leaseTtlMs: number }): Promise<boolean>;
  /** Gives the lease up if `owner` holds it. */
  releaseLease(request: { keys: JournalKeys; owner: string }): Promise<void>;
  /** Raises the epoch counter to at least `atLeast` (after the store lost it). */
  raiseEpoch(request: { keys: JournalKeys; atLeast: number }): Promise<void>;
  /**
   * After a database commit: acknowledges and deletes entries (only those still pending, which
   * it returns), updates their rows' pending counts and fills database-computed columns.
   */
  ack(request: {
    keys: JournalKeys;
    group: string;
    applied: string;
    ttlMs: number;
    entries: readonly { id: string; row: string }[];
    fills: readonly { row: string; column: string; field: string }[];
  }): Promise<{ acked: string[]; now: number }>;
  /** Moves entries to the dead-letter stream if `owner` holds the lease; returns how many moved. */
  deadLetter(request: {
    keys: JournalKeys;
    group: string;
    owner: string;
    entries: readonly { id: string; row: string; payload: string; error: string }[];
  }): Promise<number | 'lost'>;
  /** Counts and ids of one table's journal. */
  status(keys: JournalKeys): Promise<JournalStatus>;
  /** Lists dead letters, oldest first, from `start` (an id, inclusive). */
  deadLetters(request: { keys: JournalKeys; start?: string | undefined; count: number }): Promise<DeadLetter[]>;
  /** Deletes dead letters; returns how many existed. */
  dropDeadLetters(request: { keys: JournalKeys; ids: readonly string[] }): Promise<number>;
  /** The store's persistence settings, for the start-up durability warning. */
  durability(): Promise<JournalDurability>;
}

/** A store that offers the write-back journal. */
export interface WriteBackCapable {
  /** The journal capability. */
  readonly writeBackJournal: WriteBackJournal;
}

/** The journal of a store, when it has one. */
export function journalOf(store: object): WriteBackJournal | undefined {
  const candidate = (store as Partial<WriteBackCapable>).writeBackJournal;
  return candidate && typeof candidate.append === 'function' ? candidate : undefined;
}

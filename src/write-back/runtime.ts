/**
 * The write-back side of one attached cache: acknowledges writes into the journal (loading a
 * row's database state first when the row is not cached), serves primary-key reads from row
 * entries, drives the flusher, and applies back-pressure. Adapters call it with canonical values.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type Duration, parseDuration } from '../duration.js';
import { CacheError, WriteBackError } from '../errors.js';
import type { Telemetry } from '../telemetry.js';
import { AppendBatcher } from './batcher.js';
import { hasBounds } from './bounds.js';
import { coalesce } from './coalesce.js';
import { Flusher, type FlusherHooks } from './flusher.js';
import type { AppendResult, BaseToken, DeadLetter, Fields, JournalStatus, WriteBackJournal } from './journal.js';
import { type Change, decodePayload, encodePayload, field, type RowWrite, streamIdMs } from './ops.js';
import {
  canonicalDelta,
  canonicalValue,
  deltaBounds,
  NOT_EXACT,
  type NormalizeContext,
  supportsDelta,
} from './pg-types.js';
import type { WriteBackSink } from './sink.js';
import type { WriteBackTable } from './tables.js';

/** Write-back settings of `createCache`. */
export interface WriteBackOptions {
  /** Flush in this process, in the background. Set false when `tablecache worker` processes flush. @default true */
  worker?: boolean;
  /** This process's name in the flushers' consumer group. @default `<host>:<pid>:<random>` */
  consumer?: string;
  /** A flusher that stops renewing its table lease for this long is replaced by another. @default '10s' */
  leaseTtl?: Duration;
  /** How long a flush waits for row locks before it fails and is retried. @default '5s' */
  lockTimeout?: Duration;
  /** Longest statement of a flush. @default '30s' */
  statementTimeout?: Duration;
  /** Failed attempts of a batch before its rows are applied one by one and failing rows dead-lettered. @default 3 */
  attempts?: number;
  /** Longest pause between retries of a failing table. @default '30s' */
  maxBackoff?: Duration;
  /** How long a write waits for room (onBackpressure 'wait') and a drain waits for the table to empty. @default '30s' */
  waitTimeout?: Duration;
  /** Fault injection points of the flusher. @internal */
  hooks?: FlusherHooks;
}

/** What a runtime is built from; assembled by `createCache`. */
export interface WriteBackDeps {
  readonly journal: WriteBackJournal;
  readonly tables: readonly WriteBackTable[];
  readonly telemetry: Telemetry;
  readonly onError: (error: CacheError) => void;
  /** Invalidates tables (after synchronous writes and cascading flushes). */
  readonly invalidate: (tables: readonly string[]) => Promise<void>;
  /** Resolves a table name the user gave (id, database name, export name) to its id. */
  readonly lookup: (name: string) => string | undefined;
  /** `namespace:vN`, the bookkeeping row key. */
  readonly namespace: string;
  readonly options: WriteBackOptions;
}

/** The outcome of an acknowledged write, or the instruction to run it synchronously. */
export type WriteOutcome =
  | { kind: 'done'; rows: { count: number; fields?: Fields | undefined }[] }
  | { kind: 'sync'; reason: string };

/** One table's journal figures, for `writeback status`. */
export interface TableStatus extends JournalStatus {
  readonly table: string;
  /** Age of the oldest pending write (ms), 0 when none. */
  readonly oldestAgeMs: number;
}

const MAX_ATTEMPTS = 8;
/** Answered request ids are forgotten once this many accumulated, at most FORGET_MAX per append. */
const FORGET_EVERY = 16;
const FORGET_MAX = 64;
const FULL_POLL_MS = 50;

/** The write-back runtime of one cache. */
export class WriteBackRuntime {
  /** Write-back tables by id. */
  readonly tables: ReadonlyMap<string, WriteBackTable>;
  private sink: WriteBackSink | undefined;
  private flusher: Flusher | undefined;
  private context: Promise<NormalizeContext> | undefined;
  private readonly waitTimeoutMs: number;
  private stopped = false;
  /** Per table, appends whose replies arrived: the next append there lets the journal forget them. */
  private readonly answered = new Map<string, string[]>();
  /** Per table, the appends concurrent statements share. */
  private readonly batchers = new Map<string, AppendBatcher>();

  constructor(private readonly deps: WriteBackDeps) {
    this.tables = new Map(deps.tables.map((t) => [t.id, t]));
    this.waitTimeoutMs = parseDuration(deps.options.waitTimeout ?? '30s', { field: 'writeBack.waitTimeout' });
  }

  /** True once an adapter gave the runtime its database side. */
  get attached(): boolean {
    return this.sink !== undefined;
  }

  /**
   * Gives the runtime its database side: creates the flusher, starts it unless `worker: false`,
   * and warns (onError) when the store's persistence can lose acknowledged writes.
   */
  attachSink(sink: WriteBackSink): void {
    if (this.sink || this.stopped) return;
    this.sink = sink;
    const o = this.deps.options;
    const ms = (value: Duration | undefined, fallback: Duration, name: string) =>
      parseDuration(value ?? fallback, { field: `writeBack.${name}` });
    this.flusher = new Flusher({
      journal: this.deps.journal,
      sink,
      tables: this.deps.tables,
      telemetry: this.deps.telemetry,
      onError: this.deps.onError,
      invalidate: this.deps.invalidate,
      options: {
        namespace: this.deps.namespace,
        consumer: o.consumer ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`,
        leaseTtlMs: ms(o.leaseTtl, '10s', 'leaseTtl'),
        lockTimeoutMs: ms(o.lockTimeout, '5s', 'lockTimeout'),
        statementTimeoutMs: ms(o.statementTimeout, '30s', 'statementTimeout'),
        attempts: o.attempts ?? 3,
        maxBackoffMs: ms(o.maxBackoff, '30s', 'maxBackoff'),
        drainTimeoutMs: this.waitTimeoutMs,
        hooks: o.hooks,
      },
    });
    void this.checkDurability();
    if (o.worker !== false) this.flusher.start();
  }

  /** The write-back table with this id, if any. */
  table(id: string): WriteBackTable | undefined {
    return this.tables.get(id);
  }

  /** Session settings values are normalised under (read once from the database). */
  normalizeContext(): Promise<NormalizeContext> {
    const sink = this.requireSink();
    if (!this.context) {
      this.context = sink.settings().catch((error: unknown) => {
        this.context = undefined;
        throw error;
      });
    }
    return this.context;
  }

  /**
   * Journals writes to rows of one table, atomically. A row not cached is read from the database
   * first. Returns `sync` when the write must instead run against the database (after `drain`).
   */
  async write(
    table: WriteBackTable,
    writes: readonly RowWrite[],
    options: { want?: readonly string[] | undefined; dlqEntry?: string | undefined } = {},
  ): Promise<WriteOutcome> {
    const { telemetry } = this.deps;
    const traceparent = telemetry.traceparent();
    const stamped = traceparent ? writes.map((w) => ({ ...w, tp: traceparent })) : writes;
    let token: BaseToken | undefined;
    let bases = new Map<number, Fields>();
    const deadline = Date.now() + this.waitTimeoutMs;
    // A first attempt without RETURNING may share its append with concurrent statements.
    let shared = options.want === undefined && options.dlqEntry === undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; ) {
      let result: AppendResult | undefined;
      if (shared) {
        shared = false;
        result = await appendOrUnknown(table.id, () => this.batcherOf(table).submit(stamped));
      }
      result ??= await appendOrUnknown(table.id, () =>
        this.append(table, stamped, {
          bases,
          token,
          want: options.want,
          dlqEntry: options.dlqEntry,
          maxPending: table.flush.maxPending,
        }),
      );
      switch (result.status) {
        case 'ok': {
          const journaled = result.rows.filter((r) => r.count > 0).length;
          if (journaled > 0) telemetry.writeBackQueued(table.id, journaled);
          if (result.length >= table.flush.batch) this.flusher?.poke(table.id);
          return { kind: 'done', rows: result.rows };
        }
        case 'need': {
          attempt++;
          const loaded = await this.requireSink().loadRows(
            table.sink,
            result.rows.map((i) => (writes[i] as RowWrite).pk),
          );
          bases = new Map(result.rows.map((i, k) => [i, baseFields(table, loaded[k] ?? null)]));
          token = result.token;
          continue;
        }
        case 'suspect':
        case 'unknown':
          attempt++;
          await this.drain(table);
          bases = new Map();
          token = undefined;
          continue;
        case 'full': {
          const mode = table.flush.onBackpressure;
          if (mode === 'sync') return { kind: 'sync', reason: 'full' };
          if (mode === 'fail') {
            throw new WriteBackError(
              'E_WRITE_BACK_FULL',
              `table "${table.id}" has ${result.length} pending writes (maxPending ${table.flush.maxPending}); the write was not accepted`,
            );
          }
          if (Date.now() > deadline) {
            throw new WriteBackError(
              'E_WRITE_BACK_TIMEOUT',
              `table "${table.id}" stayed at ${result.length} pending writes (maxPending ${table.flush.maxPending}) for ${this.waitTimeoutMs} ms; the write was not accepted`,
            );
          }
          this.flusher?.poke(table.id);
          await delay(FULL_POLL_MS);
          continue;
        }
        default:
          return { kind: 'sync', reason: result.status };
      }
    }
    return { kind: 'sync', reason: 'contention' };
  }

  /** One journal append; its request id is forgotten by a later append once the reply arrived. */
  private async append(
    table: WriteBackTable,
    writes: readonly RowWrite[],
    o: {
      bases?: ReadonlyMap<number, Fields> | undefined;
      token?: BaseToken | undefined;
      want?: readonly string[] | undefined;
      dlqEntry?: string | undefined;
      maxPending: number;
    },
  ): Promise<AppendResult> {
    const requestId = randomUUID();
    let answered = this.answered.get(table.id);
    if (!answered) {
      answered = [];
      this.answered.set(table.id, answered);
    }
    // Forgetting costs the script a DEL: done for a few requests at a time (the rest expire in an hour).
    const forget = answered.length >= FORGET_EVERY ? answered.splice(0, FORGET_MAX) : undefined;
    const result = await this.deps.journal.append({
      keys: table.keys,
      requestId,
      forget,
      rows: writes.map((write, i) => ({
        row: table.rowKey(write.pk),
        write,
        payload: payloadOf(write),
        base: o.bases?.get(i),
      })),
      maxPending: o.maxPending,
      ttlMs: table.ttlMs,
      token: o.token,
      want: o.want,
      dlqEntry: o.dlqEntry,
    });
    if (result.status === 'ok') answered.push(requestId);
    return result;
  }

  private batcherOf(table: WriteBackTable): AppendBatcher {
    let batcher = this.batchers.get(table.id);
    if (!batcher) {
      batcher = new AppendBatcher((rows, spare) =>
        this.append(table, rows, { maxPending: table.flush.maxPending - spare }),
      );
      this.batchers.set(table.id, batcher);
    }
    return batcher;
  }

  /**
   * Reads rows by primary key with every acknowledged write applied: from row entries, filling
   * missing ones from the database. Null for a row that does not exist. Undefined when the rows
   * kept changing under the read: the tables were drained, so the caller reads the database.
   */
  read(
    table: WriteBackTable,
    pks: readonly (readonly string[])[],
    want: readonly string[],
  ): Promise<(Fields | null)[] | undefined> {
    return this.deps.telemetry.operation('get', table.id, 'write-back', async (scope) => {
      const rows = await this.readRows(table, pks, want, (loaded) => scope.result(loaded ? 'miss' : 'hit'));
      if (!rows) scope.result('bypass');
      return rows;
    });
  }

  private async readRows(
    table: WriteBackTable,
    pks: readonly (readonly string[])[],
    want: readonly string[],
    served: (loaded: boolean) => void,
  ): Promise<(Fields | null)[] | undefined> {
    const { journal } = this.deps;
    const rowKeys = pks.map((pk) => table.rowKey(pk));
    for (let attempt = 0; attempt < 3; attempt++) {
      const found = await journal.readRows({ keys: table.keys, rows: rowKeys, want });
      if (found.rows.some((r) => r.kind === 'wait')) {
        await this.drain(table);
        continue;
      }
      const out: (Fields | null)[] = [];
      const missing: number[] = [];
      found.rows.forEach((r, i) => {
        if (r.kind === 'hit') out[i] = r.fields.x === '1' ? r.fields : null;
        else missing.push(i);
      });
      if (missing.length === 0) {
        served(false);
        return out;
      }
      const loaded = await this.requireSink().loadRows(
        table.sink,
        missing.map((i) => pks[i] as readonly string[]),
      );
      const bases = loaded.map((row) => baseFields(table, row));
      const filled = await journal.fillRows({
        keys: table.keys,
        token: found.token,
        ttlMs: table.ttlMs,
        rows: missing.map((i, k) => ({ row: rowKeys[i] as string, base: bases[k] as Fields })),
        want,
      });
      let wait = false;
      filled.forEach((f, k) => {
        const i = missing[k] as number;
        const base = bases[k] as Fields;
        if (f.kind === 'hit') out[i] = f.fields.x === '1' ? f.fields : null;
        // Not filled (an invalidation raced the read): the database row is still current for this reader.
        else if (f.kind === 'stale') out[i] = base.x === '1' ? base : null;
        else wait = true;
      });
      if (!wait) {
        served(true);
        return out;
      }
      await this.drain(table);
    }
    return undefined;
  }

  /**
   * `cache.increment`: adds to numeric columns of one row. Returns whether the row exists.
   * Column names are database names; values are integers (or decimals for numeric columns).
   */
  async increment(
    name: string,
    pk: unknown,
    deltas: Readonly<Record<string, number | bigint | string>>,
  ): Promise<boolean> {
    const id = this.deps.lookup(name);
    const table = id === undefined ? undefined : this.tables.get(id);
    if (!table) {
      throw new CacheError(
        'E_WRITE_BACK_TABLE',
        id === undefined
          ? `unknown table "${name}"`
          : `table "${id}" does not use pattern "write-back"; increment needs it`,
      );
    }
    const context = await this.normalizeContext();
    const key = primaryKeyTexts(table, pk, context);
    const changes: Change[] = [];
    for (const [column, value] of Object.entries(deltas)) {
      const type = table.columns.get(column);
      if (!type) {
        throw new WriteBackError('E_WRITE_BACK_VALUE', `table "${table.id}" has no column "${column}"`);
      }
      const delta = supportsDelta(type) ? canonicalDelta(type, value) : NOT_EXACT;
      if (delta === NOT_EXACT) {
        throw new WriteBackError(
          'E_WRITE_BACK_VALUE',
          `cannot add ${typeof value === 'string' ? JSON.stringify(value) : String(value)} to column "${column}" (${type.cast}) of table "${table.id}" exactly`,
        );
      }
      const bounds = deltaBounds(type);
      changes.push(
        bounds ? { k: 'd', c: column, v: delta, lo: bounds[0], hi: bounds[1] } : { k: 'd', c: column, v: delta },
      );
    }
    if (changes.length === 0) throw new WriteBackError('E_WRITE_BACK_VALUE', 'increment needs at least one column');
    const write: RowWrite = { k: 'upd', pk: key, s: changes };
    const outcome = await this.write(table, [write]);
    if (outcome.kind === 'done') return (outcome.rows[0]?.count ?? 0) > 0;
    await this.drain(table);
    const result = await this.requireSink().transaction(this.transactionOptions(), (tx) =>
      tx.apply(table.sink, coalesce([{ id: '0-0', write }])),
    );
    await this.deps.invalidate([table.id]);
    return result.affected > 0;
  }

  /** Applies every write of `table` pending now (see Flusher.drain). */
  async drain(table: WriteBackTable): Promise<void> {
    await this.requireFlusher().drain(table);
  }

  /** Drains every write-back table. */
  async drainAll(): Promise<void> {
    if (!this.flusher) return;
    await this.flusher.drainAll();
  }

  /** Drains, then stops the flusher and releases leases. A failed drain is reported; writes stay journaled. */
  async close(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.drainAll();
    } catch (error) {
      this.report(error);
    } finally {
      this.stopped = true;
      await this.flusher?.stop();
    }
  }

  /** Journal figures of every write-back table. */
  async status(): Promise<TableStatus[]> {
    const out: TableStatus[] = [];
    for (const t of this.tables.values()) {
      const s = await this.deps.journal.status(t.keys);
      out.push({ ...s, table: t.id, oldestAgeMs: s.oldest ? Math.max(0, s.now - streamIdMs(s.oldest)) : 0 });
    }
    return out;
  }

  /** Dead letters of a table, oldest first. */
  deadLetters(table: WriteBackTable, count = 100, start?: string): Promise<DeadLetter[]> {
    return this.deps.journal.deadLetters({ keys: table.keys, start, count });
  }

  /**
   * Re-journals dead letters (after the cause was fixed): each is appended as a new write and
   * removed from the dead-letter stream in one atomic step. Returns how many were replayed.
   */
  async replayDeadLetters(table: WriteBackTable, letters: readonly DeadLetter[]): Promise<number> {
    let replayed = 0;
    for (const letter of letters) {
      const write = decodePayload(letter.payload);
      const outcome = await this.write(table, [write], { dlqEntry: letter.id });
      if (outcome.kind === 'sync') {
        throw new WriteBackError(
          'E_WRITE_BACK_REPLAY',
          `dead letter ${letter.id} of table "${table.id}" cannot be journaled again (${outcome.reason}); it stays in the dead-letter stream`,
        );
      }
      replayed++;
    }
    return replayed;
  }

  /** Deletes dead letters; returns how many existed. */
  dropDeadLetters(table: WriteBackTable, ids: readonly string[]): Promise<number> {
    return this.deps.journal.dropDeadLetters({ keys: table.keys, ids });
  }

  private transactionOptions() {
    const o = this.deps.options;
    return {
      lockTimeoutMs: parseDuration(o.lockTimeout ?? '5s', { field: 'writeBack.lockTimeout' }),
      statementTimeoutMs: parseDuration(o.statementTimeout ?? '30s', { field: 'writeBack.statementTimeout' }),
    };
  }

  private requireSink(): WriteBackSink {
    if (!this.sink) {
      throw new CacheError(
        'E_NOT_ATTACHED',
        'write-back needs the cache attached to a database client (withCache(db, cache))',
      );
    }
    return this.sink;
  }

  private requireFlusher(): Flusher {
    this.requireSink();
    return this.flusher as Flusher;
  }

  private async checkDurability(): Promise<void> {
    try {
      const d = await this.deps.journal.durability();
      if (d.volatile) {
        this.report(
          new WriteBackError(
            'E_WRITE_BACK_DURABILITY',
            'the store keeps the write-back journal in process memory: acknowledged writes not yet flushed are lost when the process exits',
          ),
        );
      } else if (d.appendonly === false) {
        this.report(
          new WriteBackError(
            'E_WRITE_BACK_DURABILITY',
            'Redis runs with appendonly no: acknowledged write-back writes since the last snapshot are lost if Redis restarts; set appendonly yes (see docs/write-back.md)',
          ),
        );
      }
      if (d.maxmemoryPolicy !== undefined && d.maxmemoryPolicy !== 'noeviction') {
        this.report(
          new WriteBackError(
            'E_WRITE_BACK_DURABILITY',
            `Redis maxmemory-policy is ${d.maxmemoryPolicy}: under memory pressure it may evict the write-back journal; use noeviction`,
          ),
        );
      }
    } catch (error) {
      this.report(error);
    }
  }

  private report(error: unknown): void {
    const wrapped =
      error instanceof CacheError
        ? error
        : new WriteBackError('E_WRITE_BACK', error instanceof Error ? error.message : String(error), { cause: error });
    try {
      this.deps.onError(wrapped);
    } catch {
      // A throwing onError hook must not break write-back.
    }
  }
}

/** A database row (canonical texts, or null when absent) as row-entry fields. */
export function baseFields(table: WriteBackTable, row: Record<string, string | null> | null): Fields {
  if (!row) return { x: '0' };
  const out: Fields = { x: '1' };
  for (const c of table.sink.columns) out[`c:${c.name}`] = field(row[c.name] ?? null);
  return out;
}

/** Canonical primary-key texts from a value, a list in key order, or an object by column name. */
export function primaryKeyTexts(table: WriteBackTable, pk: unknown, context: NormalizeContext): string[] {
  const columns = table.info.primaryKey;
  let values: unknown[];
  if (Array.isArray(pk)) values = pk;
  else if (typeof pk === 'object' && pk !== null && !(pk instanceof Date) && !(pk instanceof Uint8Array)) {
    values = columns.map((c) => (pk as Record<string, unknown>)[c]);
  } else values = [pk];
  if (values.length !== columns.length) {
    throw new WriteBackError('E_WRITE_BACK_VALUE', `table "${table.id}" has a ${columns.length}-column primary key`);
  }
  return columns.map((column, i) => {
    const type = table.columns.get(column);
    const text = type ? canonicalValue(type, values[i], context) : NOT_EXACT;
    if (text === NOT_EXACT || text === null) {
      throw new WriteBackError(
        'E_WRITE_BACK_VALUE',
        `invalid primary-key value for column "${column}" of table "${table.id}"`,
      );
    }
    return text;
  });
}

/**
 * A write's stream payload. Without delta bounds the write is its own payload (the adapters build
 * writes in payload form), so it is serialized as is rather than copied first.
 */
function payloadOf(write: RowWrite): string {
  return hasBounds(write) ? encodePayload(write) : JSON.stringify(write);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A journal append whose answer never came may still have been applied by Redis: the caller must
 * not blindly retry (an increment would count twice), so the error says the outcome is unknown.
 */
async function appendOrUnknown<T>(table: string, append: () => Promise<T>): Promise<T> {
  try {
    return await append();
  } catch (error) {
    if (error instanceof WriteBackError) throw error;
    throw new WriteBackError(
      'E_WRITE_BACK_UNKNOWN_OUTCOME',
      `write-back to "${table}": the store did not confirm the write, which may or may not be queued; read the row before retrying`,
      { cause: error },
    );
  }
}

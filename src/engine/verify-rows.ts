import type { TableInfo } from '../catalog.js';
import type { KeySpace } from '../keys.js';
import { type CacheStore, readCounter } from '../store.js';
import { canonical, differingColumns } from './drift.js';
import { decodeEnvelope, envelopeHeader, generationHeader } from './envelope.js';
import { RowKeyCodec } from './row-key.js';
import type { RawRow } from './rows.js';

/**
 * A store that can list its keys (Redis SCAN). Only operator tools use it (`tablecache verify`),
 * never a request path.
 */
export interface KeyScanCapable {
  /** Yields the keys matching the Redis glob `match`, asking for about `count` per round trip. */
  scanKeys(match: string, count: number): AsyncIterable<string>;
}

/** Whether `store` can list its keys. */
export function canScanKeys(store: object): store is KeyScanCapable {
  return typeof (store as Partial<KeyScanCapable>).scanKeys === 'function';
}

/** One cached row that differs from the database. */
export interface RowDrift {
  /** The digest that ends the row's key: identifies the entry without showing its values. */
  readonly keyHash: string;
  /** `changed`: the database row differs; `deleted`: the database has no such row. */
  readonly kind: 'changed' | 'deleted';
  /** The columns whose values differ (every column for a deleted row). */
  readonly columns: readonly string[];
  /** The cached row (raw driver values). */
  readonly cached: RawRow;
  /** The database's row, when it exists. */
  readonly database: RawRow | undefined;
}

/** What verifying one table's row entries found. */
export interface TableVerification {
  readonly table: string;
  /** Row entries sampled from the store. */
  readonly sampled: number;
  /** Sampled entries the cache would serve (current generations, decodable) and so were compared. */
  readonly checked: number;
  /** Confirmed differences. */
  readonly drift: readonly RowDrift[];
}

/** Options of `verifyRowEntries`. */
export interface VerifyRowsOptions {
  readonly store: CacheStore;
  readonly scanner: KeyScanCapable;
  /** The application's keys (same prefix, namespace, version), with `table` registered. */
  readonly keys: KeySpace;
  /** A table with row entries (a primary key of a supported type). */
  readonly table: TableInfo;
  /** Most row entries to sample. */
  readonly sample: number;
  /** How long a difference must persist, with the entry unchanged, to count (a write through tablecache may be between its commit and its eviction). */
  readonly confirmMs: number;
  /** Reads full rows by primary key (values in key column order) from the database; missing rows are absent. */
  fetch(table: TableInfo, keys: readonly (readonly unknown[])[]): Promise<RawRow[]>;
}

/** Entries read and compared per round trip. */
const CHUNK = 200;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Samples a table's row entries (SCAN on the namespace's row-key prefix, bounded by `sample`),
 * re-reads those rows by primary key from the database and returns the confirmed differences.
 * Entries under outdated generations are skipped: the cache never serves them. A difference
 * counts only if, `confirmMs` later, the cache still serves the same row under the same
 * generations, so a write through tablecache racing the check is not reported.
 */
export async function verifyRowEntries(options: VerifyRowsOptions): Promise<TableVerification> {
  const { store, scanner, keys, table } = options;
  const codec = RowKeyCodec.of(table);
  if (!codec) throw new Error(`table ${table.id} has no row entries (its primary key type is not supported)`);
  const sampled: string[] = [];
  if (options.sample > 0) {
    for await (const key of scanner.scanKeys(`${globEscape(rowKeyPrefix(keys, table.id))}*`, 1000)) {
      sampled.push(key);
      if (sampled.length >= options.sample) break;
    }
  }
  const genKeys = [keys.globalGeneration(), keys.rowGeneration(table.id)];
  let checked = 0;
  const suspects: { key: string; drift: RowDrift }[] = [];
  for (let start = 0; start < sampled.length; start += CHUNK) {
    const chunk = sampled.slice(start, start + CHUNK);
    const got = await store.getMany([...genKeys, ...chunk]);
    const header = generationHeader([readCounter(got[0]), readCounter(got[1])]);
    const cached = new Map<string, { key: string; row: RawRow; values: unknown[] }>();
    chunk.forEach((key, i) => {
      const row = servedRow(got[2 + i], header);
      const pk = row ? codec.encodeRow(row) : undefined;
      // The key must be the row's own: anything else is not an entry this table's reads would serve.
      if (!row || pk === undefined || keys.rowEntry(table.id, pk) !== key || cached.has(pk)) return;
      cached.set(pk, { key, row, values: codec.columns.map((c) => row[c]) });
    });
    if (cached.size === 0) continue;
    checked += cached.size;
    const rows = await options.fetch(
      table,
      [...cached.values()].map((c) => c.values),
    );
    const database = new Map<string, RawRow>();
    for (const row of rows) {
      const pk = codec.encodeRow(row);
      if (pk !== undefined) database.set(pk, row);
    }
    for (const [pk, { key, row }] of cached) {
      const current = database.get(pk);
      const columns = current ? differingColumns(row, current) : Object.keys(row);
      if (current && columns.length === 0) continue;
      const kind = current ? 'changed' : 'deleted';
      suspects.push({ key, drift: { keyHash: keyHash(key), kind, columns, cached: row, database: current } });
    }
  }
  return { table: table.id, sampled: sampled.length, checked, drift: await confirm(options, genKeys, suspects) };
}

/** Keeps the suspects the cache still serves unchanged after `confirmMs`. */
async function confirm(
  options: VerifyRowsOptions,
  genKeys: readonly string[],
  suspects: readonly { key: string; drift: RowDrift }[],
): Promise<RowDrift[]> {
  if (suspects.length === 0) return [];
  await sleep(options.confirmMs);
  const out: RowDrift[] = [];
  for (let start = 0; start < suspects.length; start += CHUNK) {
    const chunk = suspects.slice(start, start + CHUNK);
    const got = await options.store.getMany([...genKeys, ...chunk.map((s) => s.key)]);
    const header = generationHeader([readCounter(got[0]), readCounter(got[1])]);
    chunk.forEach((suspect, i) => {
      const row = servedRow(got[2 + i], header);
      if (row && canonical(row) === canonical(suspect.drift.cached)) out.push(suspect.drift);
    });
  }
  return out;
}

/** The row an entry holds when the cache would serve it under `header`, else undefined. */
function servedRow(entry: Uint8Array | null | undefined, header: string): RawRow | undefined {
  if (!entry || envelopeHeader(entry)?.generations !== header) return undefined;
  try {
    const row = decodeEnvelope(entry);
    return row && typeof row === 'object' && !Array.isArray(row) ? (row as RawRow) : undefined;
  } catch {
    return undefined;
  }
}

/** The common prefix of a table's row-entry keys (everything but the key's digest). */
export function rowKeyPrefix(keys: KeySpace, tableId: string): string {
  const sample = keys.rowEntry(tableId, '');
  return sample.slice(0, sample.lastIndexOf(':') + 1);
}

/** The digest at the end of an entry key. */
function keyHash(key: string): string {
  return key.slice(key.lastIndexOf(':') + 1);
}

/** Escapes the Redis glob characters `* ? [ ] \` so `text` matches only itself. */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

import type { TableInfo } from './catalog.js';
import { digest } from './hash.js';

/** Query entry keys remembered at most (a few hundred bytes each). */
const RECENT_ENTRIES = 4096;
/** Longest query material whose key is remembered (characters). */
const MAX_REMEMBERED_INPUT = 2048;

/**
 * Builds every key of one namespace. All keys share the hash tag `{namespace:version}`, so the
 * keys a script touches together always live in one Redis Cluster slot. Names are encoded so
 * that `:`, `{`, `}`, spaces or unicode in table names can never make two entries share a key.
 */
export class KeySpace {
  /** The common prefix, e.g. `tc:{shop:v1}:`. */
  readonly base: string;
  private readonly fingerprints = new Map<string, string>();
  /** Query entry keys by identity: a SHA-256 costs more than the rest of the key's work. */
  private readonly recentEntries = new Map<string, string>();

  constructor(prefix: string, namespace: string, version: number) {
    this.base = `${prefix}:{${encodeSegment(namespace)}:v${version}}:`;
  }

  /** Registers a table so its fingerprint is part of its keys. */
  addTable(table: TableInfo): void {
    this.fingerprints.set(table.id, tableFingerprint(table));
  }

  /** The schema fingerprint of a registered table. */
  fingerprint(tableId: string): string {
    return this.fingerprints.get(tableId) ?? 'unknown';
  }

  /** The namespace-wide generation: bumping it invalidates every entry of the namespace. */
  globalGeneration(): string {
    return `${this.base}g`;
  }

  /** Generation of a table's query-result entries: bumped by every write to the table. */
  queryGeneration(tableId: string): string {
    return `${this.base}t:${encodeSegment(tableId)}:qg`;
  }

  /** Generation of a table's row entries: bumped only by table-wide invalidation. */
  rowGeneration(tableId: string): string {
    return `${this.base}t:${encodeSegment(tableId)}:rg`;
  }

  /** A query-result entry; `material` is the query identity (SQL, parameters, scope, mode). */
  queryEntry(tableIds: readonly string[], material: string): string {
    return this.queryEntryOf(this.queryEntryDeps(tableIds), material);
  }

  /** The part of a query entry's identity that depends only on its tables (reusable per read plan). */
  queryEntryDeps(tableIds: readonly string[]): string {
    let deps = '';
    for (const id of tableIds) deps += `${id}\u0000${this.fingerprint(id)}\u0000`;
    return `${deps}\u0001`;
  }

  /** `queryEntry` from `queryEntryDeps(tableIds)`; recent answers are remembered (hits repeat). */
  queryEntryOf(deps: string, material: string): string {
    const input = deps + material;
    // Large materials (long IN lists, JSON parameters) are hashed each time: remembering them
    // would hold megabytes for a cheap saving.
    if (input.length > MAX_REMEMBERED_INPUT) return `${this.base}q:${digest(input)}`;
    let key = this.recentEntries.get(input);
    if (key === undefined) {
      key = `${this.base}q:${digest(input)}`;
      if (this.recentEntries.size >= RECENT_ENTRIES) this.recentEntries.clear();
      this.recentEntries.set(input, key);
    }
    return key;
  }

  /** A row entry of a table, addressed by its encoded primary key. */
  rowEntry(tableId: string, pk: string): string {
    return `${this.base}r:${encodeSegment(tableId)}:${this.fingerprint(tableId)}:${digest(pk)}`;
  }

  /** The per-row write counter that orders concurrent writers and fills of one row. */
  rowCounter(tableId: string, pk: string): string {
    return `${this.base}c:${encodeSegment(tableId)}:${digest(pk)}`;
  }

  /** A cross-process fill lease for one entry. */
  lease(entryKey: string): string {
    return `${this.base}l:${digest(entryKey)}`;
  }

  /** A key of the write-back journal of a table (`suffix` names the structure). */
  writeBack(tableId: string, suffix: string): string {
    return `${this.base}wb:${encodeSegment(tableId)}:${suffix}`;
  }
}

/** Fingerprint of a table's shape: column names and types, primary key, schema and name. */
export function tableFingerprint(table: TableInfo): string {
  const cols = table.columns.map((c) => `${c.name}\u0000${c.type}`).join('\u0001');
  return digest(`${table.schema ?? ''}\u0002${table.name}\u0002${cols}\u0002${table.primaryKey.join('\u0001')}`).slice(
    0,
    10,
  );
}

/** Percent-encodes everything but `[A-Za-z0-9_.-]`, so a segment never contains `:`, `{` or `}`. */
export function encodeSegment(value: string): string {
  return /^[A-Za-z0-9_.-]+$/.test(value)
    ? value
    : encodeURIComponent(value).replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

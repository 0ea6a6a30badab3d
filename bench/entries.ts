import { buildCatalog } from '../adapters/drizzle/index.js';
import { stableParams } from '../src/hash.js';
import { KeySpace } from '../src/keys.js';
import type { CacheStore, CounterGuard, StoreEntry } from '../src/store.js';
import type { BenchTables } from './schema.js';

/** A store that remembers every entry the cache fills (key and bytes), passing calls through. */
export interface RecordingStore extends CacheStore {
  /** Fills seen so far, by key. */
  readonly filled: Map<string, Uint8Array>;
}

/** Wraps `inner` so the entries tablecache fills can be copied (to prefill many real entries fast). */
export function recordingStore(inner: CacheStore): RecordingStore {
  const filled = new Map<string, Uint8Array>();
  return {
    name: inner.name,
    filled,
    getMany: (keys) => inner.getMany(keys),
    set: (entries) => inner.set(entries),
    async setIfCounters(entry: StoreEntry, guards: readonly CounterGuard[]) {
      const written = await inner.setIfCounters(entry, guards);
      if (written) filled.set(entry.key, entry.value);
      return written;
    },
    delete: (keys) => inner.delete(keys),
    incr: (keys, options) => inner.incr(keys, options),
    incrThenSetOrDelete: (counter, expected, entry, options) =>
      inner.incrThenSetOrDelete(counter, expected, entry, options),
    incrThenSetOrDeleteMany: (items, options) => inner.incrThenSetOrDeleteMany(items, options),
    setIfAbsent: (entry) => inner.setIfAbsent(entry),
    close: () => inner.close(),
  };
}

/**
 * Computes the key tablecache gives a query-result entry of `items` (the layout of src/keys.ts
 * and the identity the Drizzle adapter builds), so real entries can be written in bulk. The
 * computation is checked against keys tablecache itself filled (`verify`) before it is trusted.
 */
export class EntryKeys {
  private readonly keys: KeySpace;
  private readonly tableId: string;

  constructor(prefix: string, namespace: string, tables: BenchTables) {
    this.keys = new KeySpace(prefix, namespace, 1);
    const info = buildCatalog(tables).tables.find((t) => t.name === 'items');
    if (!info) throw new Error('items table missing from the catalog');
    this.keys.addTable(info);
    this.tableId = info.id;
  }

  /** The key of an array-mode (builder or prepared) select with this SQL text and parameters. */
  queryEntry(sqlText: string, params: readonly unknown[]): string {
    const identity = `array\u0001${sqlText}`;
    return this.keys.queryEntry([this.tableId], `\u0001${identity}\u0001${stableParams(params)}`);
  }

  /** Throws unless every computed key is one tablecache filled (the layout has not drifted). */
  static verify(computed: readonly string[], filled: ReadonlyMap<string, Uint8Array>): void {
    const missing = computed.filter((k) => !filled.has(k));
    if (missing.length > 0) {
      throw new Error(
        `computed entry keys do not match the keys tablecache filled (${missing.length} of ${computed.length}, ` +
          `e.g. ${missing[0]}); update bench/entries.ts to the current key layout`,
      );
    }
  }
}

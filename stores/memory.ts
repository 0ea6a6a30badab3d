import { StoreError } from '../src/errors.js';
import type { CacheStore, CounterGuard, CounterWrite, IncrOptions, StoreEntry } from '../src/store.js';
// Write-back journal capability (issue 4).
import type { WriteBackCapable } from '../src/write-back/journal.js';
import { memoryJournal } from '../src/write-back/memory-journal.js';

/** Options of `memoryStore`. */
export interface MemoryStoreOptions {
  /** Most entries kept before the least recently used are evicted; counters do not count. @default 10000 */
  maxEntries?: number;
  /** Most key plus value bytes kept before the least recently used are evicted. @default 64 MiB */
  maxBytes?: number;
  /** The clock in milliseconds, injectable for tests. @default Date.now */
  now?: () => number;
}

interface Entry {
  value: Uint8Array;
  expiresAt: number;
  bytes: number;
}

interface Counter {
  value: number;
  /** Absent when the counter never expires. */
  expiresAt: number | undefined;
}

const DEFAULT_MAX_ENTRIES = 10_000;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
/** Counters are swept for expiry once their count doubles past this, so the sweep costs O(1) amortized. */
const MIN_COUNTER_SWEEP = 1024;
const ascii = new TextEncoder();

/**
 * An in-process LRU store with per-entry TTL, for tests and single-process apps.
 * Values are copied on the way in and out, so callers may reuse or mutate their buffers.
 * Counters live apart from the LRU budget and are never evicted; only their own TTL ends them.
 */
export function memoryStore(options: MemoryStoreOptions = {}): CacheStore & WriteBackCapable {
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const now = options.now ?? Date.now;
  // A Map iterates in insertion order, so re-inserting on use keeps the least recently used first.
  const entries = new Map<string, Entry>();
  const counters = new Map<string, Counter>();
  let totalBytes = 0;
  let nextCounterSweep = MIN_COUNTER_SWEEP;

  function liveEntry(key: string, t: number): Entry | undefined {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= t) {
      dropEntry(key, entry);
      return undefined;
    }
    return entry;
  }

  function liveCounter(key: string, t: number): Counter | undefined {
    const counter = counters.get(key);
    if (counter === undefined) return undefined;
    if (counter.expiresAt !== undefined && counter.expiresAt <= t) {
      counters.delete(key);
      return undefined;
    }
    return counter;
  }

  function dropEntry(key: string, entry: Entry): void {
    entries.delete(key);
    totalBytes -= entry.bytes;
  }

  function deleteKey(key: string): void {
    const entry = entries.get(key);
    if (entry !== undefined) dropEntry(key, entry);
    counters.delete(key);
  }

  /** Writes an entry whose `ttlMs` was already checked with `ttlOf`. */
  function writeEntry({ key, value, ttlMs }: StoreEntry, t: number): void {
    deleteKey(key);
    const bytes = Buffer.byteLength(key) + value.byteLength;
    // An entry above the whole budget would flush everything else and then itself: skip it.
    if (bytes > maxBytes || maxEntries < 1) return;
    entries.set(key, { value: new Uint8Array(value), expiresAt: t + ttlOf(ttlMs), bytes });
    totalBytes += bytes;
    evict();
  }

  function evict(): void {
    for (const [key, entry] of entries) {
      if (entries.size <= maxEntries && totalBytes <= maxBytes) return;
      dropEntry(key, entry);
    }
  }

  /** Reads a key as a number the way a Redis guard does: counter, decimal entry, or 0 when missing. */
  function readNumber(key: string, t: number): number {
    const counter = liveCounter(key, t);
    if (counter !== undefined) return counter.value;
    const entry = liveEntry(key, t);
    if (entry === undefined) return 0;
    return parseInteger(entry.value) ?? Number.NaN;
  }

  /** Increments a counter with options already checked by `checkIncr`. */
  function bump(key: string, incr: IncrOptions, t: number): number {
    let counter = liveCounter(key, t);
    if (counter === undefined) {
      counter = { value: incr.init ?? 0, expiresAt: undefined };
      const entry = liveEntry(key, t);
      if (entry !== undefined) {
        // Redis keeps one key space: INCR on a decimal string value continues from it, TTL included.
        const parsed = parseInteger(entry.value);
        if (parsed === undefined) throw new StoreError(`key ${key} holds a value that is not an integer`);
        counter = { value: parsed, expiresAt: entry.expiresAt };
        dropEntry(key, entry);
      }
      counters.set(key, counter);
    }
    counter.value += 1;
    if (incr.ttlMs !== undefined) counter.expiresAt = t + ttlOf(incr.ttlMs);
    return counter.value;
  }

  function sweepCounters(t: number): void {
    if (counters.size < nextCounterSweep) return;
    for (const key of counters.keys()) liveCounter(key, t);
    nextCounterSweep = Math.max(MIN_COUNTER_SWEEP, counters.size * 2);
  }

  // Write-back journal (issue 4): reads this store's counters for generation stamps.
  const journal = memoryJournal({ counter: (key) => readNumber(key, now()), now });

  return {
    name: 'memory',
    writeBackJournal: journal,

    async getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
      const t = now();
      return keys.map((key) => {
        const counter = liveCounter(key, t);
        if (counter !== undefined) return ascii.encode(String(counter.value));
        const entry = liveEntry(key, t);
        if (entry === undefined) return null;
        entries.delete(key);
        entries.set(key, entry);
        return new Uint8Array(entry.value);
      });
    },

    async set(list: readonly StoreEntry[]): Promise<void> {
      const t = now();
      for (const entry of list) ttlOf(entry.ttlMs);
      for (const entry of list) writeEntry(entry, t);
    },

    async setIfCounters(entry: StoreEntry, guards: readonly CounterGuard[]): Promise<boolean> {
      const t = now();
      ttlOf(entry.ttlMs);
      for (const guard of guards) {
        if (readNumber(guard.key, t) !== guard.expected) return false;
      }
      writeEntry(entry, t);
      return true;
    },

    async delete(keys: readonly string[]): Promise<void> {
      for (const key of keys) deleteKey(key);
    },

    async incr(keys: readonly string[], incr: IncrOptions = {}): Promise<number[]> {
      const t = now();
      checkIncr(incr);
      sweepCounters(t);
      return keys.map((key) => {
        const counter = incr.floor ? liveCounter(key, t) : undefined;
        if (counter && counter.value < (incr.init ?? 0)) counter.value = incr.init ?? 0;
        return bump(key, incr, t);
      });
    },

    async incrThenSetOrDelete(
      counter: string,
      expected: number,
      entry: StoreEntry,
      incr: IncrOptions = {},
    ): Promise<boolean> {
      const t = now();
      checkIncr(incr);
      ttlOf(entry.ttlMs);
      sweepCounters(t);
      if (bump(counter, incr, t) === expected) {
        writeEntry(entry, t);
        return true;
      }
      deleteKey(entry.key);
      return false;
    },

    async incrThenSetOrDeleteMany(items: readonly CounterWrite[], incr: IncrOptions = {}): Promise<boolean[]> {
      const t = now();
      checkIncr(incr);
      for (const item of items) if (item.value !== undefined) ttlOf(item.ttlMs);
      sweepCounters(t);
      return items.map((item) => {
        const created = liveCounter(item.counter, t) === undefined && liveEntry(item.counter, t) === undefined;
        const value = bump(item.counter, incr, t);
        const allowed = item.expected === 'created' ? created : value === item.expected;
        if (item.value !== undefined && allowed) {
          writeEntry({ key: item.key, value: item.value, ttlMs: item.ttlMs }, t);
          return true;
        }
        deleteKey(item.key);
        return false;
      });
    },

    async setIfAbsent(entry: StoreEntry): Promise<boolean> {
      const t = now();
      ttlOf(entry.ttlMs);
      if (liveCounter(entry.key, t) !== undefined || liveEntry(entry.key, t) !== undefined) return false;
      writeEntry(entry, t);
      return true;
    },

    async close(): Promise<void> {
      journal.clear();
      entries.clear();
      counters.clear();
      totalBytes = 0;
    },
  };
}

/** Whole milliseconds, at least 1, as the Redis store rounds them. */
function ttlOf(ttlMs: number): number {
  if (!Number.isFinite(ttlMs)) throw new StoreError(`ttlMs must be a finite number, got ${ttlMs}`);
  return Math.max(1, Math.ceil(ttlMs));
}

/** Throws before any change when increment options are unusable. */
function checkIncr(incr: IncrOptions): void {
  const init = incr.init ?? 0;
  if (!Number.isSafeInteger(init)) throw new StoreError(`counter init must be an integer, got ${init}`);
  if (incr.ttlMs !== undefined) ttlOf(incr.ttlMs);
}

/** Parses ASCII `-?[0-9]+` the way Redis INCR accepts a string; anything else is undefined. */
function parseInteger(bytes: Uint8Array): number | undefined {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  if (!/^-?(0|[1-9][0-9]*)$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

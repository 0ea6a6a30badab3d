/**
 * The contract every cache store implements: a small byte-value key/value store with counters.
 * Values are opaque bytes; counters are decimal integers stored as ASCII, readable with `getMany`.
 * Every method is atomic on its own. Keys passed together always share one hash slot.
 */
export interface CacheStore {
  /** A short name for logs and telemetry, such as `redis` or `memory`. */
  readonly name: string;
  /** Reads several keys in one round trip; a missing key reads as `null`. */
  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]>;
  /** Writes values with a time to live in milliseconds. */
  set(entries: readonly StoreEntry[]): Promise<void>;
  /**
   * Writes `entry` only if every guard counter still reads `expected` (a missing counter reads as 0).
   * Returns whether it was written. This closes the stale-set race of a slow cache fill.
   */
  setIfCounters(entry: StoreEntry, guards: readonly CounterGuard[]): Promise<boolean>;
  /** Deletes keys; missing keys are ignored. */
  delete(keys: readonly string[]): Promise<void>;
  /**
   * Increments each counter by one and returns the new values. A missing counter first starts at
   * `init` (so a counter that was lost never repeats an old value). With `ttlMs` the counter's
   * life is (re)set; without it the counter never expires.
   */
  incr(keys: readonly string[], options?: IncrOptions): Promise<number[]>;
  /**
   * Increments `counter` (as `incr` does, with `init` and `ttlMs`); then writes `entry` if the new
   * value equals `expected`, else deletes `entry.key`. Returns whether it was written.
   * Write-through uses it to set a row only when no other writer overlapped.
   */
  incrThenSetOrDelete(counter: string, expected: number, entry: StoreEntry, options?: IncrOptions): Promise<boolean>;
  /**
   * `incrThenSetOrDelete` for several counters in one call: each item's counter is incremented
   * (with `options`), then its entry is written when the new value equals `expected` (or, with
   * `'created'`, when the counter did not exist before), else its key is deleted; an item without
   * `value` always deletes. Returns, per item, whether it was written. Each item is atomic; the
   * batch as a whole need not be.
   */
  incrThenSetOrDeleteMany(items: readonly CounterWrite[], options?: IncrOptions): Promise<boolean[]>;
  /** Sets `key` to `value` only when absent, with a TTL; returns whether it was set (leases). */
  setIfAbsent(entry: StoreEntry): Promise<boolean>;
  /** Releases what the store opened; a client passed in by the caller is left open. */
  close(): Promise<void>;
  /**
   * Optional: calls `listener` when a different server instance answers after a reconnect (a
   * restart, a failover, a restore), whose counters may be older than what was seen before.
   * Reads (`getMany`) wait until the listener settled. Stores that cannot tell leave it out.
   */
  onServerChange?(listener: () => Promise<void>): void;
}

/** A value to write with its time to live. */
export interface StoreEntry {
  /** The full key. */
  key: string;
  /** The bytes to store. */
  value: Uint8Array;
  /** Time to live in milliseconds. */
  ttlMs: number;
}

/** A counter that must still hold `expected` for a guarded write to happen. */
export interface CounterGuard {
  /** The counter's key. */
  key: string;
  /** The value it must hold; 0 matches a missing counter. */
  expected: number;
}

/** One item of `incrThenSetOrDeleteMany`: a counter and the entry it guards. */
export interface CounterWrite {
  /** The counter to increment. */
  counter: string;
  /** The entry to write or delete. */
  key: string;
  /** The bytes to write when the incremented counter equals `expected`; omitted to always delete. */
  value?: Uint8Array | undefined;
  /**
   * The counter value, after the increment, that allows the write; `'created'` allows it only
   * when this increment created the counter (nobody touched it within its life).
   */
  expected: number | 'created';
  /** Time to live of the written entry in milliseconds. */
  ttlMs: number;
}

/** Options of counter increments. */
export interface IncrOptions {
  /** Value a missing counter starts from before the increment. @default 0 */
  init?: number;
  /** Time to live of the counter in milliseconds; omitted means it never expires. */
  ttlMs?: number;
  /**
   * `incr` only: an existing counter below `init` also starts from `init`, so a counter that went
   * back in time (a restored server) jumps above any value it had. @default false
   */
  floor?: boolean;
}

/** Reads a counter value returned by `getMany`; a missing counter is 0. */
export function readCounter(bytes: Uint8Array | null | undefined): number {
  if (!bytes) return 0;
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = (bytes[i] as number) - 48;
    if (c < 0 || c > 9) return Number(Buffer.from(bytes).toString('latin1'));
    n = n * 10 + c;
  }
  return n;
}

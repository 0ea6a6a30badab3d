import { StoreError } from '../errors.js';
import type { Telemetry } from '../telemetry.js';

/** Returned instead of a value when the store could not be used. */
export const UNAVAILABLE: unique symbol = Symbol('tablecache.unavailable');
/** A store result or `UNAVAILABLE`. */
export type Guarded<T> = T | typeof UNAVAILABLE;

/** A store call waiting for its answer or its deadline (a class: no closures per call). */
class Waiter {
  private done = false;

  constructor(
    private readonly guard: StoreGuard,
    private readonly what: string,
    readonly deadline: number,
    private readonly resolve: (value: never) => void,
  ) {}

  /** Resolves with the store's answer, unless the deadline passed first. */
  settle(ok: boolean, value: unknown, error: unknown): void {
    if (this.done) return;
    this.done = true;
    this.guard.settled(this, this.what, ok, error);
    this.resolve(value as never);
  }

  /** Gives up: resolves UNAVAILABLE and counts a failure. */
  expire(timeoutMs: number): void {
    this.settle(false, UNAVAILABLE, new Error(`store ${this.what} timed out after ${timeoutMs} ms`));
  }
}

/** Settings of the store timeout and circuit breaker. */
export interface StoreGuardOptions {
  /** A store call slower than this is abandoned and the query goes to the database. */
  timeoutMs: number;
  /** Consecutive failures that open the breaker. */
  failureThreshold: number;
  /** How long the breaker stays open before one probe call is let through. */
  cooldownMs: number;
  /** Receives every store failure (never throws into the caller). */
  onError: (error: StoreError) => void;
}

/**
 * Wraps every store call with a timeout and a circuit breaker: a failing or hanging store never
 * fails a query, and once the breaker is open nobody waits on a dead store.
 */
export class StoreGuard {
  private failures = 0;
  private openUntil = 0;
  private probing = false;
  private readonly recoveryListeners: (() => void)[] = [];
  private readonly waiting = new Set<Waiter>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: StoreGuardOptions,
    private readonly telemetry: Telemetry,
  ) {}

  /** True while calls are refused without trying the store. */
  get isOpen(): boolean {
    return this.openUntil > 0 && (performance.now() < this.openUntil || this.probing);
  }

  /** Registers a callback run when the store works again after failures. */
  onRecovery(listener: () => void): void {
    this.recoveryListeners.push(listener);
  }

  /**
   * Runs a store call; resolves to UNAVAILABLE on failure, timeout, or an open breaker. Timeouts
   * share one sweeper timer instead of a timer per call (the hit path is hot), so a timeout fires
   * within a quarter of `timeoutMs` after it is due.
   */
  run<T>(what: string, call: () => Promise<T>, options: { force?: boolean } = {}): Promise<Guarded<T>> {
    // Forced calls (invalidations after writes) are tried even while the breaker is open: other
    // instances may still serve the old value from a store that is up again.
    if (this.openUntil > 0 && !options.force) {
      if (performance.now() < this.openUntil || this.probing) return Promise.resolve(UNAVAILABLE);
      this.probing = true;
    }
    let pending: Promise<T>;
    try {
      pending = call();
    } catch (error) {
      this.failed(what, error);
      return Promise.resolve(UNAVAILABLE);
    }
    return new Promise<Guarded<T>>((resolve) => {
      const waiter = new Waiter(this, what, performance.now() + this.options.timeoutMs, resolve);
      this.waiting.add(waiter);
      this.ensureSweeper();
      pending.then(
        (value) => waiter.settle(true, value, undefined),
        (error: unknown) => waiter.settle(false, UNAVAILABLE, error),
      );
    });
  }

  /** Settles one call: removes its waiter and updates the breaker. @internal */
  settled(waiter: Waiter, what: string, ok: boolean, error: unknown): void {
    this.waiting.delete(waiter);
    if (ok) {
      if (this.failures > 0 || this.openUntil > 0 || this.probing) this.succeeded();
    } else this.failed(what, error);
  }

  private ensureSweeper(): void {
    if (this.sweeper) return;
    const every = Math.max(2, Math.floor(this.options.timeoutMs / 4));
    this.sweeper = setInterval(() => {
      const now = performance.now();
      const due: Waiter[] = [];
      for (const waiter of this.waiting) {
        if (waiter.deadline <= now) due.push(waiter);
      }
      // Expire after this turn's I/O (timers run before it): an answer that arrived while the
      // process was busy (a GC pause, a long task) settles first, so only a slow store times out.
      if (due.length > 0) {
        setImmediate(() => {
          for (const waiter of due) waiter.expire(this.options.timeoutMs);
        });
      }
      if (this.waiting.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, every);
    this.sweeper.unref();
  }

  private succeeded(): void {
    const wasFailing = this.failures > 0 || this.openUntil > 0;
    this.failures = 0;
    this.probing = false;
    if (this.openUntil > 0) {
      this.openUntil = 0;
      this.telemetry.breakerChanged(false);
    }
    if (wasFailing) for (const listener of this.recoveryListeners) listener();
  }

  private failed(what: string, error: unknown): void {
    this.failures++;
    this.probing = false;
    const wrapped = new StoreError(`store ${what} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
    this.telemetry.storeError(error);
    if (this.failures >= this.options.failureThreshold) {
      this.openUntil = performance.now() + this.options.cooldownMs;
      this.telemetry.breakerChanged(true);
    }
    try {
      this.options.onError(wrapped);
    } catch {
      // A throwing onError hook must not break the query.
    }
  }
}

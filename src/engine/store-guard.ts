import { StoreError } from '../errors.js';
import type { Telemetry } from '../telemetry.js';

/** Returned instead of a value when the store could not be used. */
export const UNAVAILABLE: unique symbol = Symbol('tablecache.unavailable');
/** A store result or `UNAVAILABLE`. */
export type Guarded<T> = T | typeof UNAVAILABLE;

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

  /** Runs a store call; resolves to UNAVAILABLE on failure, timeout, or an open breaker. */
  async run<T>(what: string, call: () => Promise<T>): Promise<Guarded<T>> {
    if (this.openUntil > 0) {
      if (performance.now() < this.openUntil || this.probing) return UNAVAILABLE;
      this.probing = true;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const value = await Promise.race([
        call(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`store ${what} timed out after ${this.options.timeoutMs} ms`)),
            this.options.timeoutMs,
          );
        }),
      ]);
      this.succeeded();
      return value;
    } catch (error) {
      this.failed(what, error);
      return UNAVAILABLE;
    } finally {
      clearTimeout(timer);
    }
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

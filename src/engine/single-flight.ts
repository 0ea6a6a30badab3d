/** Runs one call per key at a time in this process; concurrent callers share its promise. */
export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  /** Whether `key` is being computed right now. */
  has(key: string): boolean {
    return this.inFlight.has(key);
  }

  /** Runs `fn` for `key`, or joins the run already in flight. `joined` tells the caller which. */
  run(key: string, fn: () => Promise<T>): { promise: Promise<T>; joined: boolean } {
    const existing = this.inFlight.get(key);
    if (existing) return { promise: existing, joined: true };
    const promise = fn().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return { promise, joined: false };
  }
}

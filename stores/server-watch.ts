/** The connection events of an ioredis client (structural: only redis.ts imports ioredis). */
export interface WatchedClient {
  readonly status: string;
  on(event: 'close' | 'end' | 'ready', listener: () => void): unknown;
  off(event: 'close' | 'end' | 'ready', listener: () => void): unknown;
}

/** Listeners are retried this often while one fails (reads stay held meanwhile). */
const RETRY_MS = 500;

/**
 * Notices when a different Redis server instance answers after a reconnect (a restart, a
 * failover, a restore from a snapshot), by its `run_id`. From a lost connection until the new
 * server was identified and every listener settled, `gate` holds reads: none may be served from
 * data that could be older than what this process already saw. Where `INFO` is unavailable the
 * server cannot be identified and nothing is held.
 */
export class ServerWatch {
  private runId: string | undefined;
  private readonly listeners: (() => Promise<void>)[] = [];
  private release: (() => void) | undefined;
  private retry: NodeJS.Timeout | undefined;
  private ended = false;
  /** Set while reads must wait: from a lost connection until the server is identified. */
  gate: Promise<void> | undefined;
  /** Counts lost connections: a read whose reply comes after a reconnect may come from another server. */
  epoch = 0;

  /** `info` reads `INFO server` (with a deadline). */
  constructor(
    private readonly client: WatchedClient,
    private readonly info: () => Promise<string>,
  ) {
    client.on('close', this.onClose);
    client.on('ready', this.onReady);
    client.on('end', this.onEnd);
    if (client.status === 'ready') void this.identify();
  }

  /** Detaches from the client (a borrowed client outlives the store) and lets held reads through. */
  stop(): void {
    this.client.off('close', this.onClose);
    this.client.off('ready', this.onReady);
    this.client.off('end', this.onEnd);
    this.onEnd();
  }

  private readonly onClose = (): void => {
    this.epoch++;
    this.hold();
  };

  private readonly onReady = (): void => void this.identify();

  private readonly onEnd = (): void => {
    this.ended = true;
    this.open();
  };

  /** Calls `listener` (and holds reads until it settles) whenever the server changed. */
  onChange(listener: () => Promise<void>): void {
    this.listeners.push(listener);
  }

  private hold(): void {
    // Without a known identity there is nothing to compare with: reads are not held.
    if (this.gate || this.ended || this.runId === undefined || this.listeners.length === 0) return;
    this.gate = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  private open(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    const release = this.release;
    this.gate = undefined;
    this.release = undefined;
    release?.();
  }

  private async identify(): Promise<void> {
    let runId: string | undefined;
    try {
      runId = parseRunId(await this.info());
    } catch {
      runId = undefined;
    }
    if (runId === undefined) {
      // INFO refused (renamed on managed Redis) or the connection dropped again: while a change
      // may have happened, keep holding and ask again; never identified, let reads through.
      if (this.gate && this.runId !== undefined && !this.ended) this.scheduleRetry();
      else this.open();
      return;
    }
    if (this.runId !== undefined && runId !== this.runId) {
      this.hold();
      const results = await Promise.allSettled(this.listeners.map((listener) => listener()));
      if (results.some((r) => r.status === 'rejected')) return this.scheduleRetry();
    }
    this.runId = runId;
    this.open();
  }

  private scheduleRetry(): void {
    if (this.retry || this.ended) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.identify();
    }, RETRY_MS);
    this.retry.unref();
  }
}

function parseRunId(info: string): string | undefined {
  return /^run_id:([0-9a-f]+)\r?$/m.exec(info)?.[1];
}

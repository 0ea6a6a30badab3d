/**
 * Shares journal appends among concurrent statements on one table: a statement that arrives while
 * appends of its table are in flight waits for one of them to return, then goes out with every
 * other waiting statement as one append (one script run, one round trip), in arrival order.
 * A statement that arrives with nothing in flight goes out at once, alone.
 */
import type { AppendResult } from './journal.js';
import type { RowWrite } from './ops.js';

/**
 * Appends `rows` as one atomic step. `spare` rows of the append belong to statements before the
 * last one: the append must be refused (`full`) unless every statement would have been accepted
 * on its own, so the pending limit must leave room for them.
 */
export type SendAppend = (rows: readonly RowWrite[], spare: number) => Promise<AppendResult>;

interface Waiter {
  readonly writes: readonly RowWrite[];
  /** Already sent once in a shared append that was refused for another statement's sake. */
  retried: boolean;
  resolve(result: AppendResult | undefined): void;
  reject(error: unknown): void;
}

/** Appends of one table in flight at once (the next shared append is prepared meanwhile). */
const MAX_IN_FLIGHT = 2;
/** Rows of one shared append, so one script run never holds Redis for long. */
const MAX_ROWS = 128;

/** The shared appends of one table. */
export class AppendBatcher {
  private readonly waiting: Waiter[] = [];
  private inFlight = 0;

  constructor(private readonly send: SendAppend) {}

  /**
   * Journals the writes of one statement, possibly with others. Resolves to the statement's own
   * result (its rows' counts), or to undefined when the statement must be appended alone (a
   * shared append was refused because of it, or refused twice). Rejects when the store failed.
   */
  submit(writes: readonly RowWrite[]): Promise<AppendResult | undefined> {
    if (this.inFlight < MAX_IN_FLIGHT && this.waiting.length === 0) {
      // Nothing to share with: the statement's own append, without queueing.
      this.inFlight++;
      const sent = this.send(writes, 0);
      sent.then(this.settled, this.settled);
      return sent;
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ writes, retried: false, resolve, reject });
      this.pump();
    });
  }

  private readonly settled = (): void => {
    this.inFlight--;
    this.pump();
  };

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.waiting.length > 0) {
      const batch = this.take();
      this.inFlight++;
      void this.run(batch).finally(this.settled);
    }
  }

  private take(): Waiter[] {
    const batch: Waiter[] = [];
    let rows = 0;
    for (const w of this.waiting) {
      if (batch.length > 0 && rows + w.writes.length > MAX_ROWS) break;
      batch.push(w);
      rows += w.writes.length;
    }
    this.waiting.splice(0, batch.length);
    return batch;
  }

  private async run(batch: readonly Waiter[]): Promise<void> {
    const rows = batch.length === 1 ? (batch[0] as Waiter).writes : batch.flatMap((w) => w.writes);
    const spare = rows.length - (batch[batch.length - 1] as Waiter).writes.length;
    let result: AppendResult;
    try {
      result = await this.send(rows, spare);
    } catch (error) {
      for (const w of batch) w.reject(error);
      return;
    }
    if (batch.length === 1) {
      (batch[0] as Waiter).resolve(result);
      return;
    }
    if (result.status === 'ok') {
      let at = 0;
      for (const w of batch) {
        w.resolve({ ...result, rows: result.rows.slice(at, at + w.writes.length) });
        at += w.writes.length;
      }
      return;
    }
    // Nothing was written, and a verdict on one statement may rest on another's effect: the
    // statements the answer names (all of them when the table is full) run alone, the others
    // go out again, once, ahead of later arrivals.
    const named = new Set(result.status === 'full' ? [] : result.rows);
    const again: Waiter[] = [];
    let at = 0;
    for (const w of batch) {
      let hit = result.status === 'full';
      for (let k = 0; k < w.writes.length && !hit; k++) hit = named.has(at + k);
      at += w.writes.length;
      if (hit || w.retried) w.resolve(undefined);
      else {
        w.retried = true;
        again.push(w);
      }
    }
    this.waiting.unshift(...again);
  }
}

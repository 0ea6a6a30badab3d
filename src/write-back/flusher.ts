/**
 * The flusher: moves journaled writes into the database. Per table it holds a lease (one flusher
 * per table at a time; others take over when it expires), claims pending entries oldest first
 * (a dead consumer's before new ones), folds them into row plans and applies them in ONE
 * transaction that also records the newest applied stream id and the lease epoch. A replay after a
 * crash skips what that record covers, and a flusher whose lease was taken over cannot commit: so
 * every entry takes effect exactly once, deltas included. Only then are entries acknowledged.
 */
import type { CacheError } from '../errors.js';
import { WriteBackError } from '../errors.js';
import type { Telemetry } from '../telemetry.js';
import { coalesce, type RowPlan, splitByRows } from './coalesce.js';
import { deadLetterText, FencedError, isRowError, LeaseLostError, logText } from './failures.js';
import type { WriteBackJournal } from './journal.js';
import { type Change, compareStreamIds, decodePayload, field, type RowWrite, streamIdMs } from './ops.js';
import type { Fill, SinkTransaction, WriteBackSink } from './sink.js';
import type { WriteBackTable } from './tables.js';

/** The consumer group every flusher joins. */
export const GROUP = 'tablecache';

/** Test and fault-injection points of a flush. @internal */
export interface FlusherHooks {
  /** Awaited inside the transaction, right before COMMIT. */
  beforeCommit?: (table: string) => void | Promise<void>;
  /** Awaited after COMMIT, before the entries are acknowledged. */
  afterCommit?: (table: string) => void | Promise<void>;
}

/** Settings of a flusher (durations in milliseconds). */
export interface FlusherOptions {
  /** Namespace and version (`shop:v1`): the bookkeeping row's key. */
  readonly namespace: string;
  /** This flusher's consumer name (unique per process). */
  readonly consumer: string;
  readonly leaseTtlMs: number;
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
  /** Failed attempts of a batch before its rows are applied one group at a time. */
  readonly attempts: number;
  readonly maxBackoffMs: number;
  /** How long a drain waits for the table to empty before failing. */
  readonly drainTimeoutMs: number;
  readonly hooks?: FlusherHooks | undefined;
}

/** What a flusher works with. */
export interface FlusherDeps {
  readonly journal: WriteBackJournal;
  readonly sink: WriteBackSink;
  readonly tables: readonly WriteBackTable[];
  readonly telemetry: Telemetry;
  readonly onError: (error: CacheError) => void;
  /** Invalidates tables the database changed through cascades. */
  readonly invalidate: (tables: readonly string[]) => Promise<void>;
  readonly options: FlusherOptions;
}

type Outcome = 'busy' | 'idle' | 'flushed' | 'more';

interface TableState {
  nextAt: number;
  attempts: number;
  owner: string | undefined;
  tail: Promise<unknown>;
  oldestAgeMs: number;
}

interface Decoded {
  id: string;
  write: RowWrite;
  payload: string;
}

const PRIORITY = { high: 0, normal: 1, low: 2 } as const;
/** Span links per flush (OpenTelemetry's default limit). */
const MAX_LINKS = 128;
const DRAIN_POLL_MS = 25;
/**
 * Entries per transaction within a larger batch (cut where no row continues past the cut, so
 * folding is unchanged). Acknowledging a run costs Redis about as much as its SQL costs
 * PostgreSQL: committing in runs lets the two overlap instead of adding up.
 */
const RUN_ENTRIES = 2_000;

/** Flushes the write-back tables of one cache: in the background, and on demand (drains). */
export class Flusher {
  private readonly state = new Map<string, TableState>();
  private running = false;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly deps: FlusherDeps) {
    for (const t of deps.tables) {
      this.state.set(t.id, { nextAt: 0, attempts: 0, owner: undefined, tail: Promise.resolve(), oldestAgeMs: 0 });
    }
    deps.telemetry.observePendingAge(() => {
      const ages = new Map<string, number>();
      for (const [id, s] of this.state) ages.set(id, s.oldestAgeMs);
      return ages;
    });
  }

  /** Starts flushing in the background: every table at least every `flush.every`, sooner when full. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Asks for a flush of `table` as soon as possible (it has a full batch pending). */
  poke(table: string): void {
    const s = this.state.get(table);
    if (!s) return;
    s.nextAt = 0;
    this.wake?.();
  }

  /**
   * Flushes `table` until every entry that was pending when the call started is applied (or
   * dead-lettered). Waits for another flusher that holds the lease. Throws E_WRITE_BACK_TIMEOUT
   * when that takes longer than the drain timeout.
   */
  async drain(table: WriteBackTable, timeoutMs = this.deps.options.drainTimeoutMs): Promise<void> {
    const { journal } = this.deps;
    const target = (await journal.status(table.keys)).newest;
    if (target === undefined) return;
    const deadline = Date.now() + timeoutMs;
    const s = this.stateOf(table);
    for (;;) {
      const status = await journal.status(table.keys);
      if (status.oldest === undefined || compareStreamIds(status.oldest, target) > 0) return;
      if (Date.now() > deadline) {
        throw new WriteBackError(
          'E_WRITE_BACK_TIMEOUT',
          `table "${table.id}" still has ${status.length} pending writes after ${timeoutMs} ms of draining` +
            (status.lease && !status.lease.startsWith(`${this.deps.options.consumer}|`)
              ? ` (flusher ${status.lease.split('|')[0]} holds the table)`
              : ''),
        );
      }
      const waitUntil = Math.min(s.nextAt, deadline);
      if (s.attempts > 0 && waitUntil > Date.now()) {
        await delay(Math.min(waitUntil - Date.now(), 1000));
        continue;
      }
      const outcome = await this.step(table);
      if (outcome === 'busy' || outcome === 'idle' || outcome === undefined) await delay(DRAIN_POLL_MS);
    }
  }

  /** Drains every table, high priority first. */
  async drainAll(): Promise<void> {
    for (const t of this.byPriority(this.deps.tables)) await this.drain(t);
  }

  /** Stops the background loop and gives up held leases (call `drainAll` first to flush). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loopDone;
    for (const t of this.deps.tables) {
      const s = this.stateOf(t);
      await s.tail.catch(() => undefined);
      if (s.owner) {
        const owner = s.owner;
        s.owner = undefined;
        await this.deps.journal.releaseLease({ keys: t.keys, owner }).catch(() => undefined);
      }
    }
  }

  private stateOf(table: WriteBackTable): TableState {
    return this.state.get(table.id) as TableState;
  }

  private byPriority(tables: readonly WriteBackTable[]): WriteBackTable[] {
    return [...tables].sort((a, b) => PRIORITY[a.flush.priority] - PRIORITY[b.flush.priority]);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const now = Date.now();
      const due = this.byPriority(this.deps.tables.filter((t) => this.stateOf(t).nextAt <= now));
      for (const t of due) {
        if (!this.running) break;
        await this.step(t);
      }
      if (!this.running) break;
      let next = Number.POSITIVE_INFINITY;
      for (const s of this.state.values()) next = Math.min(next, s.nextAt);
      const wait = Math.max(0, Math.min(next - Date.now(), 60_000));
      if (wait > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /** One flush of one table, serialized per table; schedules the next and reports failures. */
  private async step(table: WriteBackTable): Promise<Outcome | undefined> {
    const s = this.stateOf(table);
    const run = s.tail.then(() => this.flushOnce(table));
    s.tail = run.catch(() => undefined);
    try {
      const outcome = await run;
      s.attempts = 0;
      s.nextAt = outcome === 'more' ? 0 : Date.now() + table.flush.everyMs;
      return outcome;
    } catch (error) {
      this.failed(table, s, error);
      return undefined;
    }
  }

  private failed(table: WriteBackTable, s: TableState, error: unknown): void {
    const { journal, onError, options } = this.deps;
    if (error instanceof FencedError || error instanceof LeaseLostError) {
      const owner = s.owner;
      s.owner = undefined;
      s.nextAt = Date.now() + options.leaseTtlMs;
      if (error instanceof FencedError) {
        // Only a store that lost the epoch counter can hand out an epoch below the committed one.
        void journal.raiseEpoch({ keys: table.keys, atLeast: error.storedEpoch }).catch(() => undefined);
      }
      if (owner) void journal.releaseLease({ keys: table.keys, owner }).catch(() => undefined);
      report(onError, error);
      return;
    }
    s.attempts++;
    const backoff = Math.min(options.maxBackoffMs, 100 * 2 ** Math.min(s.attempts - 1, 20));
    const jittered = Math.round(backoff * (0.8 + Math.random() * 0.4));
    s.nextAt = Date.now() + jittered;
    const split = isRowError(error) && s.attempts >= options.attempts ? '; rows will be applied one by one' : '';
    report(
      onError,
      new WriteBackError(
        'E_WRITE_BACK_FLUSH',
        `flushing table "${table.id}" failed (attempt ${s.attempts}, ${logText(error)}); retrying in ${jittered} ms${split}`,
        { cause: error },
      ),
    );
  }

  private async flushOnce(table: WriteBackTable): Promise<Outcome> {
    const { journal, options } = this.deps;
    const s = this.stateOf(table);
    const claim = await journal.claim({
      keys: table.keys,
      group: GROUP,
      consumer: options.consumer,
      leaseTtlMs: options.leaseTtlMs,
      count: table.flush.batch,
    });
    if (claim.status === 'busy') {
      s.owner = undefined;
      return 'busy';
    }
    s.owner = claim.owner;
    s.oldestAgeMs = claim.oldest === undefined ? 0 : Math.max(0, claim.now - streamIdMs(claim.oldest));
    if (claim.entries.length === 0) return 'idle';

    const decoded: Decoded[] = [];
    const malformed: { id: string; row: string; payload: string; error: string }[] = [];
    for (const e of claim.entries) {
      try {
        const write = decodePayload(e.payload);
        checkWrite(table, write);
        decoded.push({ id: e.id, write, payload: e.payload });
      } catch (error) {
        malformed.push({
          id: e.id,
          row: table.rowKey(['']),
          payload: e.payload,
          error: `malformed entry: ${String(error)}`,
        });
      }
    }
    if (malformed.length > 0) {
      const moved = await journal.deadLetter({
        keys: table.keys,
        group: GROUP,
        owner: claim.owner,
        entries: malformed,
      });
      if (moved === 'lost') throw new LeaseLostError(table.id);
      this.deadLettered(table, malformed.length, 'malformed entries');
    }

    const lastId = (claim.entries[claim.entries.length - 1] as { id: string }).id;
    const isolate = s.attempts >= options.attempts;
    // A large batch commits in runs, each acknowledged while the next one's SQL runs (see RUN_ENTRIES).
    const runs = isolate ? [decoded] : splitByRows(decoded, RUN_ENTRIES);
    const heartbeat = setInterval(
      () => {
        void journal
          .renewLease({ keys: table.keys, owner: claim.owner, leaseTtlMs: options.leaseTtlMs })
          .catch(() => false);
      },
      Math.max(50, Math.floor(options.leaseTtlMs / 3)),
    );
    heartbeat.unref();
    const acks: Promise<void>[] = [];
    try {
      // A root span of its own, linked to the requests that acknowledged these writes.
      const links = [...new Set(decoded.map((e) => e.write.tp).filter((tp): tp is string => tp !== undefined))];
      await this.deps.telemetry.operation(
        'flush',
        table.id,
        'write-back',
        async () => {
          for (let i = 0; i < runs.length; i++) {
            const run = runs[i] as Decoded[];
            // The last run's offset covers the whole claim (malformed entries included).
            const upTo = i === runs.length - 1 ? lastId : (run[run.length - 1] as Decoded).id;
            const committed = await this.apply(table, claim.epoch, claim.owner, upTo, run, isolate);
            await options.hooks?.afterCommit?.(table.id);
            const ack = this.acknowledge(table, upTo, run, committed);
            ack.catch(() => undefined); // handled: awaited below, a rejection must not go unhandled meanwhile
            acks.push(ack);
          }
        },
        { root: true, links: links.slice(0, MAX_LINKS), dbOperation: 'BATCH UPSERT' },
      );
    } catch (error) {
      // Committed runs are acknowledged (or, if that fails, skipped by the offset on replay).
      await Promise.allSettled(acks);
      throw error;
    } finally {
      clearInterval(heartbeat);
    }
    await Promise.all(acks);
    // The claim took everything that was pending: nothing older than this flush is left.
    if (claim.length <= claim.entries.length) s.oldestAgeMs = 0;
    if (table.dependents.length > 0) await this.deps.invalidate(table.dependents).catch(() => undefined);
    return claim.entries.length >= table.flush.batch ? 'more' : 'flushed';
  }

  /** Acknowledges the committed entries of a run: out of the stream, row entries updated and filled. */
  private async acknowledge(
    table: WriteBackTable,
    applied: string,
    run: readonly Decoded[],
    committed: { fills: Fill[]; dead: Set<string> },
  ): Promise<void> {
    const acked = await this.deps.journal.ack({
      keys: table.keys,
      group: GROUP,
      applied,
      ttlMs: table.ttlMs,
      entries: run.filter((e) => !committed.dead.has(e.id)).map((e) => ({ id: e.id, row: table.rowKey(e.write.pk) })),
      fills: committed.fills.map((f) => ({ row: table.rowKey(f.pk), column: f.column, field: field(f.value) })),
    });
    this.deps.telemetry.writeBackFlushed(
      table.id,
      acked.acked.map((id) => Math.max(0, acked.now - streamIdMs(id))),
    );
  }

  /** The transaction: fence, skip what was applied, apply the rest, record the offset. */
  private apply(
    table: WriteBackTable,
    epoch: number,
    owner: string,
    lastId: string,
    decoded: readonly Decoded[],
    isolate: boolean,
  ): Promise<{ fills: Fill[]; dead: Set<string> }> {
    const { sink, journal, options } = this.deps;
    return sink.transaction(
      { lockTimeoutMs: options.lockTimeoutMs, statementTimeoutMs: options.statementTimeoutMs },
      async (tx) => {
        const offset = await tx.lockOffset(options.namespace, table.id);
        if (offset.epoch > epoch) throw new FencedError(table.id, offset.epoch, epoch);
        const applied = offset.lastId;
        const todo = applied === undefined ? decoded : decoded.filter((e) => compareStreamIds(e.id, applied) > 0);
        const plans = coalesce(todo);
        let fills: Fill[] = [];
        const dead = new Set<string>();
        if (plans.length > 0) {
          if (!isolate) fills = (await tx.apply(table.sink, plans)).fills;
          else {
            const result = await isolateRows(tx, table, plans);
            fills = result.fills;
            if (result.dead.length > 0) {
              const payloads = new Map(decoded.map((e) => [e.id, e.payload]));
              const letters = result.dead.flatMap(({ plan, error }) =>
                plan.ids.map((id) => ({ id, row: table.rowKey(plan.pk), payload: payloads.get(id) ?? '', error })),
              );
              // Out of the stream before the commit: a crash after this point replays the rest only.
              const moved = await journal.deadLetter({ keys: table.keys, group: GROUP, owner, entries: letters });
              if (moved === 'lost') throw new LeaseLostError(table.id);
              for (const l of letters) dead.add(l.id);
              this.deadLettered(table, letters.length, result.dead[0]?.state ?? 'row error');
            }
          }
        }
        // Never backwards: a replay of runs committed but not acknowledged (a crash, a lease
        // taken over mid-flush, another batch size) may end below the offset a later run set.
        const upTo = applied !== undefined && compareStreamIds(applied, lastId) > 0 ? applied : lastId;
        await tx.setOffset(options.namespace, table.id, upTo, epoch);
        await options.hooks?.beforeCommit?.(table.id);
        return { fills, dead };
      },
    );
  }

  private deadLettered(table: WriteBackTable, count: number, why: string): void {
    this.deps.telemetry.writeBackDeadLettered(table.id, count);
    report(
      this.deps.onError,
      new WriteBackError(
        'E_WRITE_BACK_DEAD_LETTER',
        `${count} write(s) to table "${table.id}" moved to the dead-letter stream (${why}); see \`tablecache writeback dlq list\``,
      ),
    );
  }
}

/** Applies plans in savepoints, halving groups that fail with a row error down to single rows. */
async function isolateRows(
  tx: SinkTransaction,
  table: WriteBackTable,
  plans: readonly RowPlan[],
): Promise<{ fills: Fill[]; dead: { plan: RowPlan; error: string; state: string }[] }> {
  const fills: Fill[] = [];
  const dead: { plan: RowPlan; error: string; state: string }[] = [];
  const visit = async (group: readonly RowPlan[]): Promise<void> => {
    try {
      const result = await tx.savepoint(() => tx.apply(table.sink, group));
      fills.push(...result.fills);
    } catch (error) {
      if (!isRowError(error)) throw error;
      if (group.length === 1) {
        dead.push({ plan: group[0] as RowPlan, error: deadLetterText(error), state: logText(error) });
        return;
      }
      const mid = Math.ceil(group.length / 2);
      await visit(group.slice(0, mid));
      await visit(group.slice(mid));
    }
  };
  await visit(plans);
  return { fills, dead };
}

/** Rejects an entry naming columns the table does not have (schema drift, corruption). */
function checkWrite(table: WriteBackTable, write: RowWrite): void {
  if (write.pk.length !== table.info.primaryKey.length) throw new TypeError('primary key arity differs from the table');
  for (const list of [write.v, write.s]) {
    if (!list) continue;
    // A short list is scanned for repeats: cheaper than a Set per entry.
    const seen = list.length > 16 ? new Set<string>() : undefined;
    for (let i = 0; i < list.length; i++) {
      const c = (list[i] as Change).c;
      if (!table.columns.has(c)) throw new TypeError(`unknown column ${JSON.stringify(c)}`);
      let twice = false;
      if (seen) {
        twice = seen.has(c);
        seen.add(c);
      } else for (let j = 0; j < i && !twice; j++) twice = (list[j] as Change).c === c;
      if (twice) throw new TypeError(`column ${JSON.stringify(c)} appears twice`);
    }
  }
}

function report(onError: (error: CacheError) => void, error: CacheError): void {
  try {
    onError(error);
  } catch {
    // A throwing onError hook must not stop the flusher.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

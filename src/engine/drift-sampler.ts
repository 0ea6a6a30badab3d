import { readCounter } from '../store.js';
import { canonical, sameResult } from './drift.js';
import type { EngineDeps } from './engine.js';
import { decodeEnvelope, envelopeHeader, generationHeader } from './envelope.js';
import type { ReadContext } from './freshness.js';
import type { BoundTable } from './registry.js';
import { RowKeyCodec } from './row-key.js';
import type { RawRow } from './rows.js';
import { UNAVAILABLE } from './store-guard.js';

/** Settings of the in-app drift sampler (`createCache({ verify })`). */
export interface DriftSettings {
  /** Share of hits re-checked against the database, from 0 to 1. */
  readonly rate: number;
  /** How long a mismatch must persist, unexplained by any write through tablecache, to count as drift. */
  readonly confirmMs: number;
}

/** What the sampler needs from its engine. @internal */
export interface DriftHost {
  /** Keeps a background promise until `drain`. */
  track(promise: Promise<unknown>): void;
  /** Invalidates whole tables. */
  invalidate(tables: readonly string[]): Promise<void>;
}

/** Checks in flight at most; a sampled hit beyond it is skipped, so the sampler never piles up. */
const MAX_IN_FLIGHT = 4;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Re-runs a sample of cache hits against the database in the background and compares. A
 * mismatch counts as drift only when, `confirmMs` later, the cache still serves the same value
 * under the same generations: a write through tablecache that raced the check changes one or the
 * other (it invalidates right after its commit). Drift is counted (`tablecache.drift`) and the
 * tables involved are invalidated, so the next read gets the database's value.
 */
export class DriftSampler {
  private inFlight = 0;
  private readonly codecs = new Map<string, RowKeyCodec | undefined>();

  constructor(
    private readonly deps: EngineDeps,
    private readonly host: DriftHost,
    private readonly settings: DriftSettings,
    private readonly random: () => number,
  ) {}

  /**
   * A query-entry hit: with probability `rate`, re-runs the query (sent before this returns, so
   * on a single connection it runs before the caller's next statement, outside any transaction
   * the caller opens next) and compares its result with the entry.
   */
  queryHit(context: ReadContext, entry: Uint8Array): void {
    if (!this.pick()) return;
    const served = Buffer.from(entry);
    const { request, plan, entryKey, counterKeys, header } = context;
    this.check(plan.primary, plan.dependencies, async () => {
      const fresh = await request.execute();
      const cached = decodeEnvelope(served);
      if (sameResult(cached, request.toCacheable ? request.toCacheable(fresh) : fresh)) return false;
      await sleep(this.settings.confirmMs);
      const { guard, store } = this.deps;
      const got = await guard.run('get', () => store.getMany([entryKey, ...counterKeys]));
      if (got === UNAVAILABLE || generationHeader(got.slice(1).map(readCounter)) !== header) return false;
      const current = got[0];
      if (!current || envelopeHeader(current)?.generations !== header) return false;
      return sameResult(decodeEnvelope(current), cached);
    });
  }

  /**
   * A primary-key read served entirely from row entries: with probability `rate`, reads the rows
   * again from the database (sent before this returns) and compares them with the served ones.
   */
  rowHit(table: BoundTable, rows: readonly RawRow[], fetch: (keys: unknown[][]) => Promise<RawRow[]>): void {
    const codec = this.codec(table);
    if (!codec || rows.length === 0 || !this.pick()) return;
    const served = new Map<string, string>();
    const keys: unknown[][] = [];
    for (const row of rows) {
      const pk = codec.encodeRow(row);
      if (pk === undefined || served.has(pk)) continue;
      served.set(pk, canonical(row));
      keys.push(codec.columns.map((c) => row[c]));
    }
    const id = table.info.id;
    this.check(table, [id], async () => {
      const fresh = await fetch(keys);
      const found = new Map<string, string>();
      for (const row of fresh) {
        const pk = codec.encodeRow(row);
        if (pk !== undefined) found.set(pk, canonical(row));
      }
      if ([...served].every(([pk, text]) => found.get(pk) === text)) return false;
      await sleep(this.settings.confirmMs);
      const { guard, store, keys: keySpace } = this.deps;
      const pks = [...served.keys()];
      const got = await guard.run('get', () =>
        store.getMany([
          keySpace.globalGeneration(),
          keySpace.rowGeneration(id),
          ...pks.map((pk) => keySpace.rowEntry(id, pk)),
        ]),
      );
      if (got === UNAVAILABLE) return false;
      const header = generationHeader([readCounter(got[0]), readCounter(got[1])]);
      // Drift only if the cache still serves every row exactly as it did.
      return pks.every((pk, i) => {
        const entry = got[2 + i];
        if (!entry || envelopeHeader(entry)?.generations !== header) return false;
        try {
          return canonical(decodeEnvelope(entry)) === served.get(pk);
        } catch {
          return false;
        }
      });
    });
  }

  private pick(): boolean {
    return this.inFlight < MAX_IN_FLIGHT && this.random() < this.settings.rate;
  }

  private codec(table: BoundTable): RowKeyCodec | undefined {
    const id = table.info.id;
    if (!this.codecs.has(id)) this.codecs.set(id, RowKeyCodec.of(table.info));
    return this.codecs.get(id);
  }

  /**
   * Runs one check in its own root span. `compare` must send its database query synchronously
   * (before its first await); it resolves to whether drift was confirmed.
   */
  private check(table: BoundTable, tables: readonly string[], compare: () => Promise<boolean>): void {
    const { telemetry } = this.deps;
    const { id } = table.info;
    this.inFlight++;
    const attributes = { 'db.collection.name': id, 'tablecache.operation': 'verify' };
    const work = telemetry.background('tablecache.verify', attributes, async () => {
      const drifted = await compare();
      telemetry.driftChecked(id, table.policy.pattern, drifted);
      if (drifted) await this.host.invalidate(tables);
    });
    this.host.track(work.finally(() => this.inFlight--));
  }
}

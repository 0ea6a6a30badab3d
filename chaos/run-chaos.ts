import type { CacheStats, Pattern } from '../src/index.js';
import { type CheckReport, checkHistory } from './checker.js';
import type { ChaosDatabase } from './database.js';
import { FAULT_KINDS, type FaultEvent, FaultInjector, type FaultKind } from './faults.js';
import type { AuditEntry, FinalState, History, Op, TableModel } from './history.js';
import { Prng } from './prng.js';
import { type RigOptions, startRig } from './rig.js';
import type { KeySpaceConfig, PatternTables } from './tables.js';
import { OPERATIONS, Recorder, runOperation, sweep } from './workload.js';

/** Settings of one chaos run. */
export interface ChaosOptions extends RigOptions {
  /** Stop after this many operations... */
  ops: number;
  /** ...or after this many seconds, whichever comes first. */
  seconds: number;
  /** Concurrent workers (each picks an instance per operation). */
  workers: number;
  seed: number;
  /** Faults to inject; default: all that apply. Empty: none. */
  faults?: readonly FaultKind[];
  /** Mean time between two faults. @default 1000 */
  faultIntervalMs?: number;
  /**
   * At most this many operations per second, all workers together (default: as fast as they go).
   * Entries age at wall-clock speed: a fixed rate keeps how often a row is written or read between
   * two expiries the same on a fast machine and a slow one.
   */
  opsPerSecond?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** Aggregated cache figures of both instances. */
export interface CacheFigures {
  hits: number;
  /** Expired entries served within grace (TTL strategies). */
  stale: number;
  misses: number;
  bypasses: number;
  fills: number;
  fillsRejected: number;
  invalidations: number;
  storeErrors: number;
}

/** What a run did and what the checker found. */
export interface ChaosResult {
  seed: number;
  patterns: Pattern[];
  workers: number;
  durationMs: number;
  opsRun: number;
  opsFailed: number;
  /** The most frequent error messages of failed operations. */
  errors: [string, number][];
  faults: Record<FaultKind, number>;
  faultEvents: FaultEvent[];
  cache: CacheFigures;
  /** Pool clients Drizzle never released (a BEGIN that failed: drizzle-orm#6023). */
  leakedPgClients: number;
  check: CheckReport;
  history: History;
}

/** Runs a bounded chaos workload against two tablecache instances and checks its history. */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const rng = new Prng(options.seed);
  const recorder = new Recorder();
  const rig = await startRig(options, recorder);
  try {
    const { database, server, admins, sets, keys, instances } = rig;
    const faults = new FaultInjector(
      { server, admins, database, instances: instances.map((i) => i.name) },
      options.faults ?? FAULT_KINDS,
      rng.fork(),
      options.faultIntervalMs ?? 1000,
    );
    const started = performance.now();
    const deadline = started + options.seconds * 1000;
    let launched = 0;
    let done = 0;
    const pace = options.opsPerSecond ? 1000 / options.opsPerSecond : 0;
    const worker = async (index: number) => {
      const wrng = rng.fork();
      while (launched < options.ops && performance.now() < deadline) {
        // Operation n starts no earlier than n / opsPerSecond seconds into the run.
        const slot = launched++;
        const due = started + slot * pace - performance.now();
        if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
        if (performance.now() >= deadline) break;
        const instance = wrng.pick(instances);
        const set = wrng.pick(sets);
        const kind = wrng.weighted(OPERATIONS);
        await runOperation({ rng: wrng, instance, set, keys, recorder, worker: index }, kind);
        done++;
      }
    };
    const progress = setInterval(() => {
      const f = Object.entries(faults.counts)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
      log(`  ${done} ops, ${((performance.now() - started) / 1000).toFixed(0)} s; faults: ${f}`);
    }, 5000);
    const faultRun = faults.run();
    await Promise.all(Array.from({ length: options.workers }, (_, i) => worker(i)));
    faults.stop();
    await faultRun;
    clearInterval(progress);
    server?.thaw();
    const durationMs = performance.now() - started;
    log(`  workload done: ${done} ops in ${(durationMs / 1000).toFixed(1)} s; sweeping and checking`);

    // Right after the last fault (no flush): reads must already be correct.
    for (const instance of instances) {
      for (const set of sets) await sweep({ instance, set, keys, recorder, worker: -1 }, 'sweep-recovered');
    }
    for (const instance of instances) await instance.cache.flush();
    for (const instance of instances) {
      for (const set of sets) await sweep({ instance, set, keys, recorder, worker: -1 }, 'sweep-flushed');
    }

    const history: History = {
      tables: tableModels(sets),
      ops: recorder.ops,
      audit: await readAudit(database),
      final: await readFinal(database, sets, keys),
    };
    const cache = figures(instances.map((i) => i.cache.stats()));
    const workloadOps = recorder.ops.filter((op) => op.worker >= 0);
    const failed = workloadOps.filter((op) => !op.ok);
    return {
      seed: options.seed,
      patterns: sets.map((set) => set.pattern),
      workers: options.workers,
      durationMs,
      opsRun: workloadOps.length,
      opsFailed: failed.length,
      errors: topErrors(failed),
      faults: { ...faults.counts },
      faultEvents: faults.events,
      cache,
      leakedPgClients: database.leaked(),
      check: checkHistory(history),
      history,
    };
  } finally {
    await rig.close();
  }
}

function tableModels(sets: readonly PatternTables[]): Record<string, TableModel> {
  const out: Record<string, TableModel> = {};
  for (const s of sets) {
    out[s.itemsName] = s.itemsModel;
    out[s.countersName] = s.countersModel;
  }
  return out;
}

async function readAudit(database: ChaosDatabase): Promise<AuditEntry[]> {
  const { rows } = await database.admin.query<{
    tbl: string;
    id: number;
    version: number;
    val: string;
    op: 'I' | 'U' | 'D';
  }>('select tbl, id, version, val, op from chaos_audit order by seq');
  return rows.map((r) => ({ table: r.tbl, key: r.id, version: r.version, val: r.val, op: r.op }));
}

async function readFinal(
  database: ChaosDatabase,
  sets: readonly PatternTables[],
  keys: KeySpaceConfig,
): Promise<FinalState[]> {
  const out: FinalState[] = [];
  for (const set of sets) {
    const items = await database.admin.query<{ id: number; version: number; val: string }>(
      `select id, version, val from ${set.itemsName}`,
    );
    const byId = new Map(items.rows.map((r) => [r.id, r]));
    for (let k = 1; k <= keys.items; k++) {
      const row = byId.get(k);
      out.push(
        row
          ? { table: set.itemsName, key: k, val: row.val, version: row.version }
          : { table: set.itemsName, key: k, val: null },
      );
    }
    const counters = await database.admin.query<{ id: number; n: number }>(`select id, n from ${set.countersName}`);
    for (const row of counters.rows) out.push({ table: set.countersName, key: row.id, n: row.n });
  }
  return out;
}

function figures(stats: CacheStats[]): CacheFigures {
  const out: CacheFigures = {
    hits: 0,
    stale: 0,
    misses: 0,
    bypasses: 0,
    fills: 0,
    fillsRejected: 0,
    invalidations: 0,
    storeErrors: 0,
  };
  for (const s of stats) {
    out.storeErrors += s.storeErrors;
    for (const t of Object.values(s.tables)) {
      out.hits += t.hits;
      out.stale += t.stale;
      out.misses += t.misses;
      out.bypasses += t.bypasses;
      out.fills += t.fills;
      out.fillsRejected += t.fillsRejected;
      out.invalidations += t.invalidations;
    }
  }
  return out;
}

function topErrors(failed: readonly Op[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const op of failed) {
    const key = (op.error ?? 'unknown').replace(/o\d+\.\d+/g, '…').slice(0, 160);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5);
}

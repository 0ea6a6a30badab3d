import type { History, Observation, Op, TableModel, WriteIntent } from './history.js';

/** What kind of violation a finding is. */
export type AnomalyKind =
  /** A read that started after a write was acknowledged returned an older state. */
  | 'stale-read'
  /** A read returned a value written by a transaction or savepoint that rolled back. */
  | 'rolled-back-read'
  /** A read returned a value the database never committed. */
  | 'dirty-read'
  /** A read returned something no write produced (or produced only after the read ended). */
  | 'phantom-read'
  /** An acknowledged write is missing from the database. */
  | 'lost-write'
  /** A write was applied more than once. */
  | 'duplicated-write'
  /** A rolled-back write reached the database. */
  | 'rolled-back-applied'
  /** The database holds a write no client made. */
  | 'phantom-write';

/** One violation, with the operations that show it. */
export interface Anomaly {
  kind: AnomalyKind;
  table: string;
  key: number;
  /** The read that saw it, or the write that was lost. */
  op?: number;
  /** The write whose value was observed. */
  observed?: number;
  /** The acknowledged write the read (or the final state) should have reflected. */
  expected?: number;
  detail: string;
}

/** The verdict on a history. */
export interface CheckReport {
  ops: number;
  reads: number;
  writes: number;
  observations: number;
  staleReads: number;
  rolledBackReads: number;
  dirtyReads: number;
  phantomReads: number;
  lostWrites: number;
  duplicatedWrites: number;
  rolledBackApplied: number;
  phantomWrites: number;
  anomalies: Anomaly[];
}

interface Located {
  op: Op;
  intent: WriteIntent;
}

/** A point in a key's total order of states: present at version v is 2v, deleted after v is 2v+1. */
interface Acked {
  end: number;
  start: number;
  order: number;
  loc: Located;
}

/** Writes to one key sorted by acknowledgement time, with running maxima for binary search. */
class AckIndex {
  private readonly ends: number[] = [];
  private readonly bestOrder: Acked[] = [];
  private readonly latestStart: Acked[] = [];

  constructor(acked: Acked[]) {
    acked.sort((a, b) => a.end - b.end);
    let order: Acked | undefined;
    let start: Acked | undefined;
    for (const a of acked) {
      if (!order || a.order > order.order) order = a;
      if (!start || a.start > start.start) start = a;
      this.ends.push(a.end);
      this.bestOrder.push(order);
      this.latestStart.push(start);
    }
  }

  /** Among writes acknowledged strictly before `t`: the one with the newest state. */
  newestBefore(t: number): Acked | undefined {
    const i = lastBelow(this.ends, t);
    return i < 0 ? undefined : this.bestOrder[i];
  }

  /** Among writes acknowledged strictly before `t`: the one that started last. */
  latestStartedBefore(t: number): Acked | undefined {
    const i = lastBelow(this.ends, t);
    return i < 0 ? undefined : this.latestStart[i];
  }
}

/** Index of the last element < t in an ascending array, or -1. */
function lastBelow(sorted: readonly number[], t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Per key of an `items` table: the database's account and the clients' writes. */
interface ItemKey {
  /** Audit: value -> versions it was applied at (more than one means applied twice). */
  present: Map<string, number[]>;
  /** Audit: versions whose row was deleted -> how many times. */
  deleted: Map<number, number>;
  /** Client deletes that removed a row, by the version they removed (a rolled-back one may share it). */
  deletes: Map<number, Located[]>;
  /** Every client delete intent (for real-time ordering). */
  deleteIntents: Located[];
  seeded: boolean;
  acked: AckIndex;
}

/** Per key of a `counters` table. */
interface CounterKey {
  ackedEnds: number[];
  /** The acknowledged increments in the order of `ackedEnds`. */
  acked: Located[];
  possibleStarts: number[];
}

const keyOf = (table: string, key: number) => `${table}\u0000${key}`;

/**
 * Checks a chaos history against each table's guarantee: no read that starts after a write was
 * acknowledged returns an older state; no rolled-back or uncommitted value is ever read; every
 * acknowledged write is in the database exactly once; counters end at the acknowledged total.
 * Pure: the same history always gives the same report.
 */
export function checkHistory(history: History): CheckReport {
  const report: CheckReport = {
    ops: history.ops.length,
    reads: 0,
    writes: 0,
    observations: 0,
    staleReads: 0,
    rolledBackReads: 0,
    dirtyReads: 0,
    phantomReads: 0,
    lostWrites: 0,
    duplicatedWrites: 0,
    rolledBackApplied: 0,
    phantomWrites: 0,
    anomalies: [],
  };
  const add: Add = (anomaly, field, count = 1) => {
    (report[field] as number) += count;
    report.anomalies.push(anomaly);
  };

  // Every write by its unique value; deletes and increments by key.
  const byVal = new Map<string, Located>();
  const intentsByKey = new Map<string, Located[]>();
  for (const op of history.ops) {
    if (op.observations.length > 0) report.reads++;
    report.observations += op.observations.length;
    for (const intent of op.writes) {
      if (op.kind !== 'seed') report.writes++;
      const loc = { op, intent };
      if (intent.val !== undefined) byVal.set(keyOf(intent.table, 0) + intent.val, loc);
      const k = keyOf(intent.table, intent.key);
      const list = intentsByKey.get(k);
      if (list) list.push(loc);
      else intentsByKey.set(k, [loc]);
    }
  }
  const find = (table: string, val: string) => byVal.get(keyOf(table, 0) + val);

  // The audit, per key.
  const auditByKey = new Map<string, { present: Map<string, number[]>; deleted: Map<number, number> }>();
  for (const entry of history.audit) {
    const k = keyOf(entry.table, entry.key);
    let a = auditByKey.get(k);
    if (!a) {
      a = { present: new Map(), deleted: new Map() };
      auditByKey.set(k, a);
    }
    if (entry.op === 'D') {
      a.deleted.set(entry.version, (a.deleted.get(entry.version) ?? 0) + 1);
      continue;
    }
    const versions = a.present.get(entry.val);
    if (versions) versions.push(entry.version);
    else a.present.set(entry.val, [entry.version]);
    const loc = find(entry.table, entry.val);
    if (!loc) {
      add(
        {
          kind: 'phantom-write',
          table: entry.table,
          key: entry.key,
          detail: `the database holds "${entry.val}", which no client wrote`,
        },
        'phantomWrites',
      );
    } else if (loc.intent.status === 'rolled-back') {
      add(
        {
          kind: 'rolled-back-applied',
          table: entry.table,
          key: entry.key,
          op: loc.op.id,
          detail: `"${entry.val}" was rolled back but the database applied it (version ${entry.version})`,
        },
        'rolledBackApplied',
      );
    }
  }

  const items = new Map<string, ItemKey>();
  const counters = new Map<string, CounterKey>();
  const itemKey = (table: string, key: number): ItemKey => {
    const k = keyOf(table, key);
    const found = items.get(k);
    if (found) return found;
    const built = buildItemKey(
      history.tables[table] as TableModel,
      table,
      key,
      intentsByKey.get(k) ?? [],
      auditByKey.get(k),
      add,
    );
    items.set(k, built);
    return built;
  };
  const counterKey = (table: string, key: number): CounterKey => {
    const k = keyOf(table, key);
    const found = counters.get(k);
    if (found) return found;
    const built = buildCounterKey(intentsByKey.get(k) ?? []);
    counters.set(k, built);
    return built;
  };

  // Keys that were written but never read still need their lost/duplicated checks.
  for (const locs of intentsByKey.values()) {
    const first = locs[0] as Located;
    const model = history.tables[first.intent.table];
    if (model?.kind === 'items') itemKey(first.intent.table, first.intent.key);
  }

  for (const op of history.ops) {
    for (const obs of op.observations) {
      const model = history.tables[obs.table];
      if (!model) continue;
      if (model.kind === 'counters') {
        if (obs.list && !model.checkLists) continue;
        checkCounterRead(op, obs, counterKey(obs.table, obs.key), add);
      } else {
        checkItemRead(op, obs, model, itemKey(obs.table, obs.key), find, add);
      }
    }
  }

  for (const state of history.final) {
    const model = history.tables[state.table];
    if (!model) continue;
    if (model.kind === 'counters') {
      checkCounterFinal(state.table, state.key, state.n ?? 0, counterKey(state.table, state.key), add);
      continue;
    }
    const final: Op = {
      id: -1,
      worker: -1,
      instance: 'database',
      kind: 'final',
      start: Number.POSITIVE_INFINITY,
      end: Number.POSITIVE_INFINITY,
      ok: true,
      writes: [],
      observations: [],
    };
    const obs: Observation = { table: state.table, key: state.key, list: false, val: state.val ?? null };
    if (state.version !== undefined) obs.version = state.version;
    checkItemRead(final, obs, model, itemKey(state.table, state.key), find, (anomaly, field, count) => {
      // The final state not reflecting an acknowledged write means the write was lost.
      if (anomaly.kind === 'stale-read')
        add({ ...anomaly, kind: 'lost-write', op: anomaly.expected }, 'lostWrites', count);
      else add(anomaly, field, count);
    });
  }
  return report;
}

type Add = (anomaly: Anomaly, field: CountField, count?: number) => void;
type CountField = Exclude<keyof CheckReport, 'anomalies'>;

function buildItemKey(
  model: TableModel,
  table: string,
  key: number,
  locs: readonly Located[],
  audit: { present: Map<string, number[]>; deleted: Map<number, number> } | undefined,
  add: Add,
): ItemKey {
  const present = audit?.present ?? new Map<string, number[]>();
  const deleted = audit?.deleted ?? new Map<number, number>();
  const deletes = new Map<number, Located[]>();
  const deleteIntents: Located[] = [];
  const acked: Acked[] = [];
  let seeded = false;
  for (const [val, versions] of present) {
    if (versions.length > 1) {
      add(
        {
          kind: 'duplicated-write',
          table,
          key,
          detail: `"${val}" was applied ${versions.length} times (versions ${versions.join(', ')})`,
        },
        'duplicatedWrites',
      );
    }
  }
  for (const [version, count] of deleted) {
    if (count > 1) {
      add(
        { kind: 'duplicated-write', table, key, detail: `the row at version ${version} was deleted ${count} times` },
        'duplicatedWrites',
      );
    }
  }
  for (const loc of locs) {
    const { intent, op } = loc;
    if (op.kind === 'seed') seeded = true;
    if (intent.kind === 'delete') {
      deleteIntents.push(loc);
      if (intent.applied && intent.version !== undefined) {
        const list = deletes.get(intent.version);
        if (list) list.push(loc);
        else deletes.set(intent.version, [loc]);
      }
    }
    if (intent.status !== 'ok' || intent.applied === false) continue;
    if (model.ordering === 'realtime') {
      if (intent.conditional) continue;
      acked.push({ end: op.end, start: op.start, order: 0, loc });
      continue;
    }
    if (intent.kind === 'put') {
      const versions = intent.val === undefined ? undefined : present.get(intent.val);
      if (!versions) {
        if (intent.applied) {
          add(
            {
              kind: 'lost-write',
              table,
              key,
              op: op.id,
              detail: `acknowledged "${intent.val}" is not in the database audit`,
            },
            'lostWrites',
          );
        }
        continue;
      }
      acked.push({ end: op.end, start: op.start, order: 2 * (versions[0] as number), loc });
    } else if (intent.kind === 'delete' && intent.applied && intent.version !== undefined) {
      if (!deleted.has(intent.version)) {
        add(
          {
            kind: 'lost-write',
            table,
            key,
            op: op.id,
            detail: `acknowledged delete of version ${intent.version} is not in the audit`,
          },
          'lostWrites',
        );
        continue;
      }
      acked.push({ end: op.end, start: op.start, order: 2 * intent.version + 1, loc });
    }
  }
  return { present, deleted, deletes, deleteIntents, seeded, acked: new AckIndex(acked) };
}

function checkItemRead(
  read: Op,
  obs: Observation,
  model: TableModel,
  state: ItemKey,
  find: (table: string, val: string) => Located | undefined,
  add: Add,
): void {
  const { table, key } = obs;
  const checkStale = !obs.list || model.checkLists;
  const base = { table, key, op: read.id };
  if (obs.val !== null && obs.val !== undefined) {
    const loc = find(table, obs.val);
    if (!loc || loc.intent.key !== key) {
      add(
        { ...base, kind: 'phantom-read', detail: `read "${obs.val}", which no client wrote to this key` },
        'phantomReads',
      );
      return;
    }
    const observed = loc.op.id;
    if (loc.intent.status === 'rolled-back') {
      add(
        { ...base, observed, kind: 'rolled-back-read', detail: `read "${obs.val}", which was rolled back` },
        'rolledBackReads',
      );
      return;
    }
    if (loc.op.start > read.end) {
      add(
        { ...base, observed, kind: 'phantom-read', detail: `read "${obs.val}" before it was written` },
        'phantomReads',
      );
      return;
    }
    if (model.ordering === 'realtime') {
      if (!checkStale) return;
      const newer = state.acked.latestStartedBefore(read.start);
      if (newer && newer.start > loc.op.end) {
        add(
          {
            ...base,
            observed,
            expected: newer.loc.op.id,
            kind: 'stale-read',
            detail: `read "${obs.val}" (written by op ${observed}), but op ${newer.loc.op.id} wrote after it and was acknowledged before the read started`,
          },
          'staleReads',
        );
      }
      return;
    }
    const versions = state.present.get(obs.val);
    if (!versions) {
      add(
        { ...base, observed, kind: 'dirty-read', detail: `read "${obs.val}", which the database never committed` },
        'dirtyReads',
      );
      return;
    }
    const version = versions[0] as number;
    if (obs.version !== undefined && obs.version !== version) {
      add(
        {
          ...base,
          observed,
          kind: 'phantom-read',
          detail: `read "${obs.val}" at version ${obs.version}; the database has it at ${version}`,
        },
        'phantomReads',
      );
      return;
    }
    if (!checkStale) return;
    const newest = state.acked.newestBefore(read.start);
    if (newest && 2 * version < newest.order) {
      add(
        {
          ...base,
          observed,
          expected: newest.loc.op.id,
          kind: 'stale-read',
          detail: `read version ${version} ("${obs.val}"), but op ${newest.loc.op.id} was acknowledged before the read started with ${describeOrder(newest.order)}`,
        },
        'staleReads',
      );
    }
    return;
  }

  // The row was absent.
  if (!checkStale) return;
  if (model.ordering === 'realtime') {
    // Absence is explained by the key never having been written, or by a delete that could precede the read.
    let best = state.seeded ? undefined : Number.NEGATIVE_INFINITY;
    for (const d of state.deleteIntents) {
      if (d.intent.status === 'rolled-back' || d.intent.applied === false || d.op.start > read.end) continue;
      if (best === undefined || d.op.end > best) best = d.op.end;
    }
    if (best === undefined) {
      add(
        { ...base, kind: 'phantom-read', detail: 'read the row as absent, but nothing had deleted it' },
        'phantomReads',
      );
      return;
    }
    const newer = state.acked.latestStartedBefore(read.start);
    if (newer && newer.start > best) {
      add(
        {
          ...base,
          expected: newer.loc.op.id,
          kind: 'stale-read',
          detail: `read the row as absent, but op ${newer.loc.op.id} wrote it after the last delete and was acknowledged before the read started`,
        },
        'staleReads',
      );
    }
    return;
  }
  let best = 0;
  for (const version of state.deleted.keys()) {
    // A delete the database applied, by a client delete that may precede the read (or by one whose
    // outcome the client never learned).
    const known = state.deletes.get(version) ?? [];
    const possible =
      known.length === 0 || known.some((d) => d.intent.status !== 'rolled-back' && d.op.start <= read.end);
    if (possible) best = Math.max(best, 2 * version + 1);
  }
  const newest = state.acked.newestBefore(read.start);
  if (newest && best < newest.order) {
    add(
      {
        ...base,
        expected: newest.loc.op.id,
        kind: 'stale-read',
        detail: `read the row as absent (${best === 0 ? 'never written' : describeOrder(best)}), but op ${newest.loc.op.id} was acknowledged before the read started with ${describeOrder(newest.order)}`,
      },
      'staleReads',
    );
  }
}

function describeOrder(order: number): string {
  return order % 2 === 0 ? `version ${order / 2}` : `the row deleted after version ${(order - 1) / 2}`;
}

function buildCounterKey(locs: readonly Located[]): CounterKey {
  const acked: Located[] = [];
  const possibleStarts: number[] = [];
  for (const loc of locs) {
    const { op, intent } = loc;
    if (intent.kind !== 'increment') continue;
    if (intent.status === 'ok') acked.push(loc);
    if (intent.status !== 'rolled-back') possibleStarts.push(op.start);
  }
  acked.sort((a, b) => a.op.end - b.op.end);
  possibleStarts.sort((a, b) => a - b);
  return { ackedEnds: acked.map((l) => l.op.end), acked, possibleStarts };
}

function checkCounterRead(read: Op, obs: Observation, state: CounterKey, add: Add): void {
  const n = obs.n ?? 0;
  const acked = lastBelow(state.ackedEnds, read.start) + 1;
  const possible = lastBelow(state.possibleStarts, read.end) + 1;
  const base = { table: obs.table, key: obs.key, op: read.id };
  if (n < acked) {
    // The increment that made the read stale: the (n+1)-th acknowledged one.
    const missed = state.acked[n]?.op.id;
    const detail = `read ${n}, but ${acked} increments were acknowledged before the read started`;
    add({ ...base, ...(missed === undefined ? {} : { expected: missed }), kind: 'stale-read', detail }, 'staleReads');
  } else if (n > possible) {
    add(
      {
        ...base,
        kind: 'phantom-read',
        detail: `read ${n}, but only ${possible} increments had started before the read ended`,
      },
      'phantomReads',
    );
  }
}

function checkCounterFinal(table: string, key: number, n: number, state: CounterKey, add: Add): void {
  const acked = state.ackedEnds.length;
  const possible = state.possibleStarts.length;
  if (n < acked) {
    const detail = `the counter ends at ${n}, but ${acked} increments were acknowledged`;
    add({ kind: 'lost-write', table, key, detail }, 'lostWrites', acked - n);
  }
  if (n > possible) {
    const detail = `the counter ends at ${n}, but at most ${possible} increments may have happened`;
    add({ kind: 'duplicated-write', table, key, detail }, 'duplicatedWrites', n - possible);
  }
}

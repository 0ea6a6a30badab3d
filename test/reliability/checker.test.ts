import { describe, expect, it } from 'vitest';
import { type CheckReport, checkHistory } from '../../chaos/checker.js';
import type { AuditEntry, FinalState, History, Observation, Op, TableModel, WriteIntent } from '../../chaos/history.js';

// Hand-made histories: each violation the checker must catch, and the legal interleavings it must
// accept (a read concurrent with a write may return either state).

const TABLES: Record<string, TableModel> = {
  items: { kind: 'items', pattern: 'cache-aside', ordering: 'version', checkLists: true },
  counters: { kind: 'counters', pattern: 'cache-aside', ordering: 'version', checkLists: true },
  wb: { kind: 'items', pattern: 'write-back', ordering: 'realtime', checkLists: false },
  wbc: { kind: 'counters', pattern: 'write-back', ordering: 'realtime', checkLists: false },
};

class Builder {
  private nextId = 1;
  readonly ops: Op[] = [];
  readonly audit: AuditEntry[] = [];
  readonly final: FinalState[] = [];

  op(
    kind: string,
    start: number,
    end: number,
    parts: { writes?: WriteIntent[]; observations?: Observation[] } = {},
  ): Op {
    const op: Op = {
      id: this.nextId++,
      worker: 0,
      instance: 'a',
      kind,
      start,
      end,
      ok: true,
      writes: parts.writes ?? [],
      observations: parts.observations ?? [],
    };
    this.ops.push(op);
    return op;
  }

  /** A seed write of `val` at version 1, audited. */
  seed(table: string, key: number, val: string): void {
    this.op('seed', -1, -1, { writes: [put(table, key, val, { version: 1 })] });
    this.applied(table, key, 1, val);
  }

  applied(table: string, key: number, version: number, val: string, op: AuditEntry['op'] = 'U'): void {
    this.audit.push({ table, key, version, val, op });
  }

  check(): CheckReport {
    const history: History = { tables: TABLES, ops: this.ops, audit: this.audit, final: this.final };
    return checkHistory(history);
  }
}

function put(table: string, key: number, val: string, extra: Partial<WriteIntent> = {}): WriteIntent {
  return { table, key, kind: 'put', val, applied: true, status: 'ok', ...extra };
}
function del(table: string, key: number, version: number, extra: Partial<WriteIntent> = {}): WriteIntent {
  return { table, key, kind: 'delete', applied: true, version, status: 'ok', ...extra };
}
function inc(table: string, key: number, status: WriteIntent['status'] = 'ok'): WriteIntent {
  return { table, key, kind: 'increment', status };
}
function saw(table: string, key: number, val: string | null, version?: number, list = false): Observation {
  return version === undefined ? { table, key, list, val } : { table, key, list, val, version };
}
function count(table: string, key: number, n: number): Observation {
  return { table, key, list: false, n };
}

const clean = (r: CheckReport) =>
  r.staleReads +
  r.rolledBackReads +
  r.dirtyReads +
  r.phantomReads +
  r.lostWrites +
  r.duplicatedWrites +
  r.rolledBackApplied +
  r.phantomWrites;

describe('the chaos checker accepts legal histories', () => {
  it('a sequential history of puts, deletes, reads and increments', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('update', 0, 10, { writes: [put('items', 1, 'a', { version: 2 })] });
    h.applied('items', 1, 2, 'a');
    h.op('read', 11, 12, { observations: [saw('items', 1, 'a', 2), saw('items', 2, null)] });
    h.op('delete', 13, 14, { writes: [del('items', 1, 2)] });
    h.applied('items', 1, 2, 'a', 'D');
    h.op('read', 15, 16, { observations: [saw('items', 1, null, undefined, true)] });
    h.op('insert', 17, 18, { writes: [put('items', 1, 'b', { version: 3 })] });
    h.applied('items', 1, 3, 'b', 'I');
    h.op('increment', 0, 5, { writes: [inc('counters', 1)] });
    h.op('read', 6, 7, { observations: [count('counters', 1, 1)] });
    h.final.push({ table: 'items', key: 1, val: 'b', version: 3 }, { table: 'counters', key: 1, n: 1 });
    const r = h.check();
    expect(clean(r)).toBe(0);
    expect(r).toMatchObject({ reads: 3, writes: 4, observations: 4 });
  });

  it('a read concurrent with a write may return the old or the new state', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('update', 10, 20, { writes: [put('items', 1, 'a', { version: 2 })] });
    h.applied('items', 1, 2, 'a');
    h.op('read', 15, 16, { observations: [saw('items', 1, 's1', 1)] });
    h.op('read', 19, 25, { observations: [saw('items', 1, 'a', 2)] });
    // A counter read concurrent with an increment may see it or not.
    h.op('increment', 30, 40, { writes: [inc('counters', 1)] });
    h.op('read', 35, 36, { observations: [count('counters', 1, 0)] });
    h.op('read', 35, 36, { observations: [count('counters', 1, 1)] });
    expect(clean(h.check())).toBe(0);
  });

  it('a write with an unknown outcome may or may not show', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('update', 0, 10, { writes: [put('items', 1, 'a', { status: 'unknown', applied: undefined })] });
    h.applied('items', 1, 2, 'a');
    h.op('update', 0, 10, { writes: [put('items', 1, 'never', { status: 'unknown', applied: undefined })] });
    h.op('read', 11, 12, { observations: [saw('items', 1, 'a', 2)] });
    h.op('increment', 0, 1, { writes: [inc('counters', 1, 'unknown')] });
    h.final.push({ table: 'items', key: 1, val: 'a', version: 2 }, { table: 'counters', key: 1, n: 1 });
    expect(clean(h.check())).toBe(0);
  });

  it('write-back: an update of an absent row (no RETURNING) does not prove absence stale', () => {
    const h = new Builder();
    h.op('update', 0, 1, { writes: [put('wb', 5, 'u', { applied: undefined, conditional: true })] });
    h.op('read', 2, 3, { observations: [saw('wb', 5, null)] });
    h.final.push({ table: 'wb', key: 5, val: null });
    expect(clean(h.check())).toBe(0);
  });

  it('a rolled-back delete that returned the same version does not hide the committed one', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('delete', 0, 10, { writes: [del('items', 1, 1)] });
    h.op('tx-rollback', 2, 8, { writes: [del('items', 1, 1, { status: 'rolled-back' })] });
    h.applied('items', 1, 1, 's1', 'D');
    h.op('read', 11, 12, { observations: [saw('items', 1, null)] });
    h.final.push({ table: 'items', key: 1, val: null });
    expect(clean(h.check())).toBe(0);
  });

  it('write-back: coalesced writes need not reach the database, only the last one must', () => {
    const h = new Builder();
    h.seed('wb', 1, 's1');
    h.op('update', 0, 1, { writes: [put('wb', 1, 'a', { applied: undefined })] });
    h.op('update', 2, 3, { writes: [put('wb', 1, 'b', { applied: undefined })] });
    h.op('read', 4, 5, { observations: [saw('wb', 1, 'b')] });
    // A list read of a write-back table reads the database, which may lag.
    h.op('list', 4, 5, { observations: [saw('wb', 1, 's1', undefined, true)] });
    h.applied('wb', 1, 2, 'b');
    h.final.push({ table: 'wb', key: 1, val: 'b', version: 2 });
    expect(clean(h.check())).toBe(0);
  });
});

describe('the chaos checker catches violations', () => {
  it('a stale read: the read started after the write was acknowledged and returned the old version', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    const write = h.op('update', 0, 10, { writes: [put('items', 1, 'a', { version: 2 })] });
    h.applied('items', 1, 2, 'a');
    const read = h.op('read', 11, 12, { observations: [saw('items', 1, 's1', 1)] });
    const r = h.check();
    expect(r.staleReads).toBe(1);
    expect(r.anomalies[0]).toMatchObject({ kind: 'stale-read', op: read.id, expected: write.id });
  });

  it('a stale read among concurrent writes: version order, not real-time order, decides', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    // Both writes overlap; the database applied a (v2) before b (v3); b was acknowledged first.
    h.op('update', 0, 25, { writes: [put('items', 1, 'a', { version: 2 })] });
    h.op('update', 5, 20, { writes: [put('items', 1, 'b', { version: 3 })] });
    h.applied('items', 1, 2, 'a');
    h.applied('items', 1, 3, 'b');
    h.op('read', 21, 22, { observations: [saw('items', 1, 'a', 2)] });
    expect(h.check().staleReads).toBe(1);
  });

  it('a stale list read, and a row read as absent after an acknowledged insert', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('update', 0, 10, { writes: [put('items', 1, 'a', { version: 2 })] });
    h.applied('items', 1, 2, 'a');
    h.op('insert', 0, 10, { writes: [put('items', 2, 'n', { version: 1 })] });
    h.applied('items', 2, 1, 'n', 'I');
    h.op('list', 11, 12, { observations: [saw('items', 1, 's1', 1, true), saw('items', 2, null, undefined, true)] });
    expect(h.check().staleReads).toBe(2);
  });

  it('a deleted row read as present after the delete was acknowledged', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('delete', 0, 10, { writes: [del('items', 1, 1)] });
    h.applied('items', 1, 1, 's1', 'D');
    h.op('read', 11, 12, { observations: [saw('items', 1, 's1', 1)] });
    expect(h.check().staleReads).toBe(1);
  });

  it('a read of a rolled-back value, and a dirty read of a value never committed', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('tx-rollback', 0, 10, { writes: [put('items', 1, 'undone', { status: 'rolled-back' })] });
    h.op('update', 0, 10, { writes: [put('items', 1, 'failed', { status: 'unknown', applied: undefined })] });
    h.op('read', 5, 6, { observations: [saw('items', 1, 'undone', 2)] });
    h.op('read', 5, 6, { observations: [saw('items', 1, 'failed', 2)] });
    const r = h.check();
    expect(r.rolledBackReads).toBe(1);
    expect(r.dirtyReads).toBe(1);
  });

  it('a phantom read: a value nobody wrote, or one read before it was written', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('read', 1, 2, { observations: [saw('items', 1, 'nobody', 2)] });
    h.op('update', 10, 11, { writes: [put('items', 1, 'later', { version: 2 })] });
    h.applied('items', 1, 2, 'later');
    h.op('read', 1, 2, { observations: [saw('items', 1, 'later', 2)] });
    expect(h.check().phantomReads).toBe(2);
  });

  it('a lost write: acknowledged but not in the database, or the final state older than it', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.seed('items', 2, 's2');
    h.op('update', 0, 10, { writes: [put('items', 1, 'gone', { version: 2 })] });
    h.op('update', 0, 10, { writes: [put('items', 2, 'b', { version: 2 })] });
    h.applied('items', 2, 2, 'b');
    h.final.push({ table: 'items', key: 2, val: 's2', version: 1 });
    const r = h.check();
    expect(r.lostWrites).toBe(2);
  });

  it('a duplicated write: one value applied twice, a counter above every possible increment', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('update', 0, 10, { writes: [put('items', 1, 'twice', { version: 2 })] });
    h.applied('items', 1, 2, 'twice');
    h.applied('items', 1, 3, 'twice');
    h.op('increment', 0, 1, { writes: [inc('counters', 1)] });
    h.final.push({ table: 'counters', key: 1, n: 3 });
    expect(h.check().duplicatedWrites).toBe(3);
  });

  it('a rolled-back write that reached the database, and a write no client made', () => {
    const h = new Builder();
    h.seed('items', 1, 's1');
    h.op('tx-rollback', 0, 10, { writes: [put('items', 1, 'undone', { status: 'rolled-back' })] });
    h.applied('items', 1, 2, 'undone');
    h.applied('items', 1, 3, 'from-nowhere');
    const r = h.check();
    expect(r.rolledBackApplied).toBe(1);
    expect(r.phantomWrites).toBe(1);
  });

  it('counters: a read below the acknowledged count, a final value below it', () => {
    const h = new Builder();
    h.op('increment', 0, 1, { writes: [inc('counters', 1)] });
    h.op('increment', 2, 3, { writes: [inc('counters', 1)] });
    h.op('increment', 2, 3, { writes: [inc('counters', 1, 'rolled-back')] });
    h.op('read', 4, 5, { observations: [count('counters', 1, 1)] });
    h.final.push({ table: 'counters', key: 1, n: 1 });
    const r = h.check();
    expect(r.staleReads).toBe(1);
    expect(r.lostWrites).toBe(1);
  });

  it('write-back: a primary-key read that misses an acknowledged write, and no convergence after flush', () => {
    const h = new Builder();
    h.seed('wb', 1, 's1');
    h.op('update', 0, 1, { writes: [put('wb', 1, 'a', { applied: undefined })] });
    h.op('update', 2, 3, { writes: [put('wb', 1, 'b', { applied: undefined })] });
    h.op('read', 4, 5, { observations: [saw('wb', 1, 'a')] });
    h.op('delete', 6, 7, { writes: [del('wb', 1, 0, { applied: undefined, version: undefined })] });
    h.op('read', 8, 9, { observations: [saw('wb', 1, 'b')] });
    h.op('wbc', 0, 1, { writes: [inc('wbc', 1)] });
    h.op('read', 2, 3, { observations: [count('wbc', 1, 0)] });
    h.applied('wb', 1, 2, 'b');
    h.final.push({ table: 'wb', key: 1, val: 'b', version: 2 }, { table: 'wbc', key: 1, n: 0 });
    const r = h.check();
    expect(r.staleReads).toBe(3);
    // The final row should be absent (the delete was acknowledged last); the counter lost one.
    expect(r.lostWrites).toBe(2);
  });
});

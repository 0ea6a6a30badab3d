/**
 * The write-back journal in process memory, for tests and single-process demos: the same
 * semantics as the Redis journal (streams with a consumer group, leases, row entries), with the
 * journal lost when the process exits. Runs the shared row-state machine (row-state.ts).
 */

import type { AppendResult, BaseToken, DeadLetter, Fields, JournalKeys, ReadRow, WriteBackJournal } from './journal.js';
import { compareStreamIds } from './ops.js';
import { applyWrite, hasUnknown } from './row-state.js';

/** What the memory store lends the journal. */
export interface MemoryJournalHost {
  /** Reads a counter the way the store's guards do (missing: 0). */
  counter(key: string): number;
  /** The store's clock in milliseconds. */
  now(): number;
}

interface Stream {
  entries: Map<string, Record<string, string>>;
  last: [number, number];
  groups: Map<string, { delivered: string; pel: Map<string, string> }>;
}

interface Expiring<T> {
  value: T;
  expiresAt: number | undefined;
}

/** The memory journal plus a way to drop everything (the store's `close`). */
export interface MemoryJournal extends WriteBackJournal {
  /** Forgets every stream, row entry and lease. */
  clear(): void;
}

/** Builds a journal whose state lives in this process. */
export function memoryJournal(host: MemoryJournalHost): MemoryJournal {
  const streams = new Map<string, Stream>();
  /** Results of appends by request id (the Redis journal keeps them for resent commands). */
  const requests = new Map<string, AppendResult>();
  const hashes = new Map<string, Expiring<Map<string, string>>>();
  const strings = new Map<string, Expiring<string>>();

  const live = <T>(map: Map<string, Expiring<T>>, key: string): T | undefined => {
    const item = map.get(key);
    if (!item) return undefined;
    if (item.expiresAt !== undefined && item.expiresAt <= host.now()) {
      map.delete(key);
      return undefined;
    }
    return item.value;
  };
  const getString = (key: string) => live(strings, key);
  const setString = (key: string, value: string, ttlMs?: number) =>
    strings.set(key, { value, expiresAt: ttlMs === undefined ? undefined : host.now() + ttlMs });
  const stream = (key: string): Stream => {
    let s = streams.get(key);
    if (!s) {
      s = { entries: new Map(), last: [0, 0], groups: new Map() };
      streams.set(key, s);
    }
    return s;
  };
  const nextId = (s: Stream): string => {
    const ms = host.now();
    s.last = ms > s.last[0] ? [ms, 0] : [s.last[0], s.last[1] + 1];
    return `${s.last[0]}-${s.last[1]}`;
  };
  const stampOf = (keys: JournalKeys) => `${host.counter(keys.generations[0])}|${host.counter(keys.generations[1])}`;
  const writeRow = (key: string, fields: Map<string, string>, ttlMs: number) => {
    const n = Number(fields.get('n') ?? '0');
    hashes.set(key, {
      value: new Map(fields),
      expiresAt: n <= 0 ? host.now() + Math.max(1, Math.ceil(ttlMs)) : undefined,
    });
  };

  /** Mirrors the Lua `loadrow`: undefined when missing or stale without pending writes (deleted). */
  const loadRow = (key: string, stamp: string): { fields: Map<string, string>; suspect: boolean } | undefined => {
    const stored = live(hashes, key);
    if (!stored) return undefined;
    const fields = new Map(stored);
    const n = Number(fields.get('n') ?? '0');
    if (fields.get('e') !== stamp || fields.get('s') === '1' || (n <= 0 && hasUnknown(fields))) {
      if (n <= 0) {
        hashes.delete(key);
        return undefined;
      }
      return { fields, suspect: true };
    }
    return { fields, suspect: false };
  };
  const wantMissing = (fields: Map<string, string>, want: readonly string[] | undefined) =>
    fields.get('x') === '1' &&
    (want ?? []).some((c) => {
      const v = fields.get(`c:${c}`);
      return v === undefined || v === 'u';
    });
  const columnsOf = (fields: Map<string, string>, want: readonly string[]): Fields => {
    const out: Fields = {};
    const x = fields.get('x');
    if (x !== undefined) out.x = x;
    for (const c of want) {
      const v = fields.get(`c:${c}`);
      if (v !== undefined) out[`c:${c}`] = v;
    }
    return out;
  };

  return {
    async append(request): Promise<AppendResult> {
      const { keys } = request;
      const requestKey = `${keys.requests}${request.requestId}`;
      const done = requests.get(requestKey);
      if (done) return done;
      for (const id of request.forget ?? []) requests.delete(`${keys.requests}${id}`);
      const now = host.now();
      const stamp = stampOf(keys);
      const baseOk =
        request.token !== undefined && request.token.stamp === stamp && now - request.token.t0 < request.ttlMs;
      const want = request.want && request.want.length > 0 ? request.want : undefined;
      const states = new Map<string, { fields: Map<string, string>; suspect: boolean; fresh: boolean }>();
      const dirty = new Set<string>();
      const need: number[] = [];
      const suspect: number[] = [];
      const unknown: number[] = [];
      const bad: number[] = [];
      let badStatus: 'dup' | 'range' | 'value' | undefined;
      const results: { count: number; fields?: Fields | undefined }[] = [];
      const journal: string[] = [];
      const pending = new Map<string, number>();
      request.rows.forEach((r, i) => {
        let h = states.get(r.row);
        if (!h) {
          const loaded = loadRow(r.row, stamp);
          if (loaded) h = { ...loaded, fresh: false };
          else if (r.write.k === 'ins') h = { fields: new Map([['x', '0']]), suspect: false, fresh: true };
          else if (r.base && baseOk) h = { fields: new Map(Object.entries(r.base)), suspect: false, fresh: true };
          if (h) {
            states.set(r.row, h);
            if (h.fresh) dirty.add(r.row);
          }
        }
        if (!h) need.push(i);
        else if (h.suspect) suspect.push(i);
        else {
          const before = want && r.write.k === 'del' ? new Map(h.fields) : undefined;
          const { status, count } = applyWrite(h.fields, r.write);
          if (status === 'unknown') unknown.push(i);
          else if (status !== 'ok') {
            bad.push(i);
            badStatus ??= status;
          } else {
            const shown = before ?? h.fields;
            if (count > 0 && wantMissing(shown, want)) unknown.push(i);
            else {
              results[i] = { count, fields: want && count > 0 ? columnsOf(shown, want) : undefined };
              if (count > 0) {
                journal.push(r.payload);
                pending.set(r.row, (pending.get(r.row) ?? 0) + 1);
                dirty.add(r.row);
              }
            }
          }
        }
      });
      if (need.length > 0) return { status: 'need', rows: need, token: { t0: now, stamp } };
      if (suspect.length > 0) return { status: 'suspect', rows: suspect };
      if (unknown.length > 0) return { status: 'unknown', rows: unknown };
      if (bad.length > 0) return { status: badStatus ?? 'value', rows: bad };
      const s = stream(keys.stream);
      const length = s.entries.size;
      if (journal.length > 0 && length >= request.maxPending) return { status: 'full', length };
      for (const [key, h] of states) {
        if (!dirty.has(key)) continue;
        h.fields.set('n', String(Number(h.fields.get('n') ?? '0') + (pending.get(key) ?? 0)));
        h.fields.set('e', stamp);
        writeRow(key, h.fields, request.ttlMs);
      }
      for (const p of journal) s.entries.set(nextId(s), { p });
      if (request.dlqEntry) streams.get(keys.dlq)?.entries.delete(request.dlqEntry);
      const result: AppendResult = { status: 'ok', rows: results, length: s.entries.size, now };
      requests.set(requestKey, result);
      return result;
    },

    async readRows({ keys, rows, want }) {
      const now = host.now();
      const stamp = stampOf(keys);
      const out: ReadRow[] = rows.map((key) => {
        let h = loadRow(key, stamp);
        if (h && !h.suspect && wantMissing(h.fields, want) && Number(h.fields.get('n') ?? '0') <= 0) {
          hashes.delete(key);
          h = undefined;
        }
        if (!h) return { kind: 'miss' };
        if (h.suspect || wantMissing(h.fields, want)) return { kind: 'wait' };
        return { kind: 'hit', fields: columnsOf(h.fields, want) };
      });
      const token: BaseToken = { t0: now, stamp };
      return { token, rows: out };
    },

    async fillRows({ keys, token, ttlMs, rows, want }) {
      const now = host.now();
      const stamp = stampOf(keys);
      const ok = token.stamp === stamp && now - token.t0 < ttlMs;
      return rows.map(({ row, base }): ReadRow | { kind: 'stale' } => {
        const h = loadRow(row, stamp);
        if (h) {
          if (h.suspect || wantMissing(h.fields, want)) return { kind: 'wait' };
          return { kind: 'hit', fields: columnsOf(h.fields, want) };
        }
        if (!ok) return { kind: 'stale' };
        const fields = new Map(Object.entries(base));
        fields.set('n', '0');
        fields.set('e', stamp);
        writeRow(row, fields, ttlMs);
        return { kind: 'hit', fields: columnsOf(fields, want) };
      });
    },

    async claim({ keys, group, consumer, leaseTtlMs, count }) {
      const current = getString(keys.lease);
      const mine = `${consumer}|`;
      let epoch: number;
      if (current === undefined) {
        epoch = Number(getString(keys.epoch) ?? '0') + 1;
        setString(keys.epoch, String(epoch));
        setString(keys.lease, `${mine}${epoch}`, leaseTtlMs);
      } else if (current.startsWith(mine)) {
        epoch = Number(current.slice(mine.length));
        setString(keys.lease, current, leaseTtlMs);
      } else return { status: 'busy', holder: current };
      const s = stream(keys.stream);
      let g = s.groups.get(group);
      if (!g) {
        g = { delivered: '0-0', pel: new Map() };
        s.groups.set(group, g);
      }
      const entries: { id: string; payload: string }[] = [];
      const pendingIds = [...g.pel.keys()].sort(compareStreamIds);
      for (const id of pendingIds) {
        if (entries.length >= count) break;
        const entry = s.entries.get(id);
        if (!entry) {
          g.pel.delete(id);
          continue;
        }
        g.pel.set(id, consumer);
        entries.push({ id, payload: entry.p ?? '' });
      }
      if (entries.length === 0) {
        for (const [id, entry] of s.entries) {
          if (entries.length >= count) break;
          if (compareStreamIds(id, g.delivered) <= 0) continue;
          g.pel.set(id, consumer);
          g.delivered = id;
          entries.push({ id, payload: entry.p ?? '' });
        }
      }
      const oldest = s.entries.keys().next().value;
      return {
        status: 'ok',
        epoch,
        owner: `${mine}${epoch}`,
        entries,
        length: s.entries.size,
        oldest,
        now: host.now(),
      };
    },

    async renewLease({ keys, owner, leaseTtlMs }) {
      if (getString(keys.lease) !== owner) return false;
      setString(keys.lease, owner, leaseTtlMs);
      return true;
    },

    async releaseLease({ keys, owner }) {
      if (getString(keys.lease) === owner) strings.delete(keys.lease);
    },

    async raiseEpoch({ keys, atLeast }) {
      if (Number(getString(keys.epoch) ?? '0') < atLeast) setString(keys.epoch, String(atLeast));
    },

    async ack({ keys, group, applied, ttlMs, entries, fills }) {
      const s = stream(keys.stream);
      const g = s.groups.get(group);
      const acked: string[] = [];
      const dec = new Map<string, number>();
      for (const e of entries) {
        if (!g?.pel.delete(e.id)) continue;
        s.entries.delete(e.id);
        acked.push(e.id);
        dec.set(e.row, (dec.get(e.row) ?? 0) + 1);
      }
      for (const f of fills) {
        const h = live(hashes, f.row);
        if (h?.get(`c:${f.column}`) === 'u') h.set(`c:${f.column}`, f.field);
      }
      for (const [row, d] of dec) {
        const item = hashes.get(row);
        const h = live(hashes, row);
        if (!item || !h) continue;
        const n = Number(h.get('n') ?? '0') - d;
        h.set('n', String(n));
        if (n <= 0) {
          if (h.get('s') === '1' || hasUnknown(h)) hashes.delete(row);
          else {
            h.set('n', '0');
            item.expiresAt = host.now() + Math.max(1, Math.ceil(ttlMs));
          }
        }
      }
      const cur = getString(keys.applied);
      if (cur === undefined || compareStreamIds(applied, cur) > 0) setString(keys.applied, applied);
      return { acked, now: host.now() };
    },

    async deadLetter({ keys, group, owner, entries }) {
      if (getString(keys.lease) !== owner) return 'lost';
      const s = stream(keys.stream);
      const g = s.groups.get(group);
      const dlq = stream(keys.dlq);
      let moved = 0;
      for (const e of entries) {
        if (!g?.pel.delete(e.id)) continue;
        dlq.entries.set(nextId(dlq), { id: e.id, p: e.payload, err: e.error, at: String(host.now()) });
        s.entries.delete(e.id);
        moved++;
        const h = live(hashes, e.row);
        if (!h) continue;
        const n = Number(h.get('n') ?? '0') - 1;
        h.set('n', String(n));
        h.set('s', '1');
        if (n <= 0) hashes.delete(e.row);
      }
      return moved;
    },

    async status(keys) {
      const s = streams.get(keys.stream);
      const ids = s ? [...s.entries.keys()] : [];
      return {
        length: ids.length,
        oldest: ids[0],
        newest: ids[ids.length - 1],
        applied: getString(keys.applied),
        lease: getString(keys.lease),
        deadLetters: streams.get(keys.dlq)?.entries.size ?? 0,
        now: host.now(),
      };
    },

    async deadLetters({ keys, start, count }) {
      const out: DeadLetter[] = [];
      for (const [id, f] of streams.get(keys.dlq)?.entries ?? []) {
        if (out.length >= count) break;
        if (start !== undefined && start !== '-' && compareStreamIds(id, start) < 0) continue;
        out.push({ id, original: f.id ?? '', payload: f.p ?? '', error: f.err ?? '', at: Number(f.at ?? '0') });
      }
      return out;
    },

    async dropDeadLetters({ keys, ids }) {
      const dlq = streams.get(keys.dlq);
      let n = 0;
      for (const id of ids) if (dlq?.entries.delete(id)) n++;
      return n;
    },

    async durability() {
      return { appendonly: undefined, maxmemoryPolicy: undefined, volatile: true };
    },

    clear() {
      requests.clear();
      streams.clear();
      hashes.clear();
      strings.clear();
    },
  };
}

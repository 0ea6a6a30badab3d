import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheStore } from '../../src/store.js';
import { addDecimal } from '../../src/write-back/decimal.js';
import type { AppendResult, AppendRow, JournalKeys, WriteBackJournal } from '../../src/write-back/journal.js';
import { type Change, encodePayload, type RowWrite } from '../../src/write-back/ops.js';

/** A journal to test, the store it belongs to (for generation counters), and its release. */
export interface JournalUnderTest {
  journal: WriteBackJournal;
  store: CacheStore;
  cleanup(): Promise<void>;
}

const TTL = 60_000;
const GROUP = 'tablecache';

const set = (c: string, v: string | null): Change => ({ k: 's', c, v: v === null ? 'n' : `v${v}` });
const unknown = (c: string): Change => ({ k: 's', c, v: 'u' });
const delta = (c: string, v: string, lo?: string, hi?: string): Change =>
  lo === undefined || hi === undefined ? { k: 'd', c, v } : { k: 'd', c, v, lo, hi };

/** The keys of one test table's journal under `tag` (one hash tag, so Redis Cluster takes them too). */
export function journalKeys(tag: string): JournalKeys {
  return {
    stream: `${tag}s`,
    dlq: `${tag}dlq`,
    applied: `${tag}applied`,
    lease: `${tag}lease`,
    epoch: `${tag}epoch`,
    generations: [`${tag}g`, `${tag}rg`],
    requests: `${tag}q:`,
  };
}

/**
 * Runs the WriteBackJournal contract against one store's journal: the row-state machine (the Lua
 * twin must equal the JavaScript one), back-pressure, generations, leases and fencing, claims,
 * acknowledgements, fills and dead letters.
 */
export function runJournalConformance(name: string, make: () => Promise<JournalUnderTest>): void {
  describe(`${name}: WriteBackJournal conformance`, () => {
    let subject: JournalUnderTest | undefined;
    beforeAll(async () => {
      subject = await make();
    });
    afterAll(async () => {
      await subject?.cleanup();
    });
    const journal = () => subject!.journal;

    /** Fresh keys under one hash tag, and helpers bound to them. */
    const table = () => {
      const tag = `tc:jc:{${randomUUID()}}:`;
      const keys = journalKeys(tag);
      const row = (pk: string) => `${tag}r:${pk}`;
      const entry = (write: RowWrite, base?: Record<string, string>): AppendRow => ({
        row: row(write.pk[0] as string),
        write,
        payload: encodePayload(write),
        base,
      });
      const append = (
        writes: (RowWrite | AppendRow)[],
        extra: {
          maxPending?: number;
          want?: string[];
          token?: { t0: number; stamp: string };
          ttlMs?: number;
          requestId?: string;
          forget?: string[];
        } = {},
      ): Promise<AppendResult> =>
        journal().append({
          keys,
          requestId: extra.requestId ?? randomUUID(),
          forget: extra.forget,
          rows: writes.map((w) => ('write' in w ? w : entry(w))),
          maxPending: extra.maxPending ?? 1000,
          ttlMs: extra.ttlMs ?? TTL,
          token: extra.token,
          want: extra.want,
        });
      const read = async (pk: string, want: string[]) =>
        (await journal().readRows({ keys, rows: [row(pk)], want })).rows[0];
      const claim = (consumer = 'c1', count = 100, leaseTtlMs = 10_000) =>
        journal().claim({ keys, group: GROUP, consumer, leaseTtlMs, count });
      return { keys, row, entry, append, read, claim };
    };

    const ins = (pk: string, values: Change[]): RowWrite => ({ k: 'ins', pk: [pk], v: [set('id', pk), ...values] });
    const upd = (pk: string, changes: Change[]): RowWrite => ({ k: 'upd', pk: [pk], s: changes });
    const del = (pk: string): RowWrite => ({ k: 'del', pk: [pk] });
    const present = (values: Record<string, string | null>) => {
      const out: Record<string, string> = { x: '1' };
      for (const [c, v] of Object.entries(values)) out[`c:${c}`] = v === null ? 'n' : `v${v}`;
      return out;
    };

    describe('append', () => {
      it('journals an insert of an uncached row without asking for its base, and serves it', async () => {
        const t = table();
        const result = await t.append([ins('1', [set('views', '0'), set('name', null)])]);
        expect(result).toMatchObject({ status: 'ok', length: 1, rows: [{ count: 1 }] });
        expect(await t.read('1', ['id', 'views', 'name'])).toEqual({
          kind: 'hit',
          fields: { x: '1', 'c:id': 'v1', 'c:views': 'v0', 'c:name': 'n' },
        });
        expect((await journal().status(t.keys)).length).toBe(1);
      });

      it('asks for the base of an uncached row before an update, then applies it on that base', async () => {
        const t = table();
        const first = await t.append([upd('7', [set('name', 'b'), delta('views', '5')])]);
        expect(first.status).toBe('need');
        if (first.status !== 'need') return;
        expect(first.rows).toEqual([0]);
        expect((await journal().status(t.keys)).length).toBe(0);
        const base = present({ id: '7', name: 'a', views: '10' });
        const second = await t.append([t.entry(upd('7', [set('name', 'b'), delta('views', '5')]), base)], {
          token: first.token,
          want: ['name', 'views'],
        });
        expect(second).toMatchObject({
          status: 'ok',
          rows: [{ count: 1, fields: { x: '1', 'c:name': 'vb', 'c:views': 'v15' } }],
        });
      });

      it('refuses a base read under an older generation stamp or after the TTL', async () => {
        const t = table();
        const first = await t.append([upd('1', [set('name', 'x')])]);
        if (first.status !== 'need') throw new Error('expected need');
        await subject!.store.incr([t.keys.generations[1]], { init: Date.now() * 1000 });
        const base = present({ id: '1', name: 'a' });
        const again = await t.append([t.entry(upd('1', [set('name', 'x')]), base)], { token: first.token });
        expect(again.status).toBe('need');
        if (again.status !== 'need') return;
        await sleep(60);
        const late = await t.append([t.entry(upd('1', [set('name', 'x')]), base)], { token: again.token, ttlMs: 50 });
        expect(late.status).toBe('need');
        const fresh = await t.append([t.entry(upd('1', [set('name', 'x')]), base)], { token: again.token });
        expect(fresh.status).toBe('ok');
      });

      it('runs an append once per request id: a re-sent request gets the first result', async () => {
        const t = table();
        const requestId = randomUUID();
        await t.append([ins('1', [set('views', '0')])]);
        const first = await t.append([upd('1', [delta('views', '1')])], { requestId, want: ['views'] });
        const again = await t.append([upd('1', [delta('views', '1')])], { requestId, want: ['views'] });
        expect(again).toEqual(first);
        expect((await journal().status(t.keys)).length).toBe(2);
        expect(await t.read('1', ['views'])).toEqual({ kind: 'hit', fields: { x: '1', 'c:views': 'v1' } });
        // Once forgotten (its reply arrived), the id no longer deduplicates.
        await t.append([ins('2', [])], { forget: [requestId] });
        await t.append([upd('1', [delta('views', '1')])], { requestId });
        expect(await t.read('1', ['views'])).toEqual({ kind: 'hit', fields: { x: '1', 'c:views': 'v2' } });
      });

      it('reports a duplicate insert of a row known to exist and writes nothing', async () => {
        const t = table();
        await t.append([ins('1', [set('views', '1')])]);
        const dup = await t.append([ins('2', [set('views', '1')]), ins('1', [set('views', '2')])]);
        expect(dup).toEqual({ status: 'dup', rows: [1] });
        expect((await journal().status(t.keys)).length).toBe(1);
        expect(await t.read('2', ['views'])).toEqual({ kind: 'miss' });
      });

      it('does not journal writes that change nothing (update or delete of an absent row, insert-or-nothing of a present one)', async () => {
        const t = table();
        await t.append([ins('1', [set('views', '1')]), del('1')]);
        const noop = await t.append([
          upd('1', [set('views', '3')]),
          del('1'),
          ins('2', [set('views', '1')]),
          { k: 'insn', pk: ['2'], v: [set('id', '2'), set('views', '9')] },
        ]);
        expect(noop).toMatchObject({
          status: 'ok',
          rows: [{ count: 0 }, { count: 0 }, { count: 1 }, { count: 0 }],
          length: 3,
        });
        expect(await t.read('1', ['views'])).toEqual({ kind: 'hit', fields: { x: '0' } });
        expect(await t.read('2', ['views'])).toEqual({ kind: 'hit', fields: { x: '1', 'c:views': 'v1' } });
      });

      it('upserts: inserts an absent row, updates a present one', async () => {
        const t = table();
        const ups = (pk: string, views: string): RowWrite => ({
          k: 'ups',
          pk: [pk],
          v: [set('id', pk), set('views', views)],
          s: [delta('views', views)],
        });
        await t.append([ins('1', []), del('1')]);
        await t.append([ups('1', '2'), ups('1', '3')]);
        expect(await t.read('1', ['views'])).toEqual({ kind: 'hit', fields: { x: '1', 'c:views': 'v5' } });
      });

      it('sums deltas exactly, keeps NULL, enforces bounds, and flags unknown and non-decimal values', async () => {
        const t = table();
        await t.append([
          ins('1', [set('a', '9223372036854775800'), set('b', null), set('c', '1.50'), unknown('d'), set('e', 'NaN')]),
        ]);
        const ok = await t.append([upd('1', [delta('a', '7'), delta('b', '5'), delta('c', '-3.125')])], {
          want: ['a', 'b', 'c'],
        });
        expect(ok).toMatchObject({
          status: 'ok',
          rows: [{ fields: { 'c:a': 'v9223372036854775807', 'c:b': 'n', 'c:c': 'v-1.625' } }],
        });
        const range = await t.append([upd('1', [delta('a', '1', '-9223372036854775808', '9223372036854775807')])]);
        expect(range).toEqual({ status: 'range', rows: [0] });
        expect(await t.append([upd('1', [delta('d', '1')])])).toEqual({ status: 'unknown', rows: [0] });
        expect(await t.append([upd('1', [delta('e', '1')])])).toEqual({ status: 'value', rows: [0] });
        expect((await journal().status(t.keys)).length).toBe(2);
      });

      it('adds decimals exactly as the JavaScript row-state machine does', async () => {
        const t = table();
        const samples = [
          '0',
          '1',
          '-1',
          '0.5',
          '-0.5',
          '999.999',
          '-1000.001',
          '123456789012345678901234567890.12',
          '0.000001',
          '-7',
        ];
        const cases: [string, string][] = [];
        for (const a of samples) for (const b of samples) cases.push([a, b]);
        const rows = cases.map(([a], i) => ins(`k${i}`, [set('v', a)]));
        await t.append(rows);
        const result = await t.append(
          cases.map(([, b], i) => upd(`k${i}`, [delta('v', b)])),
          { want: ['v'] },
        );
        if (result.status !== 'ok') throw new Error(`append: ${result.status}`);
        result.rows.forEach((r, i) => {
          const [a, b] = cases[i]!;
          expect(r.fields?.['c:v'], `${a} + ${b}`).toBe(`v${addDecimal(a, b)}`);
        });
      });

      it('returns the row before a delete and the row after other writes', async () => {
        const t = table();
        await t.append([ins('1', [set('name', 'a')])]);
        const upd1 = await t.append([upd('1', [set('name', 'b')])], { want: ['name'] });
        expect(upd1).toMatchObject({ rows: [{ fields: { x: '1', 'c:name': 'vb' } }] });
        const gone = await t.append([del('1')], { want: ['name'] });
        expect(gone).toMatchObject({ rows: [{ count: 1, fields: { x: '1', 'c:name': 'vb' } }] });
      });

      it('applies back-pressure: past maxPending nothing is appended', async () => {
        const t = table();
        expect((await t.append([ins('1', []), ins('2', [])], { maxPending: 2 })).status).toBe('ok');
        expect(await t.append([ins('3', [])], { maxPending: 2 })).toEqual({ status: 'full', length: 2 });
        expect(await t.read('3', [])).toEqual({ kind: 'miss' });
        // A write that journals nothing is not held back.
        expect((await t.append([del('9')], { maxPending: 2 })).status).toBe('need');
      });

      it('treats a row entry under an older generation as missing, or suspect while it has pending writes', async () => {
        const t = table();
        const first = await t.append([upd('1', [])]);
        if (first.status !== 'need') throw new Error('expected need');
        await journal().fillRows({
          keys: t.keys,
          token: first.token,
          ttlMs: TTL,
          rows: [{ row: t.row('1'), base: present({ id: '1' }) }],
          want: [],
        });
        await t.append([ins('2', [set('name', 'p')])]);
        await subject!.store.incr([t.keys.generations[0]], { init: Date.now() * 1000 });
        expect(await t.read('1', [])).toEqual({ kind: 'miss' });
        expect(await t.read('2', ['name'])).toEqual({ kind: 'wait' });
        expect(await t.append([upd('2', [set('name', 'q')])])).toEqual({ status: 'suspect', rows: [0] });
      });
    });

    describe('reads and fills', () => {
      it('fills a missing row from its database base and serves it afterwards', async () => {
        const t = table();
        const r = await journal().readRows({ keys: t.keys, rows: [t.row('1'), t.row('2')], want: ['name'] });
        expect(r.rows).toEqual([{ kind: 'miss' }, { kind: 'miss' }]);
        const filled = await journal().fillRows({
          keys: t.keys,
          token: r.token,
          ttlMs: TTL,
          rows: [
            { row: t.row('1'), base: present({ id: '1', name: 'a' }) },
            { row: t.row('2'), base: { x: '0' } },
          ],
          want: ['name'],
        });
        expect(filled).toEqual([
          { kind: 'hit', fields: { x: '1', 'c:name': 'va' } },
          { kind: 'hit', fields: { x: '0' } },
        ]);
        expect(await t.read('1', ['name'])).toEqual({ kind: 'hit', fields: { x: '1', 'c:name': 'va' } });
      });

      it('does not fill under a stale token, and prefers a row entry written meanwhile', async () => {
        const t = table();
        const r = await journal().readRows({ keys: t.keys, rows: [t.row('1'), t.row('2')], want: ['name'] });
        await t.append([ins('2', [set('name', 'new')])]);
        await subject!.store.incr([t.keys.generations[1]], { init: Date.now() * 1000 });
        const filled = await journal().fillRows({
          keys: t.keys,
          token: r.token,
          ttlMs: TTL,
          rows: [
            { row: t.row('1'), base: present({ id: '1', name: 'old' }) },
            { row: t.row('2'), base: present({ id: '2', name: 'old' }) },
          ],
          want: ['name'],
        });
        expect(filled).toEqual([{ kind: 'stale' }, { kind: 'wait' }]);
      });

      it('makes a reader wait for a column the database has not computed yet', async () => {
        const t = table();
        await t.append([ins('1', [unknown('at'), set('name', 'a')])]);
        expect(await t.read('1', ['name'])).toMatchObject({ kind: 'hit' });
        expect(await t.read('1', ['at'])).toEqual({ kind: 'wait' });
      });
    });

    describe('flusher primitives', () => {
      it('claims entries oldest first under a lease, and hands pending ones out again before new ones', async () => {
        const t = table();
        await t.append([ins('1', []), ins('2', []), ins('3', [])]);
        const first = await t.claim('c1', 2);
        if (first.status !== 'ok') throw new Error('expected ok');
        expect(first.epoch).toBeGreaterThan(0);
        expect(first.entries.map((e) => JSON.parse(e.payload).pk[0])).toEqual(['1', '2']);
        expect(await t.claim('c2')).toMatchObject({ status: 'busy', holder: first.owner });
        const again = await t.claim('c1', 10);
        if (again.status !== 'ok') throw new Error('expected ok');
        expect(again.epoch).toBe(first.epoch);
        expect(again.entries.map((e) => e.id)).toEqual(first.entries.map((e) => e.id));
        expect(again.oldest).toBe(first.entries[0]!.id);
      });

      it('acknowledges only entries still pending, counts them off their rows and expires idle rows', async () => {
        const t = table();
        await t.append([ins('1', [set('name', 'a')]), upd('1', [set('name', 'b')])]);
        const c = await t.claim();
        if (c.status !== 'ok') throw new Error('expected ok');
        const entries = c.entries.map((e) => ({ id: e.id, row: t.row('1') }));
        const last = c.entries[c.entries.length - 1]!.id;
        const acked = await journal().ack({
          keys: t.keys,
          group: GROUP,
          applied: last,
          ttlMs: TTL,
          entries,
          fills: [],
        });
        expect(acked.acked).toEqual(c.entries.map((e) => e.id));
        const twice = await journal().ack({
          keys: t.keys,
          group: GROUP,
          applied: last,
          ttlMs: TTL,
          entries,
          fills: [],
        });
        expect(twice.acked).toEqual([]);
        const status = await journal().status(t.keys);
        expect(status).toMatchObject({ length: 0, applied: last });
        expect(await t.read('1', ['name'])).toEqual({ kind: 'hit', fields: { x: '1', 'c:name': 'vb' } });
        // Row entry with no pending writes: a new generation drops it (it would survive otherwise).
        await subject!.store.incr([t.keys.generations[1]], { init: Date.now() * 1000 });
        expect(await t.read('1', ['name'])).toEqual({ kind: 'miss' });
      });

      it('fills database-computed columns at acknowledgement, and drops rows that stay unknown', async () => {
        const t = table();
        await t.append([ins('1', [set('name', 'a'), unknown('at')]), ins('2', [set('name', 'b'), unknown('at')])]);
        const c = await t.claim();
        if (c.status !== 'ok') throw new Error('expected ok');
        const [e1, e2] = c.entries;
        await journal().ack({
          keys: t.keys,
          group: GROUP,
          applied: e2!.id,
          ttlMs: TTL,
          entries: [
            { id: e1!.id, row: t.row('1') },
            { id: e2!.id, row: t.row('2') },
          ],
          fills: [{ row: t.row('1'), column: 'at', field: 'v2024-01-01 00:00:00' }],
        });
        expect(await t.read('1', ['at'])).toEqual({ kind: 'hit', fields: { x: '1', 'c:at': 'v2024-01-01 00:00:00' } });
        expect(await t.read('2', ['at'])).toEqual({ kind: 'miss' });
        // A row with a column that stays unknown is served to no reader, whatever columns it wants.
        expect(await t.read('2', ['name'])).toEqual({ kind: 'miss' });
        expect(await t.read('1', ['name'])).toEqual({ kind: 'hit', fields: { x: '1', 'c:name': 'va' } });
      });

      it('lets another consumer take over an expired lease with a higher epoch and the pending entries', async () => {
        const t = table();
        await t.append([ins('1', []), ins('2', [])]);
        const a = await t.claim('a', 1, 100);
        if (a.status !== 'ok') throw new Error('expected ok');
        await t.append([ins('3', [])]);
        await sleep(200);
        const b = await t.claim('b', 10, 10_000);
        if (b.status !== 'ok') throw new Error('expected ok');
        expect(b.epoch).toBeGreaterThan(a.epoch);
        expect(b.entries.map((e) => e.id)).toEqual([a.entries[0]!.id]);
        expect(await journal().renewLease({ keys: t.keys, owner: a.owner, leaseTtlMs: 1000 })).toBe(false);
        expect(await journal().renewLease({ keys: t.keys, owner: b.owner, leaseTtlMs: 1000 })).toBe(true);
        await journal().releaseLease({ keys: t.keys, owner: b.owner });
        expect((await journal().status(t.keys)).lease).toBeUndefined();
        await journal().raiseEpoch({ keys: t.keys, atLeast: b.epoch + 10 });
        const c = await t.claim('c');
        expect(c).toMatchObject({ status: 'ok', epoch: b.epoch + 11 });
      });

      it('dead-letters entries only for the lease holder, marks their rows, and replays atomically', async () => {
        const t = table();
        await t.append([ins('1', [set('name', 'a')]), ins('2', [set('name', 'b')]), upd('2', [set('name', 'c')])]);
        const c = await t.claim();
        if (c.status !== 'ok') throw new Error('expected ok');
        const [e1, e2, e3] = c.entries;
        const letters = [{ id: e1!.id, row: t.row('1'), payload: e1!.payload, error: '23505: duplicate key' }];
        expect(await journal().deadLetter({ keys: t.keys, group: GROUP, owner: 'nobody|1', entries: letters })).toBe(
          'lost',
        );
        expect(await journal().deadLetter({ keys: t.keys, group: GROUP, owner: c.owner, entries: letters })).toBe(1);
        expect(await journal().deadLetter({ keys: t.keys, group: GROUP, owner: c.owner, entries: letters })).toBe(0);
        expect(await t.read('1', ['name'])).toEqual({ kind: 'miss' });
        await journal().deadLetter({
          keys: t.keys,
          group: GROUP,
          owner: c.owner,
          entries: [{ id: e2!.id, row: t.row('2'), payload: e2!.payload, error: 'x' }],
        });
        expect(await t.read('2', ['name'])).toEqual({ kind: 'wait' });
        await journal().ack({
          keys: t.keys,
          group: GROUP,
          applied: e3!.id,
          ttlMs: TTL,
          entries: [{ id: e3!.id, row: t.row('2') }],
          fills: [],
        });
        expect(await t.read('2', ['name'])).toEqual({ kind: 'miss' });

        const dead = await journal().deadLetters({ keys: t.keys, count: 10 });
        expect(dead.map((d) => [d.original, d.error])).toEqual([
          [e1!.id, '23505: duplicate key'],
          [e2!.id, 'x'],
        ]);
        expect(JSON.parse(dead[0]!.payload)).toMatchObject({ k: 'ins', pk: ['1'] });
        const replay = await journal().append({
          keys: t.keys,
          requestId: randomUUID(),
          rows: [t.entry(JSON.parse(dead[0]!.payload) as RowWrite)],
          maxPending: 100,
          ttlMs: TTL,
          dlqEntry: dead[0]!.id,
        });
        expect(replay.status).toBe('ok');
        expect((await journal().deadLetters({ keys: t.keys, count: 10 })).map((d) => d.id)).toEqual([dead[1]!.id]);
        expect(await journal().dropDeadLetters({ keys: t.keys, ids: [dead[1]!.id, '1-1'] })).toBe(1);
        expect((await journal().status(t.keys)).deadLetters).toBe(0);
      });

      it('reports its durability settings', async () => {
        const d = await journal().durability();
        expect(d.appendonly === undefined || typeof d.appendonly === 'boolean').toBe(true);
      });
    });
  });
}

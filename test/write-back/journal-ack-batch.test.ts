import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { WriteBackJournal } from '../../src/write-back/journal.js';
import { compareStreamIds, encodePayload, type RowWrite } from '../../src/write-back/ops.js';
import { memoryStore } from '../../stores/memory.js';
import { redisStore } from '../../stores/redis.js';
import { journalKeys } from '../conformance/journal-suite.js';

// The Redis acknowledgement works per batch (one XPENDING scan, bulk XACK/XDEL, one read per row):
// these cases check it answers per entry exactly as the memory journal does.
const GROUP = 'tablecache';
const TTL = 60_000;

const memory = memoryStore();
const redis = redisStore(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
afterAll(async () => {
  await memory.close();
  await redis.close();
});

function table(journal: WriteBackJournal) {
  const tag = `tc:ackb:{${randomUUID()}}:`;
  const keys = journalKeys(tag);
  const row = (pk: string) => `${tag}r:${pk}`;
  const append = async (writes: RowWrite[]) => {
    const result = await journal.append({
      keys,
      requestId: randomUUID(),
      rows: writes.map((write) => ({ row: row(write.pk[0] as string), write, payload: encodePayload(write) })),
      maxPending: 10_000,
      ttlMs: TTL,
    });
    expect(result.status).toBe('ok');
  };
  const claim = async (count = 1000) => {
    const c = await journal.claim({ keys, group: GROUP, consumer: 'c1', leaseTtlMs: 10_000, count });
    if (c.status !== 'ok') throw new Error('expected ok');
    return c.entries.map((e) => ({ id: e.id, pk: (JSON.parse(e.payload) as RowWrite).pk[0] as string }));
  };
  const ack = (entries: { id: string; pk: string }[], fills: { row: string; column: string; field: string }[] = []) =>
    journal.ack({
      keys,
      group: GROUP,
      applied: entries.reduce((a, e) => (compareStreamIds(e.id, a) > 0 ? e.id : a), '0-0'),
      ttlMs: TTL,
      entries: entries.map((e) => ({ id: e.id, row: row(e.pk) })),
      fills,
    });
  /** After a new generation a row with pending writes reads `wait`, one without is dropped (`miss`). */
  const pendingAfterBump = async (pks: string[]) => {
    const store = journal === memory.writeBackJournal ? memory : redis;
    await store.incr([keys.generations[1]], { init: Date.now() * 1000 });
    const read = await journal.readRows({ keys, rows: pks.map(row), want: ['name'] });
    return read.rows.map((r) => r.kind);
  };
  return { keys, row, append, claim, ack, pendingAfterBump };
}

const ins = (pk: string, name = 'a'): RowWrite => ({
  k: 'ins',
  pk: [pk],
  v: [
    { k: 's', c: 'id', v: `v${pk}` },
    { k: 's', c: 'name', v: `v${name}` },
  ],
});
const upd = (pk: string, name: string): RowWrite => ({ k: 'upd', pk: [pk], s: [{ k: 's', c: 'name', v: `v${name}` }] });

describe.each([
  ['memory', () => memory.writeBackJournal],
  ['redis', () => redis.writeBackJournal],
] as const)('%s journal: batch acknowledgement', (_name, journalOf) => {
  it('acknowledges exactly the still-pending entries, in any order, each once, and counts them off exactly', async () => {
    const t = table(journalOf());
    await t.append([ins('1'), upd('1', 'b'), ins('2'), ins('3'), upd('3', 'c')]);
    const [a1, b1, a2, a3, b3] = await t.claim();
    expect((await t.ack([a2!])).acked).toEqual([a2!.id]);
    // Reversed, one listed twice, one already acknowledged, one pending entry (b3) inside the range left out.
    const acked = await t.ack([a3!, b1!, a2!, a1!, b1!]);
    expect(acked.acked).toEqual([a3!.id, b1!.id, a1!.id]);
    expect(await t.claim()).toEqual([b3]);
    // Row 1 has nothing pending, row 3 still has b3.
    expect(await t.pendingAfterBump(['1', '3'])).toEqual(['miss', 'wait']);
    expect((await t.ack([b3!])).acked).toEqual([b3!.id]);
    expect((await journalOf().status(t.keys)).length).toBe(0);
  });

  it('finds pending entries across a range holding many more pending entries than it acknowledges', async () => {
    const t = table(journalOf());
    const pks = Array.from({ length: 300 }, (_, i) => String(i));
    await t.append(pks.map((pk) => ins(pk)));
    const claimed = await t.claim();
    expect(claimed).toHaveLength(300);
    const picked = claimed.filter((_, i) => i % 37 === 0 || i === 299);
    expect((await t.ack(picked)).acked).toEqual(picked.map((e) => e.id));
    const left = await t.claim();
    expect(left).toEqual(claimed.filter((e) => !picked.includes(e)));
    expect((await t.ack(left)).acked).toEqual(left.map((e) => e.id));
  });

  it('fills an unknown column with the first fill given for it', async () => {
    const t = table(journalOf());
    await t.append([{ k: 'ins', pk: ['1'], v: [{ k: 's', c: 'at', v: 'u' }] }]);
    const [e] = await t.claim();
    await t.ack(
      [e!],
      [
        { row: t.row('1'), column: 'at', field: 'vfirst' },
        { row: t.row('1'), column: 'at', field: 'vsecond' },
      ],
    );
    const read = await journalOf().readRows({ keys: t.keys, rows: [t.row('1')], want: ['at'] });
    expect(read.rows).toEqual([{ kind: 'hit', fields: { x: '1', 'c:at': 'vfirst' } }]);
  });
});

/**
 * The write-back journal on Redis: every method is one Lua script (lua.ts), so each step is atomic
 * and Redis-Cluster-safe (all keys of a namespace share one hash slot). The Redis store supplies
 * the script runner; this file never imports a Redis client.
 */
import { createHash } from 'node:crypto';
import { hasBounds } from './bounds.js';
import type {
  AppendResult,
  ClaimResult,
  DeadLetter,
  Fields,
  JournalDurability,
  JournalStatus,
  ReadRow,
  WriteBackJournal,
} from './journal.js';
import * as lua from './lua.js';
import type { RowWrite } from './ops.js';

/** A Lua script with its SHA1, for EVALSHA. */
export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

/** What the Redis store lends the journal: a script runner and its durability check. */
export interface ScriptRunner {
  /** Runs a script (EVALSHA, falling back to EVAL); keys get the client's prefix. */
  run(script: LuaScript, keys: string[], args: string[]): Promise<unknown>;
  /** Reads `appendonly` and `maxmemory-policy`. */
  durability(): Promise<JournalDurability>;
}

function script(text: string): LuaScript {
  return { lua: text, sha: createHash('sha1').update(text).digest('hex') };
}

const SCRIPTS = {
  append: script(lua.APPEND),
  read: script(lua.READ),
  fill: script(lua.FILL),
  claim: script(lua.CLAIM),
  renew: script(lua.RENEW),
  release: script(lua.RELEASE),
  raiseEpoch: script(lua.RAISE_EPOCH),
  ack: script(lua.ACK),
  deadLetter: script(lua.DEAD_LETTER),
  status: script(lua.STATUS),
  dlqList: script(lua.DLQ_LIST),
};

/** Every script, for loading ahead of time or inspection. */
export const WRITE_BACK_SCRIPTS: readonly LuaScript[] = Object.values(SCRIPTS);

interface WireState {
  x?: string;
  c?: Record<string, string>;
}

/** cjson encodes an empty table as `{}`: read it as an empty list. */
function list<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

function fieldsOf(state: WireState | undefined): Fields | undefined {
  if (!state) return undefined;
  const out: Fields = {};
  if (state.x !== undefined) out.x = state.x;
  for (const [column, v] of Object.entries(state.c ?? {})) out[`c:${column}`] = v;
  return out;
}

function readRowOf(wire: { k: string; f?: WireState }): ReadRow | { kind: 'stale' } {
  if (wire.k === 'h') return { kind: 'hit', fields: fieldsOf(wire.f) ?? {} };
  if (wire.k === 'w') return { kind: 'wait' };
  if (wire.k === 's') return { kind: 'stale' };
  return { kind: 'miss' };
}

/** `a < b` for stream ids (`ms-seq`, decimal without leading zeros), without BigInt: ack runs compare thousands. */
function idBefore(a: string, b: string): boolean {
  const ia = a.indexOf('-');
  const ib = b.indexOf('-');
  if (ia !== ib) return ia < ib;
  const ms = a.slice(0, ia);
  const msb = b.slice(0, ib);
  if (ms !== msb) return ms < msb;
  const seq = a.slice(ia + 1);
  const seqb = b.slice(ib + 1);
  return seq.length !== seqb.length ? seq.length < seqb.length : seq < seqb;
}

function text(reply: unknown): string {
  return Buffer.isBuffer(reply) ? reply.toString('utf8') : String(reply);
}

interface ClaimHeader {
  s: string;
  o: string;
  ep?: string;
  len?: string;
  old?: string;
  now?: string;
}

/** Stream entries as XREADGROUP/XAUTOCLAIM list them: `[id, [field, value, ...]]`, null when deleted. */
function entriesOf(listed: unknown): { id: string; payload: string }[] {
  const out: { id: string; payload: string }[] = [];
  for (const e of Array.isArray(listed) ? listed : []) {
    if (!Array.isArray(e) || e[0] == null) continue;
    const fields: unknown[] = Array.isArray(e[1]) ? e[1] : [];
    let payload = '';
    for (let j = 0; j + 1 < fields.length; j += 2) if (text(fields[j]) === 'p') payload = text(fields[j + 1]);
    out.push({ id: text(e[0]), payload });
  }
  return out;
}

async function json<T>(promise: Promise<unknown>): Promise<T> {
  return JSON.parse(text(await promise)) as T;
}

/** Builds the journal on a script runner. */
export function redisJournal(runner: ScriptRunner): WriteBackJournal {
  const run = (s: LuaScript, keys: string[], args: string[]) => runner.run(s, keys, args);
  return {
    async append(request) {
      const { keys } = request;
      const spec: Record<string, unknown> = {
        m: String(request.maxPending),
        ttl: String(Math.max(1, Math.ceil(request.ttlMs))),
        // Payloads go as arguments of their own; the write too only when it has delta bounds.
        rows: request.rows.map((r) => {
          const row: { w?: RowWrite; b?: Fields } = {};
          if (hasBounds(r.write)) row.w = r.write;
          if (r.base) row.b = r.base;
          return row;
        }),
      };
      if (request.token) {
        spec.t0 = String(request.token.t0);
        spec.st = request.token.stamp;
      }
      if (request.want && request.want.length > 0) spec.want = request.want;
      if (request.dlqEntry) spec.dlq = request.dlqEntry;
      const reply = await json<{
        s: string;
        r?: unknown;
        len?: string;
        now?: string;
        t0?: string;
        st?: string;
      }>(
        run(
          SCRIPTS.append,
          [
            keys.stream,
            keys.generations[0],
            keys.generations[1],
            keys.dlq,
            `${keys.requests}${request.requestId}`,
            ...request.rows.map((r) => r.row),
            ...(request.forget ?? []).map((id) => `${keys.requests}${id}`),
          ],
          [JSON.stringify(spec), ...request.rows.map((r) => r.payload)],
        ),
      );
      return appendResultOf(reply);
    },

    async readRows({ keys, rows, want }) {
      const reply = await json<{ t0: string; st: string; r: unknown }>(
        run(
          SCRIPTS.read,
          [...keys.generations, ...rows],
          [JSON.stringify({ want: want.length > 0 ? want : undefined })],
        ),
      );
      return {
        token: { t0: Number(reply.t0), stamp: reply.st },
        rows: list<{ k: string; f?: WireState }>(reply.r).map((w) => readRowOf(w) as ReadRow),
      };
    },

    async fillRows({ keys, token, ttlMs, rows, want }) {
      const spec = {
        t0: String(token.t0),
        st: token.stamp,
        ttl: String(Math.max(1, Math.ceil(ttlMs))),
        want: want.length > 0 ? want : undefined,
        b: rows.map((r) => r.base),
      };
      const reply = await json<unknown>(
        run(SCRIPTS.fill, [...keys.generations, ...rows.map((r) => r.row)], [JSON.stringify(spec)]),
      );
      return list<{ k: string; f?: WireState }>(reply).map(readRowOf);
    },

    async claim({ keys, group, consumer, leaseTtlMs, count }) {
      const reply = await run(
        SCRIPTS.claim,
        [keys.stream, keys.lease, keys.epoch],
        [JSON.stringify({ g: group, c: consumer, ttl: String(Math.ceil(leaseTtlMs)), n: String(count) })],
      );
      const [header, listed] = Array.isArray(reply) ? reply : [reply];
      const head = JSON.parse(text(header)) as ClaimHeader;
      if (head.s === 'busy') return { status: 'busy', holder: head.o } satisfies ClaimResult;
      return {
        status: 'ok',
        epoch: Number(head.ep),
        owner: head.o,
        entries: entriesOf(listed),
        length: Number(head.len),
        oldest: head.old || undefined,
        now: Number(head.now),
      };
    },

    async renewLease({ keys, owner, leaseTtlMs }) {
      return (await run(SCRIPTS.renew, [keys.lease], [owner, String(Math.ceil(leaseTtlMs))])) === 1;
    },

    async releaseLease({ keys, owner }) {
      await run(SCRIPTS.release, [keys.lease], [owner]);
    },

    async raiseEpoch({ keys, atLeast }) {
      await run(SCRIPTS.raiseEpoch, [keys.epoch], [String(atLeast)]);
    },

    async ack({ keys, group, applied, ttlMs, entries, fills }) {
      const rows: string[] = [];
      const index = new Map<string, number>();
      const indexOf = (row: string) => {
        let i = index.get(row);
        if (i === undefined) {
          rows.push(row);
          i = rows.length;
          index.set(row, i);
        }
        return String(i);
      };
      // The id range bounds the script's one XPENDING scan.
      let lo = entries[0]?.id ?? '0-0';
      let hi = lo;
      for (const e of entries) {
        if (idBefore(e.id, lo)) lo = e.id;
        if (idBefore(hi, e.id)) hi = e.id;
      }
      const spec = {
        g: group,
        id: applied,
        ttl: String(Math.max(1, Math.ceil(ttlMs))),
        lo,
        hi,
        e: entries.map((e) => e.id),
        r: entries.map((e) => Number(indexOf(e.row))),
        f: fills.map((f) => [Number(indexOf(f.row)), f.column, f.field]),
      };
      const reply = await json<{ a?: unknown; all?: number; now: string }>(
        run(SCRIPTS.ack, [keys.stream, keys.applied, ...rows], [JSON.stringify(spec)]),
      );
      return { acked: reply.all ? spec.e : list<string>(reply.a), now: Number(reply.now) };
    },

    async deadLetter({ keys, group, owner, entries }) {
      const rows: string[] = [];
      const index = new Map<string, number>();
      const e = entries.map((entry) => {
        let i = index.get(entry.row);
        if (i === undefined) {
          rows.push(entry.row);
          i = rows.length;
          index.set(entry.row, i);
        }
        return [entry.id, String(i), entry.payload, entry.error];
      });
      const moved = Number(
        await run(
          SCRIPTS.deadLetter,
          [keys.stream, keys.dlq, keys.lease, ...rows],
          [JSON.stringify({ g: group, o: owner, e })],
        ),
      );
      return moved < 0 ? 'lost' : moved;
    },

    async status(keys) {
      const r = await json<Record<string, string>>(
        run(SCRIPTS.status, [keys.stream, keys.dlq, keys.applied, keys.lease], []),
      );
      return {
        length: Number(r.len),
        oldest: r.old || undefined,
        newest: r.new || undefined,
        applied: r.applied || undefined,
        lease: r.lease || undefined,
        deadLetters: Number(r.dlq),
        now: Number(r.now),
      } satisfies JournalStatus;
    },

    async deadLetters({ keys, start, count }) {
      const reply = await json<unknown>(run(SCRIPTS.dlqList, [keys.dlq], [start ?? '-', String(count)]));
      return list<Record<string, string>>(reply).map(
        (f): DeadLetter => ({
          id: f.id ?? '',
          original: f.f_id ?? '',
          payload: f.f_p ?? '',
          error: f.f_err ?? '',
          at: Number(f.f_at ?? '0'),
        }),
      );
    },

    async dropDeadLetters({ keys, ids }) {
      if (ids.length === 0) return 0;
      return Number(await run(DLQ_DROP, [keys.dlq], [...ids]));
    },

    durability: () => runner.durability(),
  };
}

const DLQ_DROP = script(`return redis.call('XDEL', KEYS[1], unpack(ARGV))`);

function appendResultOf(reply: {
  s: string;
  r?: unknown;
  len?: string;
  now?: string;
  t0?: string;
  st?: string;
}): AppendResult {
  switch (reply.s) {
    case 'ok':
      return {
        status: 'ok',
        rows: list<{ c: number; f?: WireState }>(reply.r).map((r) => ({ count: Number(r.c), fields: fieldsOf(r.f) })),
        length: Number(reply.len),
        now: Number(reply.now),
      };
    case 'full':
      return { status: 'full', length: Number(reply.len) };
    case 'need':
      return {
        status: 'need',
        rows: list<number>(reply.r).map((i) => i - 1),
        token: { t0: Number(reply.t0), stamp: reply.st ?? '' },
      };
    case 'suspect':
    case 'unknown':
    case 'dup':
    case 'range':
    case 'value':
      return { status: reply.s, rows: list<number>(reply.r).map((i) => i - 1) };
    default:
      throw new Error(`write-back append script returned an unknown status ${JSON.stringify(reply.s)}`);
  }
}

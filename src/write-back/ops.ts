/**
 * Journaled writes: what one insert, upsert, update, increment or delete does to one row, in
 * canonical text. The same object is the stream entry's payload (JSON) and the input of the
 * row-state machine (row-state.ts here, the Lua twin in lua.ts).
 */

/** Kinds of row writes: insert, insert-or-nothing, upsert, update (sets and deltas), delete. */
export type WriteKind = 'ins' | 'insn' | 'ups' | 'upd' | 'del';

/**
 * One column change. `v` holds the row-entry field value: `v<text>` for a value, `n` for NULL,
 * `u` for a value the database computes (a default), or for a delta (`k: 'd'`) the canonical
 * decimal to add; `lo`/`hi` bound a delta's result (the column type's range).
 */
export interface Change {
  /** `s`: set the column to `v`; `d`: add `v` to it. */
  k: 's' | 'd';
  /** The column's database name. */
  c: string;
  /** The field value (set) or the decimal (delta). */
  v: string;
  /** Inclusive lower bound of a delta's result. */
  lo?: string;
  /** Inclusive upper bound of a delta's result. */
  hi?: string;
}

/** One write to one row. */
export interface RowWrite {
  /** What the write does. */
  k: WriteKind;
  /** Canonical text of each primary-key column, in primary-key order. */
  pk: string[];
  /** ins/insn/ups: the inserted row, every column once (`s` changes only). */
  v?: Change[];
  /** ups/upd: the changes to an existing row. */
  s?: Change[];
  /** The W3C traceparent of the request that made the write, linked from the flush span. */
  tp?: string;
}

/** A row as the cache knows it: whether it exists, and each column's field value. */
export interface RowState {
  /** False when the row is known not to exist. */
  exists: boolean;
  /** Column -> `v<text>`, `n` (NULL) or `u` (computed by the database, not known yet). */
  fields: Record<string, string>;
}

/** Field value of a canonical text or NULL. */
export function field(value: string | null): string {
  return value === null ? 'n' : `v${value}`;
}

/** The canonical text (or NULL) of a field value; undefined for `u`. */
export function fieldValue(f: string): string | null | undefined {
  if (f === 'n') return null;
  if (f.startsWith('v')) return f.slice(1);
  return undefined;
}

/** The JSON payload of a stream entry: the write without delta bounds (they only guard the cache). */
export function encodePayload(write: RowWrite): string {
  const strip = (list: Change[] | undefined) => list?.map((c) => ({ k: c.k, c: c.c, v: c.v }));
  const out: RowWrite = { k: write.k, pk: write.pk };
  if (write.v) out.v = strip(write.v) as Change[];
  if (write.s) out.s = strip(write.s) as Change[];
  if (write.tp) out.tp = write.tp;
  return JSON.stringify(out);
}

const KINDS = new Set<string>(['ins', 'insn', 'ups', 'upd', 'del']);

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Parses a payload; throws on anything that is not a well-formed write. */
export function decodePayload(payload: string): RowWrite {
  const value: unknown = JSON.parse(payload);
  if (typeof value !== 'object' || value === null) throw new TypeError('payload is not an object');
  const w = value as Partial<RowWrite>;
  if (typeof w.k !== 'string' || !KINDS.has(w.k)) throw new TypeError('payload has no valid kind');
  const pk = w.pk;
  if (!Array.isArray(pk) || pk.length === 0) throw new TypeError('payload has no valid primary key');
  for (let i = 0; i < pk.length; i++) {
    if (typeof pk[i] !== 'string') throw new TypeError('payload has no valid primary key');
  }
  const out: RowWrite = { k: w.k, pk };
  if (w.v !== undefined) out.v = changesOf(w.v);
  if (w.s !== undefined) out.s = changesOf(w.s);
  if (typeof w.tp === 'string' && TRACEPARENT.test(w.tp)) out.tp = w.tp;
  return out;
}

/** The changes of a payload, copied without anything but `k`, `c` and `v`. */
function changesOf(list: unknown): Change[] {
  if (!Array.isArray(list)) throw new TypeError('payload changes are not a list');
  const out = new Array<Change>(list.length);
  for (let i = 0; i < list.length; i++) {
    const ch = list[i] as Partial<Change> | null;
    if (
      typeof ch !== 'object' ||
      ch === null ||
      (ch.k !== 's' && ch.k !== 'd') ||
      typeof ch.c !== 'string' ||
      typeof ch.v !== 'string'
    ) {
      throw new TypeError('payload has a malformed change');
    }
    out[i] = { k: ch.k, c: ch.c, v: ch.v };
  }
  return out;
}

/** The identity of a row inside its table: the primary-key texts joined unambiguously. */
export function rowIdentity(pk: readonly string[]): string {
  let out = '';
  for (const p of pk) out += `${p.length}:${p}`;
  return out;
}

/** Compares two stream ids (`ms-seq`): -1, 0 or 1. */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const x = BigInt(am) - BigInt(bm);
  if (x !== 0n) return x < 0n ? -1 : 1;
  const y = BigInt(as) - BigInt(bs);
  return y === 0n ? 0 : y < 0n ? -1 : 1;
}

/** The milliseconds part of a stream id (when Redis acknowledged the write). */
export function streamIdMs(id: string): number {
  return Number(id.split('-')[0]);
}

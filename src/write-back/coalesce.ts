/**
 * Folds a batch of journaled writes into per-row plans the database can apply with a few
 * multi-row statements. A plan is a list of rounds; each round is applied as: delete, then
 * insert, then update. Folding keeps each row's order: last write wins per column, deltas are
 * summed (a delta after a set becomes a set), a delete wins over earlier writes, an insert absorbs
 * later updates. Whatever cannot be folded without changing the outcome starts a new round.
 */
import { addDecimal } from './decimal.js';
import { type Change, type RowWrite, rowIdentity } from './ops.js';

/** What an update does to one column: set a field value (`v<text>`, `n`, `u` = DEFAULT) or add a decimal. */
export type ColumnOp = { readonly set: string } | { readonly delta: string };

/** The insert of a round. `ups` inserts or, when the key exists, applies `conflict`. */
export interface InsertStage {
  kind: 'ins' | 'insn' | 'ups';
  /** Column -> field value, every column once (`u`: the column's DEFAULT). */
  values: Map<string, string>;
  /** ups: the changes applied when the key exists. */
  conflict?: Map<string, ColumnOp>;
}

/** One round of a row: delete, then insert, then update. */
export interface RoundOp {
  del: boolean;
  ins?: InsertStage;
  upd?: Map<string, ColumnOp>;
}

/** Everything a batch does to one row. */
export interface RowPlan {
  /** Primary-key texts. */
  readonly pk: string[];
  /** `rowIdentity(pk)`. */
  readonly identity: string;
  rounds: RoundOp[];
  /** Stream ids of the writes folded into this plan, in order. */
  readonly ids: string[];
}

/** Folds writes (in stream order) into one plan per row, rows in order of first appearance. */
export function coalesce(entries: readonly { id: string; write: RowWrite }[]): RowPlan[] {
  const plans = new Map<string, RowPlan>();
  for (const { id, write } of entries) {
    const identity = rowIdentity(write.pk);
    let plan = plans.get(identity);
    if (!plan) {
      plan = { pk: write.pk, identity, rounds: [], ids: [] };
      plans.set(identity, plan);
    }
    plan.ids.push(id);
    fold(plan, write);
  }
  return [...plans.values()];
}

type Existence = 'exists' | 'absent' | 'unknown';

function existence(round: RoundOp): Existence {
  if (round.ins) return 'exists';
  if (round.del) return 'absent';
  return 'unknown';
}

function fold(plan: RowPlan, write: RowWrite): void {
  if (write.k === 'del') {
    plan.rounds = [{ del: true }];
    return;
  }
  let round = plan.rounds[plan.rounds.length - 1];
  if (!round) {
    round = { del: false };
    plan.rounds.push(round);
  }
  const state = existence(round);
  if (write.k === 'upd') {
    if (state === 'absent') return;
    if (round.ins?.kind === 'ins' && !round.upd && mergeIntoValues(round.ins.values, write.s ?? [])) return;
    const merged = mergeOps(round.upd ?? new Map(), write.s ?? []);
    if (merged) round.upd = merged;
    else plan.rounds.push({ del: false, upd: mergeOps(new Map(), write.s ?? []) ?? new Map() });
    return;
  }
  const values = new Map<string, string>();
  for (const c of write.v ?? []) values.set(c.c, c.v);
  const stage: InsertStage = { kind: write.k, values };
  if (write.k === 'ups') stage.conflict = mergeOps(new Map(), write.s ?? []) ?? new Map();
  const insertable = state === 'absent' || (state === 'unknown' && !round.upd);
  if (insertable) {
    round.ins = stage;
    return;
  }
  if (state === 'exists') {
    if (write.k === 'insn') return;
    if (write.k === 'ups' && !(write.s ?? []).some((c) => c.k === 's' && c.v === 'u')) {
      const merged = mergeOps(round.upd ?? new Map(), write.s ?? []);
      if (merged) {
        round.upd = merged;
        return;
      }
    }
  }
  plan.rounds.push({ del: false, ins: stage });
}

/** Applies changes to an insert's values; false (values untouched) when a delta hits a DEFAULT. */
function mergeIntoValues(values: Map<string, string>, changes: readonly Change[]): boolean {
  const staged = new Map(values);
  for (const c of changes) {
    if (c.k === 's') {
      staged.set(c.c, c.v);
      continue;
    }
    const now = staged.get(c.c);
    if (now === undefined || now === 'u') return false;
    if (now === 'n') continue;
    const sum = addDecimal(now.slice(1), c.v);
    if (sum === undefined) return false;
    staged.set(c.c, `v${sum}`);
  }
  for (const [k, v] of staged) values.set(k, v);
  return true;
}

/** Folds changes into column ops; undefined when a delta follows a DEFAULT or a non-decimal set. */
function mergeOps(ops: Map<string, ColumnOp>, changes: readonly Change[]): Map<string, ColumnOp> | undefined {
  const out = new Map(ops);
  for (const c of changes) {
    if (c.k === 's') {
      out.set(c.c, { set: c.v });
      continue;
    }
    const now = out.get(c.c);
    if (now === undefined) out.set(c.c, { delta: c.v });
    else if ('delta' in now) {
      const sum = addDecimal(now.delta, c.v);
      if (sum === undefined) return undefined;
      out.set(c.c, { delta: sum });
    } else if (now.set === 'n') {
      // NULL + n stays NULL.
    } else if (now.set.startsWith('v')) {
      const sum = addDecimal(now.set.slice(1), c.v);
      if (sum === undefined) return undefined;
      out.set(c.c, { set: `v${sum}` });
    } else return undefined;
  }
  return out;
}

/**
 * Splits writes (in stream order) into consecutive runs of at least `size` entries (the last may be
 * shorter) such that every row's writes fall in one run: each run folds exactly as it would inside
 * the whole batch, and is a prefix-closed range of stream ids a transaction can commit on its own.
 */
export function splitByRows<T extends { write: RowWrite }>(entries: readonly T[], size: number): T[][] {
  if (entries.length <= size) return [entries.slice()];
  const identities = entries.map((e) => rowIdentity(e.write.pk));
  const last = new Map<string, number>();
  identities.forEach((id, i) => {
    last.set(id, i);
  });
  const runs: T[][] = [];
  let start = 0;
  let reach = 0;
  for (let i = 0; i < entries.length; i++) {
    reach = Math.max(reach, last.get(identities[i] as string) as number);
    if (reach === i && i + 1 - start >= size) {
      runs.push(entries.slice(start, i + 1));
      start = i + 1;
    }
  }
  if (start < entries.length) runs.push(entries.slice(start));
  return runs;
}

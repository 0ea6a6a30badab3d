/**
 * Transactions a single-connection client opens with raw SQL (`db.execute(sql\`begin\`)`): every
 * statement up to the matching COMMIT or ROLLBACK runs inside them, so they get a frame like
 * `db.transaction` (reads bypass the shared cache, writes publish nothing until the commit).
 */
import type { Engine } from '../../src/engine/engine.js';
import type { TransactionFrame } from '../../src/engine/transaction.js';
import { tokenize } from './sql-lexer.js';

/** The connection state a raw transaction statement changes (part of the session's ClientContext). */
export interface ManualTransactionContext {
  engine: Engine;
  /** On a single connection (a pg Client, PGlite), the open transaction every query belongs to. */
  connectionFrame: TransactionFrame | undefined;
  /** The frame a raw BEGIN opened (undefined inside `db.transaction`). */
  manualFrame?: TransactionFrame | undefined;
  /** Cached reads and row writes issued outside a transaction, until they settle. */
  reads?: Set<Promise<unknown>>;
  /** Set while a BEGIN waits for those; statements issued meanwhile wait for it. */
  gate?: Promise<void> | undefined;
}

/**
 * Before a BEGIN on a single connection: waits for the cached reads and row writes issued before
 * it (each sends its statement after a store round trip; uncached, it would run before BEGIN) and
 * meanwhile holds statements issued after it. Resolves to the call that lets those go once BEGIN
 * was sent. Undefined, synchronously, when nothing is in flight: BEGIN goes out at once.
 */
export function holdForBegin(context: ManualTransactionContext): Promise<() => void> | undefined {
  if (!context.reads || context.reads.size === 0) return undefined;
  const earlier = Promise.allSettled(context.reads);
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  context.gate = gate;
  return earlier.then(() => () => {
    if (context.gate === gate) context.gate = undefined;
    release();
  });
}

/** A BEGIN, or a COMMIT or ROLLBACK (`and chain` begins the next transaction at once). */
export type Control = { verb: 'begin' } | { verb: 'commit' | 'rollback'; chain: boolean };

/** What a statement does to the session's transaction, or undefined when it is no BEGIN/COMMIT/ROLLBACK. */
export function transactionControl(sql: string): Control | undefined {
  const toks = tokenize(sql);
  if (toks.some((t) => t.kind === 'op' && t.value === ';' && t !== toks[toks.length - 1])) return undefined;
  const words = toks.filter((t) => t.kind === 'word').map((t) => t.value);
  const [first, second] = words;
  if (first === 'begin' || (first === 'start' && second === 'transaction')) return { verb: 'begin' };
  // COMMIT/ROLLBACK PREPARED end another transaction; ROLLBACK TO SAVEPOINT ends none.
  if (second === 'prepared' || words.includes('to')) return undefined;
  const chain = words.includes('chain') && !words.includes('no');
  if (first === 'commit' || first === 'end') return { verb: 'commit', chain };
  if (first === 'rollback' || first === 'abort') return { verb: 'rollback', chain };
  return undefined;
}

/**
 * A raw BEGIN outside any transaction, or the COMMIT or ROLLBACK of one; undefined for anything
 * else (`db.transaction`'s own BEGIN and COMMIT run inside its frame and are left to it).
 */
export function manualControl(context: ManualTransactionContext, sql: string): Control | undefined {
  const control = transactionControl(sql);
  if (!control) return undefined;
  if (control.verb === 'begin') return context.connectionFrame ? undefined : control;
  return context.manualFrame ? control : undefined;
}

/**
 * Runs a raw BEGIN, COMMIT or ROLLBACK on a single connection and keeps the connection's frame in
 * step: opened before BEGIN is sent, published after COMMIT (also when COMMIT failed: the outcome
 * is unknown, invalidating is safe), dropped after ROLLBACK.
 */
export function runTransactionControl(
  context: ManualTransactionContext,
  control: Control,
  execute: () => Promise<unknown>,
): Promise<unknown> {
  const { engine } = context;
  if (control.verb === 'begin') {
    const frame = engine.beginTransaction(undefined);
    context.connectionFrame = frame;
    context.manualFrame = frame;
    const held = holdForBegin(context);
    if (!held) return execute();
    return held.then((open) => {
      const sent = execute();
      open();
      return sent;
    });
  }
  const frame = context.manualFrame as TransactionFrame;
  context.manualFrame = undefined;
  context.connectionFrame = undefined;
  if (control.chain) {
    const next = engine.beginTransaction(undefined);
    context.connectionFrame = next;
    context.manualFrame = next;
  }
  return execute().then(
    async (result) => {
      if (control.verb === 'commit') await engine.commitTransaction(frame);
      else engine.rollbackTransaction(frame);
      return result;
    },
    async (error: unknown) => {
      await engine.commitTransaction(frame);
      throw error;
    },
  );
}

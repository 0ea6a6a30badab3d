/**
 * How the flusher tells failures apart. Row errors (a constraint violation, a value the column
 * rejects, an exception raised by a trigger) may be one bad row: after a few attempts the batch is
 * split and the rows that still fail are dead-lettered. Anything else (connection lost, lock or
 * statement timeout, a missing table) blocks the table and is retried with backoff, never dead-lettered.
 */
import { WriteBackError } from '../errors.js';

/** SQLSTATE classes that can be caused by one row's values. */
const ROW_CLASSES = new Set(['22', '23', '27', '44', 'P0']);
const MAX_ERROR_TEXT = 500;

/** The SQLSTATE of an error or of one of its causes. */
export function sqlState(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let e: unknown = error; e && typeof e === 'object' && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** True when the error may come from one row's values (so isolating rows can help). */
export function isRowError(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && ROW_CLASSES.has(state.slice(0, 2));
}

/** The innermost error: the driver's own, not an ORM wrapper whose message repeats the parameters. */
export function rootCause(error: unknown): unknown {
  const seen = new Set<unknown>();
  let e = error;
  while (e && typeof e === 'object' && !seen.has(e) && (e as { cause?: unknown }).cause !== undefined) {
    seen.add(e);
    e = (e as { cause?: unknown }).cause;
  }
  return e;
}

/** `SQLSTATE: message` of the innermost error, for the dead-letter stream (which holds values anyway). */
export function deadLetterText(error: unknown): string {
  const root = rootCause(error);
  const message = root instanceof Error ? root.message : String(root);
  const state = sqlState(error);
  return `${state ?? (root instanceof Error ? root.name : 'Error')}: ${message}`.slice(0, MAX_ERROR_TEXT);
}

/** A short, value-free description for logs: the SQLSTATE, an error code, or the error class. */
export function logText(error: unknown): string {
  const state = sqlState(error);
  if (state) return `SQLSTATE ${state}`;
  const root = rootCause(error);
  const code = (root as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) return code;
  return root instanceof Error ? root.name : 'Error';
}

/** The database's bookkeeping row was written under a newer lease: another flusher took over. */
export class FencedError extends WriteBackError {
  /** The epoch the bookkeeping row holds. */
  readonly storedEpoch: number;

  constructor(table: string, storedEpoch: number, ownEpoch: number) {
    super(
      'E_WRITE_BACK_FENCED',
      `flusher of table "${table}" was fenced off: epoch ${ownEpoch} is older than the committed epoch ${storedEpoch}`,
    );
    this.storedEpoch = storedEpoch;
  }
}

/** The lease was lost while a batch was being applied; the batch is rolled back. */
export class LeaseLostError extends WriteBackError {
  constructor(table: string) {
    super('E_WRITE_BACK_LEASE', `flusher lost the lease of table "${table}" during a flush`);
  }
}

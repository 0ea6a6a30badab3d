/**
 * Comparing cached values with the database's, for the drift sampler and `tablecache verify`.
 * Values are compared through a canonical text form, so two results that hold the same data
 * compare equal whatever their object identity, key order or (for result rows) row order.
 */

/**
 * How strictly values compare. `strict`: types must agree (the same driver produced both sides).
 * `loose`: numbers, bigints and strings compare by their text, so an int8 the app's driver
 * returned as a bigint equals the string another driver returned (the operator CLI).
 */
export type Comparison = 'strict' | 'loose';

/** A canonical text of `value`: equal texts mean equal data. `null` and `undefined` are alike. */
export function canonical(value: unknown, mode: Comparison = 'strict'): string {
  switch (typeof value) {
    case 'undefined':
      return 'N';
    case 'string':
      return `s${JSON.stringify(value)}`;
    case 'number':
      if (mode === 'loose') return `s${JSON.stringify(String(value))}`;
      return Object.is(value, -0) ? 'n-0' : `n${value}`;
    case 'bigint':
      return mode === 'loose' ? `s${JSON.stringify(value.toString())}` : `b${value}`;
    case 'boolean':
      return value ? 'T' : 'F';
    case 'object': {
      if (value === null) return 'N';
      if (value instanceof Date) return `d${value.getTime()}`;
      if (value instanceof Uint8Array) {
        return `x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
      }
      if (Array.isArray(value)) return `[${value.map((v) => canonical(v, mode)).join(',')}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(record[k], mode)}`).join(',')}}`;
    }
    default:
      return `?${String(value)}`;
  }
}

/**
 * Whether two query results hold the same data. Rows (a top-level array, or the `rows` of a
 * driver result) compare as multisets: without ORDER BY, PostgreSQL may return the same rows in
 * another order (synchronized or parallel scans), which is not drift.
 */
export function sameResult(a: unknown, b: unknown): boolean {
  return resultText(a) === resultText(b);
}

/** The columns whose values differ between a cached row and the database's row. */
export function differingColumns(
  cached: Readonly<Record<string, unknown>>,
  database: Readonly<Record<string, unknown>>,
  mode: Comparison = 'loose',
): string[] {
  const columns = new Set([...Object.keys(cached), ...Object.keys(database)]);
  return [...columns].filter((c) => canonical(cached[c], mode) !== canonical(database[c], mode));
}

function resultText(value: unknown): string {
  if (Array.isArray(value)) return rowsText(value);
  if (value === null || typeof value !== 'object' || !Array.isArray((value as { rows?: unknown }).rows)) {
    return canonical(value);
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${k === 'rows' ? rowsText(record[k] as unknown[]) : canonical(record[k])}`).join(',')}}`;
}

function rowsText(rows: readonly unknown[]): string {
  return `[${rows
    .map((r) => canonical(r))
    .sort()
    .join(',')}]`;
}

/**
 * PostgreSQL array literals of texts: one bound parameter carries a whole column of a batch, so a
 * multi-row statement has one parameter per column and a text that does not depend on the row count.
 */

const NEEDS_ESCAPE = /["\\]/;
const ESCAPED = /["\\]/g;

/**
 * The array literal `{"a","b",NULL}` of `values`: every element double-quoted (backslash and quote
 * escaped), SQL NULL unquoted. Parsed by the server with `$n::text::text[]`, never spliced into SQL.
 */
export function textArrayLiteral(values: readonly (string | null)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else parts[i] = `"${NEEDS_ESCAPE.test(v) ? v.replace(ESCAPED, '\\$&') : v}"`;
  }
  return `{${parts.join(',')}}`;
}

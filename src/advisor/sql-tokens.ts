/**
 * A minimal PostgreSQL tokenizer for classifying recorded statements: words (lowercased),
 * quoted identifiers (unescaped), strings, numbers, `$n` parameters and single-character
 * punctuation. Comments and whitespace are dropped. Never throws; linear time.
 */

/** One token of a statement. */
export interface SqlToken {
  /** What the token is. */
  readonly kind: 'word' | 'ident' | 'string' | 'number' | 'param' | 'punct';
  /** A word lowercased, an identifier unescaped, a string's content, or the text as written. */
  readonly value: string;
}

const WORD_START = /[A-Za-z_\u0080-\uffff]/;
const WORD_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/** Splits `sql` into tokens. Unterminated strings, identifiers and comments end at the end of the text. */
export function sqlTokens(sql: string): SqlToken[] {
  const out: SqlToken[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      i = skipBlockComment(sql, i);
    } else if (c === '"' || c === "'") {
      const [value, next] = quoted(sql, i, c);
      out.push({ kind: c === '"' ? 'ident' : 'string', value });
      i = next;
    } else if (c === '$' && /[0-9]/.test(sql[i + 1] ?? '')) {
      let j = i + 1;
      while (j < n && /[0-9]/.test(sql[j] as string)) j++;
      out.push({ kind: 'param', value: sql.slice(i, j) });
      i = j;
    } else if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < n && /[0-9.eE]/.test(sql[j] as string)) j++;
      out.push({ kind: 'number', value: sql.slice(i, j) });
      i = j;
    } else if (WORD_START.test(c)) {
      let j = i + 1;
      while (j < n && WORD_PART.test(sql[j] as string)) j++;
      const word = sql.slice(i, j);
      // E'...' and similar prefixed strings: the prefix is not a word of the statement.
      if (sql[j] === "'" && /^[eEbBxXnN]$/.test(word)) {
        const [value, next] = quoted(sql, j, "'");
        out.push({ kind: 'string', value });
        i = next;
      } else {
        out.push({ kind: 'word', value: word.replace(/[A-Z]/g, (ch) => ch.toLowerCase()) });
        i = j;
      }
    } else {
      out.push({ kind: 'punct', value: c });
      i++;
    }
  }
  return out;
}

/** Reads a '...' or "..." token starting at `start`; a doubled quote is one quote. */
function quoted(sql: string, start: number, quote: string): [string, number] {
  let value = '';
  let i = start + 1;
  while (i < sql.length) {
    const end = sql.indexOf(quote, i);
    if (end === -1) return [value + sql.slice(i), sql.length];
    value += sql.slice(i, end);
    if (sql[end + 1] === quote) {
      value += quote;
      i = end + 2;
    } else {
      return [value, end + 1];
    }
  }
  return [value, sql.length];
}

/** Skips a block comment (they nest in PostgreSQL). */
function skipBlockComment(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i += 2;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else {
      i++;
    }
  }
  return sql.length;
}

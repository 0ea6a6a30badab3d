/**
 * A small PostgreSQL tokenizer. It never throws: malformed input (an unterminated string,
 * comment or quoted identifier) simply ends at the end of the text, and the token says so.
 * Every character is visited a bounded number of times, so it runs in linear time.
 */

/** What a token is; `space` and `comment` are only returned with `{ trivia: true }`. */
export type TokenKind =
  | 'space'
  | 'comment'
  | 'word'
  | 'ident'
  | 'string'
  | 'number'
  | 'param'
  | 'open'
  | 'close'
  | 'op';

/** One lexical token; `start`/`end` are offsets into the source text. */
export interface Token {
  /** The token kind. */
  kind: TokenKind;
  /** Offset of the first character. */
  start: number;
  /** Offset just past the last character. */
  end: number;
  /** The source text of the token, unchanged. */
  text: string;
  /**
   * The meaning: a word lowercased (ASCII only, like PostgreSQL), an identifier unescaped, a
   * string's content, a parameter's number, an operator or punctuation as written.
   */
  value: string;
  /** True when a string, quoted identifier or comment ran to the end of the text unterminated. */
  unterminated?: boolean;
  /**
   * True for a plain '...' string holding a backslash: its meaning depends on the server's
   * standard_conforming_strings, so a caller may not want to trust what follows it.
   */
  backslash?: boolean;
}

/** Options for {@link tokenize}. */
export interface TokenizeOptions {
  /** Also return whitespace and comment tokens (default false). */
  trivia?: boolean;
}

const OPERATOR_CHARS = new Set('+-*/<>=~!@#%^&|`?');

function isWordStart(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || code === 95 || code >= 128;
}

function isWordPart(code: number): boolean {
  return isWordStart(code) || isDigit(code) || code === 36;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isSpace(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13 || code === 12 || code === 11;
}

/** Lowercases ASCII letters only, as PostgreSQL folds unquoted identifiers in UTF-8 databases. */
export function foldIdentifier(text: string): string {
  return text.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Splits PostgreSQL text into tokens; never throws, linear in the length of `sql`. */
export function tokenize(sql: string, options: TokenizeOptions = {}): Token[] {
  const tokens: Token[] = [];
  const keepTrivia = options.trivia === true;
  const n = sql.length;
  let i = 0;

  const push = (kind: TokenKind, start: number, end: number, value: string, extra?: Partial<Token>): void => {
    if (!keepTrivia && (kind === 'space' || kind === 'comment')) return;
    tokens.push({ kind, start, end, text: sql.slice(start, end), value, ...extra });
  };

  while (i < n) {
    const start = i;
    const c = sql.charCodeAt(i);
    const next = i + 1 < n ? sql.charCodeAt(i + 1) : -1;

    if (isSpace(c)) {
      while (i < n && isSpace(sql.charCodeAt(i))) i++;
      push('space', start, i, ' ');
      continue;
    }
    if (c === 45 && next === 45) {
      // -- line comment
      const nl = sql.indexOf('\n', i);
      i = nl === -1 ? n : nl;
      push('comment', start, i, '');
      continue;
    }
    if (c === 47 && next === 42) {
      const comment = skipBlockComment(sql, i);
      i = comment.end;
      push('comment', start, i, '', comment.closed ? undefined : { unterminated: true });
      continue;
    }
    if (c === 39) {
      const s = readQuoted(sql, i, 39, false);
      i = s.end;
      push('string', start, i, s.value, stringFlags(s, true));
      continue;
    }
    if (c === 34) {
      const s = readQuoted(sql, i, 34, false);
      i = s.end;
      push('ident', start, i, s.value, s.unterminated ? { unterminated: true } : undefined);
      continue;
    }
    if (isWordStart(c)) {
      // Prefixed strings and identifiers: E'..', B'..', X'..', N'..', U&'..', U&".."
      const lower = c | 32;
      if (next === 39 && (lower === 101 || lower === 98 || lower === 120 || lower === 110)) {
        const s = readQuoted(sql, i + 1, 39, lower === 101);
        i = s.end;
        push('string', start, i, s.value, stringFlags(s, lower === 110));
        continue;
      }
      if (lower === 117 && next === 38 && i + 2 < n) {
        const q = sql.charCodeAt(i + 2);
        if (q === 39 || q === 34) {
          const s = readQuoted(sql, i + 2, q, false);
          i = s.end;
          const value = decodeUnicodeEscapes(s.value);
          push(q === 39 ? 'string' : 'ident', start, i, value, s.unterminated ? { unterminated: true } : undefined);
          continue;
        }
      }
      while (i < n && isWordPart(sql.charCodeAt(i))) i++;
      const text = sql.slice(start, i);
      push('word', start, i, foldIdentifier(text));
      continue;
    }
    if (isDigit(c) || (c === 46 && isDigit(next))) {
      i = readNumber(sql, i);
      push('number', start, i, sql.slice(start, i));
      continue;
    }
    if (c === 36) {
      if (isDigit(next)) {
        i++;
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
        push('param', start, i, sql.slice(start + 1, i));
        continue;
      }
      const dollar = readDollarQuoted(sql, i);
      if (dollar) {
        i = dollar.end;
        push('string', start, i, dollar.value, dollar.unterminated ? { unterminated: true } : undefined);
        continue;
      }
      i++;
      push('op', start, i, '$');
      continue;
    }
    if (c === 40) {
      i++;
      push('open', start, i, '(');
      continue;
    }
    if (c === 41) {
      i++;
      push('close', start, i, ')');
      continue;
    }
    if (c === 58 && next === 58) {
      i += 2;
      push('op', start, i, '::');
      continue;
    }
    if (OPERATOR_CHARS.has(sql[i] as string)) {
      i++;
      // An operator ends where a comment starts, as in PostgreSQL.
      while (i < n && OPERATOR_CHARS.has(sql[i] as string) && !startsComment(sql, i)) i++;
      push('op', start, i, sql.slice(start, i));
      continue;
    }
    // Single-character punctuation: , ; . [ ] : and anything unknown.
    const cp = sql.codePointAt(i) ?? c;
    i += cp > 0xffff ? 2 : 1;
    push('op', start, i, sql.slice(start, i));
  }
  return tokens;
}

function startsComment(sql: string, i: number): boolean {
  const a = sql.charCodeAt(i);
  const b = sql.charCodeAt(i + 1);
  return (a === 45 && b === 45) || (a === 47 && b === 42);
}

function stringFlags(s: QuotedRead, checkBackslash: boolean): Partial<Token> | undefined {
  const flags: Partial<Token> = {};
  if (s.unterminated) flags.unterminated = true;
  if (checkBackslash && s.value.includes('\\')) flags.backslash = true;
  return flags.unterminated || flags.backslash ? flags : undefined;
}

/** Skips a possibly nested block comment starting at `i`; returns the offset after it. */
function skipBlockComment(sql: string, i: number): { end: number; closed: boolean } {
  const n = sql.length;
  let depth = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    const d = sql.charCodeAt(i + 1);
    if (c === 47 && d === 42) {
      depth++;
      i += 2;
    } else if (c === 42 && d === 47) {
      depth--;
      i += 2;
      if (depth === 0) return { end: i, closed: true };
    } else {
      i++;
    }
  }
  return { end: n, closed: false };
}

interface QuotedRead {
  end: number;
  value: string;
  unterminated: boolean;
}

/**
 * Reads a quoted run starting at the opening quote `i`: a doubled quote is an escaped quote,
 * and with `backslashEscapes` (E'' strings) a backslash escapes the next character.
 */
function readQuoted(sql: string, i: number, quote: number, backslashEscapes: boolean): QuotedRead {
  const n = sql.length;
  let j = i + 1;
  let value = '';
  let chunk = j;
  while (j < n) {
    const c = sql.charCodeAt(j);
    if (backslashEscapes && c === 92) {
      value += sql.slice(chunk, j);
      const decoded = decodeBackslash(sql, j + 1);
      value += decoded.text;
      j = decoded.end;
      chunk = j;
      continue;
    }
    if (c === quote) {
      if (sql.charCodeAt(j + 1) === quote) {
        value += sql.slice(chunk, j + 1);
        j += 2;
        chunk = j;
        continue;
      }
      value += sql.slice(chunk, j);
      return { end: j + 1, value, unterminated: false };
    }
    j++;
  }
  value += sql.slice(chunk, n);
  return { end: n, value, unterminated: true };
}

const SIMPLE_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Decodes one E'' backslash escape whose body starts at `i` (just after the backslash). */
function decodeBackslash(sql: string, i: number): { text: string; end: number } {
  if (i >= sql.length) return { text: '', end: i };
  const ch = sql[i] as string;
  const simple = SIMPLE_ESCAPES[ch];
  if (simple !== undefined) return { text: simple, end: i + 1 };
  let m = /^[0-7]{1,3}/.exec(sql.slice(i, i + 3));
  if (m) return { text: String.fromCharCode(Number.parseInt(m[0], 8) & 0xff), end: i + m[0].length };
  if (ch === 'x') {
    m = /^[0-9a-fA-F]{1,2}/.exec(sql.slice(i + 1, i + 3));
    if (m) return { text: String.fromCharCode(Number.parseInt(m[0], 16)), end: i + 1 + m[0].length };
  }
  if (ch === 'u' || ch === 'U') {
    const len = ch === 'u' ? 4 : 8;
    const hex = sql.slice(i + 1, i + 1 + len);
    if (hex.length === len && /^[0-9a-fA-F]+$/.test(hex)) {
      return { text: safeCodePoint(Number.parseInt(hex, 16)), end: i + 1 + len };
    }
  }
  return { text: ch, end: i + 1 };
}

function safeCodePoint(cp: number): string {
  return cp >= 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
}

/** Decodes U&'' / U&"" escapes with the default escape character (\XXXX, \+XXXXXX, \\). */
function decodeUnicodeEscapes(body: string): string {
  return body.replace(/\\(\\|[0-9a-fA-F]{4}|\+[0-9a-fA-F]{6})/g, (_m, esc: string) => {
    if (esc === '\\') return '\\';
    return safeCodePoint(Number.parseInt(esc.startsWith('+') ? esc.slice(1) : esc, 16));
  });
}

/** Reads a number starting at `i` (digits, underscores, a fraction, an exponent, 0x/0o/0b). */
function readNumber(sql: string, i: number): number {
  const n = sql.length;
  const c = sql.charCodeAt(i);
  const p = sql.charCodeAt(i + 1) | 32;
  if (c === 48 && (p === 120 || p === 111 || p === 98)) {
    i += 2;
    while (i < n && /[0-9a-fA-F_]/.test(sql[i] as string)) i++;
    return i;
  }
  while (i < n && (isDigit(sql.charCodeAt(i)) || sql.charCodeAt(i) === 95)) i++;
  if (sql.charCodeAt(i) === 46 && sql.charCodeAt(i + 1) !== 46) {
    i++;
    while (i < n && (isDigit(sql.charCodeAt(i)) || sql.charCodeAt(i) === 95)) i++;
  }
  if ((sql.charCodeAt(i) | 32) === 101) {
    let j = i + 1;
    const s = sql.charCodeAt(j);
    if (s === 43 || s === 45) j++;
    if (isDigit(sql.charCodeAt(j))) {
      i = j;
      while (i < n && isDigit(sql.charCodeAt(i))) i++;
    }
  }
  return i;
}

/** Reads $tag$...$tag$ at `i`, or returns null when `$` does not open a dollar quote here. */
function readDollarQuoted(sql: string, i: number): QuotedRead | null {
  let j = i + 1;
  const n = sql.length;
  if (j < n && isWordStart(sql.charCodeAt(j))) {
    j++;
    while (j < n && (isWordStart(sql.charCodeAt(j)) || isDigit(sql.charCodeAt(j)))) j++;
  }
  if (sql.charCodeAt(j) !== 36) return null;
  const tag = sql.slice(i, j + 1);
  const bodyStart = j + 1;
  const close = sql.indexOf(tag, bodyStart);
  if (close === -1) return { end: n, value: sql.slice(bodyStart), unterminated: true };
  return { end: close + tag.length, value: sql.slice(bodyStart, close), unterminated: false };
}

import { type SqlToken, sqlTokens } from './sql-tokens.js';

/** A write statement as recorded by pg_stat_statements, reduced to what the advisor needs. */
export interface WriteStatement {
  /** The statement kind. */
  readonly kind: 'insert' | 'update' | 'delete';
  /** The schema, when the statement qualifies the table name. */
  readonly schema?: string | undefined;
  /** The table written. */
  readonly table: string;
  /**
   * Columns the statement pins to given values: an INSERT ... VALUES column list, or columns an
   * UPDATE/DELETE WHERE compares by `=`, `IN (...)` or `= ANY(...)` with parameters or literals
   * (in conjuncts only). Empty when the statement pins nothing (joins, ORs, ranges, INSERT ... SELECT).
   */
  readonly pinned: ReadonlySet<string>;
}

const NOTHING: ReadonlySet<string> = new Set();

/** Classifies an INSERT, UPDATE or DELETE; undefined for anything else (including `WITH ...`). */
export function classifyWrite(sql: string): WriteStatement | undefined {
  const t = sqlTokens(sql);
  const first = word(t[0]);
  if (first === 'insert' && word(t[1]) === 'into') return insert(t);
  if (first === 'update') return updateOrDelete(t, 'update', 1);
  if (first === 'delete' && word(t[1]) === 'from') return updateOrDelete(t, 'delete', 2);
  return undefined;
}

/** True when the statement addresses rows by their whole primary key. */
export function writesByKey(statement: WriteStatement, primaryKey: readonly string[]): boolean {
  return primaryKey.length > 0 && primaryKey.every((column) => statement.pinned.has(column));
}

function insert(t: SqlToken[]): WriteStatement | undefined {
  const target = tableName(t, 2);
  if (target === undefined) return undefined;
  let i = skipAlias(t, target.next, ['(', 'values', 'select', 'default', 'overriding']);
  const columns = new Set<string>();
  if (punct(t[i]) === '(') {
    i++;
    while (i < t.length && punct(t[i]) !== ')') {
      const name = identifier(t[i]);
      if (name !== undefined) columns.add(name);
      i++;
    }
    i++;
  }
  if (word(t[i]) === 'overriding') i += 3;
  const pinned = word(t[i]) === 'values' ? columns : NOTHING;
  return { kind: 'insert', schema: target.schema, table: target.name, pinned };
}

function updateOrDelete(t: SqlToken[], kind: 'update' | 'delete', at: number): WriteStatement | undefined {
  const start = word(t[at]) === 'only' ? at + 1 : at;
  const target = tableName(t, start);
  if (target === undefined) return undefined;
  const body = t.slice(target.next);
  const joined = kind === 'update' ? 'from' : 'using';
  const where = topLevelIndex(body, 'where');
  const join = topLevelIndex(body, joined);
  if (where === -1 || (join !== -1 && join < where)) {
    return { kind, schema: target.schema, table: target.name, pinned: NOTHING };
  }
  const returning = topLevelIndex(body, 'returning');
  const condition = body.slice(where + 1, returning === -1 ? body.length : returning);
  return { kind, schema: target.schema, table: target.name, pinned: pinnedColumns(condition) };
}

/** Columns a condition pins to given values through its top-level conjuncts. */
function pinnedColumns(tokens: readonly SqlToken[]): ReadonlySet<string> {
  const inner = unwrap(tokens);
  const parts = splitTopLevel(inner, 'and');
  if (parts.length > 1) {
    const all = new Set<string>();
    for (const part of parts) for (const column of pinnedColumns(part)) all.add(column);
    return all;
  }
  if (topLevelIndex(inner, 'or') !== -1) return NOTHING;
  const column = pinnedColumn(inner);
  return column === undefined ? NOTHING : new Set([column]);
}

/** The column of `col = value`, `value = col`, `col IN (values)` or `col = ANY(value)`. */
function pinnedColumn(t: readonly SqlToken[]): string | undefined {
  const ref = columnRef(t, 0);
  if (ref !== undefined) {
    const rest = t.slice(ref.next);
    if (punct(rest[0]) === '=' && isValue(rest.slice(1))) return ref.name;
    if (punct(rest[0]) === '=' && word(rest[1]) === 'any' && isParenValues(rest.slice(2))) return ref.name;
    if (word(rest[0]) === 'in' && isParenValues(rest.slice(1))) return ref.name;
  }
  const eq = t.findIndex((token) => punct(token) === '=');
  if (eq > 0 && isValue(t.slice(0, eq))) {
    const right = columnRef(t, eq + 1);
    if (right !== undefined && right.next === t.length) return right.name;
  }
  return undefined;
}

/** A parameter or literal, optionally cast with `::type` or `::type[]`. */
function isValue(t: readonly SqlToken[]): boolean {
  const head = t[0];
  if (head === undefined || !['param', 'string', 'number'].includes(head.kind)) return false;
  let i = 1;
  while (i < t.length) {
    if (punct(t[i]) !== ':' || punct(t[i + 1]) !== ':' || identifier(t[i + 2]) === undefined) return false;
    i += 3;
    while (punct(t[i]) === '[' && punct(t[i + 1]) === ']') i += 2;
  }
  return true;
}

/** `( value [, value]* )` and nothing after. */
function isParenValues(t: readonly SqlToken[]): boolean {
  if (punct(t[0]) !== '(' || punct(t[t.length - 1]) !== ')') return false;
  const inner = splitTopLevel(t.slice(1, -1), ',');
  return inner.length > 0 && inner.every(isValue);
}

/** A possibly qualified column reference at `i`; `name` is its last part. */
function columnRef(t: readonly SqlToken[], i: number): { name: string; next: number } | undefined {
  let name = identifier(t[i]);
  if (name === undefined || (t[i]?.kind === 'word' && RESERVED.has(name))) return undefined;
  let next = i + 1;
  while (punct(t[next]) === '.' && identifier(t[next + 1]) !== undefined) {
    name = identifier(t[next + 1]) as string;
    next += 2;
  }
  return { name, next };
}

/** `[schema.]table` at `i`. */
function tableName(t: readonly SqlToken[], i: number): { schema?: string; name: string; next: number } | undefined {
  const first = identifier(t[i]);
  if (first === undefined) return undefined;
  if (punct(t[i + 1]) === '.') {
    const second = identifier(t[i + 2]);
    if (second === undefined) return undefined;
    return { schema: first, name: second, next: i + 3 };
  }
  return { name: first, next: i + 1 };
}

/** Skips `[AS] alias` (and UPDATE's `*`) unless the next word is one of `stops`. */
function skipAlias(t: readonly SqlToken[], i: number, stops: readonly string[]): number {
  let j = i;
  if (punct(t[j]) === '*') j++;
  if (word(t[j]) === 'as') return j + 2;
  const next = t[j];
  if (next !== undefined && next.kind !== 'punct' && !stops.includes(next.value) && identifier(next) !== undefined) {
    return j + 1;
  }
  return j;
}

const RESERVED = new Set(['not', 'exists', 'true', 'false', 'null', 'case', 'select', 'any', 'all', 'array']);

/** Drops parentheses that wrap the whole token list. */
function unwrap(tokens: readonly SqlToken[]): readonly SqlToken[] {
  let t = tokens;
  while (punct(t[0]) === '(' && closingOf(t, 0) === t.length - 1) t = t.slice(1, -1);
  return t;
}

function closingOf(t: readonly SqlToken[], open: number): number {
  let depth = 0;
  for (let i = open; i < t.length; i++) {
    if (punct(t[i]) === '(') depth++;
    else if (punct(t[i]) === ')' && --depth === 0) return i;
  }
  return -1;
}

/** Index of the first `word` (or punctuation) outside parentheses, or -1. */
function topLevelIndex(t: readonly SqlToken[], what: string): number {
  let depth = 0;
  for (let i = 0; i < t.length; i++) {
    const p = punct(t[i]);
    if (p === '(') depth++;
    else if (p === ')') depth--;
    else if (depth === 0 && (word(t[i]) === what || p === what)) return i;
  }
  return -1;
}

function splitTopLevel(t: readonly SqlToken[], separator: string): SqlToken[][] {
  const parts: SqlToken[][] = [[]];
  let depth = 0;
  for (const token of t) {
    const p = punct(token);
    if (p === '(') depth++;
    else if (p === ')') depth--;
    if (depth === 0 && (word(token) === separator || p === separator)) parts.push([]);
    else parts[parts.length - 1]?.push(token);
  }
  return parts;
}

function word(token: SqlToken | undefined): string | undefined {
  return token?.kind === 'word' ? token.value : undefined;
}

function punct(token: SqlToken | undefined): string | undefined {
  return token?.kind === 'punct' ? token.value : undefined;
}

function identifier(token: SqlToken | undefined): string | undefined {
  return token?.kind === 'word' || token?.kind === 'ident' ? token.value : undefined;
}

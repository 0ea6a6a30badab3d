/**
 * Finds which relations a PostgreSQL statement reads and writes, from its text alone.
 * Over-approximation is safe (more invalidation), under-approximation is not: whenever the
 * text holds something this scanner cannot see through, it says so with `complete: false`.
 */
import { CacheError } from '../../src/errors.js';
import { type Token, tokenize } from './sql-lexer.js';
import { TokenCursor } from './token-cursor.js';

/** A relation name as written: `schema` only when the SQL qualified it. */
export interface QualifiedName {
  /** The schema, when the SQL named one. */
  schema?: string;
  /** The relation (table, view, ...) name, unescaped and case-folded as PostgreSQL does. */
  name: string;
}

/** What {@link scanReads} found. */
export interface ReadScan {
  /** Every relation read, in order of first mention; never a CTE reference. */
  relations: QualifiedName[];
  /** Every CTE name the statement defines. */
  ctes: string[];
  /** False when the statement may read something not listed (function in FROM, DML in a CTE, ...). */
  complete: boolean;
}

/** What {@link classifyStatement} found. */
export interface StatementClass {
  /** 'read' for a plain query, 'write' when anything may change data, 'other' for session/transaction commands. */
  kind: 'read' | 'write' | 'other';
  /** Relations written, in order of first mention. */
  writes: QualifiedName[];
  /** False when the statement may write relations not listed (DDL, DO, CALL, CASCADE, ...). */
  writesComplete: boolean;
  /** The reads, as {@link scanReads} reports them. */
  reads: ReadScan;
  /** True for SELECT ... FOR UPDATE/SHARE and LOCK: never serve these from a cache. */
  locking: boolean;
  /** Functions called that are neither built-in nor declared safe (each makes the statement a write). */
  unknownFunctions: string[];
}

/** A column in a point read's select list. */
export interface ColumnRef {
  /** The qualifier (table or alias) when the column was written as `"t"."c"`. */
  table?: string;
  /** The column name. */
  column: string;
}

/**
 * A recognised primary-key style lookup. `predicate` maps each column to a `$n` index (equality)
 * or a list of indexes; lists all have the same length and are read position by position, scalar
 * entries apply to every position. `keys` spells that out as one column -> index map per key.
 */
export interface PointRead {
  /** The table read. */
  table: QualifiedName;
  /** The alias after the table, when there is one. */
  alias?: string;
  /** The selected columns, in order. */
  columns: ColumnRef[];
  /** Column -> parameter index (1-based, as in `$1`) or list of indexes. */
  predicate: Record<string, number | number[]>;
  /** Every key the predicate selects, as column -> parameter index. */
  keys: Record<string, number>[];
  /** The parameter index of `limit $n`, when present. */
  limitParam?: number;
}

const RESERVED = words(`
  all analyse analyze and any array as asc asymmetric both case cast check collate column constraint create
  current_catalog current_date current_role current_time current_timestamp current_user default deferrable desc
  distinct do else end except false fetch for foreign from grant group having in initially intersect into lateral
  leading limit localtime localtimestamp not null offset on only or order placing primary references returning
  select session_user some symmetric system_user table then to trailing true union unique user using variadic when
  where window with
  authorization binary collation concurrently cross current_schema freeze full ilike inner is isnull join left like
  natural notnull outer overlaps right similar tablesample verbose`);

/** Words that end a FROM list (so a comma after them is not another FROM item). */
const FROM_END = words(`where group having window order limit offset fetch for union intersect except returning
  when set select values into do`);

/** Non-reserved words that are SQL syntax or types when followed by `(`, not user functions. */
const SYNTAX_CALLS = words(`
  between bigint bit boolean char character coalesce dec decimal exists extract float greatest grouping inout int
  integer interval json json_array json_arrayagg json_exists json_object json_objectagg json_query json_scalar
  json_serialize json_value least merge_action national nchar none normalize nullif numeric out overlay position
  precision real row setof smallint substring time timestamp treat trim varchar xmlattributes xmlconcat xmlelement
  xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize varying values insert update delete merge
  set conflict key filter over within partition by rows range groups sets rollup cube ordinality nothing nulls
  first last zone escape materialized recursive search cycle matched xmltable json_table
  copy explain vacuum reindex cluster
  date text int2 int4 int8 float4 float8 bool timestamptz timetz uuid jsonb inet cidr macaddr bytea name oid money
  tsvector tsquery`);

/**
 * Built-in functions that neither read user relations nor change anything. A call to any other
 * function (user-defined, nextval, pg_advisory_lock, dblink, ...) makes a scan incomplete.
 */
const BUILTIN_FUNCTIONS = words(`
  count sum avg min max array_agg string_agg json_agg jsonb_agg json_object_agg jsonb_object_agg bool_and bool_or
  every bit_and bit_or bit_xor stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp
  regr_slope regr_intercept percentile_cont percentile_disc mode rank dense_rank row_number ntile lag lead
  first_value last_value nth_value cume_dist percent_rank any_value range_agg range_intersect_agg xmlagg
  json_build_array json_build_object jsonb_build_array jsonb_build_object to_json to_jsonb row_to_json array_to_json
  json_array_length jsonb_array_length json_extract_path json_extract_path_text jsonb_extract_path
  jsonb_extract_path_text jsonb_set jsonb_set_lax jsonb_insert jsonb_strip_nulls json_strip_nulls jsonb_pretty
  json_typeof jsonb_typeof jsonb_path_query jsonb_path_exists jsonb_path_match jsonb_path_query_array
  jsonb_path_query_first json_array_elements jsonb_array_elements json_array_elements_text
  jsonb_array_elements_text json_each jsonb_each json_each_text jsonb_each_text json_object_keys jsonb_object_keys
  json_to_record jsonb_to_record json_to_recordset jsonb_to_recordset json_populate_record jsonb_populate_record
  json_populate_recordset jsonb_populate_recordset jsonb_concat
  lower upper length char_length character_length octet_length bit_length concat concat_ws format left right lpad
  rpad ltrim rtrim btrim replace reverse split_part strpos substr starts_with initcap md5 sha224 sha256 sha384
  sha512 encode decode regexp_replace regexp_match regexp_matches regexp_split_to_array regexp_split_to_table
  regexp_like regexp_count regexp_instr regexp_substr translate repeat ascii chr quote_ident quote_literal
  quote_nullable to_char to_number to_date to_timestamp string_to_array string_to_table array_to_string to_hex
  abs ceil ceiling floor round trunc sign sqrt cbrt power pow exp ln log log10 mod div pi random degrees radians
  sin cos tan asin acos atan atan2 width_bucket gcd lcm factorial scale
  now clock_timestamp statement_timestamp transaction_timestamp timeofday date_trunc date_part date_bin age
  make_date make_time make_timestamp make_timestamptz make_interval justify_days justify_hours justify_interval
  isfinite timezone
  array_length array_lower array_upper array_position array_positions array_append array_prepend array_cat
  array_remove array_replace cardinality unnest array_dims array_ndims generate_subscripts generate_series
  num_nonnulls num_nulls pg_typeof format_type gen_random_uuid uuid_generate_v4 current_setting version
  int4range int8range numrange tsrange tstzrange daterange isempty lower_inc upper_inc lower_inf upper_inf
  range_merge multirange array_fill trim_array array_shuffle array_sample uuidv4 uuidv7
  to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd ts_headline
  setweight`);

/** A word before `name(` that makes the parentheses a type modifier, alias or column list, not a call. */
const NOT_CALL_BEFORE = words('as into copy references table view function procedure aggregate prepare');

const QUERY_VERBS = words('select values table insert update delete merge');
const DML_VERBS = words('insert update delete merge');
const OTHER_VERBS = words(`begin start commit end rollback abort savepoint release set reset listen unlisten notify
  discard lock prepare deallocate checkpoint load vacuum analyze analyse cluster reindex fetch move close declare`);

/** Nesting deeper than this is not followed (and the scan says so) to bound recursion. */
const MAX_DEPTH = 200;
/** Nested WITH scopes deeper than this are not tracked (and the scan says so). */
const MAX_SCOPE_CHAIN = 100;
const QUOTED_COLUMN = /^"(?:[^"]|"")+"$/;

function words(list: string): Set<string> {
  return new Set(list.split(/\s+/).filter((w) => w.length > 0));
}

/** CTE names visible at a point: one WITH level, seeing definitions below `visibleBelow`. */
interface Scope {
  parent: Scope | null;
  names: ReadonlyMap<string, number>;
  visibleBelow: number;
  chain: number;
}

function inScope(scope: Scope | null, name: string): boolean {
  for (let s = scope; s; s = s.parent) {
    const k = s.names.get(name);
    if (k !== undefined && k < s.visibleBelow) return true;
  }
  return false;
}

/** Everything one pass over a statement learned. */
interface Findings {
  reads: Map<string, QualifiedName>;
  ctes: Set<string>;
  complete: boolean;
  writes: Map<string, QualifiedName>;
  writesComplete: boolean;
  dataModifyingCte: boolean;
  selectInto: boolean;
  locking: boolean;
  unknownFunctions: Set<string>;
  /** A plain string holds a backslash: with standard_conforming_strings off, the text means something else. */
  ambiguousStrings: boolean;
}

function newFindings(): Findings {
  return {
    reads: new Map(),
    ctes: new Set(),
    complete: true,
    writes: new Map(),
    writesComplete: true,
    dataModifyingCte: false,
    selectInto: false,
    locking: false,
    unknownFunctions: new Set(),
    ambiguousStrings: false,
  };
}

function nameKey(q: QualifiedName): string {
  return `${q.schema ?? ''}\u0000${q.name}`;
}

function qualified(parts: string[]): QualifiedName {
  const name = parts[parts.length - 1] as string;
  const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined;
  return schema === undefined ? { name } : { schema, name };
}

/** Splits tokens into statements at `;` outside parentheses; empty statements are dropped. */
function splitStatements(tokens: Token[]): Token[][] {
  const out: Token[][] = [];
  let current: Token[] = [];
  let depth = 0;
  for (const t of tokens) {
    if (t.kind === 'open') depth++;
    else if (t.kind === 'close') depth = Math.max(0, depth - 1);
    if (depth === 0 && t.kind === 'op' && t.value === ';') {
      if (current.length > 0) out.push(current);
      current = [];
      continue;
    }
    current.push(t);
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** One statement's tokens with bracket matching, scanned into a {@link Findings}. */
class StatementScanner {
  readonly f = newFindings();
  /** For each `(` or `[`, the index of its partner (tokens.length when unmatched). */
  private readonly match: Int32Array;

  constructor(
    private readonly toks: Token[],
    private readonly safeFunctions: ReadonlySet<string>,
  ) {
    this.match = new Int32Array(toks.length);
    const stack: number[] = [];
    for (let i = 0; i < toks.length; i++) {
      const t = toks[i] as Token;
      if (t.unterminated || t.backslash || (t.kind === 'word' && t.value === 'uescape')) this.f.complete = false;
      if (t.backslash) this.f.ambiguousStrings = true;
      if (isOpen(t)) {
        stack.push(i);
        this.match[i] = toks.length;
      } else if (isClose(t)) {
        const want = t.value === ')' ? '(' : '[';
        let matched = false;
        while (stack.length > 0) {
          const o = stack.pop() as number;
          this.match[o] = i;
          if ((toks[o] as Token).value === want) {
            matched = true;
            break;
          }
          this.f.complete = false;
        }
        if (!matched) this.f.complete = false;
      }
    }
    if (stack.length > 0) this.f.complete = false;
  }

  /** Scans the whole statement; returns the index of its main verb (after any WITH), or -1. */
  run(): number {
    return this.query(0, this.toks.length, null, 0, false);
  }

  private tok(i: number): Token | undefined {
    return this.toks[i];
  }

  private isWordAt(i: number, ...values: string[]): boolean {
    const t = this.toks[i];
    return t !== undefined && t.kind === 'word' && values.includes(t.value);
  }

  private isOpAt(i: number, value: string): boolean {
    const t = this.toks[i];
    return t !== undefined && t.kind === 'op' && t.value === value;
  }

  /** A relation/alias name token: a quoted identifier or a non-reserved bare word. */
  private isNameAt(i: number, end: number): boolean {
    if (i >= end) return false;
    const t = this.toks[i] as Token;
    return t.kind === 'ident' || (t.kind === 'word' && !RESERVED.has(t.value));
  }

  /** Reads `a`, `a.b`, `a.b.c` at `i`; null when there is no name there. */
  private readName(i: number, end: number): { parts: string[]; next: number } | null {
    if (!this.isNameAt(i, end)) return null;
    const parts = [(this.toks[i] as Token).value];
    let j = i + 1;
    while (j + 1 < end && this.isOpAt(j, '.') && this.isNameAt(j + 1, end)) {
      parts.push((this.toks[j + 1] as Token).value);
      j += 2;
    }
    return { parts, next: j };
  }

  private addRead(parts: string[], scope: Scope | null): void {
    if (parts.length > 3) this.f.complete = false;
    if (parts.length === 1 && inScope(scope, parts[0] as string)) return;
    const q = qualified(parts);
    const key = nameKey(q);
    if (!this.f.reads.has(key)) this.f.reads.set(key, q);
  }

  private addWrite(parts: string[]): void {
    if (parts.length > 3) this.f.writesComplete = false;
    const q = qualified(parts);
    const key = nameKey(q);
    if (!this.f.writes.has(key)) this.f.writes.set(key, q);
  }

  /**
   * Scans a query-like region [start, end): a statement, subquery or CTE body. Returns the index
   * of the region's main verb. `joinTree` starts with a FROM item (a parenthesised join).
   */
  private query(start: number, end: number, scope: Scope | null, depth: number, joinTree: boolean): number {
    if (depth > MAX_DEPTH) {
      this.f.complete = false;
      this.f.writesComplete = false;
      return -1;
    }
    const nested = depth > 0;
    let i = start;
    let verb = joinTree ? 'select' : '';
    let verbIndex = -1;
    let fromActive = joinTree;
    let inFrom = false;
    let prev = -1;
    if (joinTree) {
      i = this.fromItem(i, end, scope, depth);
      inFrom = true;
      prev = i - 1;
    }
    while (i < end) {
      const t = this.toks[i] as Token;
      if (verb === '' && t.kind === 'open') {
        verb = '(';
        verbIndex = i;
        fromActive = true;
      }
      if (isOpen(t)) {
        const close = Math.min(this.match[i] as number, end);
        this.group(i, close, prev, start, scope, depth);
        prev = close;
        i = close + 1;
        continue;
      }
      if (t.kind === 'op' && t.value === ',' && inFrom) {
        i = this.fromItem(i + 1, end, scope, depth);
        prev = i - 1;
        continue;
      }
      if (t.kind !== 'word') {
        prev = i;
        i++;
        continue;
      }
      const w = t.value;
      if (w === 'with') {
        const cte = this.cteList(i, end, scope, depth);
        if (cte) {
          scope = cte.scope;
          i = cte.next;
          prev = i - 1;
          // A WITH seen before that did not parse as CTEs is not the verb either.
          if (verb === 'with') verb = '';
          continue;
        }
      }
      if (verb === '') {
        verb = w;
        verbIndex = i;
        fromActive = QUERY_VERBS.has(w);
        if (DML_VERBS.has(w)) {
          if (nested) {
            this.f.dataModifyingCte = true;
            this.f.complete = false;
          }
          i = this.dmlHead(i, end);
          prev = i - 1;
          continue;
        }
        if (w === 'table') {
          i = this.fromItem(i + 1, end, scope, depth);
          prev = i - 1;
          continue;
        }
      }
      if (!fromActive && w === 'select') {
        fromActive = true;
        verb = 'select';
      }
      if (fromActive) {
        if (w === 'from' && !this.isDistinctFrom(i, start)) {
          i = this.fromList(i + 1, end, scope, depth);
          inFrom = true;
          prev = i - 1;
          continue;
        }
        if (w === 'join') {
          i = this.fromItem(i + 1, end, scope, depth);
          inFrom = true;
          prev = i - 1;
          continue;
        }
        if (w === 'using' && !(this.tok(i + 1)?.kind === 'open') && (verb === 'delete' || verb === 'merge')) {
          i = this.fromList(i + 1, end, scope, depth);
          inFrom = true;
          prev = i - 1;
          continue;
        }
        if (w === 'table') {
          i = this.fromItem(i + 1, end, scope, depth);
          prev = i - 1;
          continue;
        }
        if (w === 'into' && verb === 'select') {
          i = this.selectInto(i + 1, end);
          prev = i - 1;
          continue;
        }
      }
      if (w === 'for' && this.isLockingClause(i + 1)) this.f.locking = true;
      if (FROM_END.has(w)) inFrom = false;
      prev = i;
      i++;
    }
    return verbIndex;
  }

  /** `is [not] distinct from` is a comparison, not a FROM clause. */
  private isDistinctFrom(i: number, start: number): boolean {
    return i - 2 >= start && this.isWordAt(i - 1, 'distinct') && this.isWordAt(i - 2, 'is', 'not');
  }

  private isLockingClause(i: number): boolean {
    if (this.isWordAt(i, 'update', 'share')) return true;
    if (this.isWordAt(i, 'no') && this.isWordAt(i + 1, 'key') && this.isWordAt(i + 2, 'update')) return true;
    return this.isWordAt(i, 'key') && this.isWordAt(i + 1, 'share');
  }

  /** Scans an expression region (function arguments, column lists, ...): only nested groups matter. */
  private expression(start: number, end: number, scope: Scope | null, depth: number): void {
    if (depth > MAX_DEPTH) {
      this.f.complete = false;
      return;
    }
    let prev = -1;
    let i = start;
    while (i < end) {
      const t = this.toks[i] as Token;
      if (isOpen(t)) {
        const close = Math.min(this.match[i] as number, end);
        this.group(i, close, prev, start, scope, depth);
        prev = close;
        i = close + 1;
        continue;
      }
      if (t.kind === 'word' && t.value === 'select') {
        // Not valid SQL here; scan the rest as a query rather than miss a FROM.
        this.f.complete = false;
        this.query(i, end, scope, depth + 1, false);
        return;
      }
      prev = i;
      i++;
    }
  }

  /** Handles a `(...)` or `[...]` group whose opener is at `open`, `prev` being the token before it. */
  private group(open: number, close: number, prev: number, regionStart: number, scope: Scope | null, depth: number) {
    const opener = this.toks[open] as Token;
    if (opener.kind === 'open' && prev >= regionStart) this.checkCall(prev, regionStart);
    const first = open + 1;
    if (opener.kind === 'open' && first < close && this.startsQuery(first)) {
      this.query(first, close, scope, depth + 1, false);
    } else {
      this.expression(first, close, scope, depth + 1);
    }
  }

  private startsQuery(i: number, orParen = true): boolean {
    const t = this.toks[i] as Token;
    return (
      (orParen && t.kind === 'open') || (t.kind === 'word' && ['select', 'with', 'values', 'table'].includes(t.value))
    );
  }

  /** Checks `name(` found in an expression: parentheses after a type, alias or target are not a call. */
  private checkCall(nameIndex: number, regionStart: number): void {
    const t = this.toks[nameIndex] as Token;
    if (t.kind !== 'word' && t.kind !== 'ident') return;
    let first = nameIndex;
    while (first - 2 >= regionStart && this.isOpAt(first - 1, '.')) {
      const p = this.toks[first - 2] as Token;
      if (p.kind !== 'word' && p.kind !== 'ident') break;
      first -= 2;
    }
    const before = first - 1 >= regionStart ? this.toks[first - 1] : undefined;
    if (before && ((before.kind === 'word' && NOT_CALL_BEFORE.has(before.value)) || before.value === '::')) return;
    const parts: string[] = [];
    for (let k = first; k <= nameIndex; k += 2) parts.push((this.toks[k] as Token).value);
    this.call(parts, t.kind === 'word');
  }

  /**
   * A call to anything but a known built-in (or a function the caller declared safe) may read and
   * write any relation: the reads are incomplete and the statement may write.
   */
  private call(parts: string[], bareWord: boolean): void {
    const name = parts[parts.length - 1] as string;
    const builtin = BUILTIN_FUNCTIONS.has(name) || SYNTAX_CALLS.has(name);
    if (parts.length === 1 && bareWord && (builtin || RESERVED.has(name))) return;
    if (parts.length === 2 && parts[0] === 'pg_catalog' && builtin) return;
    const full = parts.join('.');
    if (this.safeFunctions.has(full)) return;
    this.f.complete = false;
    this.f.unknownFunctions.add(full);
  }

  /** Parses FROM items separated by commas starting at `i`; returns the index after them. */
  private fromList(i: number, end: number, scope: Scope | null, depth: number): number {
    i = this.fromItem(i, end, scope, depth);
    while (i < end && this.isOpAt(i, ',')) i = this.fromItem(i + 1, end, scope, depth);
    return i;
  }

  /**
   * Parses one FROM item: `[lateral] name [*] [alias]`, `only name`, `(subquery) alias`,
   * `(join tree)`; anything else (functions, `rows from`, `$1`) is read through but incomplete.
   */
  private fromItem(i: number, end: number, scope: Scope | null, depth: number): number {
    if (this.isWordAt(i, 'lateral')) i++;
    if (i >= end) {
      this.f.complete = false;
      return i;
    }
    const t = this.toks[i] as Token;
    if (t.kind === 'open') {
      const close = Math.min(this.match[i] as number, end);
      const first = i + 1;
      // `((a join b) join c)` and `((select ...) union (select ...))` both start with `(`:
      // a join tree parse handles either, a query parse would miss the first.
      if (first < close && this.startsQuery(first, false)) this.query(first, close, scope, depth + 1, false);
      else if (first < close) this.query(first, close, scope, depth + 1, true);
      else this.f.complete = false;
      return this.alias(close + 1, end);
    }
    if (this.isWordAt(i, 'only')) {
      i++;
      const paren = this.tok(i)?.kind === 'open';
      const name = this.readName(paren ? i + 1 : i, end);
      if (!name) {
        this.f.complete = false;
        return i;
      }
      this.addRead(name.parts, null);
      i = paren ? Math.min(this.match[i] as number, end) + 1 : name.next;
      return this.afterRelation(i, end, scope, depth);
    }
    if (this.isWordAt(i, 'rows') && this.isWordAt(i + 1, 'from') && this.tok(i + 2)?.kind === 'open') {
      this.f.complete = false;
      const close = Math.min(this.match[i + 2] as number, end);
      this.expression(i + 3, close, scope, depth + 1);
      return this.alias(this.skipOrdinality(close + 1), end);
    }
    const name = this.readName(i, end);
    if (!name) {
      // `$1`, a literal, a keyword such as current_date: not a relation we can name.
      this.f.complete = false;
      return t.kind === 'param' ? this.alias(i + 1, end) : i;
    }
    const after = this.tok(name.next);
    if (name.next < end && after?.kind === 'open') {
      this.f.complete = false;
      this.call(name.parts, t.kind === 'word');
      const close = Math.min(this.match[name.next] as number, end);
      this.expression(name.next + 1, close, scope, depth + 1);
      return this.alias(this.skipOrdinality(close + 1), end);
    }
    this.addRead(name.parts, scope);
    return this.afterRelation(name.next, end, scope, depth);
  }

  /** Skips `[*] [alias] [TABLESAMPLE method (args) [REPEATABLE (seed)]]` after a relation name. */
  private afterRelation(i: number, end: number, scope: Scope | null, depth: number): number {
    if (i < end && this.isOpAt(i, '*')) i++;
    i = this.alias(i, end);
    if (i >= end || !this.isWordAt(i, 'tablesample')) return i;
    // A sample reads the relation, but not all of it in a repeatable way.
    this.f.complete = false;
    i++;
    if (this.isNameAt(i, end)) i++;
    for (const lead of [null, 'repeatable']) {
      if (lead !== null) {
        if (!this.isWordAt(i, lead)) break;
        i++;
      }
      if (i >= end || this.tok(i)?.kind !== 'open') break;
      const close = Math.min(this.match[i] as number, end);
      this.expression(i + 1, close, scope, depth + 1);
      i = close + 1;
    }
    return i;
  }

  private skipOrdinality(i: number): number {
    return this.isWordAt(i, 'with') && this.isWordAt(i + 1, 'ordinality') ? i + 2 : i;
  }

  /** Skips `[as] alias [(columns)]` at `i`. */
  private alias(i: number, end: number): number {
    if (i >= end) return i;
    if (this.isWordAt(i, 'as')) i++;
    if (this.isNameAt(i, end)) i++;
    if (i < end && this.tok(i)?.kind === 'open') i = Math.min(this.match[i] as number, end) + 1;
    return i;
  }

  /** Parses `WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (body), ...`; null if this is not one. */
  private cteList(
    withIndex: number,
    end: number,
    scope: Scope | null,
    depth: number,
  ): { next: number; scope: Scope | null } | null {
    let j = withIndex + 1;
    const recursive = this.isWordAt(j, 'recursive');
    if (recursive) j++;
    const defs: { name: string; start: number; end: number }[] = [];
    for (;;) {
      const def = this.cteDefinition(j, end);
      if (!def) {
        if (defs.length === 0) return null;
        this.f.complete = false;
        break;
      }
      defs.push(def);
      j = this.skipSearchCycle(def.end + 1, end);
      if (!this.isOpAt(j, ',')) break;
      j++;
    }
    const names = new Map<string, number>();
    defs.forEach((d, k) => {
      this.f.ctes.add(d.name);
      if (!names.has(d.name)) names.set(d.name, k);
    });
    const chain = (scope?.chain ?? 0) + 1;
    if (chain > MAX_SCOPE_CHAIN) {
      this.f.complete = false;
      return { next: j, scope };
    }
    defs.forEach((d, k) => {
      const bodyScope: Scope = { parent: scope, names, visibleBelow: recursive ? Number.POSITIVE_INFINITY : k, chain };
      this.query(d.start, d.end, bodyScope, depth + 1, false);
    });
    return { next: j, scope: { parent: scope, names, visibleBelow: Number.POSITIVE_INFINITY, chain } };
  }

  /** One `name [(cols)] AS [[NOT] MATERIALIZED] (` ... `)`; `start`/`end` bound the body. */
  private cteDefinition(j: number, end: number): { name: string; start: number; end: number } | null {
    if (!this.isNameAt(j, end)) return null;
    const name = (this.toks[j] as Token).value;
    j++;
    if (this.tok(j)?.kind === 'open') j = (this.match[j] as number) + 1;
    if (!this.isWordAt(j, 'as')) return null;
    j++;
    if (this.isWordAt(j, 'not') && this.isWordAt(j + 1, 'materialized')) j += 2;
    else if (this.isWordAt(j, 'materialized')) j++;
    if (j >= end || this.tok(j)?.kind !== 'open') return null;
    const close = Math.min(this.match[j] as number, end);
    return { name, start: j + 1, end: close };
  }

  /** Skips a CTE's `SEARCH ... SET col` / `CYCLE ... USING path` clauses. */
  private skipSearchCycle(j: number, end: number): number {
    if (!this.isWordAt(j, 'search', 'cycle')) return j;
    while (j < end) {
      const t = this.toks[j] as Token;
      if (t.kind === 'open') return j;
      if (t.kind === 'word' && ['select', 'insert', 'update', 'delete', 'merge', 'values', 'table'].includes(t.value)) {
        return j;
      }
      if (t.kind === 'op' && t.value === ',' && this.cteDefinition(j + 1, end)) return j;
      j++;
    }
    return j;
  }

  /** Records the target of INSERT INTO / UPDATE [ONLY] / DELETE FROM [ONLY] / MERGE INTO; returns the index after it. */
  private dmlHead(i: number, end: number): number {
    const verb = (this.toks[i] as Token).value;
    let j = i + 1;
    if (verb === 'insert' || verb === 'merge') {
      if (!this.isWordAt(j, 'into')) return this.unclearTarget(i + 1);
      j++;
    } else if (verb === 'delete') {
      if (!this.isWordAt(j, 'from')) return this.unclearTarget(i + 1);
      j++;
    }
    if (verb !== 'insert' && this.isWordAt(j, 'only')) j++;
    const name = this.readName(j, end);
    if (!name) return this.unclearTarget(j);
    this.addWrite(name.parts);
    j = name.next;
    if (this.isOpAt(j, '*')) j++;
    if (this.isWordAt(j, 'as')) return this.isNameAt(j + 1, end) ? j + 2 : j + 1;
    // A bare alias; `set` cannot be one (UPDATE t SET ...).
    if (verb !== 'insert' && this.isNameAt(j, end) && !this.isWordAt(j, 'set')) j++;
    return j;
  }

  private unclearTarget(next: number): number {
    this.f.writesComplete = false;
    return next;
  }

  /** `SELECT ... INTO [TEMP|UNLOGGED] [TABLE] name` creates a table: a write we cannot fully see. */
  private selectInto(i: number, end: number): number {
    this.f.selectInto = true;
    this.f.writesComplete = false;
    while (this.isWordAt(i, 'temporary', 'temp', 'unlogged', 'table', 'global', 'local')) i++;
    const name = this.readName(i, end);
    if (!name) return i;
    this.addWrite(name.parts);
    return name.next;
  }
}

function isOpen(t: Token): boolean {
  return t.kind === 'open' || (t.kind === 'op' && t.value === '[');
}

function isClose(t: Token): boolean {
  return t.kind === 'close' || (t.kind === 'op' && t.value === ']');
}

/** Options for {@link scanReads} and {@link classifyStatement}. */
export interface ScanOptions {
  /**
   * Functions known to neither read nor write any relation, besides the built-ins: `name` or
   * `schema.name`, spelled as PostgreSQL folds them (lowercase unless quoted).
   */
  safeFunctions?: Iterable<string>;
}

/** Lists every relation a statement (or `;`-separated statements) reads after FROM / JOIN / USING / TABLE. */
export function scanReads(sql: string, options: ScanOptions = {}): ReadScan {
  return classifyStatement(sql, options).reads;
}

/**
 * Classifies raw SQL as read / write / other, with the relations it reads and writes. A call to a
 * function that is neither built-in nor declared safe may do anything, and so may text whose
 * meaning depends on standard_conforming_strings (a backslash in a plain '...' string): such a
 * statement is a write with `writesComplete: false`, and its reads are incomplete.
 */
export function classifyStatement(sql: string, options: ScanOptions = {}): StatementClass {
  const safe = new Set(options.safeFunctions ?? []);
  const statements = splitStatements(tokenize(sql));
  return combine(statements.map((toks) => classifyTokens(toks, safe)));
}

function combine(results: StatementClass[]): StatementClass {
  const reads = new Map<string, QualifiedName>();
  const writes = new Map<string, QualifiedName>();
  const ctes = new Set<string>();
  const unknownFunctions = new Set<string>();
  let complete = true;
  let writesComplete = true;
  let locking = false;
  let kind: StatementClass['kind'] = 'other';
  for (const r of results) {
    for (const q of r.reads.relations) if (!reads.has(nameKey(q))) reads.set(nameKey(q), q);
    for (const q of r.writes) if (!writes.has(nameKey(q))) writes.set(nameKey(q), q);
    for (const c of r.reads.ctes) ctes.add(c);
    for (const fn of r.unknownFunctions) unknownFunctions.add(fn);
    complete &&= r.reads.complete;
    writesComplete &&= r.writesComplete;
    locking ||= r.locking;
    if (r.kind === 'write') kind = 'write';
    else if (r.kind === 'read' && kind === 'other') kind = 'read';
  }
  return {
    kind,
    writes: [...writes.values()],
    writesComplete,
    reads: { relations: [...reads.values()], ctes: [...ctes], complete },
    locking,
    unknownFunctions: [...unknownFunctions],
  };
}

function classifyTokens(toks: Token[], safe: ReadonlySet<string>): StatementClass {
  const scanner = new StatementScanner(toks, safe);
  const verbIndex = scanner.run();
  const f = scanner.f;
  const base = classifyVerb(toks, verbIndex, f, safe);
  if (f.unknownFunctions.size === 0 && !f.ambiguousStrings) return base;
  return { ...base, kind: 'write', writesComplete: false, unknownFunctions: [...f.unknownFunctions] };
}

function classifyVerb(toks: Token[], verbIndex: number, f: Findings, safe: ReadonlySet<string>): StatementClass {
  const reads: ReadScan = { relations: [...f.reads.values()], ctes: [...f.ctes], complete: f.complete };
  const result = (kind: StatementClass['kind'], extraWrites: QualifiedName[] = [], writesComplete = true) => {
    const writes = new Map(f.writes);
    for (const q of extraWrites) if (!writes.has(nameKey(q))) writes.set(nameKey(q), q);
    return {
      kind,
      writes: [...writes.values()],
      writesComplete: f.writesComplete && writesComplete,
      reads,
      locking: f.locking,
      unknownFunctions: [],
    };
  };
  const head = verbIndex >= 0 ? (toks[verbIndex] as Token) : undefined;
  const verb = head === undefined ? '' : head.kind === 'open' ? 'select' : head.kind === 'word' ? head.value : '';
  if (f.dataModifyingCte || f.selectInto) return result('write');
  if (verb === 'select' || verb === 'values' || verb === 'table' || verb === 'show') return result('read');
  if (DML_VERBS.has(verb)) return result('write');
  if (verb === 'lock') return { ...result('other'), locking: true };
  if (verb === 'explain') return classifyExplain(toks, verbIndex, reads, safe);
  if (verb === 'truncate') return truncate(toks, verbIndex, result);
  if (verb === 'copy') return copy(toks, verbIndex, result);
  if (verb === 'refresh') {
    const name = nameAfter(toks, verbIndex + 1, ['materialized', 'view', 'concurrently']);
    return name ? result('write', [name]) : result('write', [], false);
  }
  if (OTHER_VERBS.has(verb)) return result('other');
  // DDL, DO, CALL, EXECUTE, GRANT, anything unknown: a write we cannot fully see.
  return result('write', ddlTargets(toks, verbIndex), false);
}

type ResultFn = (
  kind: StatementClass['kind'],
  extraWrites?: QualifiedName[],
  writesComplete?: boolean,
) => StatementClass;

/** EXPLAIN runs its statement only with ANALYZE; treat an explained write as a write anyway. */
function classifyExplain(toks: Token[], verbIndex: number, reads: ReadScan, safe: ReadonlySet<string>): StatementClass {
  let i = verbIndex + 1;
  if (toks[i]?.kind === 'open') {
    let depth = 0;
    for (; i < toks.length; i++) {
      const k = toks[i]?.kind;
      if (k === 'open') depth++;
      else if (k === 'close' && --depth === 0) break;
    }
    i++;
  }
  while (isWord(toks[i], 'analyze', 'analyse', 'verbose')) i++;
  const inner = classifyTokens(toks.slice(i), safe);
  if (inner.kind === 'write') return inner;
  return { kind: 'other', writes: [], writesComplete: true, reads, locking: false, unknownFunctions: [] };
}

function truncate(toks: Token[], verbIndex: number, result: ResultFn): StatementClass {
  const targets: QualifiedName[] = [];
  let complete = true;
  let i = verbIndex + 1;
  if (isWord(toks[i], 'table')) i++;
  for (;;) {
    if (isWord(toks[i], 'only')) i++;
    const name = readNameAt(toks, i);
    if (!name) {
      complete = false;
      break;
    }
    targets.push(qualified(name.parts));
    i = name.next;
    if (toks[i]?.value === '*') i++;
    if (toks[i]?.kind !== 'op' || toks[i]?.value !== ',') break;
    i++;
  }
  // CASCADE also empties every table with a foreign key to these.
  for (; i < toks.length; i++) if (!isWord(toks[i], 'restart', 'continue', 'identity', 'restrict')) complete = false;
  return result('write', targets, complete);
}

function copy(toks: Token[], verbIndex: number, result: ResultFn): StatementClass {
  const name = readNameAt(toks, verbIndex + 1);
  if (!name) return result('other');
  let i = name.next;
  if (toks[i]?.kind === 'open') {
    while (i < toks.length && toks[i]?.kind !== 'close') i++;
    i++;
  }
  if (isWord(toks[i], 'from')) return result('write', [qualified(name.parts)]);
  const r = result('other');
  return { ...r, reads: { ...r.reads, relations: [...r.reads.relations, qualified(name.parts)] } };
}

const DDL_OBJECTS = ['table', 'view', 'materialized', 'foreign', 'recursive'];
const DDL_SKIP = ['if', 'exists', 'not', 'only', 'or', 'replace', 'global', 'local', 'temporary', 'temp', 'unlogged'];

/** Best-effort targets of CREATE/ALTER/DROP TABLE/VIEW and CREATE INDEX ... ON; the result is never complete. */
function ddlTargets(toks: Token[], verbIndex: number): QualifiedName[] {
  const verb = toks[verbIndex]?.value;
  if (verb !== 'create' && verb !== 'alter' && verb !== 'drop') return [];
  let i = verbIndex + 1;
  while (isWord(toks[i], ...DDL_SKIP)) i++;
  if (isWord(toks[i], 'unique', 'index')) {
    for (; i < toks.length; i++) {
      if (isWord(toks[i], 'on')) {
        const name = nameAfter(toks, i + 1, ['only']);
        return name ? [name] : [];
      }
    }
    return [];
  }
  if (!isWord(toks[i], ...DDL_OBJECTS)) return [];
  while (isWord(toks[i], ...DDL_OBJECTS, 'view', ...DDL_SKIP)) i++;
  const out: QualifiedName[] = [];
  for (;;) {
    const name = readNameAt(toks, i);
    if (!name) break;
    out.push(qualified(name.parts));
    if (verb !== 'drop' || toks[name.next]?.value !== ',') break;
    i = name.next + 1;
  }
  return out;
}

function nameAfter(toks: Token[], i: number, skip: string[]): QualifiedName | null {
  while (isWord(toks[i], ...skip)) i++;
  const name = readNameAt(toks, i);
  return name ? qualified(name.parts) : null;
}

function isWord(t: Token | undefined, ...values: string[]): boolean {
  return t !== undefined && t.kind === 'word' && values.includes(t.value);
}

function isNameToken(t: Token | undefined): boolean {
  return t !== undefined && (t.kind === 'ident' || (t.kind === 'word' && !RESERVED.has(t.value)));
}

function readNameAt(toks: Token[], i: number): { parts: string[]; next: number } | null {
  if (!isNameToken(toks[i])) return null;
  const parts = [(toks[i] as Token).value];
  let j = i + 1;
  while (toks[j]?.kind === 'op' && toks[j]?.value === '.' && isNameToken(toks[j + 1])) {
    parts.push((toks[j + 1] as Token).value);
    j += 2;
  }
  return { parts, next: j };
}

/** Where the single INSERT/UPDATE/DELETE's own RETURNING starts, found and split once. */
function locateReturning(sql: string): { statement: Token[]; returning: Token | null } | null {
  const statements = splitStatements(tokenize(sql));
  if (statements.length !== 1) return null;
  const toks = statements[0] as Token[];
  const scanner = new StatementScanner(toks, new Set());
  const verbIndex = scanner.run();
  if (verbIndex < 0 || !isWord(toks[verbIndex], 'insert', 'update', 'delete')) return null;
  let depth = 0;
  for (let i = verbIndex; i < toks.length; i++) {
    const t = toks[i] as Token;
    if (isOpen(t)) depth++;
    else if (isClose(t)) depth = Math.max(0, depth - 1);
    else if (depth === 0 && t.kind === 'word' && t.value === 'returning') return { statement: toks, returning: t };
  }
  return { statement: toks, returning: null };
}

/** The offset of the top-level RETURNING keyword of a single INSERT/UPDATE/DELETE, or null. */
export function findReturning(sql: string): { index: number } | null {
  const found = locateReturning(sql);
  return found?.returning ? { index: found.returning.start } : null;
}

/**
 * Appends already-quoted columns to the statement's RETURNING list, or adds `returning ...`;
 * a trailing `;`, whitespace and comments are dropped. Throws a CacheError on bad input.
 */
export function appendReturning(sql: string, quotedColumns: string[]): string {
  if (quotedColumns.length === 0) throw new CacheError('E_SQL_SHAPE', 'appendReturning needs at least one column');
  for (const c of quotedColumns) {
    if (!QUOTED_COLUMN.test(c)) throw new CacheError('E_SQL_SHAPE', `not a quoted column name: ${JSON.stringify(c)}`);
  }
  const found = locateReturning(sql);
  if (!found) {
    throw new CacheError('E_SQL_SHAPE', 'appendReturning needs a single INSERT, UPDATE or DELETE statement');
  }
  const last = found.statement[found.statement.length - 1] as Token;
  const head = sql.slice(0, last.end);
  const list = quotedColumns.join(', ');
  return found.returning ? `${head}, ${list}` : `${head} returning ${list}`;
}

/**
 * Recognises the single-table key lookup Drizzle emits:
 * `select "c", ... from "t" ["alias"] where <key predicate> [limit $n]`; anything else is null.
 */
export function parsePointRead(sql: string): PointRead | null {
  return new PointReadParser(tokenize(sql)).parse();
}

interface Comparison {
  column: string;
  params: number[];
  isList: boolean;
}

class PointReadParser extends TokenCursor {
  private qualifiers: string[][] = [];

  parse(): PointRead | null {
    if (!this.word('select')) return null;
    const columns: ColumnRef[] = [];
    const columnParts: string[][] = [];
    do {
      const parts = this.identChain();
      if (!parts || parts.length > 3) return null;
      columnParts.push(parts);
      const column = parts[parts.length - 1] as string;
      columns.push(parts.length >= 2 ? { table: parts[parts.length - 2] as string, column } : { column });
    } while (this.op(','));
    if (!this.word('from')) return null;
    const tableParts = this.identChain();
    if (!tableParts || tableParts.length > 2) return null;
    const table = qualified(tableParts);
    let alias: string | undefined;
    const hadAs = this.word('as');
    if (this.peek()?.kind === 'ident') alias = (this.toks[this.i++] as Token).value;
    else if (hadAs) return null;
    this.qualifiers =
      alias !== undefined ? [[alias]] : table.schema ? [[table.name], [table.schema, table.name]] : [[table.name]];
    if (!columnParts.every((p) => this.qualifierOk(p.slice(0, -1)))) return null;
    if (!this.word('where')) return null;
    const alternatives = this.orExpr();
    if (!alternatives) return null;
    let limitParam: number | undefined;
    if (this.word('limit')) {
      const p = this.param();
      if (p === null) return null;
      limitParam = p;
    }
    if (this.i !== this.toks.length) return null;
    const predicate = buildPredicate(alternatives);
    if (!predicate) return null;
    const read: PointRead = { table, columns, predicate: predicate.predicate, keys: predicate.keys };
    if (alias !== undefined) read.alias = alias;
    if (limitParam !== undefined) read.limitParam = limitParam;
    return read;
  }

  /** `"a"`, `"a"."b"`, `"a"."b"."c"`: quoted identifiers only, as Drizzle writes them. */
  private identChain(): string[] | null {
    const parts: string[] = [];
    do {
      const t = this.peek();
      if (t?.kind !== 'ident') return null;
      parts.push(t.value);
      this.i++;
    } while (this.op('.'));
    return parts;
  }

  private qualifierOk(q: string[]): boolean {
    return q.length === 0 || this.qualifiers.some((ok) => ok.length === q.length && ok.every((p, k) => p === q[k]));
  }

  /** OR of ANDs, flattened; null for any other shape. */
  private orExpr(): Comparison[][] | null {
    const alternatives: Comparison[][] = [];
    do {
      const conj = this.andExpr();
      if (!conj) return null;
      alternatives.push(...conj);
    } while (this.word('or'));
    return alternatives;
  }

  /** Returns the alternatives of an AND chain; an OR may only stand alone, not inside an AND. */
  private andExpr(): Comparison[][] | null {
    const operands: Comparison[][][] = [];
    do {
      const atom = this.atom();
      if (!atom) return null;
      operands.push(atom);
    } while (this.word('and'));
    if (operands.length === 1) return operands[0] as Comparison[][];
    if (operands.some((o) => o.length !== 1)) return null;
    return [operands.flatMap((o) => o[0] as Comparison[])];
  }

  private atom(): Comparison[][] | null {
    if (this.kind('open')) {
      const inner = this.orExpr();
      if (!inner || !this.kind('close')) return null;
      return inner;
    }
    const parts = this.identChain();
    if (!parts || parts.length > 3 || !this.qualifierOk(parts.slice(0, -1))) return null;
    const column = parts[parts.length - 1] as string;
    if (this.op('=')) {
      const p = this.param();
      return p === null ? null : [[{ column, params: [p], isList: false }]];
    }
    if (this.word('in') && this.kind('open')) {
      const params: number[] = [];
      do {
        const p = this.param();
        if (p === null) return null;
        params.push(p);
      } while (this.op(','));
      if (!this.kind('close')) return null;
      return [[{ column, params, isList: true }]];
    }
    return null;
  }
}

/** Turns alternatives into the zip-with-broadcast predicate and the expanded key list. */
function buildPredicate(
  alternatives: Comparison[][],
): { predicate: Record<string, number | number[]>; keys: Record<string, number>[] } | null {
  const predicate: Record<string, number | number[]> = {};
  if (alternatives.length === 1) {
    const conj = alternatives[0] as Comparison[];
    const lists = conj.filter((c) => c.isList);
    if (lists.length > 1) return null;
    for (const c of conj) {
      if (Object.hasOwn(predicate, c.column)) return null;
      predicate[c.column] = c.isList ? c.params : (c.params[0] as number);
    }
    const width = lists[0]?.params.length ?? 1;
    const keys: Record<string, number>[] = [];
    for (let k = 0; k < width; k++) {
      const key: Record<string, number> = {};
      for (const c of conj) key[c.column] = (c.isList ? c.params[k] : c.params[0]) as number;
      keys.push(key);
    }
    return { predicate, keys };
  }
  const columns = alternatives[0]?.map((c) => c.column) ?? [];
  const keys: Record<string, number>[] = [];
  for (const conj of alternatives) {
    if (conj.some((c) => c.isList) || conj.length !== columns.length) return null;
    const key: Record<string, number> = {};
    for (const c of conj) {
      if (Object.hasOwn(key, c.column)) return null;
      key[c.column] = c.params[0] as number;
    }
    if (!columns.every((c) => Object.hasOwn(key, c))) return null;
    keys.push(key);
  }
  for (const c of columns) predicate[c] = keys.map((k) => k[c] as number);
  return { predicate, keys };
}

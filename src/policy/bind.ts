import type { Catalog, TableInfo } from '../catalog.js';
import { IssueCollector, type PathSegment } from './issues.js';
import { suggest } from './suggest.js';
import type { Policy, ResolvedTablePolicy } from './types.js';
import { quote } from './values.js';

/**
 * A policy bound to a schema catalog: every catalog table and view has its resolved policy
 * (tables the policy does not name get `policy.defaults`), and a view's `reads` are table ids.
 */
export interface BoundPolicy {
  /** The policy that was bound. */
  readonly policy: Policy;
  /** Every catalog table and view, by id, with its resolved policy. */
  readonly tables: ReadonlyMap<string, ResolvedTablePolicy>;
  /** The policy key (as written) that configured each table, by id; absent when it got the defaults. */
  readonly keys: ReadonlyMap<string, string>;
  /** The resolved policy of a catalog table or view, or undefined when the id is not in the catalog. */
  get(id: string): ResolvedTablePolicy | undefined;
  /** The resolved policy of a catalog table or view; `policy.defaults` for an id not in the catalog. */
  policyOf(id: string): ResolvedTablePolicy;
  /** Ids of the cached views that read table `id`: a write to it must invalidate them. */
  readersOf(id: string): readonly string[];
}

/** How a name matched the catalog. */
type Match = { table: TableInfo } | { ambiguous: readonly TableInfo[] } | { unknown: true };

/**
 * Binds a validated policy to the catalog the adapter built. Policy keys match a table's id, its
 * database name or an export name (the id wins when names collide). Collects every problem
 * (unknown or ambiguous names, write-back without a primary key, view rules) into one PolicyError.
 */
export function bindPolicy(policy: Policy, catalog: Catalog): BoundPolicy {
  const issues = new IssueCollector();
  const names = new NameIndex(catalog, issues);

  // Which policy key configures which catalog table.
  const keyOf = new Map<string, string>();
  for (const key of policy.tables.keys()) {
    const match = names.match(key);
    if ('unknown' in match) {
      issues.add(['tables', key], `unknown table ${quote(key)}${names.hint(key)}`, key);
    } else if ('ambiguous' in match) {
      issues.add(['tables', key], names.ambiguity(key, match.ambiguous), key);
    } else {
      const other = keyOf.get(match.table.id);
      if (other === undefined) keyOf.set(match.table.id, key);
      else {
        const where = policy.tableSources?.get(other);
        const elsewhere = where !== undefined && where !== policy.tableSources?.get(key) ? ` in ${where}` : '';
        issues.add(
          ['tables', key],
          `table ${quote(match.table.id)} is configured twice: as ${quote(other)}${elsewhere} and as ${quote(key)}`,
          key,
        );
      }
    }
  }

  const tables = new Map<string, ResolvedTablePolicy>();
  const readers = new Map<string, string[]>();
  for (const info of names.tables()) {
    const key = keyOf.get(info.id);
    const resolved = key === undefined ? inherited(info, policy, issues) : configured(info, key, policy, names, issues);
    tables.set(info.id, resolved);
    if (info.kind === 'view' && resolved.pattern !== 'none') {
      for (const base of resolved.reads ?? []) {
        const list = readers.get(base) ?? [];
        list.push(info.id);
        readers.set(base, list);
      }
    }
  }

  issues.throwIfAny({ file: policy.source, tableFiles: policy.tableSources });
  const keys: ReadonlyMap<string, string> = keyOf;
  return {
    policy,
    tables,
    keys,
    get: (id) => tables.get(id),
    policyOf: (id) => tables.get(id) ?? policy.defaults,
    readersOf: (id) => readers.get(id) ?? [],
  };
}

/** A table the policy does not name: the defaults, except that views are then never cached. */
function inherited(info: TableInfo, policy: Policy, issues: IssueCollector): ResolvedTablePolicy {
  const defaults = policy.defaults;
  // A view's cached results could never be invalidated without `reads`, so it is left uncached.
  if (info.kind === 'view')
    return defaults.pattern === 'none' ? defaults : Object.freeze({ ...defaults, pattern: 'none' });
  if ((defaults.pattern === 'write-back' || defaults.pattern === 'write-through') && info.primaryKey.length === 0) {
    issues.push({
      path: ['defaults', 'pattern'],
      table: info.id,
      file: policy.source,
      message: `table ${quote(info.id)} has no primary key, so it cannot inherit pattern "${defaults.pattern}"; give it its own entry`,
    });
  }
  return defaults;
}

/** A table or view the policy names under `key`: checks the pattern rules and resolves `reads`. */
function configured(
  info: TableInfo,
  key: string,
  policy: Policy,
  names: NameIndex,
  issues: IssueCollector,
): ResolvedTablePolicy {
  const entry = policy.tables.get(key)!;
  const at = (field: string): PathSegment[] => ['tables', key, field];
  if (info.kind === 'table') {
    if (entry.reads !== undefined) {
      issues.add(at('reads'), `${quote(key)} is a table; "reads" is only for views`, key);
    }
    if (entry.pattern === 'write-back' && info.primaryKey.length === 0) {
      issues.add(
        at('pattern'),
        `table ${quote(info.id)} has no primary key, so it cannot use pattern "write-back" (pending writes are keyed by it)`,
        key,
      );
    }
    if (entry.pattern === 'write-through' && info.primaryKey.length === 0) {
      issues.add(
        at('pattern'),
        `table ${quote(info.id)} has no primary key, so it cannot use pattern "write-through" (written rows are cached by it)`,
        key,
      );
    }
    return entry;
  }

  if (entry.pattern === 'write-back' || entry.pattern === 'write-through') {
    issues.add(
      at('pattern'),
      `${quote(key)} is a view, which is read-only: pattern "${entry.pattern}" does not apply; use "cache-aside" with "reads", or "none"`,
      key,
    );
  }
  const ids: string[] = [];
  for (const name of entry.reads ?? []) {
    const match = names.match(name);
    if ('unknown' in match) {
      issues.add(at('reads'), `reads: unknown table ${quote(name)}${names.hint(name)}`, key);
    } else if ('ambiguous' in match) {
      issues.add(at('reads'), `reads: ${names.ambiguity(name, match.ambiguous)}`, key);
    } else if (match.table.kind === 'view') {
      issues.add(at('reads'), `reads: ${quote(name)} is a view; list the tables it reads instead`, key);
    } else if (!ids.includes(match.table.id)) {
      ids.push(match.table.id);
    }
  }
  if (entry.pattern === 'cache-aside' && (entry.reads ?? []).length === 0) {
    issues.add(
      at('reads'),
      `view ${quote(key)} uses "cache-aside", so it needs "reads": the tables it reads, whose writes invalidate it`,
      key,
    );
  }
  return Object.freeze({ ...entry, reads: entry.reads === undefined ? undefined : Object.freeze(ids) });
}

/** Resolves policy names (id, database name, export name) to catalog tables. */
class NameIndex {
  private readonly byId = new Map<string, TableInfo>();
  private readonly byName = new Map<string, TableInfo[]>();

  constructor(catalog: Catalog, issues: IssueCollector) {
    for (const info of catalog.tables) {
      if (this.byId.has(info.id)) {
        issues.add([], `the schema catalog lists table ${quote(info.id)} twice (an adapter bug)`);
        continue;
      }
      this.byId.set(info.id, info);
      for (const name of new Set([info.name, ...info.aliases])) {
        const list = this.byName.get(name) ?? [];
        list.push(info);
        this.byName.set(name, list);
      }
    }
  }

  tables(): IterableIterator<TableInfo> {
    return this.byId.values();
  }

  match(name: string): Match {
    const direct = this.byId.get(name);
    if (direct) return { table: direct };
    const hits = this.byName.get(name) ?? [];
    if (hits.length === 1) return { table: hits[0]! };
    return hits.length === 0 ? { unknown: true } : { ambiguous: hits };
  }

  /** ` (did you mean "x"?)`, or the known names when nothing is close. */
  hint(name: string): string {
    const all = [...this.byId.keys(), ...this.byName.keys()];
    const hit = suggest(name, all);
    if (hit !== undefined) return ` (did you mean ${quote(hit)}?)`;
    if (this.byId.size === 0) return '; the schema has no tables';
    const ids = [...this.byId.keys()];
    const shown = ids.slice(0, 10).map((id) => quote(id));
    return `; known tables: ${shown.join(', ')}${ids.length > 10 ? `, and ${ids.length - 10} more` : ''}`;
  }

  ambiguity(name: string, tables: readonly TableInfo[]): string {
    return `table name ${quote(name)} is ambiguous: it matches ${tables.map((t) => quote(t.id)).join(' and ')}; use the table id`;
  }
}

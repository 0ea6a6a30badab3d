import type { RelationName } from '../adapter.js';
import type { Catalog, TableInfo } from '../catalog.js';
import type { ResolvedTablePolicy } from '../policy/types.js';

/** A table or view with its resolved policy. */
export interface BoundTable {
  readonly info: TableInfo;
  readonly policy: ResolvedTablePolicy;
}

/** What a read depends on and how it may be cached. */
export interface ReadPlan {
  /** The relation used for span names and stats (the first one read). */
  readonly primary: BoundTable;
  /** Base tables whose generations the entry depends on, sorted. */
  readonly dependencies: readonly string[];
  /** False when a relation's pattern forbids caching this read. */
  readonly cacheable: boolean;
  /** The shortest TTL and value limit among the relations read. */
  readonly ttlMs: number;
  readonly maxValueBytes: number;
}

/** Resolves SQL relation names to tables, views to their base tables, and writes to what they affect. */
export class TableRegistry {
  private readonly byId = new Map<string, BoundTable>();
  private readonly byRelation = new Map<string, string>();
  /** Tables whose writes must bump generations: something cached depends on them. */
  private readonly tracked = new Set<string>();

  constructor(catalog: Catalog, policyOf: (table: TableInfo) => ResolvedTablePolicy) {
    for (const info of catalog.tables) {
      this.byId.set(info.id, { info, policy: policyOf(info) });
      this.byRelation.set(relationKey(info.schema, info.name), info.id);
    }
    for (const { info, policy } of this.byId.values()) {
      if (policy.pattern === 'none') continue;
      if (info.kind === 'table') this.tracked.add(info.id);
      for (const base of this.viewBases(info) ?? []) this.tracked.add(base);
    }
  }

  /** Every bound table and view. */
  all(): IterableIterator<BoundTable> {
    return this.byId.values();
  }

  /** A table by id. */
  get(id: string): BoundTable | undefined {
    return this.byId.get(id);
  }

  /** Plans a read; undefined when some relation is unknown (the read is then never cached). */
  planRead(relations: readonly RelationName[]): ReadPlan | undefined {
    if (relations.length === 0) return undefined;
    const deps = new Set<string>();
    let primary: BoundTable | undefined;
    let cacheable = true;
    let ttlMs = Number.POSITIVE_INFINITY;
    let maxValueBytes = Number.POSITIVE_INFINITY;
    for (const rel of relations) {
      const table = this.resolve(rel);
      if (!table) return undefined;
      primary ??= table;
      const { pattern } = table.policy;
      if (pattern === 'none' || pattern === 'write-back') cacheable = false;
      ttlMs = Math.min(ttlMs, table.policy.ttlMs);
      maxValueBytes = Math.min(maxValueBytes, table.policy.maxValueBytes);
      if (table.info.kind === 'table') {
        deps.add(table.info.id);
        continue;
      }
      const bases = this.viewBases(table.info);
      if (!bases) return undefined;
      for (const base of bases) {
        deps.add(base);
        if (this.byId.get(base)?.policy.pattern === 'write-back') cacheable = false;
      }
    }
    if (!primary) return undefined;
    return { primary, dependencies: [...deps].sort(), cacheable, ttlMs, maxValueBytes };
  }

  /**
   * The tracked tables a write to `relations` may change (foreign-key cascades included);
   * undefined when a written relation is unknown, so everything must be invalidated.
   */
  planWrite(relations: readonly RelationName[]): string[] | undefined {
    const out = new Set<string>();
    const visit = (id: string) => {
      if (out.has(id)) return;
      out.add(id);
      for (const dep of this.byId.get(id)?.info.dependents ?? []) visit(dep);
    };
    for (const rel of relations) {
      const table = this.resolve(rel);
      if (!table) return undefined;
      if (table.info.kind === 'view') return undefined;
      visit(table.info.id);
    }
    return [...out].filter((id) => this.tracked.has(id));
  }

  /** Resolves a name the user gave (`invalidate('users')`): id, database name or export name. */
  lookup(name: string): BoundTable | undefined {
    const direct = this.byId.get(name);
    if (direct) return direct;
    for (const table of this.byId.values()) {
      if (table.info.name === name || table.info.aliases.includes(name)) return table;
    }
    return undefined;
  }

  /** The table or view a SQL relation name refers to. */
  resolve(rel: RelationName): BoundTable | undefined {
    const id = this.byRelation.get(relationKey(rel.schema === 'public' ? undefined : rel.schema, rel.name));
    return id === undefined ? undefined : this.byId.get(id);
  }

  private viewBases(view: TableInfo): string[] | undefined {
    if (view.kind !== 'view') return undefined;
    const reads = this.byId.get(view.id)?.policy.reads;
    if (!reads || reads.length === 0) return undefined;
    const ids: string[] = [];
    for (const name of reads) {
      const base = this.lookup(name);
      if (!base || base.info.kind !== 'table') return undefined;
      ids.push(base.info.id);
    }
    return ids;
  }
}

function relationKey(schema: string | undefined, name: string): string {
  return schema ? `${schema}\u0000${name}` : name;
}

import { is } from 'drizzle-orm';
import {
  getMaterializedViewConfig,
  getTableConfig,
  getViewConfig,
  isPgMaterializedView,
  isPgView,
  PgTable,
} from 'drizzle-orm/pg-core';
import type { Catalog, TableInfo } from '../../src/catalog.js';

const CHANGING_ACTIONS = new Set(['cascade', 'set null', 'set default']);

/** The id a table or view gets in keys and telemetry: `name`, or `schema.name` outside public. */
export function relationId(schema: string | undefined, name: string): string {
  if (!schema || schema === 'public') return name;
  // Quote the parts when a dot or quote would make `schema.name` ambiguous ("a.b"."c" vs "a"."b.c").
  if (/[."]/.test(schema) || /[."]/.test(name)) return `${quoteIdentifier(schema)}.${quoteIdentifier(name)}`;
  return `${schema}.${name}`;
}

function quoteIdentifier(part: string): string {
  return `"${part.replaceAll('"', '""')}"`;
}

/** Describes every table and view of a Drizzle schema module for the core. */
export function buildCatalog(schema: Record<string, unknown>): Catalog {
  const byId = new Map<string, { info: Omit<TableInfo, 'aliases' | 'dependents'>; aliases: string[] }>();
  const dependents = new Map<string, Set<string>>();
  const add = (exportName: string, info: Omit<TableInfo, 'aliases' | 'dependents'>) => {
    const existing = byId.get(info.id);
    if (existing) existing.aliases.push(exportName);
    else byId.set(info.id, { info, aliases: [exportName] });
  };

  for (const [exportName, value] of Object.entries(schema)) {
    if (is(value, PgTable)) {
      const config = getTableConfig(value);
      const id = relationId(config.schema, config.name);
      const primaryKey = config.columns.filter((c) => c.primary).map((c) => c.name);
      const composite = config.primaryKeys[0];
      add(exportName, {
        id,
        name: config.name,
        schema: config.schema && config.schema !== 'public' ? config.schema : undefined,
        columns: config.columns.map((c) => ({ name: c.name, type: c.getSQLType() })),
        primaryKey: composite ? composite.columns.map((c) => c.name) : primaryKey,
        kind: 'table',
      });
      for (const fk of config.foreignKeys) {
        if (!CHANGING_ACTIONS.has(fk.onDelete ?? '') && !CHANGING_ACTIONS.has(fk.onUpdate ?? '')) continue;
        const target = getTableConfig(fk.reference().foreignTable);
        const targetId = relationId(target.schema, target.name);
        const set = dependents.get(targetId) ?? new Set<string>();
        set.add(id);
        dependents.set(targetId, set);
      }
    } else if (isPgView(value) || isPgMaterializedView(value)) {
      const config = isPgView(value) ? getViewConfig(value) : getMaterializedViewConfig(value);
      add(exportName, {
        id: relationId(config.schema, config.name),
        name: config.name,
        schema: config.schema && config.schema !== 'public' ? config.schema : undefined,
        columns: Object.entries(config.selectedFields).map(([key]) => ({ name: key, type: 'unknown' })),
        primaryKey: [],
        kind: 'view',
      });
    }
  }

  const tables: TableInfo[] = [];
  for (const { info, aliases } of byId.values()) {
    tables.push({ ...info, aliases, dependents: [...(dependents.get(info.id) ?? [])] });
  }
  return { tables };
}

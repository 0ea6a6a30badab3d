import type { TableInfo } from '../catalog.js';
import type { TableRegistry } from '../engine/registry.js';
import { PolicyError, type PolicyLocation } from '../errors.js';
import { digest } from '../hash.js';
import type { KeySpace } from '../keys.js';
import type { ResolvedFlushPolicy } from '../policy/types.js';
import type { JournalKeys } from './journal.js';
import { rowIdentity } from './ops.js';
import { type ColumnType, parseColumnType } from './pg-types.js';
import type { SinkTable } from './sink.js';

/** A table with pattern write-back, with everything the journal, flusher and adapter need. */
export interface WriteBackTable {
  readonly id: string;
  readonly info: TableInfo;
  readonly flush: ResolvedFlushPolicy;
  /** Life of a row entry without pending writes (the table's ttl). */
  readonly ttlMs: number;
  readonly keys: JournalKeys;
  readonly sink: SinkTable;
  /** Column name -> parsed type. */
  readonly columns: ReadonlyMap<string, ColumnType>;
  /** Tables the database changes when this one's rows change (cascades), invalidated after flushes. */
  readonly dependents: readonly string[];
  /** The row entry key of a primary key (canonical texts). */
  rowKey(pk: readonly string[]): string;
}

/**
 * Collects the write-back tables of a registry. Throws one PolicyError naming every table and
 * column whose type write-back cannot represent exactly (see pg-types.ts for the supported ones).
 */
export function writeBackTables(registry: TableRegistry, keys: KeySpace): WriteBackTable[] {
  const out: WriteBackTable[] = [];
  const issues: { message: string; location: PolicyLocation }[] = [];
  for (const { info, policy } of registry.all()) {
    if (policy.pattern !== 'write-back' || info.kind !== 'table') continue;
    const columns = new Map<string, ColumnType>();
    for (const column of info.columns) {
      const type = parseColumnType(column.type);
      if (type) columns.set(column.name, type);
      else {
        issues.push({
          message: `column "${column.name}" has type "${column.type}", which write-back cannot cache exactly; supported: integer types, numeric, double precision, boolean, text, varchar, uuid, json, jsonb, timestamp, timestamptz, date, bytea (use pattern "write-through" or "cache-aside" for this table)`,
          location: { table: info.id, field: `columns.${column.name}` },
        });
      }
    }
    const id = info.id;
    const sink: SinkTable = {
      id,
      name: info.name,
      schema: info.schema,
      columns: info.columns.map((c) => ({ name: c.name, type: columns.get(c.name) as ColumnType })),
      primaryKey: info.primaryKey,
    };
    const fingerprint = keys.fingerprint(id);
    out.push({
      id,
      info,
      flush: policy.flush,
      ttlMs: policy.ttlMs,
      keys: {
        stream: keys.writeBack(id, 's'),
        dlq: keys.writeBack(id, 'dlq'),
        applied: keys.writeBack(id, 'applied'),
        lease: keys.writeBack(id, 'lease'),
        epoch: keys.writeBack(id, 'epoch'),
        generations: [keys.globalGeneration(), keys.rowGeneration(id)],
        requests: keys.writeBack(id, 'q:'),
      },
      sink,
      columns,
      dependents: info.dependents ?? [],
      rowKey: (pk) => keys.writeBack(id, `r:${fingerprint}:${digest(rowIdentity(pk))}`),
    });
  }
  if (issues.length > 0) {
    const first = issues[0] as { message: string; location: PolicyLocation };
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    throw new PolicyError(`${first.message}${more}`, first.location, issues);
  }
  return out;
}

import type { Anomaly } from './checker.js';
import type { Op } from './history.js';
import type { ChaosResult } from './run-chaos.js';

/** The run's summary as printed by `npm run chaos`. */
export function formatResult(result: ChaosResult, maxExcerpts = 5): string {
  const { check, cache } = result;
  const faults = Object.entries(result.faults)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  const lines = [
    `tablecache chaos run: seed ${result.seed}, patterns ${result.patterns.join(', ')}, ${result.workers} workers`,
    `operations run:     ${result.opsRun} in ${(result.durationMs / 1000).toFixed(1)} s (${result.opsFailed} failed with an error)`,
    `faults injected:    ${faults}`,
    `reads checked:      ${check.reads} (${check.observations} key observations), writes: ${check.writes}`,
    `stale reads:        ${check.staleReads}`,
    `lost writes:        ${check.lostWrites}`,
    `duplicated writes:  ${check.duplicatedWrites}`,
    `other anomalies:    rolled-back reads ${check.rolledBackReads}, dirty reads ${check.dirtyReads}, phantom reads ${check.phantomReads}, rolled-back writes applied ${check.rolledBackApplied}, phantom writes ${check.phantomWrites}`,
    `cache:              ${cache.hits} hits, ${cache.stale} stale, ${cache.misses} misses, ${cache.bypasses} bypasses, ${cache.fills} fills (${cache.fillsRejected} rejected by the stale-set guard), ${cache.invalidations} invalidations, ${cache.storeErrors} store errors`,
    `pg pool clients leaked by drizzle (BEGIN failed, drizzle-orm#6023): ${result.leakedPgClients}`,
  ];
  if (result.errors.length > 0) {
    lines.push('most frequent operation errors:');
    for (const [message, n] of result.errors) lines.push(`  ${n} x ${message}`);
  }
  for (const anomaly of check.anomalies.slice(0, maxExcerpts)) lines.push('', ...excerpt(result, anomaly));
  if (check.anomalies.length > maxExcerpts) lines.push('', `(${check.anomalies.length - maxExcerpts} more anomalies)`);
  return lines.join('\n');
}

/** True when the run found no stale read, lost or duplicated write, nor any other anomaly. */
export function isClean(result: ChaosResult): boolean {
  return result.check.anomalies.length === 0;
}

/** The operations on the anomaly's key around it, and the faults in that window. */
export function excerpt(result: ChaosResult, anomaly: Anomaly, marginMs = 300): string[] {
  const byId = new Map(result.history.ops.map((op) => [op.id, op]));
  const related = [anomaly.op, anomaly.observed, anomaly.expected]
    .map((id) => (id === undefined ? undefined : byId.get(id)))
    .filter((op): op is Op => op !== undefined && Number.isFinite(op.start));
  const from = Math.min(...related.map((op) => op.start)) - marginMs;
  const to = Math.max(...related.map((op) => op.end)) + 20;
  const touches = (op: Op) =>
    op.writes.some((w) => w.table === anomaly.table && w.key === anomaly.key) ||
    op.observations.some((o) => o.table === anomaly.table && o.key === anomaly.key);
  const lines = [`${anomaly.kind.toUpperCase()} ${anomaly.table}#${anomaly.key}: ${anomaly.detail}`];
  if (related.length === 0) return lines;
  lines.push(`  history of ${anomaly.table}#${anomaly.key} from ${from.toFixed(1)} to ${to.toFixed(1)} ms:`);
  for (const op of result.history.ops) {
    if (op.end < from || op.start > to || !touches(op)) continue;
    const mark = op.id === anomaly.op ? '>>' : op.id === anomaly.expected || op.id === anomaly.observed ? ' *' : '  ';
    const parts = [
      ...op.writes
        .filter((w) => w.table === anomaly.table && w.key === anomaly.key)
        .map(
          (w) =>
            `${w.kind} ${w.val ?? ''}${w.version === undefined ? '' : ` v${w.version}`} [${w.status}${w.applied === false ? ', no row' : ''}]`,
        ),
      ...op.observations
        .filter((o) => o.table === anomaly.table && o.key === anomaly.key)
        .map((o) =>
          o.n !== undefined
            ? `saw n=${o.n}`
            : `saw ${o.val ?? 'absent'}${o.version === undefined ? '' : ` v${o.version}`}${o.list ? ' (list)' : ''}`,
        ),
    ];
    lines.push(
      `  ${mark} op ${op.id} ${op.instance} ${op.kind} ${op.start.toFixed(1)}..${op.end.toFixed(1)}: ${parts.join('; ')}${op.ok ? '' : ` ERROR ${op.error}`}`,
    );
  }
  for (const f of result.faultEvents) {
    if (f.end < from - 2000 || f.start > to) continue;
    lines.push(`  fault ${f.kind} ${f.target} ${f.start.toFixed(1)}..${f.end.toFixed(1)}`);
  }
  return lines;
}

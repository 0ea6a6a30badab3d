import { formatBytes, formatNumber, formatRatio } from './format.js';
import { eventLikeName, sensitiveData } from './names.js';
import type { Advice, AdviceRule, AdviseOptions, TableWorkload } from './types.js';

/** The advisor's thresholds when the caller sets none. */
export const DEFAULT_ADVISE_OPTIONS: Readonly<Required<AdviseOptions>> = Object.freeze({
  readHeavyRatio: 10,
  highWriteRate: 100,
  minRate: 1,
  byKeyFraction: 0.95,
});

/** The policy key of a table: its name, or `schema.name` outside `public` (as the catalog names it). */
export function policyKey(schema: string, name: string): string {
  return schema === 'public' || schema === '' ? name : `${schema}.${name}`;
}

/** Proposes a pattern for every table, in the order given. Pure: same input, same advice. */
export function adviseTables(stats: readonly TableWorkload[], options: AdviseOptions = {}): Advice[] {
  return stats.map((table) => adviseTable(table, options));
}

/**
 * Proposes a pattern for one table. Rules, first match wins: money/audit/security data -> none;
 * too little traffic -> none; read-heavy -> cache-aside; write-heavy -> write-back when the table
 * has a primary key and its writes are by key, else none; moderate writes -> write-through (needs
 * a primary key, else none).
 */
export function adviseTable(table: TableWorkload, options: AdviseOptions = {}): Advice {
  const o = { ...DEFAULT_ADVISE_OPTIONS, ...definedOnly(options) };
  const reads = table.seqScans + table.idxScans;
  const writes = table.inserts + table.updates + table.deletes;
  const seconds = table.seconds > 0 ? table.seconds : 1;
  const readRate = reads / seconds;
  const writeRate = writes / seconds;
  const rates = `${formatNumber(readRate)} reads/s vs ${formatNumber(writeRate)} writes/s (${formatRatio(reads, writes)})`;
  const advice = (pattern: Advice['pattern'], rule: AdviceRule, reason: string): Advice => ({
    table: policyKey(table.schema, table.name),
    schema: table.schema,
    name: table.name,
    pattern,
    rule,
    reason,
    readsPerSecond: readRate,
    writesPerSecond: writeRate,
  });
  const hasKey = table.primaryKey.length > 0;

  const sensitive = sensitiveData(table.name, table.columns);
  if (sensitive !== undefined) {
    return advice(
      'none',
      'sensitive',
      `looks like money/audit/security data (${sensitive}): readers must see the database's value; ${rates}`,
    );
  }

  const size = `${formatNumber(table.liveRows)} rows, ${formatBytes(table.sizeBytes)}`;
  if (reads + writes === 0) {
    return advice('none', 'low-traffic', `not worth caching: no reads and no writes recorded (${size})`);
  }
  if (readRate + writeRate < o.minRate) {
    return advice(
      'none',
      'low-traffic',
      `not worth caching: ${rates}, below ${formatNumber(o.minRate)} operations/s (${size})`,
    );
  }

  if (writes === 0 || reads / writes > o.readHeavyRatio) {
    return advice(
      'cache-aside',
      'read-heavy',
      `read-heavy: ${rates}, over ${formatNumber(o.readHeavyRatio)}:1 (${size})`,
    );
  }

  const heavy = writeHeaviness(table.name, reads, writes, writeRate, o);
  if (heavy !== undefined) {
    const why = `write-heavy: ${rates}, ${heavy}`;
    if (!hasKey) {
      return advice('none', 'write-heavy-no-primary-key', `${why}; write-back needs a primary key and there is none`);
    }
    const keyed = table.writesByKey;
    if (!keyed.known) {
      return advice(
        'none',
        'write-heavy-keys-unknown',
        `${why}; write-back needs writes by primary key, and whether they are is unknown (${keyed.reason}): check, then consider write-back`,
      );
    }
    const fraction = keyed.statements === 0 ? 0 : keyed.byKey / keyed.statements;
    const share = `${formatNumber(keyed.byKey)} of ${formatNumber(keyed.statements)} write statements by primary key (${percent(fraction)})`;
    if (keyed.statements === 0 || fraction < o.byKeyFraction) {
      return advice(
        'none',
        'write-heavy-not-by-key',
        `${why}; write-back needs writes by primary key (at least ${percent(o.byKeyFraction)}), found ${share}`,
      );
    }
    return advice(
      'write-back',
      'write-back',
      `${why}; ${share}; only if the table tolerates a lag before PostgreSQL has a write and a loss window equal to Redis's`,
    );
  }

  const moderate = `moderate writes: ${rates}, at most ${formatNumber(o.readHeavyRatio)}:1 and at most ${formatNumber(o.highWriteRate)} writes/s`;
  if (!hasKey) {
    return advice(
      'none',
      'moderate-no-primary-key',
      `${moderate}; write-through needs a primary key and there is none`,
    );
  }
  return advice(
    'write-through',
    'write-through',
    `${moderate}; write-through keeps cached rows current on every write`,
  );
}

/** Why a table counts as write-heavy, or undefined when it does not. */
function writeHeaviness(
  name: string,
  reads: number,
  writes: number,
  writeRate: number,
  o: Required<AdviseOptions>,
): string | undefined {
  if (writeRate > o.highWriteRate) return `over ${formatNumber(o.highWriteRate)} writes/s`;
  if (writes > reads * o.readHeavyRatio) return `writes over ${formatNumber(o.readHeavyRatio)}:1 reads`;
  const word = eventLikeName(name);
  if (word !== undefined && writes >= reads)
    return `at least as many writes as reads, and the name suggests counters or events ("${word}")`;
  return undefined;
}

function percent(fraction: number): string {
  return `${formatNumber(fraction * 100)}%`;
}

function definedOnly(options: AdviseOptions): AdviseOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as AdviseOptions;
}

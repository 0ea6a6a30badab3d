import type { CacheStats, Pattern } from '../src/index.js';
import { TABLES, type TableName } from './schema.js';
import { MEASURED, type Recorder } from './workload.js';

/** p50/p99 of one latency series, in milliseconds. */
export interface Latency {
  p50: number;
  p99: number;
  samples: number;
}

/** The figures of one table. */
export interface TableReport {
  /** The pattern the table ran with. */
  pattern: Pattern;
  /** The pattern the shop asked for (differs when this build lacks it). */
  requestedPattern: Pattern;
  operations: number;
  reads: number;
  writes: number;
  hits: number;
  misses: number;
  /** Reads that skipped the cache (transactions, uncached patterns). */
  bypasses: number;
  /** hits / (hits + misses); null when the table's reads are not cached. */
  hitRatio: number | null;
  invalidations: number;
  /** Latency of the table's reads (or writes, see `measures`) with the cache, and directly on the database. */
  latencyMs: { measures: 'read' | 'write'; withCache: Latency; direct: Latency };
  /** Write-back backlog and sync lag; null when the table is not write-back. */
  writeBack: {
    pending: number;
    flushed: number;
    oldestPendingAgeMs: number;
    lagP50Ms: number;
    lagP99Ms: number;
  } | null;
}

/** What `--json` prints. */
export interface DemoReport {
  database: 'pglite' | 'postgres';
  store: 'memory' | 'redis';
  concurrency: number;
  durationMs: number;
  elapsedMs: number;
  operations: number;
  operationsPerSecond: number;
  errorCount: number;
  errors: string[];
  notes: string[];
  tables: Record<TableName, TableReport>;
}

/** Inputs of a report: the run's settings, what the workload recorded and the cache's figures. */
export interface ReportInput {
  settings: Pick<DemoReport, 'database' | 'store' | 'concurrency' | 'durationMs' | 'notes'>;
  patterns: Readonly<Record<TableName, Pattern>>;
  requested: Readonly<Record<TableName, Pattern>>;
  recorder: Recorder;
  /** cache.stats() now, and when the workload started (figures are the difference). */
  stats: CacheStats;
  baseline: CacheStats;
  elapsedMs: number;
}

/** Builds the report of the run so far. */
export function buildReport(input: ReportInput): DemoReport {
  const { recorder, stats, baseline } = input;
  const tables = {} as Record<TableName, TableReport>;
  for (const name of TABLES) {
    const now = stats.tables[name];
    const then = baseline.tables[name];
    const delta = (field: 'hits' | 'misses' | 'bypasses' | 'invalidations') =>
      (now?.[field] ?? 0) - (then?.[field] ?? 0);
    const activity = recorder.of(name);
    const hits = delta('hits');
    const misses = delta('misses');
    const cachedReads = input.patterns[name] === 'cache-aside' || input.patterns[name] === 'write-through';
    const wb = stats.writeBack[name];
    tables[name] = {
      pattern: input.patterns[name],
      requestedPattern: input.requested[name],
      operations: activity.reads + activity.writes,
      reads: activity.reads,
      writes: activity.writes,
      hits,
      misses,
      bypasses: delta('bypasses'),
      hitRatio: cachedReads && hits + misses > 0 ? hits / (hits + misses) : null,
      invalidations: delta('invalidations'),
      latencyMs: { measures: MEASURED[name], withCache: activity.cached.summary(), direct: activity.direct.summary() },
      writeBack:
        input.patterns[name] === 'write-back' && wb
          ? {
              pending: wb.pending,
              flushed: wb.flushed - (baseline.writeBack[name]?.flushed ?? 0),
              oldestPendingAgeMs: wb.oldestPendingAgeMs,
              lagP50Ms: wb.lagP50Ms,
              lagP99Ms: wb.lagP99Ms,
            }
          : null,
    };
  }
  const seconds = input.elapsedMs / 1000;
  return {
    ...input.settings,
    elapsedMs: Math.round(input.elapsedMs),
    operations: recorder.operations,
    operationsPerSecond: seconds > 0 ? Math.round(recorder.operations / seconds) : 0,
    errorCount: recorder.errorCount,
    errors: [...recorder.errors],
    tables,
  };
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const pair = (l: Latency) => (l.samples === 0 ? '-' : `${ms(l.p50)} / ${ms(l.p99)}`);
const int = (n: number) => n.toLocaleString('en-US');

/** The per-table figures as aligned text lines. */
export function tableLines(report: DemoReport): string[] {
  const rows: string[][] = [
    [
      'table',
      'pattern',
      'ops',
      'hits',
      'misses',
      'hit ratio',
      'p50/p99 ms cached',
      'p50/p99 ms db',
      'inval.',
      'pending',
      'lag p99',
    ],
  ];
  for (const name of TABLES) {
    const t = report.tables[name];
    const mark = t.latencyMs.measures === 'write' ? ' (w)' : '';
    rows.push([
      name,
      t.pattern === t.requestedPattern ? t.pattern : `${t.pattern}*`,
      int(t.operations),
      int(t.hits),
      int(t.misses),
      t.hitRatio === null ? '-' : `${(t.hitRatio * 100).toFixed(1)}%`,
      `${pair(t.latencyMs.withCache)}${mark}`,
      `${pair(t.latencyMs.direct)}${mark}`,
      int(t.invalidations),
      t.writeBack ? int(t.writeBack.pending) : '-',
      t.writeBack ? `${ms(t.writeBack.lagP99Ms)} ms` : '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
}

/** `[#####.....] 12.0 s / 20.0 s  4,321 ops/s  0 errors` */
export function progressLine(report: DemoReport, width = 30): string {
  const done = Math.min(1, report.elapsedMs / report.durationMs);
  const filled = Math.round(done * width);
  const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
  const time = `${(report.elapsedMs / 1000).toFixed(1)} s / ${(report.durationMs / 1000).toFixed(1)} s`;
  return `[${bar}] ${time}  ${int(report.operationsPerSecond)} ops/s  ${int(report.errorCount)} errors`;
}

/** One line per second when the output is not a terminal. */
export function plainLine(report: DemoReport): string {
  const parts = TABLES.map((name) => {
    const ratio = report.tables[name].hitRatio;
    return `${name} ${ratio === null ? '-' : `${(ratio * 100).toFixed(0)}%`}`;
  });
  return `t=${(report.elapsedMs / 1000).toFixed(1)}s ops=${report.operations} errors=${report.errorCount} hit ratio: ${parts.join(', ')}`;
}

/** Redraws a block of lines in place on a terminal. */
export class LiveView {
  private drawn = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  draw(lines: readonly string[]): void {
    const up = this.drawn > 0 ? `\x1b[${this.drawn}F` : '';
    this.out.write(`${up}\x1b[J${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
}

/** The end-of-run summary in words. */
export function summaryLines(report: DemoReport): string[] {
  const lines = [
    '',
    `Ran ${int(report.operations)} requests in ${(report.elapsedMs / 1000).toFixed(1)} s (${int(report.operationsPerSecond)}/s, ` +
      `${report.concurrency} at a time) on ${report.database} with the ${report.store} store; ${int(report.errorCount)} errors.`,
  ];
  for (const name of TABLES) {
    const t = report.tables[name];
    const cached = t.latencyMs.withCache;
    const direct = t.latencyMs.direct;
    if (t.latencyMs.measures === 'read' && t.hitRatio !== null && direct.samples > 0 && cached.p50 > 0) {
      lines.push(
        `  ${name}: ${(t.hitRatio * 100).toFixed(1)}% of reads served from the cache; ` +
          `p50 ${ms(cached.p50)} ms with the cache vs ${ms(direct.p50)} ms from the database (${(direct.p50 / cached.p50).toFixed(1)}x)`,
      );
    }
    if (t.writeBack) {
      lines.push(
        `  ${name}: writes acknowledged in ${ms(cached.p50)} ms (p50) vs ${ms(direct.p50)} ms for a direct insert; ` +
          `${int(t.writeBack.flushed)} flushed, sync lag p50 ${ms(t.writeBack.lagP50Ms)} ms / p99 ${ms(t.writeBack.lagP99Ms)} ms`,
      );
    }
  }
  if (Object.values(report.tables).some((t) => t.pattern !== t.requestedPattern)) {
    lines.push('  * runs as cache-aside: the requested pattern is not available in this build (see the notes)');
  }
  lines.push('  (w): latency of writes rather than reads');
  for (const note of report.notes) lines.push(`note: ${note}`);
  for (const error of report.errors) lines.push(`error: ${error}`);
  return lines;
}

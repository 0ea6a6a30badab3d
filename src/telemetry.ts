/**
 * All of tablecache's telemetry: OpenTelemetry spans and metrics plus the in-process figures of
 * `cache.stats()`, updated in one place. This is the only module that imports @opentelemetry/api.
 */
import {
  type Attributes,
  type Counter,
  type Histogram,
  type MeterProvider,
  metrics,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TracerProvider,
  trace,
  type UpDownCounter,
} from '@opentelemetry/api';
import type { Pattern } from './policy/types.js';

/** The cache operations that get a span and a duration measurement. */
export type OperationName = 'get' | 'put' | 'invalidate' | 'flush';
/** How a cache operation ended. `bypass`: the cache was skipped or unavailable (handled). */
export type OperationResult = 'hit' | 'miss' | 'bypass' | 'stale' | 'ok';

/** Telemetry settings of `createCache`. */
export interface TelemetryOptions {
  /** Tracer provider; defaults to the global one (a no-op until an SDK is installed). */
  tracerProvider?: TracerProvider;
  /** Meter provider; defaults to the global one. */
  meterProvider?: MeterProvider;
  /** Put the (hashed) cache key on spans as `tablecache.key`. Off by default. @default false */
  recordKeys?: boolean;
}

/** In-process figures of one table, as `cache.stats()` returns them. */
export interface TableStats {
  pattern: Pattern;
  hits: number;
  misses: number;
  bypasses: number;
  stale: number;
  fills: number;
  fillsRejected: number;
  oversized: number;
  invalidations: number;
  errors: number;
  /** hits / (hits + misses), or 0 before any cached read. */
  hitRatio: number;
}

/** Figures of the whole cache. */
export interface CacheStats {
  tables: Record<string, TableStats>;
  storeErrors: number;
  breakerOpen: boolean;
  writeBack: Record<string, WriteBackStats>;
}

/** Write-back figures of one table. */
export interface WriteBackStats {
  pending: number;
  oldestPendingAgeMs: number;
  flushed: number;
  deadLetters: number;
  lagP50Ms: number;
  lagP99Ms: number;
}

/** The handle an operation uses to report its outcome on its span and metric. */
export interface OperationScope {
  /** Sets the result reported on the span and the duration metric. */
  result(result: OperationResult): void;
  /** Records the hashed key on the span when `recordKeys` is on. */
  key(key: string): void;
}

const DURATION_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const SQL_OPERATION: Record<OperationName, string> = {
  get: 'SELECT',
  put: 'SET',
  invalidate: 'INVALIDATE',
  flush: 'BATCH UPSERT',
};

/** The pattern as an attribute value: `cache_aside`, `write_through`, `write_back`, `none`. */
export function patternAttribute(pattern: Pattern): string {
  return pattern.replace('-', '_');
}

/** Error type per the semantic conventions: SQLSTATE or driver code, else the class name. */
export function errorType(error: unknown): string {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  if (error instanceof Error) return error.name || error.constructor.name || '_OTHER';
  return '_OTHER';
}

/** Creates the telemetry of one cache. */
export class Telemetry {
  private readonly tracer;
  private readonly recordKeys: boolean;
  private readonly duration: Histogram;
  private readonly invalidations: Counter;
  private readonly fillsRejected: Counter;
  private readonly storeErrorCount: Counter;
  private readonly oversizedCount: Counter;
  private readonly breaker: UpDownCounter;
  private readonly lag: Histogram;
  private readonly batchSize: Histogram;
  private readonly deadLetters: Counter;
  private readonly pendingCounter: UpDownCounter;
  private readonly tableStats = new Map<string, TableStats>();
  private readonly writeBackStats = new Map<string, WriteBackStats & { lags: number[] }>();
  private storeErrors = 0;
  private breakerOpen = false;
  private pendingAgeSource: (() => Map<string, number>) | undefined;

  constructor(options: TelemetryOptions = {}, version = '0.1.0') {
    this.tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer('tablecache', version);
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter('tablecache', version);
    this.recordKeys = options.recordKeys ?? false;
    this.duration = meter.createHistogram('tablecache.operation.duration', {
      unit: 's',
      description: 'Duration of cache operations, by operation, result, pattern and table.',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.invalidations = meter.createCounter('tablecache.invalidation.count', {
      unit: '{invalidation}',
      description: 'Table generations bumped after writes or by hand.',
    });
    this.fillsRejected = meter.createCounter('tablecache.fill.rejected.count', {
      unit: '{fill}',
      description: 'Cache fills dropped by the stale-set guard because a write raced them.',
    });
    this.storeErrorCount = meter.createCounter('tablecache.store.error.count', {
      unit: '{error}',
      description: 'Store calls that failed or timed out (the query was served by the database).',
    });
    this.oversizedCount = meter.createCounter('tablecache.value.oversized.count', {
      unit: '{value}',
      description: 'Results served uncached because they exceed maxValueBytes.',
    });
    this.breaker = meter.createUpDownCounter('tablecache.breaker.open', {
      unit: '1',
      description: '1 while the store circuit breaker is open.',
    });
    this.lag = meter.createHistogram('tablecache.write_back.lag', {
      unit: 's',
      description: 'Per flushed write: acknowledged in Redis to committed in PostgreSQL.',
      advice: { explicitBucketBoundaries: LAG_BUCKETS },
    });
    this.batchSize = meter.createHistogram('tablecache.write_back.batch.size', {
      unit: '{write}',
      description: 'Writes applied per flushed batch.',
    });
    this.deadLetters = meter.createCounter('tablecache.write_back.dead_letter.count', {
      unit: '{write}',
      description: 'Writes moved to the dead-letter stream.',
    });
    this.pendingCounter = meter.createUpDownCounter('tablecache.write_back.pending', {
      unit: '{write}',
      description: 'Writes acknowledged but not yet committed to the database.',
    });
    meter
      .createObservableGauge('tablecache.write_back.pending.age', {
        unit: 's',
        description: 'Age of the oldest unflushed write per table.',
      })
      .addCallback((observer) => {
        const ages = this.pendingAgeSource?.();
        if (!ages) return;
        for (const [table, ms] of ages) observer.observe(ms / 1000, { 'db.collection.name': table });
      });
  }

  /** Registers a table so it appears in stats with its pattern. */
  registerTable(table: string, pattern: Pattern): void {
    if (!this.tableStats.has(table)) this.tableStats.set(table, emptyStats(pattern));
  }

  /**
   * Runs `fn` inside an active INTERNAL span `tablecache.<op> <table>` (so pg and ioredis spans
   * nest under it) and records its duration with its result.
   */
  async operation<T>(
    op: OperationName,
    table: string,
    pattern: Pattern,
    fn: (scope: OperationScope) => Promise<T>,
  ): Promise<T> {
    const attributes: Attributes = {
      'db.collection.name': table,
      'db.operation.name': SQL_OPERATION[op],
      'tablecache.operation': op,
      'tablecache.pattern': patternAttribute(pattern),
    };
    const started = performance.now();
    let result: OperationResult = 'ok';
    const recordKeys = this.recordKeys;
    return this.tracer.startActiveSpan(
      `tablecache.${op} ${table}`,
      { kind: SpanKind.INTERNAL, attributes },
      async (span: Span) => {
        const scope: OperationScope = {
          result(r) {
            result = r;
          },
          key(k) {
            if (recordKeys) span.setAttribute('tablecache.key', k);
          },
        };
        try {
          const value = await fn(scope);
          span.setAttribute('tablecache.result', result);
          this.duration.record((performance.now() - started) / 1000, { ...attributes, 'tablecache.result': result });
          this.count(table, pattern, op, result);
          return value;
        } catch (error) {
          const type = errorType(error);
          span.setAttribute('tablecache.result', result);
          span.setAttribute('error.type', type);
          span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
          this.duration.record((performance.now() - started) / 1000, {
            ...attributes,
            'tablecache.result': result,
            'error.type': type,
          });
          this.statsOf(table, pattern).errors++;
          throw error;
        } finally {
          span.end();
        }
      },
    );
  }

  /** Runs background work (flushes, retries) in its own root-level span, never as an orphan. */
  background<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
    return this.tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes, root: true }, async (span) => {
      try {
        return await fn();
      } catch (error) {
        span.setAttribute('error.type', errorType(error));
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        throw error;
      } finally {
        span.end();
      }
    });
  }

  /** A cache fill was written. */
  filled(table: string, pattern: Pattern): void {
    this.statsOf(table, pattern).fills++;
  }

  /** A fill was rejected by the stale-set guard. */
  fillRejected(table: string, pattern: Pattern): void {
    this.statsOf(table, pattern).fillsRejected++;
    this.fillsRejected.add(1, { 'db.collection.name': table, 'tablecache.pattern': patternAttribute(pattern) });
  }

  /** A result was too large to cache. */
  oversized(table: string, pattern: Pattern): void {
    this.statsOf(table, pattern).oversized++;
    this.oversizedCount.add(1, { 'db.collection.name': table, 'tablecache.pattern': patternAttribute(pattern) });
  }

  /** A table's generation was bumped. */
  invalidated(table: string, pattern: Pattern): void {
    this.statsOf(table, pattern).invalidations++;
    this.invalidations.add(1, { 'db.collection.name': table, 'tablecache.pattern': patternAttribute(pattern) });
  }

  /** A store call failed or timed out. */
  storeError(error: unknown): void {
    this.storeErrors++;
    this.storeErrorCount.add(1, { 'error.type': errorType(error) });
  }

  /** The circuit breaker opened or closed. */
  breakerChanged(open: boolean): void {
    if (open === this.breakerOpen) return;
    this.breakerOpen = open;
    this.breaker.add(open ? 1 : -1);
  }

  /** Write-back: writes were acknowledged (queued) for a table. */
  writeBackQueued(table: string, count: number): void {
    this.writeBackOf(table).pending += count;
    this.pendingCounter.add(count, { 'db.collection.name': table });
  }

  /** Write-back: a batch was committed; `lagsMs` holds each write's acknowledgement-to-commit lag. */
  writeBackFlushed(table: string, lagsMs: readonly number[]): void {
    const wb = this.writeBackOf(table);
    wb.pending = Math.max(0, wb.pending - lagsMs.length);
    wb.flushed += lagsMs.length;
    this.pendingCounter.add(-lagsMs.length, { 'db.collection.name': table });
    this.batchSize.record(lagsMs.length, { 'db.collection.name': table });
    for (const ms of lagsMs) {
      this.lag.record(ms / 1000, { 'db.collection.name': table });
      wb.lags.push(ms);
    }
    if (wb.lags.length > 10_000) wb.lags.splice(0, wb.lags.length - 10_000);
  }

  /** Write-back: writes moved to the dead-letter stream. */
  writeBackDeadLettered(table: string, count: number): void {
    const wb = this.writeBackOf(table);
    wb.deadLetters += count;
    wb.pending = Math.max(0, wb.pending - count);
    this.pendingCounter.add(-count, { 'db.collection.name': table });
    this.deadLetters.add(count, { 'db.collection.name': table });
  }

  /** Write-back: where the age of the oldest pending write per table comes from (milliseconds). */
  observePendingAge(source: () => Map<string, number>): void {
    this.pendingAgeSource = source;
  }

  /** The in-process figures. */
  stats(): CacheStats {
    const tables: Record<string, TableStats> = {};
    for (const [name, s] of this.tableStats) {
      const reads = s.hits + s.misses;
      tables[name] = { ...s, hitRatio: reads === 0 ? 0 : s.hits / reads };
    }
    const writeBack: Record<string, WriteBackStats> = {};
    const ages = this.pendingAgeSource?.() ?? new Map<string, number>();
    for (const [name, wb] of this.writeBackStats) {
      const sorted = [...wb.lags].sort((a, b) => a - b);
      writeBack[name] = {
        pending: wb.pending,
        oldestPendingAgeMs: ages.get(name) ?? 0,
        flushed: wb.flushed,
        deadLetters: wb.deadLetters,
        lagP50Ms: quantile(sorted, 0.5),
        lagP99Ms: quantile(sorted, 0.99),
      };
    }
    return { tables, storeErrors: this.storeErrors, breakerOpen: this.breakerOpen, writeBack };
  }

  private count(table: string, pattern: Pattern, op: OperationName, result: OperationResult): void {
    if (op !== 'get') return;
    const s = this.statsOf(table, pattern);
    if (result === 'hit') s.hits++;
    else if (result === 'miss') s.misses++;
    else if (result === 'bypass') s.bypasses++;
    else if (result === 'stale') s.stale++;
  }

  private statsOf(table: string, pattern: Pattern): TableStats {
    let s = this.tableStats.get(table);
    if (!s) {
      s = emptyStats(pattern);
      this.tableStats.set(table, s);
    }
    return s;
  }

  private writeBackOf(table: string): WriteBackStats & { lags: number[] } {
    let wb = this.writeBackStats.get(table);
    if (!wb) {
      wb = { pending: 0, oldestPendingAgeMs: 0, flushed: 0, deadLetters: 0, lagP50Ms: 0, lagP99Ms: 0, lags: [] };
      this.writeBackStats.set(table, wb);
    }
    return wb;
  }
}

function emptyStats(pattern: Pattern): TableStats {
  return {
    pattern,
    hits: 0,
    misses: 0,
    bypasses: 0,
    stale: 0,
    fills: 0,
    fillsRejected: 0,
    oversized: 0,
    invalidations: 0,
    errors: 0,
    hitRatio: 0,
  };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

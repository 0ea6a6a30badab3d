/**
 * All of tablecache's telemetry: OpenTelemetry spans and metrics plus the in-process figures of
 * `cache.stats()`, updated in one place. This is the only module that imports @opentelemetry/api.
 * Names and attributes are documented in docs/observability.md.
 */
import {
  type Attributes,
  type Counter,
  type Histogram,
  INVALID_TRACEID,
  isSpanContextValid,
  type Link,
  type Meter,
  type MeterProvider,
  metrics,
  context as otelContext,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
  type UpDownCounter,
} from '@opentelemetry/api';
import type { Pattern } from './policy/types.js';

/** The cache operations that get a span and a duration measurement. */
export type OperationName = 'get' | 'put' | 'invalidate' | 'flush';
/**
 * How a cache operation ended. `bypass`: the cache was skipped or unavailable (handled, not an
 * error); `ok`: an operation without a hit/miss notion succeeded; `error`: the operation threw.
 */
export type OperationResult = 'hit' | 'miss' | 'bypass' | 'stale' | 'ok' | 'error';

/** Telemetry settings of `createCache`. */
export interface TelemetryOptions {
  /** Tracer provider; defaults to the global one (a no-op until an SDK is installed). */
  tracerProvider?: TracerProvider;
  /** Meter provider; defaults to the global one at `createCache` time (start the SDK first). */
  meterProvider?: MeterProvider;
  /** Put the (hashed) cache key on spans as `tablecache.key`, for debugging. @default false */
  recordKeys?: boolean;
  /**
   * Put error messages in span status descriptions, for debugging. Off by default because driver
   * messages can quote parameter values (Drizzle's `Failed query: ... params: ...`). @default false
   */
  recordErrorMessages?: boolean;
}

/** Extra settings of one `Telemetry.operation` call. */
export interface OperationOptions {
  /** `db.operation.name` on the span (`SELECT` for `get` unless given; none otherwise). */
  dbOperation?: string;
  /** Starts a new trace instead of a child of the active span (background work such as flushes). */
  root?: boolean;
  /** W3C `traceparent` strings (from `Telemetry.traceparent()`) of the work this operation continues. */
  links?: readonly string[];
}

/** In-process figures of one table, as `cache.stats()` returns them. */
export interface TableStats {
  pattern: Pattern;
  /** Every cached-path read: hits + misses + bypasses + stale + errors. */
  reads: number;
  hits: number;
  misses: number;
  bypasses: number;
  stale: number;
  fills: number;
  fillsRejected: number;
  oversized: number;
  invalidations: number;
  /** Operations of this table that threw (`tablecache.result = error`). */
  errors: number;
  /** Hits the drift sampler re-checked against the database (`createCache({ verify })`). */
  driftChecks: number;
  /** Checks that found the cached value differing from the database (see docs/freshness.md). */
  drift: number;
  /** hits / reads, the same formula as the metric-based hit ratio; 0 before any read. */
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

/** What `Telemetry.kind` builds once per operation and table (see `Telemetry.run`). */
export interface OperationKind {
  readonly op: OperationName;
  readonly spanName: string;
  readonly attributes: Attributes;
  readonly spanAttributes: Attributes;
  /** Metric attributes by result, filled on first use. */
  readonly byResult: Map<OperationResult, Attributes>;
  readonly stats: TableStats;
}

// Attribute names: the stable database ones (semconv >= 1.33) are copied, not imported, so the
// library depends on @opentelemetry/api alone.
const DB_COLLECTION_NAME = 'db.collection.name';
const DB_OPERATION_NAME = 'db.operation.name';
const DB_QUERY_SUMMARY = 'db.query.summary';
const ERROR_TYPE = 'error.type';
const TC_OPERATION = 'tablecache.operation';
const TC_PATTERN = 'tablecache.pattern';
const TC_RESULT = 'tablecache.result';
const TC_KEY = 'tablecache.key';

/** The bucket advice of `db.client.operation.duration`, so both histograms line up. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
const SPAN_PREFIX: Record<OperationName, string> = {
  get: 'tablecache.get',
  put: 'tablecache.put',
  invalidate: 'tablecache.invalidate',
  flush: 'tablecache.write_back.flush',
};
const SQLSTATE = /^[0-9A-Z]{5}$/;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The pattern as an attribute value: `cache_aside`, `write_through`, `write_back`, `none`. */
export function patternAttribute(pattern: Pattern): string {
  return pattern.replace('-', '_');
}

/**
 * `error.type` per the semantic conventions: the SQLSTATE found on the error or its causes
 * (Drizzle wraps the driver error in `cause`), else the exception class name, else `_OTHER`.
 */
export function errorType(error: unknown): string {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const { code, syscall } = current as { code?: unknown; syscall?: unknown };
    // Node system errors (EPIPE, EPERM...) also have five-letter codes; they carry `syscall`.
    if (typeof code === 'string' && SQLSTATE.test(code) && syscall === undefined) return code;
    current = (current as { cause?: unknown }).cause;
  }
  if (error instanceof Error) {
    const className = error.constructor?.name;
    if (className && className !== 'Error') return className;
    return error.name || '_OTHER';
  }
  return '_OTHER';
}

/** The tracer, meter instruments and in-process figures of one cache. */
export class Telemetry {
  private readonly tracer: Tracer;
  private readonly recordKeys: boolean;
  private readonly recordErrorMessages: boolean;
  private readonly duration: Histogram;
  private readonly invalidations: Counter;
  private readonly rejectedFills: Counter;
  private readonly storeErrorCount: Counter;
  private readonly oversizedCount: Counter;
  private readonly breaker: UpDownCounter;
  private readonly lag: Histogram;
  private readonly batchSize: Histogram;
  private readonly deadLetters: Counter;
  private readonly pendingCounter: UpDownCounter;
  private readonly meter: Meter;
  /** Created on the first drift: only caches whose sampler found drift export the series. */
  private driftCount: Counter | undefined;
  private readonly kinds = new Map<string, OperationKind>();
  private readonly tableStats = new Map<string, TableStats>();
  private readonly writeBackStats = new Map<string, WriteBackStats & { lags: number[] }>();
  private storeErrors = 0;
  private breakerOpen = false;
  private pendingAgeSource: (() => Map<string, number>) | undefined;

  constructor(options: TelemetryOptions = {}, version = '0.1.0') {
    this.tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer('tablecache', version);
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter('tablecache', version);
    this.meter = meter;
    this.recordKeys = options.recordKeys ?? false;
    this.recordErrorMessages = options.recordErrorMessages ?? false;
    this.duration = meter.createHistogram('tablecache.operation.duration', {
      unit: 's',
      description: 'Duration of cache operations, by operation, result, pattern and table.',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.invalidations = meter.createCounter('tablecache.invalidations', {
      unit: '{invalidation}',
      description: 'Table generations bumped after writes or by hand.',
    });
    this.rejectedFills = meter.createCounter('tablecache.rejected_fills', {
      unit: '{fill}',
      description: 'Cache fills dropped by the stale-set guard because a write raced them.',
    });
    this.storeErrorCount = meter.createCounter('tablecache.store.errors', {
      unit: '{error}',
      description: 'Store calls that failed or timed out (handled: the query was served by the database).',
    });
    this.oversizedCount = meter.createCounter('tablecache.oversized_values', {
      unit: '{value}',
      description: 'Results served uncached because they exceed maxValueBytes or cannot be encoded.',
    });
    this.breaker = meter.createUpDownCounter('tablecache.breaker.open', {
      unit: '{breaker}',
      description: 'Open store circuit breakers: 1 while this cache refuses store calls, else 0.',
    });
    this.lag = meter.createHistogram('tablecache.write_back.lag', {
      unit: 's',
      description: 'Per flushed write: acknowledged in Redis to committed in PostgreSQL.',
      advice: { explicitBucketBoundaries: LAG_BUCKETS },
    });
    this.batchSize = meter.createHistogram('tablecache.write_back.batch.size', {
      unit: '{write}',
      description: 'Writes applied per flushed batch.',
      advice: { explicitBucketBoundaries: BATCH_BUCKETS },
    });
    this.deadLetters = meter.createCounter('tablecache.write_back.dead_letters', {
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
        description: 'Age of the oldest unflushed write per table (grows while a flusher is stalled).',
      })
      .addCallback((observer) => {
        const ages = this.pendingAgeSource?.();
        if (!ages) return;
        for (const [table, ms] of ages) observer.observe(ms / 1000, { [DB_COLLECTION_NAME]: table });
      });
    // Report the closed breaker from the start, so dashboards show 0 rather than no data.
    this.breaker.add(0);
  }

  /** Registers a table so it appears in stats (and write-back tables in the pending metric) at zero. */
  registerTable(table: string, pattern: Pattern): void {
    if (!this.tableStats.has(table)) this.tableStats.set(table, emptyStats(pattern));
    if (pattern === 'write-back' && !this.writeBackStats.has(table)) {
      this.writeBackOf(table);
      this.pendingCounter.add(0, { [DB_COLLECTION_NAME]: table });
    }
  }

  /**
   * Runs `fn` inside an active INTERNAL span `tablecache.<op> <table>` (flushes:
   * `tablecache.write_back.flush <table>`), so the pg and ioredis spans of its work nest under it,
   * and records its duration with its result. A throw marks the span ERROR with `error.type`;
   * handled problems (store down) are results, not errors.
   */
  operation<T>(
    op: OperationName,
    table: string,
    pattern: Pattern,
    fn: (scope: OperationScope) => Promise<T>,
    options: OperationOptions = {},
  ): Promise<T> {
    return this.run(this.kind(op, table, pattern, options.dbOperation), fn, options);
  }

  /**
   * The span name, attribute sets and stats of one operation on one table, built once: the hot
   * read path keeps it and calls `run` instead of `operation`.
   */
  kind(op: OperationName, table: string, pattern: Pattern, dbOperation?: string): OperationKind {
    const db = dbOperation ?? (op === 'get' ? 'SELECT' : undefined);
    const key = `${op}\u0000${table}\u0000${pattern}\u0000${db ?? ''}`;
    let kind = this.kinds.get(key);
    if (!kind) {
      if (this.kinds.size > 10_000) this.kinds.clear();
      const attributes: Attributes = Object.freeze({
        [DB_COLLECTION_NAME]: table,
        [TC_OPERATION]: op,
        [TC_PATTERN]: patternAttribute(pattern),
      });
      kind = {
        op,
        spanName: `${SPAN_PREFIX[op]} ${table}`,
        attributes,
        spanAttributes: db
          ? Object.freeze({ ...attributes, [DB_OPERATION_NAME]: db, [DB_QUERY_SUMMARY]: `${db} ${table}` })
          : attributes,
        byResult: new Map(),
        stats: this.statsOf(table, pattern),
      };
      this.kinds.set(key, kind);
    }
    return kind;
  }

  /** `operation` for a kind from `kind()`. */
  run<T>(kind: OperationKind, fn: (scope: OperationScope) => Promise<T>, options: OperationOptions = {}): Promise<T> {
    const parent = otelContext.active();
    const span = this.tracer.startSpan(
      kind.spanName,
      {
        kind: SpanKind.INTERNAL,
        attributes: kind.spanAttributes,
        links: parseLinks(options.links),
        root: options.root ?? false,
      },
      parent,
    );
    // Without an SDK (or outside any trace) the span is a no-op with no context to propagate:
    // making it active would only cost a context per read.
    if (!span.isRecording() && span.spanContext().traceId === INVALID_TRACEID) return this.within(kind, span, fn);
    return otelContext.with(trace.setSpan(parent, span), () => this.within(kind, span, fn));
  }

  /** Runs an operation's work under its span; records its result and duration, then ends the span. */
  private within<T>(kind: OperationKind, span: Span, fn: (scope: OperationScope) => Promise<T>): Promise<T> {
    const started = performance.now();
    const scope = new Scope(span, this.recordKeys);
    let pending: Promise<T>;
    try {
      pending = fn(scope);
    } catch (error) {
      pending = Promise.reject(error);
    }
    // Plain callbacks rather than an async wrapper: one promise layer less on every read.
    return pending.then(
      (value) => {
        const result = scope.outcome;
        span.setAttribute(TC_RESULT, result);
        let attributes = kind.byResult.get(result);
        if (!attributes) {
          attributes = Object.freeze({ ...kind.attributes, [TC_RESULT]: result });
          kind.byResult.set(result, attributes);
        }
        this.duration.record(elapsed(started), attributes);
        count(kind.stats, kind.op, result);
        span.end();
        return value;
      },
      (error: unknown) => {
        const type = errorType(error);
        span.setAttributes({ [TC_RESULT]: 'error', [ERROR_TYPE]: type });
        this.markFailed(span, error);
        this.duration.record(elapsed(started), { ...kind.attributes, [TC_RESULT]: 'error', [ERROR_TYPE]: type });
        count(kind.stats, kind.op, 'error');
        span.end();
        throw error;
      },
    );
  }

  /**
   * Runs background work without a duration metric (reclaim, retries) in its own INTERNAL root
   * span, so its pg and ioredis calls nest under it instead of becoming orphan roots.
   */
  background<T>(name: string, attributes: Attributes, fn: () => Promise<T>, links?: readonly string[]): Promise<T> {
    return this.tracer.startActiveSpan(
      name,
      { kind: SpanKind.INTERNAL, attributes, root: true, links: parseLinks(links) },
      async (span) => {
        try {
          return await fn();
        } catch (error) {
          span.setAttribute(ERROR_TYPE, errorType(error));
          this.markFailed(span, error);
          throw error;
        } finally {
          span.end();
        }
      },
    );
  }

  /** The W3C `traceparent` of the active span, to link later background work to it; undefined without one. */
  traceparent(): string | undefined {
    const context = trace.getActiveSpan()?.spanContext();
    if (!context || !isSpanContextValid(context)) return undefined;
    return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  }

  /** A cache fill was written. */
  filled(table: string, pattern: Pattern): void {
    this.statsOf(table, pattern).fills++;
  }

  /** A fill was rejected by the stale-set guard. */
  fillRejected(table: string, pattern: Pattern): void {
    this.statsOf(table, pattern).fillsRejected++;
    this.rejectedFills.add(1, { [DB_COLLECTION_NAME]: table, [TC_PATTERN]: patternAttribute(pattern) });
  }

  /** A result was too large (or not encodable) to cache. */
  oversized(table: string, pattern: Pattern): void {
    this.statsOf(table, pattern).oversized++;
    this.oversizedCount.add(1, { [DB_COLLECTION_NAME]: table, [TC_PATTERN]: patternAttribute(pattern) });
  }

  /** The drift sampler compared a cached value with the database; `drifted` when they differed. */
  driftChecked(table: string, pattern: Pattern, drifted: boolean): void {
    const s = this.statsOf(table, pattern);
    s.driftChecks++;
    if (!drifted) return;
    s.drift++;
    this.driftCount ??= this.meter.createCounter('tablecache.drift', {
      unit: '{entry}',
      description:
        'Cached values the drift sampler found differing from the database (writes that bypassed tablecache).',
    });
    this.driftCount.add(1, { [DB_COLLECTION_NAME]: table, [TC_PATTERN]: patternAttribute(pattern) });
  }

  /** A table's generation was bumped (`*`: the whole namespace). */
  invalidated(table: string, pattern: Pattern): void {
    this.statsOf(table, pattern).invalidations++;
    this.invalidations.add(1, { [DB_COLLECTION_NAME]: table, [TC_PATTERN]: patternAttribute(pattern) });
  }

  /** A store call failed or timed out (handled by the caller: never a span error). */
  storeError(error: unknown): void {
    this.storeErrors++;
    this.storeErrorCount.add(1, { [ERROR_TYPE]: errorType(error) });
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
    this.pendingCounter.add(count, { [DB_COLLECTION_NAME]: table });
  }

  /** Write-back: a batch was committed; `lagsMs` holds each write's acknowledgement-to-commit lag. */
  writeBackFlushed(table: string, lagsMs: readonly number[]): void {
    const wb = this.writeBackOf(table);
    const attributes = { [DB_COLLECTION_NAME]: table };
    wb.pending = Math.max(0, wb.pending - lagsMs.length);
    wb.flushed += lagsMs.length;
    this.pendingCounter.add(-lagsMs.length, attributes);
    this.batchSize.record(lagsMs.length, attributes);
    for (const ms of lagsMs) {
      this.lag.record(ms / 1000, attributes);
      wb.lags.push(ms);
    }
    if (wb.lags.length > 10_000) wb.lags.splice(0, wb.lags.length - 10_000);
  }

  /** Write-back: writes moved to the dead-letter stream. */
  writeBackDeadLettered(table: string, count: number): void {
    const wb = this.writeBackOf(table);
    wb.deadLetters += count;
    wb.pending = Math.max(0, wb.pending - count);
    this.pendingCounter.add(-count, { [DB_COLLECTION_NAME]: table });
    this.deadLetters.add(count, { [DB_COLLECTION_NAME]: table });
  }

  /** Write-back: where the age of the oldest pending write per table comes from (milliseconds). */
  observePendingAge(source: () => Map<string, number>): void {
    this.pendingAgeSource = source;
  }

  /** The in-process figures. */
  stats(): CacheStats {
    const tables: Record<string, TableStats> = {};
    for (const [name, s] of this.tableStats) {
      tables[name] = { ...s, hitRatio: s.reads === 0 ? 0 : s.hits / s.reads };
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

  private markFailed(span: Span, error: unknown): void {
    if (!this.recordErrorMessages) {
      span.setStatus({ code: SpanStatusCode.ERROR });
      return;
    }
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
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

/** Counts one operation's outcome in its table's stats. */
function count(s: TableStats, op: OperationName, result: OperationResult): void {
  if (result === 'error') s.errors++;
  if (op !== 'get') return;
  s.reads++;
  if (result === 'hit') s.hits++;
  else if (result === 'miss') s.misses++;
  else if (result === 'bypass') s.bypasses++;
  else if (result === 'stale') s.stale++;
}

/** The scope handed to an operation: its outcome so far and its span. */
class Scope implements OperationScope {
  outcome: OperationResult = 'ok';

  constructor(
    private readonly span: Span,
    private readonly recordKeys: boolean,
  ) {}

  result(result: OperationResult): void {
    this.outcome = result;
  }

  key(key: string): void {
    if (this.recordKeys) this.span.setAttribute(TC_KEY, key);
  }
}

function elapsed(started: number): number {
  return (performance.now() - started) / 1000;
}

/** Turns `traceparent` strings into span links, skipping malformed ones. */
function parseLinks(traceparents: readonly string[] | undefined): Link[] {
  const links: Link[] = [];
  if (!traceparents) return links;
  for (const value of traceparents) {
    const match = TRACEPARENT.exec(value);
    if (!match) continue;
    const context = {
      traceId: match[1] as string,
      spanId: match[2] as string,
      traceFlags: Number.parseInt(match[3] as string, 16),
      isRemote: true,
    };
    if (isSpanContextValid(context)) links.push({ context });
  }
  return links;
}

function emptyStats(pattern: Pattern): TableStats {
  return {
    pattern,
    reads: 0,
    hits: 0,
    misses: 0,
    bypasses: 0,
    stale: 0,
    fills: 0,
    fillsRejected: 0,
    oversized: 0,
    invalidations: 0,
    errors: 0,
    driftChecks: 0,
    drift: 0,
    hitRatio: 0,
  };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

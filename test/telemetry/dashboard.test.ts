// The shipped Grafana dashboard and Prometheus alert rules parse, and every metric and label they
// use is one tablecache emits, as Prometheus names it. The list of emitted metrics is not written
// down here: it comes from a real Telemetry, every instrument exercised, read by a MetricReader.
import { readFileSync } from 'node:fs';
import type { Attributes, Meter, MeterProvider as MeterProviderApi } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  type MetricData,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Telemetry } from '../../src/telemetry.js';

class TestMetricReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** A meter provider that also remembers the name of every instrument created through it. */
function recordingProvider(inner: MeterProvider): { provider: MeterProviderApi; created: Set<string> } {
  const created = new Set<string>();
  const provider: MeterProviderApi = {
    getMeter(name, version, options) {
      const meter = inner.getMeter(name, version, options);
      return new Proxy(meter, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (typeof value !== 'function' || typeof property !== 'string' || !property.startsWith('create')) {
            return typeof value === 'function' ? value.bind(target) : value;
          }
          return (instrument: string, ...rest: unknown[]) => {
            created.add(instrument);
            return (value as (...args: unknown[]) => unknown).call(target, instrument, ...rest);
          };
        },
      }) as Meter;
    },
  };
  return { provider, created };
}

/** Every metric a Telemetry emits, after exercising each of its recording methods once. */
async function emittedMetrics(): Promise<{ metrics: MetricData[]; created: Set<string> }> {
  const reader = new TestMetricReader({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  const { provider, created } = recordingProvider(new MeterProvider({ readers: [reader] }));
  const telemetry = new Telemetry({ meterProvider: provider });
  telemetry.registerTable('users', 'cache-aside');
  telemetry.registerTable('orders', 'write-back');
  await telemetry.operation('get', 'users', 'cache-aside', async (scope) => scope.result('hit'));
  await expect(
    telemetry.operation('get', 'users', 'cache-aside', async () => {
      throw Object.assign(new Error('boom'), { code: '57014' });
    }),
  ).rejects.toThrow('boom');
  await telemetry.operation('invalidate', 'users', 'cache-aside', async () => undefined);
  telemetry.filled('users', 'cache-aside');
  telemetry.fillRejected('users', 'cache-aside');
  telemetry.oversized('users', 'cache-aside');
  telemetry.invalidated('users', 'cache-aside');
  telemetry.driftChecked('users', 'cache-aside', true);
  telemetry.storeError(new Error('down'));
  telemetry.breakerChanged(true);
  telemetry.writeBackQueued('orders', 3);
  telemetry.writeBackFlushed('orders', [120, 80]);
  telemetry.writeBackDeadLettered('orders', 1);
  telemetry.observePendingAge(() => new Map([['orders', 2500]]));
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  return { metrics: resourceMetrics.scopeMetrics.flatMap((s) => s.metrics), created };
}

// OTLP -> Prometheus naming as done by the Collector's prometheus/prometheusremotewrite exporters
// and Prometheus' OTLP receiver (otlptranslator, UnderscoreEscapingWithSuffixes, the default).
const UNIT_SUFFIX: Record<string, string> = {
  d: 'days',
  h: 'hours',
  min: 'minutes',
  s: 'seconds',
  ms: 'milliseconds',
  us: 'microseconds',
  ns: 'nanoseconds',
  By: 'bytes',
  '1': '',
  '%': 'percent',
};

/** The Prometheus base name of an OTel metric. */
function prometheusName(metric: MetricData): string {
  const tokens = metric.descriptor.name.split(/[^a-zA-Z0-9:]+/).filter(Boolean);
  const unit = metric.descriptor.unit.split('/')[0]?.trim() ?? '';
  if (unit && !/[{}]/.test(unit)) {
    const suffix = UNIT_SUFFIX[unit] ?? unit.replace(/[^a-zA-Z0-9:]+/g, '_');
    if (suffix && !tokens.includes(suffix)) tokens.push(suffix);
  }
  const monotonicSum = metric.dataPointType === DataPointType.SUM && metric.isMonotonic;
  if (monotonicSum) tokens.push(...tokens.splice(0).filter((t) => t !== 'total'), 'total');
  if (metric.descriptor.unit === '1' && metric.dataPointType === DataPointType.GAUGE) {
    tokens.push(...tokens.splice(0).filter((t) => t !== 'ratio'), 'ratio');
  }
  return tokens.join('_');
}

/** The series names a metric appears under in PromQL (histograms: _bucket, _sum, _count). */
function seriesNames(metric: MetricData): string[] {
  const base = prometheusName(metric);
  return metric.dataPointType === DataPointType.HISTOGRAM ? [`${base}_bucket`, `${base}_sum`, `${base}_count`] : [base];
}

const labelName = (attribute: string): string => attribute.replace(/[^a-zA-Z0-9_]/g, '_');

interface Vocabulary {
  series: Set<string>;
  labels: Set<string>;
}

async function vocabulary(): Promise<Vocabulary> {
  const { metrics } = await emittedMetrics();
  const series = new Set(metrics.flatMap(seriesNames));
  // Labels: our attributes, `le` of histogram buckets, and job/instance from the resource.
  const labels = new Set(['le', 'job', 'instance']);
  for (const metric of metrics) {
    for (const point of metric.dataPoints as { attributes: Attributes }[]) {
      for (const key of Object.keys(point.attributes)) labels.add(labelName(key));
    }
  }
  return { series, labels };
}

const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'group',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'count_values',
]);
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/** The metric names and label names a PromQL expression refers to (Grafana variables allowed). */
function promqlReferences(expr: string): { metrics: string[]; labels: string[] } {
  const labels: string[] = [];
  let text = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  text = text.replace(/\{([^}]*)\}/g, (_, matchers: string) => {
    for (const matcher of matchers.split(',')) {
      const name = matcher.trim().match(/^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/)?.[1];
      if (matcher.trim()) {
        expect(name, `label matcher "${matcher}" in ${expr}`).toBeDefined();
        labels.push(name as string);
      }
    }
    return ' ';
  });
  text = text.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, _kw, list: string) => {
    labels.push(
      ...list
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean),
    );
    return ' ';
  });
  text = text
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+-?\w+/gi, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  text = text.replace(/(?<![a-zA-Z_:])[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?/gi, ' ');
  const metrics: string[] = [];
  for (const match of text.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = match[0];
    const after = text.slice((match.index ?? 0) + word.length);
    if (/^\s*\(/.test(after)) continue; // a function call
    if (AGGREGATIONS.has(word) || KEYWORDS.has(word.toLowerCase())) continue;
    metrics.push(word);
  }
  return { metrics, labels };
}

function balanced(expr: string): boolean {
  let depth = 0;
  for (const c of expr) {
    if (c === '(') depth++;
    if (c === ')' && --depth < 0) return false;
  }
  return depth === 0;
}

interface GrafanaTarget {
  expr: string;
  legendFormat?: string;
}
interface GrafanaPanel {
  type: string;
  title: string;
  targets?: GrafanaTarget[];
  panels?: GrafanaPanel[];
}

const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
  title: string;
  uid: string;
  panels: GrafanaPanel[];
  templating: { list: { name: string; type: string; definition?: string; query: unknown }[] };
};
const alertRules = parse(readFileSync(new URL('../../docs/prometheus-alerts.yaml', import.meta.url), 'utf8')) as {
  groups: {
    name: string;
    rules: {
      alert?: string;
      record?: string;
      expr: string;
      for?: string;
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    }[];
  }[];
};

const panelsOf = (panels: GrafanaPanel[]): GrafanaPanel[] => panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);

describe('the metric vocabulary derived from src/telemetry.ts', () => {
  it('covers every instrument Telemetry creates, each of them exercised', async () => {
    const { metrics, created } = await emittedMetrics();
    expect(created.size).toBeGreaterThan(0);
    expect(metrics.map((m) => m.descriptor.name).sort()).toEqual([...created].sort());
    for (const metric of metrics) expect(metric.dataPoints.length, metric.descriptor.name).toBeGreaterThan(0);
  });

  it('maps names the way the Collector and Prometheus do', async () => {
    const { series } = await vocabulary();
    expect(series).toContain('tablecache_operation_duration_seconds_bucket');
    expect(series).toContain('tablecache_invalidations_total');
    expect(series).toContain('tablecache_write_back_pending');
    expect(series).toContain('tablecache_write_back_pending_age_seconds');
  });
});

describe('docs/grafana-dashboard.json', () => {
  it('parses and queries only metrics and labels we emit', async () => {
    const { series, labels } = await vocabulary();
    expect(dashboard.title).toBe('tablecache');
    const targets = panelsOf(dashboard.panels).flatMap((p) => p.targets ?? []);
    expect(targets.length).toBeGreaterThan(0);
    const used = new Set<string>();
    for (const { expr } of targets) {
      expect(balanced(expr), expr).toBe(true);
      const refs = promqlReferences(expr);
      expect(refs.metrics.length, expr).toBeGreaterThan(0);
      for (const name of refs.metrics) {
        expect(series, `${name} in ${expr}`).toContain(name);
        used.add(name);
      }
      for (const label of refs.labels) expect(labels, `label ${label} in ${expr}`).toContain(label);
    }
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const match = variable.definition?.match(/^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)$/);
      expect(match, variable.name).not.toBeNull();
      expect(series).toContain(match?.[1]);
      expect(labels).toContain(match?.[2]);
    }
    // What the issue asks the dashboard to show: hit ratio, latency, invalidations, backlog, lag.
    for (const name of [
      'tablecache_operation_duration_seconds_count',
      'tablecache_operation_duration_seconds_bucket',
      'tablecache_invalidations_total',
      'tablecache_write_back_pending',
      'tablecache_write_back_lag_seconds_bucket',
    ]) {
      expect(used).toContain(name);
    }
  });
});

describe('docs/prometheus-alerts.yaml', () => {
  it('parses as a rule file whose alerts use only metrics and labels we emit', async () => {
    const { series, labels } = await vocabulary();
    const rules = alertRules.groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Tablecache[A-Za-z]+$/);
      expect(rule.labels?.severity).toMatch(/^(warning|critical)$/);
      expect(rule.annotations?.summary).toBeTruthy();
      expect(balanced(rule.expr), rule.expr).toBe(true);
      const refs = promqlReferences(rule.expr);
      expect(refs.metrics.length, rule.expr).toBeGreaterThan(0);
      for (const name of refs.metrics) expect(series, `${name} in ${rule.alert}`).toContain(name);
      for (const label of refs.labels) expect(labels, `label ${label} in ${rule.alert}`).toContain(label);
      // Templates in annotations may only name labels the expression keeps.
      for (const text of Object.values(rule.annotations ?? {})) {
        for (const [, label] of text.matchAll(/\$labels\.(\w+)/g)) expect(labels).toContain(label);
      }
    }
  });

  it('has the three alerts of the design note with their thresholds', () => {
    const byName = new Map(alertRules.groups.flatMap((g) => g.rules).map((r) => [r.alert, r.expr]));
    expect(byName.get('TablecacheHitRatioLow')).toMatch(/tablecache_result="hit"[\s\S]*<\s*0\.8\b/);
    expect(byName.get('TablecacheWriteBackBacklog')).toMatch(/tablecache_write_back_pending\)\s*>\s*10000\b/);
    expect(byName.get('TablecacheWriteBackLagHigh')).toMatch(/tablecache_write_back_lag_seconds_bucket[\s\S]*>\s*60\b/);
    expect(byName.get('TablecacheWriteBackStalled')).toMatch(/tablecache_write_back_pending_age_seconds\)\s*>\s*60\b/);
  });
});

describe('the PromQL reference extractor used above', () => {
  it('finds metrics and labels, not functions, keywords, numbers or Grafana variables', () => {
    const refs = promqlReferences(
      'histogram_quantile(0.99, sum by (le, a_b) (rate(m_bucket{x="1", y=~"$t"}[$__rate_interval]))) > 60 and on(job) n_total offset 5m',
    );
    expect(refs.metrics).toEqual(['m_bucket', 'n_total']);
    expect(refs.labels.sort()).toEqual(['a_b', 'job', 'le', 'x', 'y']);
  });
});

// End to end: the real NodeSDK with the OTLP/HTTP trace and metric exporters, sending to a small
// OTLP receiver on loopback. The cache gets no providers: it must pick up the SDK's globals.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, metrics, trace } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createCache, definePolicy } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from '../support/pg.js';
import { redisUrl } from '../support/redis.js';

interface Received {
  path: string;
  contentType: string;
  body: unknown;
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number };
}
interface OtlpSpan {
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
}
interface OtlpMetric {
  name: string;
  unit?: string;
  histogram?: { dataPoints: { count: string | number; attributes: OtlpAttribute[] }[] };
  sum?: {
    isMonotonic?: boolean;
    dataPoints: { asInt?: string | number; asDouble?: number; attributes: OtlpAttribute[] }[];
  };
}
interface Scoped<T> {
  scope: { name: string; version?: string };
  items: T[];
}

const { users } = schema;
const received: Received[] = [];
let server: Server;
let base: string;
let database: IsolatedDatabase;

/** A minimal OTLP/HTTP receiver: records every POST body and answers 200 with an empty JSON object. */
function startReceiver(): Promise<void> {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const contentType = String(req.headers['content-type'] ?? '');
      received.push({
        path: req.url ?? '',
        contentType,
        body: contentType.includes('json') ? JSON.parse(text) : text,
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      resolve();
    });
  });
}

function attr(attributes: OtlpAttribute[], key: string): string | number | undefined {
  const value = attributes.find((a) => a.key === key)?.value;
  return value?.stringValue ?? value?.intValue ?? value?.doubleValue;
}

function spansOf(body: unknown): Scoped<OtlpSpan>[] {
  const resources = (
    body as { resourceSpans: { scopeSpans: { scope: Scoped<never>['scope']; spans: OtlpSpan[] }[] }[] }
  ).resourceSpans;
  return resources.flatMap((r) => r.scopeSpans.map((s) => ({ scope: s.scope, items: s.spans })));
}

function metricsOf(body: unknown): Scoped<OtlpMetric>[] {
  const resources = (
    body as { resourceMetrics: { scopeMetrics: { scope: Scoped<never>['scope']; metrics: OtlpMetric[] }[] }[] }
  ).resourceMetrics;
  return resources.flatMap((r) => r.scopeMetrics.map((s) => ({ scope: s.scope, items: s.metrics })));
}

beforeAll(async () => {
  await startReceiver();
  database = await isolatedDatabase(SHOP_DDL);
  await database.run("insert into users (name) values ('ada'), ('bob')");
});
afterAll(async () => {
  await database.drop();
  await new Promise((resolve) => server.close(resolve));
  trace.disable();
  metrics.disable();
  context.disable();
});

describe('OTLP export through the real NodeSDK', () => {
  it('delivers our spans and metrics, by name, as OTLP/JSON over HTTP', async () => {
    const sdk = new NodeSDK({
      serviceName: 'tablecache-e2e',
      traceExporter: new OTLPTraceExporter({ url: `${base}/v1/traces` }),
      metricReaders: [
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({ url: `${base}/v1/metrics` }),
          exportIntervalMillis: 60_000,
        }),
      ],
      instrumentations: [],
    });
    sdk.start();

    // No tracerProvider/meterProvider: the cache must use the globals the SDK just installed.
    const cache = createCache({
      store: redisStore(redisUrl()),
      policy: definePolicy<typeof schema>({
        namespace: `otlp-${Math.random().toString(36).slice(2)}`,
        version: 1,
        tables: { users: { pattern: 'cache-aside' } },
      }),
    });
    const db = withCache(drizzle(database.pool(2), { schema }), cache);
    await db.select().from(users).where(eq(users.id, 1)); // miss
    await cache.flush();
    await db.select().from(users).where(eq(users.id, 1)); // hit
    await db.update(users).set({ name: 'ada2' }).where(eq(users.id, 1)); // invalidation
    await cache.close();
    await sdk.shutdown(); // flushes the batch span processor and the metric reader

    const traces = received.filter((r) => r.path === '/v1/traces');
    const metricPosts = received.filter((r) => r.path === '/v1/metrics');
    expect(traces.length).toBeGreaterThan(0);
    expect(metricPosts.length).toBeGreaterThan(0);
    for (const post of [...traces, ...metricPosts]) expect(post.contentType).toContain('application/json');

    const firstTraces = traces[0]?.body as { resourceSpans: { resource: { attributes: OtlpAttribute[] } }[] };
    const resource = firstTraces.resourceSpans[0]?.resource;
    expect(attr(resource?.attributes ?? [], 'service.name')).toBe('tablecache-e2e');

    const ourSpans = traces.flatMap((t) => spansOf(t.body)).filter((s) => s.scope.name === 'tablecache');
    expect(ourSpans.length).toBeGreaterThan(0);
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(ourSpans[0]?.scope.version).toBe(version);
    const spans = ourSpans.flatMap((s) => s.items);
    const gets = spans.filter((s) => s.name === 'tablecache.get users');
    expect(gets.map((s) => attr(s.attributes, 'tablecache.result')).sort()).toEqual(['hit', 'miss']);
    const invalidate = spans.find((s) => s.name === 'tablecache.invalidate users');
    expect(invalidate).toBeDefined();
    const INTERNAL = 1; // SPAN_KIND_INTERNAL in the OTLP enum
    for (const span of spans) {
      expect(span.kind).toBe(INTERNAL);
      expect(attr(span.attributes, 'db.collection.name')).toBe('users');
      expect(attr(span.attributes, 'tablecache.pattern')).toBe('cache_aside');
    }

    // Cumulative metrics: the last export holds the totals.
    const last = metricPosts[metricPosts.length - 1]?.body;
    const ourMetrics = metricsOf(last).filter((s) => s.scope.name === 'tablecache');
    const byName = new Map(ourMetrics.flatMap((s) => s.items).map((m) => [m.name, m]));
    const duration = byName.get('tablecache.operation.duration');
    expect(duration?.unit).toBe('s');
    const countBy = (result: string) =>
      (duration?.histogram?.dataPoints ?? [])
        .filter((p) => attr(p.attributes, 'tablecache.result') === result)
        .reduce((n, p) => n + Number(p.count), 0);
    expect(countBy('miss')).toBe(1);
    expect(countBy('hit')).toBe(1);
    const invalidations = byName.get('tablecache.invalidations');
    expect(invalidations?.sum?.isMonotonic).toBe(true);
    const ofUsers = (invalidations?.sum?.dataPoints ?? []).filter(
      (p) => attr(p.attributes, 'db.collection.name') === 'users',
    );
    expect(ofUsers.map((p) => Number(p.asInt ?? p.asDouble))).toEqual([1]);
    expect([...byName.keys()].every((name) => name.startsWith('tablecache.'))).toBe(true);
  });
});

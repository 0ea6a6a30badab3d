import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DemoReport } from '../../demo/report.js';
import { TABLES } from '../../demo/schema.js';
import { databaseUrl } from '../support/pg.js';
import { redisClient, redisUrl } from '../support/redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node --import tsx demo/main.ts ...args` with only the given demo variables set. */
function runDemo(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const base = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'DEMO_PG_SCHEMA', 'OTEL_EXPORTER_OTLP_ENDPOINT']) delete base[name];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'demo/main.ts', ...args],
      { cwd: ROOT, timeout: 90_000, env: { ...base, ...env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The checks every run must pass: all tables, no errors, cached tables with hits. */
function expectHealthy(run: Run): DemoReport {
  expect(run.code, run.stderr).toBe(0);
  const report = JSON.parse(run.stdout) as DemoReport;
  expect(report.errorCount).toBe(0);
  expect(report.errors).toEqual([]);
  expect(report.operations).toBeGreaterThan(0);
  expect(Object.keys(report.tables).sort()).toEqual([...TABLES].sort());
  for (const name of TABLES) {
    const table = report.tables[name];
    expect(table.operations, name).toBeGreaterThan(0);
    if (table.pattern === 'cache-aside' && name !== 'page_views') expect(table.hits, name).toBeGreaterThan(0);
    if (table.pattern === 'write-through') expect(table.hits, name).toBeGreaterThan(0);
    if (table.pattern === 'none') expect(table.hits + table.misses, name).toBe(0);
    if (table.pattern === 'write-back') {
      // The demo flushes before its final figures: every acknowledged write has landed.
      expect(table.writeBack?.flushed, name).toBeGreaterThan(0);
      expect(table.writeBack?.pending, name).toBe(0);
    }
  }
  expect(report.tables.users.pattern).toBe('cache-aside');
  expect(report.tables.users.hitRatio).toBeGreaterThan(0);
  expect(report.tables.users.latencyMs.withCache.samples).toBeGreaterThan(0);
  expect(report.tables.payments.pattern).toBe('none');
  return report;
}

describe('npm run demo', () => {
  it('runs on the embedded default (PGlite, memory store) and prints the figures as JSON', async () => {
    const run = await runDemo(['--duration', '2s', '--json']);
    const report = expectHealthy(run);
    expect(report).toMatchObject({ database: 'pglite', store: 'memory', durationMs: 2000 });
    // Progress went to stderr as plain lines (not a terminal), the JSON alone to stdout.
    expect(run.stderr).toMatch(/t=\d+\.\ds ops=\d+/);
  });

  it('prints --help', async () => {
    const run = await runDemo(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: npm run demo');
  });

  describe('with DATABASE_URL and REDIS_URL', () => {
    const schema = `demo_${randomBytes(4).toString('hex')}`;
    afterAll(async () => {
      const client = new pg.Client({ connectionString: databaseUrl() });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
      const redis = redisClient();
      const keys = await redis.keys(`tc:{demo_${schema}:*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    });

    it('runs on PostgreSQL and Redis', async () => {
      const run = await runDemo(['--duration', '2s', '--json', '--concurrency', '4'], {
        DATABASE_URL: databaseUrl(),
        REDIS_URL: redisUrl(),
        DEMO_PG_SCHEMA: schema,
      });
      const report = expectHealthy(run);
      expect(report).toMatchObject({ database: 'postgres', store: 'redis', concurrency: 4 });
    });
  });

  describe('with OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    let server: Server;
    let endpoint: string;
    const received = new Map<string, string[]>();
    beforeAll(async () => {
      // A minimal OTLP/HTTP receiver: records each request body by path.
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => {
          body += chunk.toString('utf8');
        });
        req.on('end', () => {
          const list = received.get(req.url ?? '') ?? [];
          list.push(body);
          received.set(req.url ?? '', list);
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("exports tablecache's spans and metrics over OTLP/HTTP", async () => {
      const run = await runDemo(['--duration', '2s', '--json'], { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
      const report = expectHealthy(run);
      expect(report.notes).toContain(`exporting spans and metrics to ${endpoint}`);
      const traces = (received.get('/v1/traces') ?? []).join('\n');
      const metrics = (received.get('/v1/metrics') ?? []).join('\n');
      expect(traces).toContain('"tablecache.get users"');
      expect(metrics).toContain('"tablecache.operation.duration"');
    });
  });
});

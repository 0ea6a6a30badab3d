import { cpus, loadavg, release, totalmem, type } from 'node:os';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { parseConfig, usage } from './config.js';
import { collectTargets, type MachineInfo, markdown, writeResults } from './report.js';
import { Recorder, round, type ScenarioOutcome } from './results.js';
import { scenarios } from './scenarios/index.js';
import { openBench } from './setup.js';

/**
 * `npm run bench`: seeds a schema of its own, runs every scenario (each interleaving tablecache
 * with its baselines), prints the markdown table and writes bench/results.json. Exits 0 whatever
 * the ratios; 1 only when a scenario or the setup failed.
 */
async function main(): Promise<number> {
  const parsed = parseConfig(process.argv.slice(2), process.env);
  if (parsed === 'help') {
    console.log(usage);
    return 0;
  }
  const config = parsed;
  const unknown = (config.only ?? []).filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length > 0) {
    throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}`);
  }
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const log = (message: string) => console.error(message);
  const { ctx, close } = await openBench(config, log);
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    log('interrupted: cleaning up');
    void close().finally(() => process.exit(130));
  });

  const outcomes: ScenarioOutcome[] = [];
  let failed = false;
  try {
    const machine = await machineInfo(ctx.pool, ctx.redis);
    log(`${config.quick ? 'quick' : 'full'} run`);
    for (const scenario of scenarios) {
      if (interrupted) break;
      if (config.only && !config.only.includes(scenario.name)) continue;
      const rec = new Recorder(scenario.name);
      const t0 = performance.now();
      const outcome = (status: ScenarioOutcome['status'], reason?: string): ScenarioOutcome => ({
        name: scenario.name,
        title: scenario.title,
        status,
        ...(reason === undefined ? {} : { reason }),
        seconds: round((performance.now() - t0) / 1000, 1),
        measurements: rec.measurements,
        targets: rec.targets,
        facts: rec.facts,
        notes: rec.notes,
      });
      ctx.log(`${scenario.name}: ${scenario.title}`);
      const errorsBefore = ctx.storeErrors.length;
      try {
        const missing = await scenario.unavailable?.(ctx);
        if (missing) {
          console.log(`${scenario.name}: not available yet (${missing})`);
          outcomes.push(outcome('skipped', missing));
          continue;
        }
        await scenario.run(ctx, rec);
        const storeErrors = ctx.storeErrors.length - errorsBefore;
        if (storeErrors > 0) {
          rec.note(
            `${storeErrors} store error(s) reported via onError, first: ${ctx.storeErrors[errorsBefore]?.message}`,
          );
        }
        outcomes.push(outcome('ok'));
      } catch (error) {
        failed = true;
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        console.error(`${scenario.name} failed: ${message}`);
        outcomes.push(outcome('error', error instanceof Error ? error.message : String(error)));
      }
    }
    machine.loadAverage.end = round(loadavg()[0] ?? 0, 2);
    const results = {
      startedAt,
      mode: config.quick ? ('quick' as const) : ('full' as const),
      durationSeconds: round((performance.now() - started) / 1000, 1),
      machine,
      targets: collectTargets(outcomes),
      scenarios: outcomes,
    };
    console.log(markdown(results));
    await writeResults(config.out, results);
    ctx.log(`results written to ${config.out}`);
  } finally {
    if (!interrupted) await close();
  }
  return failed ? 1 : 0;
}

async function machineInfo(pool: pg.Pool, redis: Redis): Promise<MachineInfo> {
  const { rows } = await pool.query<{ version: string }>('select version()');
  const info = await redis.info('server');
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()}`,
    node: process.versions.node,
    postgres: (rows[0]?.version ?? 'unknown').split(' on ')[0] ?? 'unknown',
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    loadAverage: { start: round(loadavg()[0] ?? 0, 2), end: 0 },
  };
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  },
);

/**
 * `npm run chaos -- --ops 100000 --workers 8 --seconds 600 --seed 1 [--patterns cache-aside,none]
 * [--faults redis-restart,redis-freeze,redis-client-kill,pg-terminate|none] [--fault-interval 1000] [--ops-per-second N]
 * [--cluster 3] [--freshness] [--items 300]`: a randomized workload through
 * two tablecache instances with Redis and PostgreSQL faults, then a consistency check of its history.
 * Exits 1 when the checker finds a stale read, a lost or duplicated write, or any other anomaly.
 */
import { parseArgs } from 'node:util';
import type { Pattern } from '../src/index.js';
import { startRedisCluster } from '../test/stores/redis-cluster-harness.js';
import { FAULT_KINDS, type FaultKind } from './faults.js';
import { formatResult, isClean } from './report.js';
import { runChaos } from './run-chaos.js';
import { DEFAULT_KEYS } from './tables.js';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '20000' },
    workers: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '300' },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
    patterns: { type: 'string' },
    faults: { type: 'string' },
    'fault-interval': { type: 'string', default: '1000' },
    'ops-per-second': { type: 'string' },
    'store-timeout': { type: 'string' },
    excerpts: { type: 'string', default: '5' },
    cluster: { type: 'string' },
    freshness: { type: 'boolean', default: false },
    items: { type: 'string' },
  },
});

const faults = values.faults === undefined ? FAULT_KINDS : values.faults === 'none' ? [] : values.faults.split(',');
for (const f of faults) {
  if (!(FAULT_KINDS as readonly string[]).includes(f))
    throw new Error(`unknown fault "${f}"; use ${FAULT_KINDS.join(', ')} or none`);
}

// --cluster N: a local N-node Redis Cluster instead of one server (no restart/freeze faults then).
const cluster = values.cluster ? await startRedisCluster(Number(values.cluster)) : undefined;
const result = await runChaos({
  ops: Number(values.ops),
  workers: Number(values.workers),
  seconds: Number(values.seconds),
  seed: Number(values.seed),
  patterns: values.patterns?.split(',') as Pattern[] | undefined,
  faults: faults as FaultKind[],
  faultIntervalMs: Number(values['fault-interval']),
  opsPerSecond: values['ops-per-second'] === undefined ? undefined : Number(values['ops-per-second']),
  storeTimeout: values['store-timeout'] as `${number}ms` | undefined,
  freshness: values.freshness,
  // --items N: a larger key space (N item rows, 80% seeded), so rows age between writes.
  ...(values.items
    ? { keys: { ...DEFAULT_KEYS, items: Number(values.items), seeded: Math.floor(Number(values.items) * 0.8) } }
    : {}),
  log: (line) => console.log(line),
  ...(cluster ? { cluster: cluster.ports.map((port) => ({ host: '127.0.0.1', port })) } : {}),
}).finally(() => cluster?.stop());
console.log(formatResult(result, Number(values.excerpts)));
process.exitCode = isClean(result) ? 0 : 1;

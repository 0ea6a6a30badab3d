/**
 * `npm run soak -- --minutes 10 [--rate 400] [--workers 4]`: a steady mixed load through two
 * tablecache instances (the chaos workload, no faults, no history kept), reporting RSS and heap
 * over time, event-loop delay p99, and the handles still open at the end.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Pattern } from '../src/index.js';
import { Prng } from './prng.js';
import { startRig } from './rig.js';
import { OPERATIONS, Recorder, runOperation } from './workload.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '400' },
    workers: { type: 'string', default: '4' },
    sample: { type: 'string', default: '15' },
    seed: { type: 'string', default: '1' },
    patterns: { type: 'string' },
  },
});
const durationMs = Number(values.minutes) * 60_000;
const rate = Number(values.rate);
const sampleMs = Number(values.sample) * 1000;
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

const handlesBefore = process.getActiveResourcesInfo();
const recorder = new Recorder(false);
const errors = new Map<string, number>();
recorder.onError = (op) => {
  const key = `${op.kind}: ${(op.error ?? '').slice(0, 140)}`;
  errors.set(key, (errors.get(key) ?? 0) + 1);
};
const rig = await startRig({ patterns: values.patterns?.split(',') as Pattern[] | undefined }, recorder);
const rng = new Prng(Number(values.seed));
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const started = performance.now();
const samples: { t: number; rss: number; heap: number; ops: number; p99: number }[] = [];
let stop = false;

// Each worker paces itself to rate/workers operations per second.
const workers = Number(values.workers);
const interval = (1000 * workers) / rate;
const worker = async (index: number) => {
  const wrng = rng.fork();
  let next = performance.now();
  while (!stop) {
    await runOperation(
      {
        rng: wrng,
        instance: wrng.pick(rig.instances),
        set: wrng.pick(rig.sets),
        keys: rig.keys,
        recorder,
        worker: index,
      },
      wrng.weighted(OPERATIONS),
    );
    next += interval;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    else next = performance.now();
  }
};

console.log(`soak: ${values.minutes} min at ${rate} ops/s, patterns ${rig.sets.map((s) => s.pattern).join(', ')}`);
console.log('  min   ops/s   rss MB  heap MB  loop p99 ms');
const running = Array.from({ length: workers }, (_, i) => worker(i));
let lastOps = 0;
while (durationMs - (performance.now() - started) >= 1000) {
  await sleep(Math.min(sampleMs, durationMs - (performance.now() - started)));
  const memory = process.memoryUsage();
  const ops = recorder.count;
  const t = (performance.now() - started) / 60_000;
  const p99 = delay.percentile(99) / 1e6;
  samples.push({ t, rss: memory.rss, heap: memory.heapUsed, ops, p99 });
  console.log(
    `${t.toFixed(2).padStart(5)} ${(((ops - lastOps) * 1000) / sampleMs).toFixed(0).padStart(7)} ${mb(memory.rss).padStart(8)} ${mb(memory.heapUsed).padStart(8)} ${p99.toFixed(1).padStart(12)}`,
  );
  lastOps = ops;
  delay.reset();
}
stop = true;
await Promise.all(running);
delay.disable();
const stats = rig.instances.map((i) => i.cache.stats());
await rig.close();
await sleep(500);

// RSS is noisy (GC returns memory in steps): compare the mean of the second quarter of the run
// (after warm-up) with the mean of the last quarter, and fit a slope over the last three quarters.
const quarter = (from: number, to: number) =>
  samples.filter((x) => x.t >= (from * durationMs) / 60_000 && x.t <= (to * durationMs) / 60_000);
const mean = (xs: { rss: number }[]) => xs.reduce((a, x) => a + x.rss, 0) / Math.max(1, xs.length);
const early = mean(quarter(0.25, 0.5));
const late = mean(quarter(0.75, 1));
const growth = ((late - early) / early) * 100;
const fit = quarter(0.25, 1);
const tm = fit.reduce((a, x) => a + x.t, 0) / Math.max(1, fit.length);
const rm = mean(fit);
const slope =
  fit.reduce((a, x) => a + (x.t - tm) * (x.rss - rm), 0) /
  Math.max(
    1e-9,
    fit.reduce((a, x) => a + (x.t - tm) ** 2, 0),
  );
const heaps = quarter(0.25, 1).map((x) => x.heap);
const p99s = samples.map((s) => s.p99).sort((a, b) => a - b);
const handlesAfter = process.getActiveResourcesInfo();
const count = (list: string[]) => {
  const out: Record<string, number> = {};
  for (const k of list) out[k] = (out[k] ?? 0) + 1;
  return out;
};
const before = count(handlesBefore);
const leaked = Object.entries(count(handlesAfter)).filter(([k, n]) => n > (before[k] ?? 0));
let hits = 0;
let reads = 0;
for (const s of stats) {
  for (const t of Object.values(s.tables)) {
    hits += t.hits;
    reads += t.reads;
  }
}
console.log(
  `operations: ${recorder.count} (${recorder.failed} failed), cache hit ratio ${((hits / Math.max(1, reads)) * 100).toFixed(1)}%`,
);
console.log(
  `RSS after warm-up: mean ${mb(early)} MB (2nd quarter) -> ${mb(late)} MB (last quarter), ${growth >= 0 ? '+' : ''}${growth.toFixed(1)}%; slope ${(slope / 1024 / 1024).toFixed(2)} MB/min`,
);
console.log(`heap used after warm-up: ${mb(Math.min(...heaps))}-${mb(Math.max(...heaps))} MB`);
console.log(
  `event-loop delay p99 per sample: median ${(p99s[Math.floor(p99s.length / 2)] ?? 0).toFixed(1)} ms, worst ${(p99s[p99s.length - 1] ?? 0).toFixed(1)} ms`,
);
console.log(
  `open handles at the end: ${handlesAfter.join(', ') || 'none'}; beyond those at the start: ${leaked.map(([k, n]) => `${k} x${n - (before[k] ?? 0)}`).join(', ') || 'none'}`,
);

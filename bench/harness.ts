import { Samples } from './stats.js';

/** One thing to measure: an operation called with an increasing index (to vary keys). */
export interface Subject {
  /** Stable name, used as the key in results.json. */
  readonly name: string;
  /** Runs one operation; the index grows across slices so subjects can cycle through keys. */
  op(i: number): Promise<unknown>;
}

/** How long to measure: `rounds` slices of `sliceMs` per subject, after one warm-up slice each. */
export interface Timing {
  rounds: number;
  sliceMs: number;
  warmupMs: number;
}

/** What one subject did at one concurrency, over all its rounds. */
export interface Tally {
  ops: number;
  seconds: number;
  latencies: Samples;
}

/**
 * Runs `op` from `concurrency` async workers until `ms` has passed (an operation started before
 * the deadline is completed). Records each operation's latency into `latencies` when given.
 */
export async function runSlice(
  op: (i: number) => Promise<unknown>,
  firstIndex: number,
  concurrency: number,
  ms: number,
  latencies: Samples | undefined,
): Promise<{ ops: number; seconds: number }> {
  let next = firstIndex;
  const start = performance.now();
  const deadline = start + ms;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      await op(i);
      latencies?.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ops: next - firstIndex, seconds: (performance.now() - start) / 1000 };
}

/**
 * Runs `count` operations from `concurrency` workers (no latency recording): fills and prefills.
 */
export async function runCount(
  op: (i: number) => Promise<unknown>,
  firstIndex: number,
  count: number,
  concurrency: number,
): Promise<number> {
  let next = firstIndex;
  const end = firstIndex + count;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < end) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return (performance.now() - start) / 1000;
}

/**
 * Measures subjects side by side: each round runs one slice of every subject, in an order that
 * rotates and reverses from round to round, so drift on a noisy machine (other processes, GC,
 * the database's background work) lands on every subject alike and cancels out of their ratios.
 */
export async function interleave(
  subjects: readonly Subject[],
  concurrency: number,
  timing: Timing,
): Promise<Map<string, Tally>> {
  const tallies = new Map<string, Tally>();
  const index = new Map<string, number>();
  for (const s of subjects) {
    const warm = await runSlice(s.op.bind(s), 0, concurrency, timing.warmupMs, undefined);
    index.set(s.name, warm.ops);
    tallies.set(s.name, { ops: 0, seconds: 0, latencies: new Samples() });
  }
  for (let round = 0; round < timing.rounds; round++) {
    const shift = round % subjects.length;
    const order = [...subjects.slice(shift), ...subjects.slice(0, shift)];
    if (round % 2 === 1) order.reverse();
    for (const s of order) {
      const tally = tallies.get(s.name) as Tally;
      const first = index.get(s.name) as number;
      const { ops, seconds } = await runSlice(s.op.bind(s), first, concurrency, timing.sliceMs, tally.latencies);
      index.set(s.name, first + ops);
      tally.ops += ops;
      tally.seconds += seconds;
    }
  }
  return tallies;
}

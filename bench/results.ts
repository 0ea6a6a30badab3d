import type { Tally } from './harness.js';
import { quantile } from './stats.js';

/** One subject at one concurrency. */
export interface Measurement {
  /** Scenario that measured it. */
  scenario: string;
  /** Stable subject key, e.g. `tablecache.hit.builder`. */
  subject: string;
  /** Human label for the table. */
  label: string;
  concurrency: number;
  ops: number;
  seconds: number;
  /** Operations (or rows, see `unit`) per second. */
  perSecond: number;
  /** Latency percentiles in microseconds; null when not sampled per operation. */
  p50Us: number | null;
  p99Us: number | null;
  unit: 'op' | 'row';
}

/** A target's outcome: `pass` is null when it could not be measured in this run. */
export interface TargetResult {
  id: string;
  description: string;
  required: string;
  measured: number | null;
  /** How `measured` reads, e.g. `3.4x` or `812 ms`. */
  shown: string;
  pass: boolean | null;
  /** What the value was computed from, or why it is missing. */
  detail: string;
}

/** What one scenario produced. */
export interface ScenarioOutcome {
  name: string;
  title: string;
  status: 'ok' | 'skipped' | 'error';
  /** Why it was skipped, or the error. */
  reason?: string;
  seconds: number;
  measurements: Measurement[];
  targets: TargetResult[];
  /** Scalar findings (hit rates, byte counts, statement counts). */
  facts: Record<string, number | string | boolean>;
  notes: string[];
}

/** Collects a scenario's results as it runs. */
export class Recorder {
  readonly measurements: Measurement[] = [];
  readonly targets: TargetResult[] = [];
  readonly facts: Record<string, number | string | boolean> = {};
  readonly notes: string[] = [];

  constructor(readonly scenario: string) {}

  /** Records an interleaved tally (or a computed figure) and returns it. */
  measure(subject: string, label: string, concurrency: number, tally: Tally, unit: 'op' | 'row' = 'op'): Measurement {
    const sorted = tally.latencies.sorted();
    const m: Measurement = {
      scenario: this.scenario,
      subject,
      label,
      concurrency,
      ops: tally.ops,
      seconds: round(tally.seconds, 3),
      perSecond: round(tally.ops / tally.seconds, 1),
      p50Us: sorted.length > 0 ? round(quantile(sorted, 0.5) * 1000, 1) : null,
      p99Us: sorted.length > 0 ? round(quantile(sorted, 0.99) * 1000, 1) : null,
      unit,
    };
    this.measurements.push(m);
    return m;
  }

  /** Records a ratio target: `value` against `threshold` with `op`. */
  ratio(id: string, value: number, op: '>=' | '<=', threshold: number, detail: string): void {
    const pass = Number.isFinite(value) && (op === '>=' ? value >= threshold : value <= threshold);
    this.target(id, value, `${round(value, 2)}x`, pass, detail);
  }

  /** Records any target outcome. */
  target(id: string, measured: number | null, shown: string, pass: boolean | null, detail: string): void {
    const spec = TARGETS.find((t) => t.id === id);
    if (!spec) throw new Error(`unknown target ${id}`);
    this.targets.push({ id, description: spec.description, required: spec.required, measured, shown, pass, detail });
  }

  /** Records a scalar finding. */
  fact(name: string, value: number | string | boolean): void {
    this.facts[name] = typeof value === 'number' ? round(value, 3) : value;
  }

  /** Adds a line of commentary to the report. */
  note(text: string): void {
    this.notes.push(text);
  }
}

/** The targets, in report order, with the scenario that measures each. */
export const TARGETS: readonly { id: string; scenario: string; description: string; required: string }[] = [
  {
    id: 'P1a',
    scenario: 'reads',
    description: 'hit, builder, c=64: throughput vs Drizzle cache hit',
    required: '>= 3x',
  },
  {
    id: 'P1b',
    scenario: 'reads',
    description: 'hit, builder, c=64: throughput vs uncached Drizzle',
    required: '>= 4x',
  },
  { id: 'P2a', scenario: 'reads', description: 'hit, prepared, c=1: p50 vs GET+parse floor', required: '<= 1.25x' },
  {
    id: 'P2b',
    scenario: 'reads',
    description: 'hit, prepared, c=64: throughput vs auto-pipelined GET floor',
    required: '>= 0.8x',
  },
  {
    id: 'P3a',
    scenario: 'miss',
    description: 'miss, builder, c=1: p50 vs (uncached p50 + GET floor p50)',
    required: '<= 1.2x',
  },
  {
    id: 'P3b',
    scenario: 'miss',
    description: 'miss, prepared, c=1: p50 vs (uncached p50 + GET floor p50)',
    required: '<= 1.2x',
  },
  { id: 'P4a', scenario: 'write-back', description: 'write-back ack, c=1: p50 vs SET+XADD floor', required: '<= 1.3x' },
  {
    id: 'P4b',
    scenario: 'write-back',
    description: 'write-back ack, c=64: throughput vs direct insert',
    required: '>= 5x',
  },
  { id: 'P5a', scenario: 'flush', description: 'flush rows/s vs raw 100-row insert rows/s', required: '>= 0.6x' },
  { id: 'P5b', scenario: 'flush', description: 'N increments to one row in a flush window', required: '1 UPDATE' },
  {
    id: 'P6',
    scenario: 'write-back',
    description: 'sync lag p99 at 5,000 writes/s',
    required: '<= flush interval + 250 ms',
  },
  { id: 'P7', scenario: 'scale', description: 'hit p50, 1e3 to 1e6 entries cached', required: 'within +-20%' },
];

/** Rounds to `digits` decimals. */
export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

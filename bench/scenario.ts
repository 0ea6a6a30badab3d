import type { BenchContext } from './context.js';
import { interleave, type Subject } from './harness.js';
import type { Measurement, Recorder } from './results.js';

/** One scenario group: a module under bench/scenarios. */
export interface Scenario {
  /** Name used by `--only` and in results.json. */
  readonly name: string;
  readonly title: string;
  /** Why this build cannot run it (a feature that has not landed yet), or undefined. */
  unavailable?(ctx: BenchContext): Promise<string | undefined>;
  run(ctx: BenchContext, rec: Recorder): Promise<void>;
}

/** A subject with its label in the report. */
export interface Labelled extends Subject {
  readonly label: string;
}

/** The measurements of one interleaved group, by subject and concurrency. */
export class Group {
  private readonly byKey = new Map<string, Measurement>();

  /** Adds a measurement. */
  add(m: Measurement): void {
    this.byKey.set(`${m.subject}@${m.concurrency}`, m);
  }

  /** The measurement of `subject` at `concurrency`; throws when it was not measured. */
  get(subject: string, concurrency: number): Measurement {
    const m = this.byKey.get(`${subject}@${concurrency}`);
    if (!m) throw new Error(`no measurement of ${subject} at c=${concurrency}`);
    return m;
  }
}

/** Interleaves `subjects` at each concurrency and records every tally. */
export async function measureGroup(
  ctx: BenchContext,
  rec: Recorder,
  subjects: readonly Labelled[],
  concurrencies: readonly number[],
): Promise<Group> {
  const group = new Group();
  for (const c of concurrencies) {
    ctx.log(`  c=${c}: ${subjects.map((s) => s.name).join(', ')}`);
    const tallies = await interleave(subjects, c, ctx.budget.timing);
    for (const s of subjects) {
      const tally = tallies.get(s.name);
      if (tally) group.add(rec.measure(s.name, s.label, c, tally));
    }
  }
  return group;
}

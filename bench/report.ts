import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type ScenarioOutcome, TARGETS, type TargetResult } from './results.js';

/** The machine and services a run measured. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: string;
  redis: string;
  /** 1-minute load average when the run started and when it ended (other work on the machine). */
  loadAverage: { start: number; end: number };
}

/** Everything written to results.json. */
export interface BenchResults {
  startedAt: string;
  mode: 'quick' | 'full';
  durationSeconds: number;
  machine: MachineInfo;
  targets: TargetResult[];
  scenarios: ScenarioOutcome[];
}

/** Every target in issue order: measured where a scenario produced it, else why it was not. */
export function collectTargets(scenarios: readonly ScenarioOutcome[]): TargetResult[] {
  return TARGETS.map((spec) => {
    for (const s of scenarios) {
      const found = s.targets.find((t) => t.id === spec.id);
      if (found) return found;
    }
    const owner = scenarios.find((s) => s.name === spec.scenario);
    const why = !owner
      ? 'not run (--only)'
      : owner.status === 'skipped'
        ? `not available yet: ${owner.reason ?? ''}`
        : owner.status === 'error'
          ? `scenario failed: ${owner.reason ?? ''}`
          : 'not measured';
    return { ...spec, measured: null, shown: '-', pass: null, detail: why };
  });
}

const verdict = (pass: boolean | null) => (pass === null ? 'n/a' : pass ? 'PASS' : 'FAIL');

const num = (value: number | null, digits = 0) =>
  value === null ? '-' : value.toLocaleString('en-US', { maximumFractionDigits: digits });

/** The markdown report: targets, every measurement, and each scenario's findings. */
export function markdown(results: BenchResults): string {
  const out: string[] = [];
  const m = results.machine;
  out.push(`## tablecache benchmark (${results.mode}, ${results.startedAt})`);
  out.push('');
  out.push(
    `${m.cores} x ${m.cpu}, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}; ${m.postgres}; Redis ${m.redis}; ` +
      `${results.durationSeconds} s; load average ${m.loadAverage.start} at the start, ${m.loadAverage.end} at the end.`,
  );
  out.push('');
  out.push('### Targets');
  out.push('');
  out.push('| Target | What | Measured | Required | Result | From |');
  out.push('| --- | --- | --- | --- | --- | --- |');
  for (const t of results.targets) {
    out.push(`| ${t.id} | ${t.description} | ${t.shown} | ${t.required} | ${verdict(t.pass)} | ${t.detail} |`);
  }
  out.push('');
  out.push('### Measurements');
  out.push('');
  out.push('| Scenario | Subject | c | per second | p50 µs | p99 µs |');
  out.push('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const s of results.scenarios) {
    for (const x of s.measurements) {
      const rate = `${num(x.perSecond)}${x.unit === 'row' ? ' rows' : ''}`;
      out.push(`| ${s.name} | ${x.label} | ${x.concurrency} | ${rate} | ${num(x.p50Us, 1)} | ${num(x.p99Us, 1)} |`);
    }
  }
  out.push('');
  out.push('### Scenarios');
  out.push('');
  for (const s of results.scenarios) {
    const status = s.status === 'ok' ? `${s.seconds} s` : s.status === 'skipped' ? 'not available yet' : 'ERROR';
    out.push(`- **${s.name}** (${s.title}): ${status}${s.reason ? ` (${s.reason})` : ''}`);
    for (const [k, v] of Object.entries(s.facts)) out.push(`  - ${k}: ${typeof v === 'number' ? num(v, 3) : v}`);
    for (const n of s.notes) out.push(`  - ${n}`);
  }
  return out.join('\n');
}

/** Writes results.json (creating its folder). */
export async function writeResults(path: string, results: BenchResults): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
}

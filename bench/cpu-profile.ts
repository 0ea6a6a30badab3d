import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** A V8 CPU profile (the `.cpuprofile` format Chrome DevTools reads). */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Runs `work` under the V8 sampling profiler (in-process, so only `work` is profiled). */
export async function profile(work: () => Promise<void>, intervalUs = 100): Promise<CpuProfile> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
    await session.post('Profiler.start');
    await work();
    const { profile: result } = await session.post('Profiler.stop');
    return result as unknown as CpuProfile;
  } finally {
    session.disconnect();
  }
}

/** Writes a profile for DevTools or speedscope. */
export async function saveProfile(path: string, p: CpuProfile): Promise<void> {
  await writeFile(path, JSON.stringify(p));
}

/** Self and inclusive time of one function, as a share of all samples. */
export interface FunctionTime {
  name: string;
  where: string;
  selfPct: number;
  totalPct: number;
}

/** Where a frame lives, grouped for the report: our code by folder, libraries by package. */
export function areaOf(url: string): string {
  if (url === '') return 'node/v8 (native, gc, idle)';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1] as string;
  if (path.startsWith('node:')) return 'node internals';
  const rel = relative(process.cwd(), path);
  if (rel.startsWith('..')) return path;
  const [top, next] = rel.split('/');
  return top === 'src' && next === 'engine' ? 'src/engine' : (top ?? rel);
}

/** Aggregates a profile by function (self and inclusive) and by area (self). */
export function summarize(p: CpuProfile): { functions: FunctionTime[]; areas: { area: string; selfPct: number }[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n: ProfileNode) => {
    const f = n.callFrame;
    const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '';
    return `${f.functionName || '(anonymous)'}\u0000${where}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const areas = new Map<string, number>();
  let all = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node) return;
    all += dt;
    const k = keyOf(node);
    self.set(k, (self.get(k) ?? 0) + dt);
    const area = node.callFrame.functionName === '(idle)' ? '(idle)' : areaOf(node.callFrame.url);
    areas.set(area, (areas.get(area) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (!n) break;
      const key = keyOf(n);
      if (seen.has(key)) continue;
      seen.add(key);
      total.set(key, (total.get(key) ?? 0) + dt);
    }
  });
  const pct = (v: number) => Math.round((1000 * v) / all) / 10;
  const functions = [...self.keys()].map((k) => {
    const [name, where] = k.split('\u0000') as [string, string];
    return { name, where, selfPct: pct(self.get(k) ?? 0), totalPct: pct(total.get(k) ?? 0) };
  });
  for (const [k, v] of total) {
    if (self.has(k)) continue;
    const [name, where] = k.split('\u0000') as [string, string];
    functions.push({ name, where, selfPct: 0, totalPct: pct(v) });
  }
  return {
    functions,
    areas: [...areas].map(([area, v]) => ({ area, selfPct: pct(v) })).sort((a, b) => b.selfPct - a.selfPct),
  };
}

function shortUrl(url: string): string {
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) return path.slice(nm + 'node_modules/'.length);
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

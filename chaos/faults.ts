import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import type { ChaosDatabase } from './database.js';
import type { Prng } from './prng.js';
import type { RedisServer } from './redis-server.js';

/** The faults a run can inject. */
export const FAULT_KINDS = ['redis-restart', 'redis-freeze', 'redis-client-kill', 'pg-terminate'] as const;
/** A fault kind. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One injected fault, for the report and for lining anomalies up with faults. */
export interface FaultEvent {
  kind: FaultKind;
  /** What was hit, e.g. `a`, `b`, `a+b` or `server`. */
  target: string;
  start: number;
  end: number;
  /** Connections or backends killed, where it applies. */
  killed?: number;
}

/** What the injector may hit. */
export interface FaultTargets {
  /** The run's own Redis server (absent for a cluster run: no restart or freeze). */
  server?: RedisServer;
  /** Admin connections (one per node) used for CLIENT KILL. */
  admins: Redis[];
  database: ChaosDatabase;
  /** Instance names; their Redis connections are named `chaos-<name>`, their pools `<name>`. */
  instances: string[];
}

/** Injects faults at random intervals until told to stop. */
export class FaultInjector {
  readonly events: FaultEvent[] = [];
  readonly counts: Record<FaultKind, number> = {
    'redis-restart': 0,
    'redis-freeze': 0,
    'redis-client-kill': 0,
    'pg-terminate': 0,
  };
  private stopped = false;
  private readonly kinds: FaultKind[];

  constructor(
    private readonly targets: FaultTargets,
    kinds: readonly FaultKind[],
    private readonly rng: Prng,
    private readonly meanIntervalMs: number,
  ) {
    this.kinds = kinds.filter((k) => targets.server || (k !== 'redis-restart' && k !== 'redis-freeze'));
  }

  /** Runs until `stop()`; resolves once the last fault has been undone (Redis up and thawed). */
  async run(): Promise<void> {
    if (this.kinds.length === 0) return;
    while (!this.stopped) {
      await this.pause(this.meanIntervalMs * (0.5 + this.rng.next()));
      if (this.stopped) break;
      const kind = this.rng.pick(this.kinds);
      const start = performance.now();
      const event: FaultEvent = { kind, target: '', start, end: start };
      try {
        await this.inject(kind, event);
      } catch (error) {
        event.target += ` (failed: ${error instanceof Error ? error.message : String(error)})`;
      }
      event.end = performance.now();
      this.events.push(event);
      this.counts[kind]++;
    }
  }

  /** Stops injecting; the fault in progress still completes (and is undone). */
  stop(): void {
    this.stopped = true;
  }

  private async inject(kind: FaultKind, event: FaultEvent): Promise<void> {
    const { server, database, instances, admins } = this.targets;
    switch (kind) {
      case 'redis-restart': {
        event.target = 'server';
        await server?.kill();
        await sleep(this.rng.between(50, 800));
        await server?.start();
        return;
      }
      case 'redis-freeze': {
        event.target = 'server';
        server?.freeze();
        await sleep(this.rng.between(50, 1500));
        server?.thaw();
        return;
      }
      case 'redis-client-kill': {
        const victims = this.victims(instances);
        event.target = victims.join('+');
        let killed = 0;
        for (const admin of admins) killed += await killClients(admin, victims);
        event.killed = killed;
        return;
      }
      case 'pg-terminate': {
        const victims = this.victims(instances);
        event.target = victims.join('+');
        let killed = 0;
        for (const v of victims) killed += await database.terminate(v);
        event.killed = killed;
        return;
      }
    }
  }

  private victims(instances: string[]): string[] {
    const r = this.rng.int(3);
    if (r === 2 || instances.length < 2) return instances;
    return [instances[r] as string];
  }

  private async pause(ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (!this.stopped && performance.now() < until) await sleep(Math.min(50, until - performance.now()));
  }
}

/** CLIENT KILL of every connection named `chaos-<victim>`; returns how many were killed. */
export async function killClients(admin: Redis | Cluster, victims: readonly string[]): Promise<number> {
  const list = String(await (admin as Redis).client('LIST'));
  const names = new Set(victims.map((v) => `chaos-${v}`));
  let killed = 0;
  for (const line of list.split('\n')) {
    const fields = Object.fromEntries(line.split(' ').map((kv) => kv.split('=', 2) as [string, string]));
    if (!fields.id || !names.has(fields.name ?? '')) continue;
    killed += Number(await (admin as Redis).client('KILL', 'ID', fields.id));
  }
  return killed;
}

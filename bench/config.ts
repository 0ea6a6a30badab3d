import { resolve } from 'node:path';
import type { BenchConfig } from './context.js';

const USAGE = `usage: npm run bench -- [--quick] [--only name,name] [--out path]
  --quick   smoke-check budgets (under 2 minutes); the default is the full run (under 15)
  --only    run only these scenarios
  --out     where to write results (default bench/results.json)
env: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
     REDIS_URL (default redis://127.0.0.1:6379)`;

/** Parses the command line and environment; throws a usage error on anything unknown. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): BenchConfig | 'help' {
  let quick = false;
  let only: string[] | undefined;
  let out = resolve('bench/results.json');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    if (flag === '--quick') quick = true;
    else if (flag === '--only')
      only = value()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    else if (flag === '--out') out = resolve(value());
    else if (flag === '--help' || flag === '-h') return 'help';
    else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  return {
    quick,
    only,
    out,
    databaseUrl: env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
  };
}

/** The usage text. */
export const usage = USAGE;

#!/usr/bin/env node
/**
 * The `tablecache` command line: dispatches `tablecache <command> ...` to `cli/commands/`.
 * @module
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CacheError, PolicyError } from '../src/errors.js';
import type { CliCommand } from './command.js';
import { commands } from './commands/index.js';
import { CliError, EXIT } from './errors.js';
import { policyProblems } from './output.js';

function usage(list: readonly CliCommand[]): string {
  const width = Math.max(...list.map((c) => c.name.length));
  return `Usage: tablecache <command> [options]

Operate a tablecache deployment: validate policies, inspect and invalidate the cache in Redis.

Commands:
${list.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run "tablecache <command> --help" for the options of a command.

Exit codes: 0 ok, 1 the policy has problems, 2 usage or environment errors.`;
}

/** Runs the CLI with `argv` (the arguments after the program name) and returns the exit code. */
async function main(argv: readonly string[], list: readonly CliCommand[] = commands): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? list.find((c) => c.name === rest[0]) : undefined;
    console.log(topic ? topic.usage : usage(list));
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    console.log(version());
    return EXIT.ok;
  }
  const command = list.find((c) => c.name === name);
  if (!command) {
    console.error(`tablecache: unknown command "${name}"\n\n${usage(list)}`);
    return EXIT.usage;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    return report(command.name, error);
  }
}

/** Prints a command's failure to stderr and picks the exit code. */
function report(name: string, error: unknown): number {
  if (error instanceof PolicyError) {
    const problems = policyProblems(error);
    console.error(
      `tablecache ${name}: ${problems.length === 1 ? 'the policy has a problem' : `the policy has ${problems.length} problems`}:`,
    );
    for (const line of problems) console.error(`  ${line}`);
    return EXIT.policy;
  }
  if (error instanceof CliError) {
    console.error(`tablecache ${name}: ${error.message}`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof CacheError ? ` [${error.code}]` : '';
  console.error(`tablecache ${name}: ${message}${code}`);
  if (process.env.TABLECACHE_DEBUG && error instanceof Error) console.error(error.stack);
  return EXIT.usage;
}

/** The package version, from the nearest package.json above the running script. */
function version(): string {
  let dir = dirname(realpathSync(process.argv[1] ?? '.'));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tablecache') return pkg.version ?? 'unknown';
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // Anything still holding the event loop (a client that would not close) must not hang the shell.
  setTimeout(() => process.exit(code), 500).unref();
});

import { existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildCatalog } from '../adapters/drizzle/index.js';
import type { Catalog } from '../src/catalog.js';
import { PolicyError } from '../src/errors.js';
import { loadPolicy, validatePolicy } from '../src/policy/index.js';
import type { Policy } from '../src/policy/types.js';
import { CliError } from './errors.js';

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);
const JS_EXTENSIONS = new Set(['.js', '.mjs', '.cjs']);
let tsxRegistered = false;

/** A schema module as the CLI loaded it. */
export interface LoadedSchema {
  /** The path as given on the command line. */
  readonly path: string;
  /** Every table and view the module exports, as the Drizzle adapter describes them. */
  readonly catalog: Catalog;
}

/**
 * Imports a Drizzle schema module (JavaScript, or TypeScript through tsx) and builds its catalog.
 * Throws a CliError (exit 2) when it is missing, fails to load or exports no table.
 */
export async function loadSchema(path: string): Promise<LoadedSchema> {
  const module = await importModule(path, 'schema module');
  let catalog = buildCatalog(module);
  const fallback = module.default;
  if (catalog.tables.length === 0 && isObject(fallback)) catalog = buildCatalog(fallback);
  if (catalog.tables.length === 0) {
    throw new CliError('E_CLI_SCHEMA', `schema module ${path} exports no Drizzle PostgreSQL table or view`);
  }
  return { path, catalog };
}

/**
 * Loads a policy: a `.json`/`.yaml`/`.yml` file or a directory (with `loadPolicy`), or a JS/TS
 * module exporting `policy` or a default (a `definePolicy` result or a plain object).
 * A malformed policy throws a PolicyError; a missing one a CliError.
 */
export async function loadPolicyArg(path: string): Promise<Policy> {
  if (!existsSync(path)) throw new CliError('E_CLI_POLICY', `policy not found: ${path}`);
  const ext = extname(path);
  if (!TS_EXTENSIONS.has(ext) && !JS_EXTENSIONS.has(ext)) return loadPolicy(path);
  const module = await importModule(path, 'policy module');
  const value = module.policy ?? module.default;
  if (value === undefined) {
    throw new CliError('E_CLI_POLICY', `policy module ${path} has no "policy" or default export`);
  }
  return isPolicy(value) ? value : validatePolicy(value, { file: path });
}

/** Imports a module by path, registering tsx first for TypeScript. */
async function importModule(path: string, what: string): Promise<Record<string, unknown>> {
  const absolute = resolve(path);
  if (!existsSync(absolute)) throw new CliError('E_CLI_MODULE', `${what} not found: ${path}`);
  if (TS_EXTENSIONS.has(extname(absolute))) await registerTsx(path, what);
  try {
    return (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof PolicyError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new CliError('E_CLI_MODULE', `cannot load ${what} ${path}: ${message}`, { cause: error });
  }
}

async function registerTsx(path: string, what: string): Promise<void> {
  if (tsxRegistered) return;
  try {
    // A variable specifier keeps bundlers from inlining tsx (a dev tool the user may not have).
    const specifier = 'tsx/esm/api';
    const api = (await import(specifier)) as { register: () => unknown };
    api.register();
    tsxRegistered = true;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n', 1)[0] : String(error);
    throw new CliError(
      'E_CLI_MODULE',
      `cannot load TypeScript ${what} ${path}: tsx is needed (npm install --save-dev tsx), or point at compiled JavaScript (${reason})`,
      { cause: error },
    );
  }
}

function isPolicy(value: unknown): value is Policy {
  return isObject(value) && value.tables instanceof Map && isObject(value.defaults);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

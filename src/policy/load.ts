import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PolicyError } from '../errors.js';
import { IssueCollector, type PathSegment } from './issues.js';
import { formatOf, type ParsedFile, type ParseFailure, type PolicyFormat, readPolicyFile } from './parse-file.js';
import type { Policy } from './types.js';
import { validatePolicy } from './validate.js';
import { isRecord } from './values.js';

/** Base name of the file holding namespace, version and defaults in a policy directory. */
export const DIRECTORY_POLICY_FILE = '_policy';

/**
 * Loads a policy from a `.json`, `.yaml` or `.yml` file, or from a directory holding
 * `_policy.yaml|yml|json` (namespace, version, defaults) plus one `<table>.yaml|yml|json` per table.
 * Throws one PolicyError naming the file, line, table and field of every problem.
 */
export async function loadPolicy(path: string): Promise<Policy> {
  let isDirectory: boolean;
  try {
    const info = await stat(path);
    if (!info.isDirectory() && !info.isFile()) throw new PolicyError('not a file or directory', { file: path });
    isDirectory = info.isDirectory();
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    const missing = typeof err === 'object' && err !== null && 'code' in err && err.code === 'ENOENT';
    throw new PolicyError(missing ? 'no such file or directory' : `cannot read: ${String(err)}`, { file: path });
  }
  return isDirectory ? loadDirectory(path) : loadFile(path);
}

async function loadFile(file: string): Promise<Policy> {
  const format = formatOf(file);
  if (format === undefined) {
    throw new PolicyError('unsupported policy file: use .json, .yaml or .yml, or a directory of them', { file });
  }
  const parsed = await readPolicyFile(file, format);
  if ('error' in parsed) throw new PolicyError(parsed.error, { file });
  return validatePolicy(parsed.value, { file, lineOf: (at, path) => (at === file ? parsed.lineOf(path) : undefined) });
}

/** One policy file found in a directory. */
interface DirEntry {
  readonly file: string;
  readonly base: string;
  readonly format: PolicyFormat;
}

async function loadDirectory(dir: string): Promise<Policy> {
  const issues = new IssueCollector();
  const policyFiles: DirEntry[] = [];
  const tableFiles = new Map<string, DirEntry>();
  for (const entry of await listPolicyFiles(dir)) {
    if (entry.base === DIRECTORY_POLICY_FILE) {
      policyFiles.push(entry);
      continue;
    }
    const other = tableFiles.get(entry.base);
    if (other === undefined) tableFiles.set(entry.base, entry);
    else {
      issues.push({
        path: ['tables', entry.base],
        table: entry.base,
        file: entry.file,
        message: `table "${entry.base}" is defined by two files: ${other.file} and ${entry.file}`,
      });
    }
  }
  const main = policyFiles[0];
  if (main === undefined) {
    issues.push({
      path: [],
      file: dir,
      message: `a policy directory needs a ${DIRECTORY_POLICY_FILE}.yaml (or .yml, .json) file with namespace and version`,
    });
  }
  if (policyFiles.length > 1) {
    issues.push({
      path: [],
      file: dir,
      message: `a policy directory needs exactly one ${DIRECTORY_POLICY_FILE} file, found ${policyFiles.map((e) => basename(e.file)).join(' and ')}`,
    });
  }

  const parsed = new Map<string, ParsedFile>();
  const all = [...(main ? [main] : []), ...tableFiles.values()];
  const results = await Promise.all(all.map((e) => readPolicyFile(e.file, e.format)));
  all.forEach((entry, i) => {
    const result = results[i] as ParsedFile | ParseFailure;
    if ('error' in result) issues.push({ path: [], file: entry.file, message: result.error });
    else parsed.set(entry.file, result);
  });
  if (main === undefined) return issues.fail({ file: dir });
  issues.throwIfAny({ file: main.file });

  // Assemble one policy: the _policy file, with each table file as an entry of `tables`.
  const mainValue = parsed.get(main.file)!.value;
  let input: unknown = mainValue;
  const tableSources = new Map<string, string>();
  if (isRecord(mainValue)) {
    const root = copy(mainValue);
    const tables = root.tables === undefined ? Object.create(null) : root.tables;
    if (isRecord(tables)) {
      const merged = copy(tables);
      for (const [name, entry] of tableFiles) {
        if (Object.hasOwn(merged, name)) {
          issues.push({
            path: ['tables', name],
            table: name,
            file: entry.file,
            message: `table "${name}" is defined both in ${main.file} and in ${entry.file}`,
          });
          continue;
        }
        merged[name] = parsed.get(entry.file)!.value;
        tableSources.set(name, entry.file);
      }
      root.tables = merged;
    }
    input = root;
  }
  issues.throwIfAny({ file: main.file });

  const lineOf = (file: string | undefined, path: readonly PathSegment[]): number | undefined => {
    if (file === undefined) return undefined;
    const source = parsed.get(file);
    if (source === undefined) return undefined;
    // A table file holds one table entry: its paths start below `tables.<name>`.
    return file === main.file ? source.lineOf(path) : source.lineOf(path.slice(2));
  };
  return validatePolicy(input, { file: main.file, tableFiles: tableSources, lineOf });
}

/** The policy files of a directory, sorted; dot files, subdirectories and other extensions are ignored. */
async function listPolicyFiles(dir: string): Promise<DirEntry[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    throw new PolicyError(`cannot list the policy directory: ${String(err)}`, { file: dir });
  }
  const out: DirEntry[] = [];
  for (const name of names) {
    const format = formatOf(name);
    if (name.startsWith('.') || format === undefined) continue;
    const file = join(dir, name);
    // stat (not lstat): a symlink to a file counts, a directory named `x.yaml` does not.
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) continue;
    out.push({ file, base: name.slice(0, name.lastIndexOf('.')), format });
  }
  return out;
}

/** A null-prototype copy, so keys such as `__proto__` stay plain data. */
function copy(record: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const key of Object.keys(record)) out[key] = record[key];
  return out;
}

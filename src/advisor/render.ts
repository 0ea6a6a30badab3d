import { Document, isMap, isScalar, type YAMLMap } from 'yaml';
import { LIMITS } from '../policy/constants.js';
import type { TablePolicy } from '../policy/types.js';
import { nameProblem } from '../policy/values.js';
import type { Advice } from './types.js';

/** What goes into a rendered policy besides the advice. */
export interface RenderOptions {
  /** The policy's namespace. */
  namespace: string;
  /** The policy's version. @default 1 */
  version?: number;
  /** Comment lines for the top of the file (how the workload was measured, ...). */
  header?: readonly string[];
  /** Where the TypeScript module imports `definePolicy` from. @default 'tablecache' */
  importFrom?: string;
}

/** The advised policy as plain data: `defaults: { pattern: 'none' }` and one entry per table. */
export interface AdvisedPolicy {
  namespace: string;
  version: number;
  defaults: { pattern: 'none' };
  tables: Record<string, TablePolicy>;
}

/**
 * The policy the advice amounts to, as `validatePolicy` accepts it. Tables whose names cannot be
 * policy keys (control characters) are left out; they get `defaults`, which is `none`.
 */
export function advisedPolicy(advice: readonly Advice[], options: RenderOptions): AdvisedPolicy {
  const tables: Record<string, TablePolicy> = {};
  for (const a of usable(advice)) {
    // defineProperty: a table named `__proto__` must be an own key, not the object's prototype.
    Object.defineProperty(tables, a.table, {
      value: { pattern: a.pattern },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { namespace: options.namespace, version: options.version ?? 1, defaults: { pattern: 'none' }, tables };
}

function usable(advice: readonly Advice[]): Advice[] {
  return advice.filter((a) => nameProblem(a.table, LIMITS.tableNameLength) === undefined);
}

/** The header lines, plus one per table left out for its name. */
function headerLines(advice: readonly Advice[], options: RenderOptions): string[] {
  const lines = [...(options.header ?? [])];
  for (const a of advice) {
    const problem = nameProblem(a.table, LIMITS.tableNameLength);
    if (problem !== undefined)
      lines.push(`Left out ${JSON.stringify(a.table)} (pattern none): a policy table name ${problem}.`);
  }
  return lines.map(commentText);
}

/** Renders the advice as a YAML policy file, each table's reason as a comment above it. */
export function renderYaml(advice: readonly Advice[], options: RenderOptions): string {
  const doc = new Document(advisedPolicy(advice, options));
  const header = headerLines(advice, options);
  const byTable = new Map(usable(advice).map((a) => [a.table, a]));
  if (header.length > 0) doc.commentBefore = header.map((line) => ` ${line}`).join('\n');
  const tables = doc.get('tables', true);
  if (isMap(tables)) {
    // By key, not position: an object lists integer-like keys ("2024") first.
    for (const pair of (tables as YAMLMap).items) {
      const a = isScalar(pair.key) ? byTable.get(String(pair.key.value)) : undefined;
      if (a === undefined || !isScalar(pair.key)) continue;
      pair.key.commentBefore = ` ${a.pattern}: ${commentText(a.reason)}`;
      if (isMap(pair.value)) pair.value.flow = true;
    }
  }
  const defaults = doc.get('defaults', true);
  if (isMap(defaults)) defaults.flow = true;
  return doc.toString({ lineWidth: 0 });
}

/** Renders the advice as a TypeScript module exporting `policy = definePolicy({...})`, with the reasons as comments. */
export function renderTypeScript(advice: readonly Advice[], options: RenderOptions): string {
  const policy = advisedPolicy(advice, options);
  const lines: string[] = headerLines(advice, options).map((line) => `// ${line}`);
  lines.push(`import { definePolicy } from ${tsString(options.importFrom ?? 'tablecache')};`, '');
  lines.push('export const policy = definePolicy({');
  lines.push(`  namespace: ${tsString(policy.namespace)},`, `  version: ${policy.version},`);
  lines.push("  defaults: { pattern: 'none' },", '  tables: {');
  for (const a of usable(advice)) {
    lines.push(`    // ${a.pattern}: ${commentText(a.reason)}`);
    lines.push(`    ${tsKey(a.table)}: { pattern: ${tsString(a.pattern)} },`);
  }
  lines.push('  },', '});', '');
  return lines.join('\n');
}

/** Comment text on one line: line breaks and other control characters become spaces. */
function commentText(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
}

/** A single-quoted TypeScript string literal. */
function tsString(text: string): string {
  const escaped = text.replace(/[\\']/g, '\\$&').replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `'${escaped}'`;
}

function tsKey(name: string): string {
  // In an object literal, `__proto__:` (bare or quoted) sets the prototype; a computed key does not.
  if (name === '__proto__') return "['__proto__']";
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : tsString(name);
}

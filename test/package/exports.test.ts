import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackageFixture, type PackageFixture } from './fixture.js';

/** Each public subpath, its dist/ basename, and the named exports it must have. */
const subpaths = {
  tablecache: {
    file: 'index',
    names: ['createCache', 'definePolicy', 'loadPolicy', 'CacheError', 'PolicyError', 'StoreError'],
  },
  'tablecache/drizzle': { file: 'drizzle', names: ['withCache'] },
  'tablecache/redis': { file: 'redis', names: ['redisStore'] },
  'tablecache/memory': { file: 'memory', names: ['memoryStore'] },
} as const;
type Subpath = keyof typeof subpaths;
const subpathNames = Object.keys(subpaths) as Subpath[];

let fixture: PackageFixture;

beforeAll(() => {
  fixture = buildPackageFixture();
});

afterAll(() => fixture?.dispose());

/** Loads every subpath in a plain Node process (no vitest loader) and lists its exports. */
function listExports(kind: 'esm' | 'cjs'): Record<Subpath, string[]> {
  const load = kind === 'esm' ? 'await import(s)' : 'require(s)';
  const script = `const out = {};
for (const s of ${JSON.stringify(subpathNames)}) out[s] = Object.keys(${load});
console.log(JSON.stringify(out));
`;
  const file = join(fixture.consumerDir, kind === 'esm' ? 'list.mjs' : 'list.cjs');
  writeFileSync(file, script);
  return JSON.parse(execFileSync(process.execPath, [file], { cwd: fixture.consumerDir, encoding: 'utf8' }));
}

/**
 * Type-checks the consumer files and every declaration file of ours they reach, as a strict
 * NodeNext project would. Third-party declarations are not checked (drizzle-orm's optional
 * drivers have errors of their own), which also keeps this fast.
 */
function typeCheck(rootNames: string[]): string[] {
  const program = ts.createProgram({
    rootNames,
    options: {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
      types: ['node'],
    },
  });
  const ours = program.getSourceFiles().filter((file) => !file.fileName.includes('/node_modules/'));
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...ours.flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]),
  ];
  return diagnostics.map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return text;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${d.file.fileName}:${line + 1}: ${text}`;
  });
}

describe('published package shape', () => {
  it.each(['esm', 'cjs'] as const)('every subpath loads through %s with its named exports', (kind) => {
    const found = listExports(kind);
    for (const subpath of subpathNames) {
      expect(found[subpath], subpath).toEqual(expect.arrayContaining([...subpaths[subpath].names]));
    }
  });

  it('ships .d.ts and .d.cts declarations for every entry, and they type-check from ESM and CJS', () => {
    for (const { file } of Object.values(subpaths)) {
      expect(existsSync(join(fixture.pkgDir, 'dist', `${file}.d.ts`)), `${file}.d.ts`).toBe(true);
      expect(existsSync(join(fixture.pkgDir, 'dist', `${file}.d.cts`)), `${file}.d.cts`).toBe(true);
    }
    // Importing each name makes tsc resolve it through the `import` and `require` type conditions.
    const imports = subpathNames
      .map((s) => `import { ${subpaths[s].names.join(', ')} } from '${s}';\nvoid [${subpaths[s].names.join(', ')}];`)
      .join('\n');
    const esm = join(fixture.consumerDir, 'esm.mts');
    const cjs = join(fixture.consumerDir, 'cjs.cts');
    writeFileSync(esm, imports);
    writeFileSync(cjs, imports);
    expect(typeCheck([esm, cjs])).toEqual([]);
  });

  it('defines CacheError once per format, so instanceof holds across subpaths', () => {
    const dist = join(fixture.pkgDir, 'dist');
    const definers = readdirSync(dist)
      .filter((f) => f.endsWith('.js') || f.endsWith('.cjs'))
      .filter((f) => /\bclass CacheError\b|\bCacheError = class\b/.test(readFileSync(join(dist, f), 'utf8')));
    expect(definers.filter((f) => f.endsWith('.js'))).toHaveLength(1);
    expect(definers.filter((f) => f.endsWith('.cjs'))).toHaveLength(1);
  });

  it('has an executable-ready bin', () => {
    const pkg = JSON.parse(readFileSync(join(fixture.pkgDir, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    const bin = join(fixture.pkgDir, pkg.bin.tablecache ?? '');
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node')).toBe(true);
  });

  it('passes publint --strict', async () => {
    const { messages, pkg } = await publint({ pkgDir: fixture.pkgDir, pack: 'npm', strict: true });
    expect(messages.map((m) => formatMessage(m, pkg))).toEqual([]);
  });
});

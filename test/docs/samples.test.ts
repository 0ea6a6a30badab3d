/**
 * Type-checks every ```ts code block of README.md and docs/**\/*.md against the repository's
 * sources, so documentation samples cannot rot.
 *
 * Conventions for sample authors:
 * - Every ```ts (or ```typescript) block is checked on its own, as an ES module (top-level await
 *   works) under the repository's strict tsconfig. Import what you use; declare what the sample
 *   assumes, e.g. `declare const db: NodePgDatabase<typeof schema>;`.
 * - `tablecache`, `tablecache/drizzle`, `tablecache/redis` and `tablecache/memory` resolve to the
 *   sources; other packages resolve from node_modules.
 * - A block whose first line is `// <name>.ts` is saved under that name, and the other blocks of
 *   the same document can import it (`import * as schema from './schema.js'`).
 * - ```ts no-check marks a fragment that is not meant to compile; it is skipped.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Where the samples live, virtually: inside the repository, so node_modules resolves as for real code. */
const VIRTUAL = join(ROOT, '.doc-samples');

/** One code block to check. */
interface Sample {
  /** The document, relative to the root. */
  doc: string;
  /** 1-based line of the block's first code line in the document. */
  line: number;
  /** The virtual file it is checked as. */
  file: string;
  code: string;
}

/** README.md and every Markdown file under docs/, relative to the root. */
function documents(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.md') && statSync(join(ROOT, 'docs', f)).isFile())
    .map((f) => join('docs', f))
    .sort();
  return ['README.md', ...docs];
}

const OPEN = /^(\s*)(`{3,}|~{3,})\s*(ts|typescript)(?:\s+(.*))?$/;
const FILE_NAME = /^\/\/\s*([\w.-]+\.(?:ts|mts|tsx))\s*$/;

/** The checked samples of one document, and problems with the document itself. */
function extract(doc: string): { samples: Sample[]; problems: string[] } {
  const lines = readFileSync(join(ROOT, doc), 'utf8').split(/\r?\n/);
  const samples: Sample[] = [];
  const problems: string[] = [];
  const names = new Set<string>();
  const dir = join(VIRTUAL, doc.replace(/[/\\]/g, '__').replace(/\.md$/, ''));
  for (let i = 0; i < lines.length; i++) {
    const open = OPEN.exec(lines[i] as string);
    if (!open) continue;
    const [, indent = '', fence = '```', , info = ''] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const line = lines[j] as string;
      if (line.trim().startsWith(fence) && line.trim().replace(/[`~]/g, '') === '') break;
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line);
    }
    const start = i + 2;
    i = j;
    if (/\bno-check\b/.test(info)) continue;
    const named = FILE_NAME.exec(body[0] ?? '')?.[1];
    let name = `sample-line-${start}.ts`;
    if (named !== undefined) {
      if (names.has(named)) problems.push(`${doc}:${start}: a second block is named ${named}`);
      else name = named;
      names.add(named);
    }
    // `export {}` makes every block a module: its own scope, and top-level await.
    samples.push({ doc, line: start, file: join(dir, name), code: `${body.join('\n')}\nexport {};\n` });
  }
  return { samples, problems };
}

function compilerOptions(): ts.CompilerOptions {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error('cannot read tsconfig.json');
  const entry = (path: string) => [join(ROOT, path)];
  return {
    ...parsed.options,
    noEmit: true,
    paths: {
      tablecache: entry('src/index.ts'),
      'tablecache/drizzle': entry('adapters/drizzle/index.ts'),
      'tablecache/redis': entry('stores/redis.ts'),
      'tablecache/memory': entry('stores/memory.ts'),
    },
  };
}

/** Type-checks all samples in one program; returns the problems by document. */
function check(samples: readonly Sample[]): Map<string, string[]> {
  const options = compilerOptions();
  const files = new Map(samples.map((s) => [s.file, s]));
  const dirs = new Set<string>();
  for (const s of samples) for (let d = dirname(s.file); d.startsWith(VIRTUAL); d = dirname(d)) dirs.add(d);
  const host = ts.createCompilerHost(options, true);
  const { fileExists, readFile, directoryExists, getSourceFile } = host;
  host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
  host.readFile = (f) => files.get(f)?.code ?? readFile.call(host, f);
  host.directoryExists = (d) => dirs.has(d) || (directoryExists?.call(host, d) ?? ts.sys.directoryExists(d));
  host.getSourceFile = (f, language, onError, create) => {
    const sample = files.get(f);
    return sample
      ? ts.createSourceFile(f, sample.code, language, true, ts.ScriptKind.TS)
      : getSourceFile.call(host, f, language, onError, create);
  };
  const program = ts.createProgram({ rootNames: [...files.keys()], options, host });
  const byDoc = new Map<string, string[]>();
  for (const sample of samples) {
    const source = program.getSourceFile(sample.file);
    if (!source) throw new Error(`sample ${sample.file} was not compiled`);
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    for (const d of diagnostics) {
      const at = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line;
      const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
      const list = byDoc.get(sample.doc) ?? [];
      list.push(`${sample.doc}:${sample.line + at}: TS${d.code}: ${message}`);
      byDoc.set(sample.doc, list);
    }
  }
  return byDoc;
}

const docs = documents();
const extracted = new Map(docs.map((doc) => [doc, extract(doc)]));
let problems: Map<string, string[]>;

beforeAll(() => {
  problems = check([...extracted.values()].flatMap((e) => e.samples));
}, 120_000);

describe('documentation samples', () => {
  it('finds the samples of the README', () => {
    expect(extracted.get('README.md')?.samples.length).toBeGreaterThan(0);
  });

  it.each(docs)('every ts sample of %s type-checks', (doc) => {
    const found = extracted.get(doc);
    expect([...(found?.problems ?? []), ...(problems.get(doc) ?? [])]).toEqual([]);
  });

  it('checks samples as written: a broken sample is reported at its line', () => {
    const doc = relative(ROOT, join(ROOT, 'README.md'));
    const broken: Sample = {
      doc,
      line: 10,
      file: join(VIRTUAL, 'self-test', 'broken.ts'),
      code: "import { createCache } from 'tablecache';\nconst n: number = createCache;\nexport {};\n",
    };
    expect(check([broken]).get(doc)).toEqual([
      expect.stringMatching(/^README\.md:11: TS2322: Type .* is not assignable to type 'number'/),
    ]);
  }, 60_000);
});

import { open } from 'node:fs/promises';
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { LIMITS } from './constants.js';
import type { PathSegment } from './issues.js';
import { describe } from './values.js';

/** The two text formats a policy file may use. */
export type PolicyFormat = 'json' | 'yaml';

/** A parsed policy file: its data, and a way to find the line of a path into it. */
export interface ParsedFile {
  readonly value: unknown;
  /** The 1-based line of `path` (or of its deepest existing parent), when known. */
  readonly lineOf: (path: readonly PathSegment[]) => number | undefined;
}

/** Why a file could not be read or parsed (the message names the line when the parser gave one). */
export interface ParseFailure {
  readonly error: string;
}

/** The format a file name implies (`.json`, `.yaml`, `.yml`, any case), or undefined. */
export function formatOf(file: string): PolicyFormat | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  return undefined;
}

/** Reads and parses one policy file, refusing files over 1 MiB before reading them. */
export async function readPolicyFile(file: string, format: PolicyFormat): Promise<ParsedFile | ParseFailure> {
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > LIMITS.fileBytes) return tooLarge(size);
      // Read one byte past the limit so a file that grew since stat() is still caught.
      const buffer = Buffer.alloc(LIMITS.fileBytes + 1);
      let length = 0;
      while (length < buffer.length) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      if (length > LIMITS.fileBytes) return tooLarge(undefined);
      bytes = buffer.subarray(0, length);
    } finally {
      await handle.close();
    }
  } catch (err) {
    return { error: readError(err) };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { error: 'the file is not valid UTF-8 text' };
  }
  return parsePolicyText(text, format);
}

/** Parses policy text: JSON exactly, YAML 1.2 core schema without custom tags, merge keys or alias bombs. */
export function parsePolicyText(text: string, format: PolicyFormat): ParsedFile | ParseFailure {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  return format === 'json' ? parseJson(body) : parseYaml(body);
}

function parseJson(text: string): ParsedFile | ParseFailure {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const position = /at position (\d+)/.exec(message);
    const clean = message.replace(/\s*(in JSON )?at position \d+.*$/s, '').replace(/\s*\(line \d+ column \d+\)/, '');
    if (!position) return { error: `invalid JSON: ${clean}` };
    const { line, col } = linePos(text, Number(position[1]));
    return { error: `invalid JSON at line ${line}, column ${col}: ${clean}` };
  }
  // Lines are only needed when validation fails, so the YAML pass that finds them runs lazily.
  let located: ((path: readonly PathSegment[]) => number | undefined) | undefined;
  return {
    value,
    lineOf: (path) => {
      located ??= locator(text);
      return located(path);
    },
  };
}

function parseYaml(text: string): ParsedFile | ParseFailure {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    strict: true,
    uniqueKeys: true,
    stringKeys: true,
    schema: 'core',
    merge: false,
    resolveKnownTags: false,
    // 'error' (not 'silent'): 'silent' also drops the "multiple documents" error.
    logLevel: 'error',
  });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const { line, col } = lineCounter.linePos(problem.pos[0]);
    return { error: `invalid YAML at line ${line}, column ${col}: ${problem.message}` };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: LIMITS.yamlAliases });
  } catch (err) {
    // The yaml package throws a ReferenceError when aliases expand past maxAliasCount.
    const message = err instanceof Error ? err.message : describe(err);
    return { error: `invalid YAML: ${message} (at most ${LIMITS.yamlAliases} alias expansions are allowed)` };
  }
  return { value, lineOf: (path) => lineIn(doc, lineCounter, path) };
}

/** Finds lines in JSON text by reading it as YAML (JSON is YAML 1.2 flow syntax). */
function locator(text: string): (path: readonly PathSegment[]) => number | undefined {
  try {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { lineCounter, prettyErrors: false, logLevel: 'error', stringKeys: true });
    return (path) => lineIn(doc, lineCounter, path);
  } catch {
    return () => undefined;
  }
}

/** The line of the key (or list item) at `path`, or of its deepest existing parent. */
function lineIn(doc: Document, lineCounter: LineCounter, path: readonly PathSegment[]): number | undefined {
  let node: unknown = doc.contents;
  let offset = isScalar(node) || isMap(node) || isSeq(node) ? node.range?.[0] : undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair || !isScalar(pair.key)) break;
      offset = pair.key.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      if (!(isScalar(item) || isMap(item) || isSeq(item))) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset === undefined ? undefined : lineCounter.linePos(offset).line;
}

function linePos(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, col: end - start + 1 };
}

function tooLarge(size: number | undefined): ParseFailure {
  const actual = size === undefined ? 'larger than that' : `${size} bytes`;
  return { error: `policy files are limited to 1 MiB (${LIMITS.fileBytes} bytes); this one is ${actual}` };
}

function readError(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  if (code === 'ENOENT') return 'the file does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'the file cannot be read (permission denied)';
  if (code === 'EISDIR') return 'expected a file, found a directory';
  return `the file cannot be read: ${err instanceof Error ? err.message : describe(err)}`;
}

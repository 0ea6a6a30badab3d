import { formatLocation, PolicyError, type PolicyLocation } from '../errors.js';
import { LIMITS } from './constants.js';

/** One step of a path into the policy: a key, or an array index. */
export type PathSegment = string | number;

/** Where policy issues are reported: the files they came from and, when known, their lines. */
export interface IssueSource {
  /** The policy file; also the file of tables missing from `tableFiles`. */
  readonly file?: string | undefined;
  /** The file each table came from, when tables came from separate files. */
  readonly tableFiles?: ReadonlyMap<string, string> | undefined;
  /** The 1-based line of `path` in `file`, when the file's text is known. */
  readonly lineOf?: ((file: string | undefined, path: readonly PathSegment[]) => number | undefined) | undefined;
}

/** A problem found in a policy: a path into it and, for table entries, the table's policy key. */
export interface PendingIssue {
  readonly message: string;
  readonly path: readonly PathSegment[];
  readonly table?: string | undefined;
  /** Overrides the file derived from `table` (problems of a file rather than of a field). */
  readonly file?: string | undefined;
}

/** Renders a path as a dotted field name: `tables.users.ttl`, `tables.v.reads[0]`. */
export function fieldName(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}

/** Collects every problem of a policy so one PolicyError can report them all. */
export class IssueCollector {
  private readonly list: PendingIssue[] = [];
  private dropped = 0;

  /** Records a problem at `path`; `table` is the policy key of the table entry it belongs to. */
  add(path: readonly PathSegment[], message: string, table?: string): void {
    this.push({ message, path, table });
  }

  /** Records a prepared issue. */
  push(issue: PendingIssue): void {
    if (this.list.length < LIMITS.issues) this.list.push(issue);
    else this.dropped++;
  }

  /** How many problems were recorded. */
  get size(): number {
    return this.list.length + this.dropped;
  }

  /** Throws one PolicyError listing the problems, for callers that recorded at least one. */
  fail(source: IssueSource = {}): never {
    this.throwIfAny(source);
    throw new PolicyError('invalid policy', source.file === undefined ? {} : { file: source.file });
  }

  /** Throws one PolicyError listing every recorded problem; returns when there is none. */
  throwIfAny(source: IssueSource = {}): void {
    if (this.list.length === 0) return;
    const issues = this.list.map((issue) => locate(issue, source));
    if (issues.length === 1 && this.dropped === 0) {
      const only = issues[0]!;
      throw new PolicyError(only.message, only.location, issues);
    }
    const root: PolicyLocation = source.file === undefined ? {} : { file: source.file };
    const lines = issues.map(({ message, location }) => {
      const shown = location.file === source.file ? { ...location, file: undefined } : location;
      return `  - ${formatLocation(shown)}${message}`;
    });
    if (this.dropped > 0) lines.push(`  - ...and ${this.dropped} more`);
    throw new PolicyError(`${this.size} problems in the policy:\n${lines.join('\n')}`, root, issues);
  }
}

function locate(issue: PendingIssue, source: IssueSource): { message: string; location: PolicyLocation } {
  const file =
    issue.file ?? (issue.table === undefined ? undefined : source.tableFiles?.get(issue.table)) ?? source.file;
  const location: PolicyLocation = {};
  if (file !== undefined) location.file = file;
  if (issue.table !== undefined) location.table = issue.table;
  if (issue.path.length > 0) location.field = fieldName(issue.path);
  const line = source.lineOf?.(file, issue.path);
  return { message: line === undefined ? issue.message : `${issue.message} (line ${line})`, location };
}

/** Options common to every tablecache error. */
export interface CacheErrorOptions {
  /** The error that caused this one, kept unchanged. */
  cause?: unknown;
}

/** Base class of every error tablecache throws; `code` is stable and safe to switch on. */
export class CacheError extends Error {
  /** A stable machine-readable code, such as `E_POLICY`. */
  readonly code: string;

  constructor(code: string, message: string, options: CacheErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** Where in a policy a problem was found. */
export interface PolicyLocation {
  /** The policy file, when the policy came from one. */
  file?: string | undefined;
  /** The table the problem belongs to, when it belongs to one. */
  table?: string | undefined;
  /** The dotted path of the offending field, e.g. `tables.users.ttl`. */
  field?: string | undefined;
}

/** A policy is malformed or does not fit the schema; names the file, table and field. */
export class PolicyError extends CacheError {
  /** Where the problem is. */
  readonly location: PolicyLocation;
  /** Every problem found, when several were collected at once. */
  readonly issues: readonly { message: string; location: PolicyLocation }[];

  constructor(
    message: string,
    location: PolicyLocation = {},
    issues?: readonly { message: string; location: PolicyLocation }[],
  ) {
    super('E_POLICY', `${formatLocation(location)}${message}`);
    this.location = location;
    this.issues = issues ?? [{ message, location }];
  }
}

/** The cache store failed or timed out. Reads fall back to the database; this reaches `onError`. */
export class StoreError extends CacheError {
  constructor(message: string, options: CacheErrorOptions = {}) {
    super('E_STORE', message, options);
  }
}

/** A value could not be cached (too large, or not serializable); the query was served uncached. */
export class UncacheableValueError extends CacheError {
  constructor(message: string, options: CacheErrorOptions = {}) {
    super('E_UNCACHEABLE_VALUE', message, options);
  }
}

/** A write-back operation failed (journal full, missing primary key, flush failure). */
export class WriteBackError extends CacheError {
  constructor(code: `E_WRITE_BACK${string}`, message: string, options: CacheErrorOptions = {}) {
    super(code, message, options);
  }
}

/** The cache was used after `close()`. */
export class CacheClosedError extends CacheError {
  constructor() {
    super('E_CLOSED', 'the cache is closed');
  }
}

/** Every error class by code, for `instanceof` checks and docs. */
export const errors = {
  E_POLICY: PolicyError,
  E_STORE: StoreError,
  E_UNCACHEABLE_VALUE: UncacheableValueError,
  E_WRITE_BACK: WriteBackError,
  E_CLOSED: CacheClosedError,
} as const;

/** Renders a location as `file: table "t": field f: ` for error messages. */
export function formatLocation(location: PolicyLocation): string {
  const parts: string[] = [];
  if (location.file) parts.push(location.file);
  if (location.table) parts.push(`table "${location.table}"`);
  if (location.field) parts.push(`field "${location.field}"`);
  return parts.length > 0 ? `${parts.join(': ')}: ` : '';
}

import type { SQL, SQLWrapper } from 'drizzle-orm';
import type { RelationName } from '../../src/adapter.js';
import type { TableCache } from '../../src/cache.js';
import { buildCatalog } from './catalog.js';
import { parseTableName } from './query-plan.js';
import { type ClientContext, type DrizzleSession, declareNextStatement, wrapSession } from './session.js';

/** Options of `withCache`. */
export interface WithCacheOptions {
  /** The schema module, when the client was created without `{ schema }`. */
  schema?: Record<string, unknown>;
}

interface DrizzleDatabaseShape {
  session: DrizzleSession;
  dialect: unknown;
  _: { schema?: unknown; fullSchema?: Record<string, unknown>; tableNamesMap?: unknown };
  execute(query: SQLWrapper | string): unknown;
}

const declaredReads = new WeakMap<object, readonly RelationName[]>();

/**
 * Marks a raw SQL read as cacheable by naming every table it reads. Raw `db.execute` reads are
 * otherwise never cached; writes through `db.execute` always invalidate what they write.
 */
export function cacheable<T extends SQL>(query: T, options: { tables: readonly string[] }): T {
  declaredReads.set(query, options.tables.map(parseTableName));
  return query;
}

/**
 * Wraps a Drizzle PostgreSQL client (node-postgres, PGlite, postgres-js) so every select, insert,
 * update, delete, relational query, prepared statement, raw execute and transaction goes through
 * the cache. Returns a client of the same type; the original keeps working uncached.
 * Throws a PolicyError when the policy does not fit the schema.
 */
export function withCache<TDatabase extends object>(
  db: TDatabase,
  cache: TableCache,
  options: WithCacheOptions = {},
): TDatabase {
  const source = db as unknown as DrizzleDatabaseShape;
  if (!source.session || typeof source.session.prepareQuery !== 'function') {
    throw new TypeError('withCache expects a Drizzle PostgreSQL client (drizzle-orm pg-core)');
  }
  const schema = options.schema ?? source._.fullSchema ?? {};
  const engine = cache.attach(buildCatalog(schema));
  const context: ClientContext = {
    engine,
    connectionFrame: undefined,
    singleConnection: !isPool(source.session.client),
    schema,
  };
  const session = wrapSession(source.session, context, undefined);
  const Ctor = db.constructor as new (
    dialect: unknown,
    session: DrizzleSession,
    schema: unknown,
  ) => DrizzleDatabaseShape;
  const relational = source._.schema
    ? { schema: source._.schema, fullSchema: source._.fullSchema, tableNamesMap: source._.tableNamesMap }
    : undefined;
  const wrapped = new Ctor(source.dialect, session, relational);
  for (const key of Object.keys(db)) {
    if (!(key in wrapped) || key === '$client') {
      (wrapped as unknown as Record<string, unknown>)[key] = (db as Record<string, unknown>)[key];
    }
  }
  const rawExecute = wrapped.execute;
  wrapped.execute = function execute(query) {
    const declared = typeof query === 'object' ? declaredReads.get(query) : undefined;
    if (declared) declareNextStatement(session, declared);
    return rawExecute.call(this, query);
  };
  return wrapped as unknown as TDatabase;
}

function isPool(client: unknown): boolean {
  if (!client) return false;
  if (typeof client === 'function') return true;
  if (typeof client !== 'object') return false;
  const name = Object.getPrototypeOf(client)?.constructor?.name ?? '';
  // node-postgres Pool; postgres-js is a function (a pool); PGlite and pg Client are one connection.
  return name.includes('Pool');
}

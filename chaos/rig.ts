import { randomBytes } from 'node:crypto';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { withCache } from '../adapters/drizzle/index.js';
import { createCache, type Duration, type Pattern } from '../src/index.js';
import { redisStore } from '../stores/redis.js';
import { type ChaosDatabase, createDatabase } from './database.js';
import { type RedisServer, startRedisServer } from './redis-server.js';
import {
  DEFAULT_KEYS,
  ddlOf,
  type KeySpaceConfig,
  type PatternTables,
  patternTables,
  policyOf,
  schemaOf,
  supportedPatterns,
} from './tables.js';
import type { ChaosDb, Instance, Recorder } from './workload.js';

/** How the rig is built. */
export interface RigOptions {
  /** Patterns to run; default: every pattern this build supports. */
  patterns?: Pattern[];
  /** Run against these Redis Cluster nodes instead of a server of the rig's own. */
  cluster?: { host: string; port: number }[];
  keys?: KeySpaceConfig;
  /** The caches' store timeout. @default the library default */
  storeTimeout?: Duration;
  /**
   * The rig's own Redis server: extra arguments, and the ioredis options of the app instances
   * (AUTH, ACL users, TLS) and of the admin connection (faults). `setup` runs first as admin.
   */
  redisServer?: {
    args?: string[];
    tls?: boolean;
    port?: number;
    client?: RedisOptions;
    admin?: RedisOptions;
    setup?: (admin: Redis) => Promise<void>;
  };
  /**
   * A control run: writes go through the unwrapped Drizzle client, so tablecache never hears of
   * them and the checker must report stale reads. Proves the harness can see staleness.
   */
  bypassWrites?: boolean;
  /**
   * Short TTLs with every TTL strategy (jitter, sliding, early refresh, grace, serving stale on
   * database errors) on the cache-aside and write-through tables, so entries expire, slide and
   * refresh all through the run. None of it may ever serve a value older than a write.
   */
  freshness?: boolean;
}

/** Two app instances (own Redis connection, own pg pool, own cache) over one Redis and one schema. */
export interface Rig {
  database: ChaosDatabase;
  /** The rig's own Redis server (absent on a cluster). */
  server: RedisServer | undefined;
  /** Admin connections, one per Redis node (faults, ACL setup). */
  admins: Redis[];
  sets: PatternTables[];
  keys: KeySpaceConfig;
  instances: Instance[];
  /** Closes the caches and clients, stops the server, drops the schema. */
  close(): Promise<void>;
}

/** Builds the rig: schema, audit triggers and seeds (recorded), Redis, two instances. */
export async function startRig(options: RigOptions, recorder: Recorder): Promise<Rig> {
  const keys = options.keys ?? DEFAULT_KEYS;
  const patterns = options.patterns ?? supportedPatterns();
  const sets = patterns.map(patternTables);
  const schema = schemaOf(sets);
  const writeBack = patterns.includes('write-back');
  const cleanups: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const database = await createDatabase('chaos');
    cleanups.push(() => database.drop());
    await database.admin.query(ddlOf(database.schema, sets));
    await seed(database, sets, keys, recorder);

    // Write-back journals live in Redis: keep them across restarts (AOF, as its docs require).
    let server: RedisServer | undefined;
    if (!options.cluster) {
      const own = options.redisServer;
      server = await startRedisServer({
        args: [...(writeBack ? ['--appendonly', 'yes'] : []), ...(own?.args ?? [])],
        ...(own?.admin ? { probe: own.admin } : {}),
        ...(own?.tls ? { tls: true } : {}),
        ...(own?.port ? { port: own.port } : {}),
      });
      const s = server;
      cleanups.push(() => s.stop());
    }
    const port = server?.port;
    const connect = (name: string): Redis | Cluster => {
      const connectionName = `chaos-${name}`;
      const client = options.cluster
        ? new Cluster(options.cluster, { redisOptions: { connectionName } })
        : new Redis({ host: '127.0.0.1', port, connectionName, ...options.redisServer?.client });
      client.on('error', () => {});
      return client;
    };
    const admins = (options.cluster ?? [{ host: '127.0.0.1', port: port as number }]).map((node) => {
      const admin = new Redis({ ...node, connectionName: 'chaos-admin', ...options.redisServer?.admin });
      admin.on('error', () => {});
      return admin;
    });
    cleanups.push(async () => {
      for (const a of admins) a.disconnect();
    });
    if (options.redisServer?.setup) await options.redisServer.setup(admins[0] as Redis);

    const policy = policyOf(sets, `chaos-${randomBytes(4).toString('hex')}`, options.freshness === true);
    const instances: Instance[] = [];
    for (const name of ['a', 'b']) {
      const client = connect(name);
      cleanups.push(async () => client.disconnect());
      const cache = createCache({
        store: redisStore(client),
        policy,
        ...(options.storeTimeout ? { storeTimeout: options.storeTimeout } : {}),
        onError: () => {},
      });
      cleanups.push(() => cache.close());
      const raw = drizzle(database.pool(name, 5), { schema }) as ChaosDb;
      const db = withCache(raw, cache);
      instances.push({ name, db, writer: options.bypassWrites ? raw : db, cache });
    }
    return { database, server, admins, sets, keys, instances, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function seed(database: ChaosDatabase, sets: readonly PatternTables[], keys: KeySpaceConfig, recorder: Recorder) {
  for (const set of sets) {
    const op = recorder.begin(-1, 'seed', 'seed');
    for (let k = 1; k <= keys.seeded; k++) {
      const val = `seed.${set.itemsName}.${k}`;
      const { rows } = await database.admin.query<{ version: number }>(
        `insert into ${set.itemsName} (id, version, val, grp) values ($1, 0, $2, $3) returning version`,
        [k, val, k % keys.groups],
      );
      op.writes.push({
        table: set.itemsName,
        key: k,
        kind: 'put',
        val,
        applied: true,
        version: rows[0]?.version ?? 0,
        status: 'ok',
      });
    }
    for (let k = 1; k <= keys.counters; k++) {
      await database.admin.query(`insert into ${set.countersName} (id, n) values ($1, 0)`, [k]);
    }
    recorder.end(op);
    op.start = -1;
    op.end = -1;
  }
}

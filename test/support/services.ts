import { connect } from 'node:net';
import { PostgreSqlContainer } from '@testcontainers/postgresql';
import { RedisContainer } from '@testcontainers/redis';

/** The local services the tests use when nothing else is configured. */
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
/** The local Redis the tests use when nothing else is configured. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** A service URL for the tests, plus how to release it. */
export interface ResolvedService {
  url: string;
  /** Where the URL came from, for the log line. */
  source: 'env' | 'local' | 'container';
  stop: () => Promise<void>;
}

const noop = async (): Promise<void> => {};

/** True when something accepts TCP connections at the host and port of `url`. */
export function isReachable(url: string, timeoutMs = 1000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Picks one service: the env URL when set; else, unless containers are forced, the local
 * default when it answers; else a fresh testcontainers container.
 */
async function resolveService(
  envUrl: string | undefined,
  defaultUrl: string,
  forceContainers: boolean,
  startContainer: () => Promise<{ url: string; stop: () => Promise<void> }>,
): Promise<ResolvedService> {
  if (envUrl) return { url: envUrl, source: 'env', stop: noop };
  if (!forceContainers && (await isReachable(defaultUrl))) return { url: defaultUrl, source: 'local', stop: noop };
  const started = await startContainer();
  return { ...started, source: 'container' };
}

async function startPostgres(): Promise<{ url: string; stop: () => Promise<void> }> {
  const image = process.env.TEST_POSTGRES_IMAGE || 'postgres:15';
  const container = await new PostgreSqlContainer(image)
    .withDatabase('test')
    .withUsername('postgres')
    .withPassword('postgres')
    .start();
  return { url: container.getConnectionUri(), stop: async () => void (await container.stop()) };
}

async function startRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  const image = process.env.TEST_REDIS_IMAGE || 'redis:7';
  const container = await new RedisContainer(image).start();
  return { url: container.getConnectionUrl(), stop: async () => void (await container.stop()) };
}

/** Resolves PostgreSQL and Redis for a test run; `TEST_SERVICES=containers` forces containers. */
export async function resolveServices(env: NodeJS.ProcessEnv = process.env): Promise<{
  database: ResolvedService;
  redis: ResolvedService;
}> {
  const force = env.TEST_SERVICES === 'containers';
  const [database, redis] = await Promise.allSettled([
    resolveService(env.TEST_DATABASE_URL, DEFAULT_DATABASE_URL, force, startPostgres),
    resolveService(env.TEST_REDIS_URL, DEFAULT_REDIS_URL, force, startRedis),
  ]);
  if (database.status === 'fulfilled' && redis.status === 'fulfilled') {
    return { database: database.value, redis: redis.value };
  }
  // Do not leak the container that did start when the other one failed.
  for (const result of [database, redis]) if (result.status === 'fulfilled') await result.value.stop();
  const reason = database.status === 'rejected' ? database.reason : (redis as PromiseRejectedResult).reason;
  throw reason;
}

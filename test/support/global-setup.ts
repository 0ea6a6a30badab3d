import type { TestProject } from 'vitest/node';
import { resolveServices } from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** PostgreSQL URL every test file uses (see test/support/env.ts). */
    testDatabaseUrl: string;
    /** Redis URL every test file uses. */
    testRedisUrl: string;
  }
}

/** Finds or starts PostgreSQL and Redis once per run and hands their URLs to the workers. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { database, redis } = await resolveServices();
  console.log(`[test services] postgres: ${database.source} ${redact(database.url)}`);
  console.log(`[test services] redis: ${redis.source} ${redact(redis.url)}`);
  project.provide('testDatabaseUrl', database.url);
  project.provide('testRedisUrl', redis.url);
  // Workers started after this point inherit these too; test/support/env.ts sets them regardless.
  process.env.TEST_DATABASE_URL = database.url;
  process.env.TEST_REDIS_URL = redis.url;
  return async () => {
    await Promise.all([database.stop(), redis.stop()]);
  };
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

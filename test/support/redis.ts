import { Redis } from 'ioredis';
import { DEFAULT_REDIS_URL } from './services.js';

/** The Redis URL tests use. */
export function redisUrl(): string {
  return process.env.TEST_REDIS_URL ?? DEFAULT_REDIS_URL;
}

/** A new ioredis client for the test Redis (the caller quits it). */
export function redisClient(): Redis {
  return new Redis(redisUrl(), { maxRetriesPerRequest: 1, lazyConnect: false });
}

/**
 * tablecache/drizzle: wrap a Drizzle PostgreSQL client with the cache.
 * @module
 */
export { buildCatalog } from './catalog.js';
export { cacheable, type WithCacheOptions, withCache } from './with-cache.js';
export { type OpenWriteBack, type OpenWriteBackOptions, openWriteBack } from './write-back-worker.js';

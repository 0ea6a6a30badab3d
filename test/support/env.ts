// Vitest setup file: runs in every worker before its test files, so tests can keep reading
// process.env.TEST_DATABASE_URL / TEST_REDIS_URL even when global-setup started containers.
import { inject } from 'vitest';

process.env.TEST_DATABASE_URL = inject('testDatabaseUrl');
process.env.TEST_REDIS_URL = inject('testRedisUrl');

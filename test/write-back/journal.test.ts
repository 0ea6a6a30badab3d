import { afterAll, beforeAll } from 'vitest';
import { memoryStore } from '../../stores/memory.js';
import { redisStore } from '../../stores/redis.js';
import { runJournalConformance } from '../conformance/journal-suite.js';
import { type OwnRedis, startRedis } from './support/redis-server.js';

let redis: OwnRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

runJournalConformance('memory', async () => {
  const store = memoryStore();
  return { journal: store.writeBackJournal, store, cleanup: () => store.close() };
});

runJournalConformance('redis (AOF on)', async () => {
  // fsync on every write can stall for seconds on a busy machine: this suite checks semantics, not speed.
  const store = redisStore(redis.url, { commandTimeoutMs: 10_000 });
  return { journal: store.writeBackJournal, store, cleanup: () => store.close() };
});

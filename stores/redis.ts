import { createHash } from 'node:crypto';
import { type Cluster, Redis } from 'ioredis';
import type { KeyScanCapable } from '../src/engine/verify-rows.js';
import { StoreError } from '../src/errors.js';
import type { CacheStore, CounterGuard, CounterWrite, IncrOptions, StoreEntry } from '../src/store.js';
// Write-back journal capability (issue 4).
import type { WriteBackCapable } from '../src/write-back/journal.js';
import { redisJournal } from '../src/write-back/redis-journal.js';
import { ServerWatch } from './server-watch.js';

/** Options of `redisStore`. */
export interface RedisStoreOptions {
  /** Fails a store call with a `StoreError` when Redis has not answered in time; 0 disables. @default 1000 */
  commandTimeoutMs?: number;
}

/** What `checkRedisDurability` found; `undefined` where CONFIG could not be read. */
export interface RedisDurability {
  /** Whether the append-only file is on. */
  appendonly: boolean | undefined;
  /** The eviction policy, such as `noeviction` or `allkeys-lru`. */
  maxmemoryPolicy: string | undefined;
}

type Client = Redis | Cluster;

interface Script {
  readonly lua: string;
  readonly sha: string;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 1000;

// Counter bump shared by the increment scripts: ARGV[1] is init ('0' skips it), ARGV[2] the TTL
// ('0' keeps the counter's life as is). ARGV strings are passed through unparsed, since Lua would
// print numbers above 1e14 in exponent form.
const BUMP = `
local function bump(key)
  if ARGV[1] ~= '0' and redis.call('EXISTS', key) == 0 then redis.call('INCRBY', key, ARGV[1]) end
  local v = redis.call('INCR', key)
  if ARGV[2] ~= '0' then redis.call('PEXPIRE', key, ARGV[2]) end
  return v
end
`;

// KEYS: entries; ARGV: value1, ttl1, value2, ttl2, ...
const SET_MANY = script(`
for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[2 * i - 1], 'PX', ARGV[2 * i]) end
return 1
`);

// KEYS[1]: entry, KEYS[2..]: guard counters; ARGV[1]: value, ARGV[2]: ttl, ARGV[3..]: expected values.
const SET_IF_COUNTERS = script(`
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  local n = 0
  if v then n = tonumber(v) end
  if n ~= tonumber(ARGV[i + 1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`);

// KEYS: counters; ARGV[1]: init, ARGV[2]: ttl or '0', ARGV[3]: '1' to raise counters below init.
const INCR = script(`${BUMP}
local out = {}
for i, key in ipairs(KEYS) do
  if ARGV[3] == '1' then
    local v = redis.call('GET', key)
    if v and tonumber(v) < tonumber(ARGV[1]) then redis.call('SET', key, ARGV[1], 'KEEPTTL') end
  end
  out[i] = bump(key)
end
return out
`);

// KEYS[1]: counter, KEYS[2]: entry; ARGV[1]: init, ARGV[2]: counter ttl or '0', ARGV[3]: expected,
// ARGV[4]: value, ARGV[5]: entry ttl.
const INCR_THEN_SET_OR_DELETE = script(`${BUMP}
if bump(KEYS[1]) == tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  return 1
end
redis.call('DEL', KEYS[2])
return 0
`);

// KEYS: counter1, entry1, counter2, entry2, ...; ARGV[1]: init, ARGV[2]: counter ttl or '0', then
// per item i at 3i..3i+2: expected ('' always deletes, 'c' when created), value, entry ttl.
const INCR_THEN_SET_OR_DELETE_MANY = script(`${BUMP}
local out = {}
for i = 1, #KEYS / 2 do
  local a = 3 * i
  local e = ARGV[a]
  local created = redis.call('EXISTS', KEYS[2 * i - 1]) == 0
  local v = bump(KEYS[2 * i - 1])
  if (e == 'c' and created) or (e ~= '' and e ~= 'c' and v == tonumber(e)) then
    redis.call('SET', KEYS[2 * i], ARGV[a + 1], 'PX', ARGV[a + 2])
    out[i] = 1
  else
    redis.call('DEL', KEYS[2 * i])
    out[i] = 0
  end
end
return out
`);

/** Items per script call of `incrThenSetOrDeleteMany`, so one call never blocks Redis for long. */
const MANY_CHUNK = 256;
const EMPTY = Buffer.alloc(0);

/**
 * A store on Redis or Redis Cluster. Given a URL it opens its own client and quits it on `close()`;
 * given a client it leaves it open. The client's `keyPrefix` applies to every key, scripts included.
 */
export function redisStore(
  client: Client | string,
  options: RedisStoreOptions = {},
): CacheStore & WriteBackCapable & KeyScanCapable {
  const owned = typeof client === 'string';
  const redis: Client = typeof client === 'string' ? new Redis(client) : client;
  // Failures reach the caller through each command's rejection (and the cache's onError);
  // without a listener ioredis would also print every connection error to stderr.
  if (owned) redis.on('error', () => {});
  const timeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  let closed = false;

  const deadlines = new Deadlines(timeoutMs);
  const call = <T>(op: string, fn: () => Promise<T>): Promise<T> => deadlines.run(op, fn);
  // Cluster nodes each have their own identity; a Cluster's failovers are not watched (docs/reliability.md).
  const watch =
    redis instanceof Redis
      ? new ServerWatch(redis, () =>
          withTimeout('info', timeoutMs > 0 ? timeoutMs : DEFAULT_COMMAND_TIMEOUT_MS, () => redis.info('server')),
        )
      : undefined;

  return {
    name: 'redis',

    // Write-back journal (issue 4): Lua scripts in src/write-back/lua.ts, run with this client.
    writeBackJournal: redisJournal({
      run: (s, keys, args) => call('writeBack', () => runScript(redis, s, keys, args)),
      durability: () => checkRedisDurability(redis, options),
    }),

    getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
      if (keys.length === 0) return Promise.resolve([]);
      // The hit path: no async wrapper, the views are made in the deadline's own callback.
      if (!watch) return deadlines.run('getMany', () => redis.mgetBuffer(...keys), toBytesAll);
      const gate = watch.gate;
      const epoch = watch.epoch;
      // ioredis re-sends a command whose connection dropped: its reply may come from a new server
      // that was not identified yet, so a read that spans a reconnect is refused.
      const sameConnection = (reply: (Buffer | null)[]) => {
        if (watch.epoch !== epoch) throw new Error('the connection was lost during the read');
        return toBytesAll(reply);
      };
      if (!gate) return deadlines.run('getMany', () => redis.mgetBuffer(...keys), sameConnection);
      const afterGate = async () => {
        await gate;
        const opened = watch.epoch;
        const reply = await redis.mgetBuffer(...keys);
        if (watch.epoch !== opened) throw new Error('the connection was lost during the read');
        return reply;
      };
      return deadlines.run('getMany', afterGate, toBytesAll);
    },

    onServerChange(listener: () => Promise<void>): void {
      watch?.onChange(listener);
    },

    set(entries: readonly StoreEntry[]): Promise<void> {
      if (entries.length === 0) return Promise.resolve();
      return call('set', async () => {
        const [only] = entries;
        if (only !== undefined && entries.length === 1) {
          await redis.set(only.key, toBuffer(only.value), 'PX', ttlOf(only.ttlMs));
          return;
        }
        const args = entries.flatMap((entry) => [toBuffer(entry.value), ttlOf(entry.ttlMs)]);
        await runScript(
          redis,
          SET_MANY,
          entries.map((entry) => entry.key),
          args,
        );
      });
    },

    setIfCounters(entry: StoreEntry, guards: readonly CounterGuard[]): Promise<boolean> {
      return call('setIfCounters', async () => {
        const keys = [entry.key, ...guards.map((guard) => guard.key)];
        const args = [toBuffer(entry.value), ttlOf(entry.ttlMs), ...guards.map((guard) => integer(guard.expected))];
        return (await runScript(redis, SET_IF_COUNTERS, keys, args)) === 1;
      });
    },

    delete(keys: readonly string[]): Promise<void> {
      if (keys.length === 0) return Promise.resolve();
      return call('delete', async () => {
        await redis.del(...keys);
      });
    },

    incr(keys: readonly string[], incr: IncrOptions = {}): Promise<number[]> {
      if (keys.length === 0) return Promise.resolve([]);
      return call('incr', async () => {
        const result = await runScript(redis, INCR, [...keys], [...incrArgs(incr), incr.floor ? '1' : '0']);
        if (!Array.isArray(result)) throw new StoreError('redis incr script returned a non-array reply');
        return result.map(Number);
      });
    },

    incrThenSetOrDelete(
      counter: string,
      expected: number,
      entry: StoreEntry,
      incr: IncrOptions = {},
    ): Promise<boolean> {
      return call('incrThenSetOrDelete', async () => {
        const args = [...incrArgs(incr), integer(expected), toBuffer(entry.value), ttlOf(entry.ttlMs)];
        return (await runScript(redis, INCR_THEN_SET_OR_DELETE, [counter, entry.key], args)) === 1;
      });
    },

    incrThenSetOrDeleteMany(items: readonly CounterWrite[], incr: IncrOptions = {}): Promise<boolean[]> {
      if (items.length === 0) return Promise.resolve([]);
      return call('incrThenSetOrDeleteMany', async () => {
        const head = incrArgs(incr);
        const out: boolean[] = [];
        for (let start = 0; start < items.length; start += MANY_CHUNK) {
          const chunk = items.slice(start, start + MANY_CHUNK);
          const keys: string[] = [];
          const args: (Buffer | string | number)[] = [...head];
          for (const item of chunk) {
            keys.push(item.counter, item.key);
            if (item.value === undefined) args.push('', EMPTY, 1);
            else {
              const expected = item.expected === 'created' ? 'c' : integer(item.expected);
              args.push(expected, toBuffer(item.value), ttlOf(item.ttlMs));
            }
          }
          const result = await runScript(redis, INCR_THEN_SET_OR_DELETE_MANY, keys, args);
          if (!Array.isArray(result)) throw new StoreError('redis incrThenSetOrDeleteMany returned a non-array reply');
          for (const written of result) out.push(Number(written) === 1);
        }
        return out;
      });
    },

    setIfAbsent(entry: StoreEntry): Promise<boolean> {
      return call('setIfAbsent', async () => {
        const reply = await redis.set(entry.key, toBuffer(entry.value), 'PX', ttlOf(entry.ttlMs), 'NX');
        return reply === 'OK';
      });
    },

    /** Operator tools only (`tablecache verify`): never used on a request path. */
    async *scanKeys(match: string, count: number): AsyncIterable<string> {
      const prefix = redis.options.keyPrefix ?? '';
      const nodes: Redis[] = redis.isCluster ? (redis as Cluster).nodes('master') : [redis as Redis];
      for (const node of nodes) {
        let cursor = '0';
        do {
          // SCAN does not apply keyPrefix: match and strip it by hand.
          const [next, keys] = await call('scan', () => node.scan(cursor, 'MATCH', prefix + match, 'COUNT', count));
          cursor = next;
          for (const key of keys) yield key.startsWith(prefix) ? key.slice(prefix.length) : key;
        } while (cursor !== '0');
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      watch?.stop();
      if (!owned) return;
      try {
        await withTimeout('close', timeoutMs > 0 ? timeoutMs : DEFAULT_COMMAND_TIMEOUT_MS, () => redis.quit());
      } catch {
        // Gone, never connected, or not answering: dropping the socket is all that is left to do.
        redis.disconnect();
      }
    },
  };
}

/**
 * Reads `appendonly` and `maxmemory-policy` with CONFIG GET, for startup warnings.
 * Where CONFIG is disabled (managed Redis often renames it) the fields come back `undefined`.
 */
export async function checkRedisDurability(client: Client, options: RedisStoreOptions = {}): Promise<RedisDurability> {
  const timeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const read = (name: string): Promise<string | undefined> =>
    withTimeout('config', timeoutMs, async () => configValue(await client.config('GET', name), name)).catch(
      () => undefined,
    );
  const [appendonly, maxmemoryPolicy] = await Promise.all([read('appendonly'), read('maxmemory-policy')]);
  return { appendonly: appendonly === undefined ? undefined : appendonly === 'yes', maxmemoryPolicy };
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** EVALSHA, falling back to EVAL when the server has not cached the script (restart, failover, flush). */
async function runScript(
  client: Client,
  s: Script,
  keys: string[],
  args: (Buffer | string | number)[],
): Promise<unknown> {
  try {
    return await client.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return client.eval(s.lua, keys.length, ...keys, ...args);
  }
}

/** A store call waiting for Redis's answer or its deadline. */
interface Pending {
  readonly op: string;
  readonly deadline: number;
  readonly reject: (error: StoreError) => void;
}

/**
 * The command timeout of every call of one store, on one shared timer: a `setTimeout` per call
 * costs more than the rest of a cache hit's own work. A timeout fires within a quarter of
 * `timeoutMs` after it is due.
 */
class Deadlines {
  private readonly pending = new Set<Pending>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly timeoutMs: number) {}

  /** Runs `fn` (then `map` on its value), turning its failure or a timeout into a `StoreError`. */
  run<R, T = R>(op: string, fn: () => Promise<R>, map?: (value: R) => T): Promise<T> {
    let promise: Promise<R>;
    try {
      promise = fn();
    } catch (error) {
      return Promise.reject(toStoreError(op, error));
    }
    if (this.timeoutMs <= 0) {
      return promise.then(
        (value) => (map ? map(value) : (value as unknown as T)),
        (error: unknown) => {
          throw toStoreError(op, error);
        },
      );
    }
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { op, deadline: performance.now() + this.timeoutMs, reject };
      this.pending.add(entry);
      this.ensureSweeper();
      promise.then(
        (value) => {
          if (!this.pending.delete(entry)) return;
          try {
            resolve(map ? map(value) : (value as unknown as T));
          } catch (error) {
            reject(toStoreError(op, error));
          }
        },
        (error: unknown) => {
          if (this.pending.delete(entry)) reject(toStoreError(op, error));
        },
      );
    });
  }

  private ensureSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(
      () => {
        const now = performance.now();
        // Insertion order is deadline order (one timeout for all calls): stop at the first not due.
        const due: Pending[] = [];
        for (const entry of this.pending) {
          if (entry.deadline > now) break;
          due.push(entry);
        }
        // Reject after this turn's I/O (timers run before it): a reply that arrived while the
        // process was busy (a GC pause, a long task) settles first, so only a slow server times out.
        if (due.length > 0) {
          setImmediate(() => {
            for (const entry of due) {
              if (this.pending.delete(entry)) {
                entry.reject(new StoreError(`redis ${entry.op} timed out after ${this.timeoutMs} ms`));
              }
            }
          });
        }
        if (this.pending.size === 0) {
          clearInterval(this.sweeper);
          this.sweeper = undefined;
        }
      },
      Math.max(2, Math.floor(this.timeoutMs / 4)),
    );
    this.sweeper.unref();
  }
}

/** Runs `fn`, turning its failure or a timeout into a `StoreError`. */
function withTimeout<T>(op: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs > 0) {
      timer = setTimeout(() => reject(new StoreError(`redis ${op} timed out after ${timeoutMs} ms`)), timeoutMs);
    }
    let promise: Promise<T>;
    try {
      promise = fn();
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(toStoreError(op, error));
      },
    );
  });
}

function toStoreError(op: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new StoreError(`redis ${op} failed: ${message}`, { cause: withoutArguments(error) });
}

/**
 * ioredis errors carry the failed command with its arguments (`error.command.args`): cached rows
 * and keys. The cause we keep has the name, message and code only, so nothing of the data leaks
 * into logs or onError reports.
 */
function withoutArguments(error: unknown): unknown {
  if (!(error instanceof Error) || !('command' in error)) return error;
  const copy = new Error(error.message);
  copy.name = error.name;
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) Object.assign(copy, { code });
  return copy;
}

function incrArgs(incr: IncrOptions): string[] {
  const init = incr.init ?? 0;
  if (!Number.isSafeInteger(init)) throw new StoreError(`counter init must be an integer, got ${init}`);
  return [String(init), incr.ttlMs === undefined ? '0' : String(ttlOf(incr.ttlMs))];
}

function integer(n: number): string {
  if (!Number.isSafeInteger(n)) throw new StoreError(`expected counter value must be an integer, got ${n}`);
  return String(n);
}

/** Whole milliseconds, at least 1: Redis refuses PX 0 and fractions. */
function ttlOf(ttlMs: number): number {
  if (!Number.isFinite(ttlMs)) throw new StoreError(`ttlMs must be a finite number, got ${ttlMs}`);
  return Math.max(1, Math.ceil(ttlMs));
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `toBytes` over an MGET reply. */
function toBytesAll(values: (Buffer | null)[]): (Uint8Array | null)[] {
  const out: (Uint8Array | null)[] = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    out[i] = value ? toBytes(value) : null;
  }
  return out;
}

/** A plain Uint8Array view, so both stores hand back the same type. */
function toBytes(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** Picks `name` out of a CONFIG GET reply: a flat RESP2 array or a RESP3 map. */
function configValue(reply: unknown, name: string): string | undefined {
  if (Array.isArray(reply)) {
    const i = reply.findIndex((item) => String(item).toLowerCase() === name);
    return i >= 0 && i + 1 < reply.length ? String(reply[i + 1]) : undefined;
  }
  if (reply instanceof Map) {
    const value: unknown = reply.get(name);
    return value === undefined ? undefined : String(value);
  }
  if (typeof reply === 'object' && reply !== null && name in reply) {
    return String((reply as Record<string, unknown>)[name]);
  }
  return undefined;
}

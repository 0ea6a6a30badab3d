import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

/** A redis-server this test started, with the append-only file on and fsync on every write. */
export interface OwnRedis {
  url: string;
  port: number;
  /** Stops the server (SIGTERM) and removes its directory. */
  stop(): Promise<void>;
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `redis-server --appendonly yes --appendfsync always` (or without the append-only file)
 * on a free port in a temporary directory and waits until it answers PING.
 */
export async function startRedis(
  options: { appendonly?: boolean; appendfsync?: 'always' | 'everysec' | 'no' } = {},
): Promise<OwnRedis> {
  const aof = options.appendonly ?? true;
  const dir = await mkdtemp(join(tmpdir(), 'tc-wb-redis-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--appendonly',
        aof ? 'yes' : 'no',
        '--appendfsync',
        options.appendfsync ?? 'always',
        '--dir',
        dir,
        '--save',
        '',
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const url = `redis://127.0.0.1:${port}`;
    if (await answers(url, child)) {
      return {
        url,
        port,
        async stop() {
          child.kill('SIGTERM');
          await exited;
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill('SIGKILL');
    await exited;
    if (attempt >= 3) throw new Error('could not start redis-server');
  }
}

async function answers(url: string, child: ChildProcess): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) return false;
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return true;
    } catch {
      // Not up yet.
    } finally {
      client.disconnect();
    }
    await sleep(50);
  }
  return false;
}

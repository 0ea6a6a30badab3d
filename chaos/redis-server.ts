import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';

/** A redis-server of the run's own, on a loopback port, that it may restart, freeze or kill. */
export interface RedisServer {
  port: number;
  /** `redis://127.0.0.1:<port>` (or `rediss://` when started with TLS). */
  url: string;
  /** Kills the process (SIGKILL); `start` brings it back on the same port and directory. */
  kill(): Promise<void>;
  /** Starts it again after `kill`. */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open, nothing answers. */
  freeze(): void;
  /** SIGCONT after `freeze`. */
  thaw(): void;
  /** Whether the process is frozen. */
  readonly frozen: boolean;
  /** Kills the server and removes its directory. */
  stop(): Promise<void>;
}

/** Options of `startRedisServer`. */
export interface RedisServerOptions {
  /** Extra redis-server arguments, e.g. `['--appendonly', 'yes']` or `['--requirepass', 'x']`. */
  args?: string[];
  /** ioredis options the readiness probe needs (password, tls). */
  probe?: RedisOptions;
  /** Use this port instead of a free one (TLS setups listen on two). */
  port?: number;
  /** When the server listens with TLS only (`--port 0 --tls-port N`). */
  tls?: boolean;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A free loopback TCP port. */
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

/** Starts a redis-server on loopback and waits until it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A crashed run must not leave servers behind (nor frozen ones).
    process.once('exit', () => {
      for (const child of running) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
    });
  }
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'tablecache-chaos-redis-'));
  const url = `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let frozen = false;

  const start = async (): Promise<void> => {
    const portArgs = options.tls ? [] : ['--port', String(port)];
    const started = spawn(
      'redis-server',
      [...portArgs, '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--daemonize', 'no', ...(options.args ?? [])],
      { stdio: 'ignore' },
    );
    started.on('error', () => {});
    child = started;
    running.add(started);
    started.once('exit', () => running.delete(started));
    frozen = false;
    const probe = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      ...options.probe,
    });
    probe.on('error', () => {});
    try {
      for (let i = 0; i < 200; i++) {
        if (started.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${started.exitCode}`);
        try {
          if (probe.status === 'wait' || probe.status === 'end') await probe.connect();
          if ((await probe.ping()) === 'PONG') return;
        } catch {
          await sleep(25);
        }
      }
      throw new Error(`redis-server on port ${port} did not start`);
    } finally {
      probe.disconnect();
    }
  };

  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    frozen = false;
    await exited;
  };

  await start();
  return {
    port,
    url,
    kill,
    start,
    freeze() {
      if (child && !frozen) {
        child.kill('SIGSTOP');
        frozen = true;
      }
    },
    thaw() {
      if (child && frozen) {
        child.kill('SIGCONT');
        frozen = false;
      }
    },
    get frozen() {
      return frozen;
    },
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway Redis Cluster of local `redis-server` processes. */
export interface LocalCluster {
  /** Client ports of the masters, all on 127.0.0.1. */
  ports: number[];
  /** Kills the servers and removes their files. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
/** Redis Cluster talks node-to-node on the client port plus this. */
const BUS_OFFSET = 10_000;

/** Starts `size` masters on free loopback ports and joins them into one cluster with all slots covered. */
export async function startRedisCluster(size = 3, timeoutMs = 30_000): Promise<LocalCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'tablecache-cluster-'));
  const children: ChildProcess[] = [];
  const killAll = (): void => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  // If the worker dies before afterAll, do not leave servers behind.
  process.once('exit', killAll);

  const stop = async (): Promise<void> => {
    process.off('exit', killAll);
    await Promise.all(children.map((child) => terminate(child)));
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const ports = await freePorts(size);
    for (const port of ports) children.push(startServer(port, dir));
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      ports.map((port, i) =>
        waitFor(deadline, async () => {
          await assertRunning(children[i]!, join(dir, `redis-${port}.log`));
          return (await cli(port, 'PING')) === 'PONG';
        }),
      ),
    );
    const nodes = ports.map((port) => `${HOST}:${port}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: timeoutMs,
    });
    await Promise.all(
      ports.map((port) =>
        waitFor(deadline, async () => {
          const info = await cli(port, 'CLUSTER', 'INFO');
          return (
            info.includes('cluster_state:ok') &&
            info.includes('cluster_slots_ok:16384') &&
            info.includes(`cluster_known_nodes:${size}`)
          );
        }),
      ),
    );
    return { ports, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function startServer(port: number, dir: string): ChildProcess {
  const args = [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    join(dir, `nodes-${port}.conf`),
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--logfile',
    join(dir, `redis-${port}.log`),
    '--daemonize',
    'no',
  ];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  // A missing binary is reported by assertRunning; without a listener it would crash the worker.
  child.on('error', () => {});
  return child;
}

/** Fails fast, with the server's log, when a server died during startup (e.g. its port was taken). */
async function assertRunning(child: ChildProcess, logFile: string): Promise<void> {
  if (child.pid === undefined) throw new Error('could not start redis-server; is it installed?');
  if (child.exitCode === null && child.signalCode === null) return;
  const log = await readFile(logFile, 'utf8').catch(() => '');
  throw new Error(`redis-server exited during startup:\n${log.slice(-2000)}`);
}

async function cli(port: number, ...command: string[]): Promise<string> {
  try {
    const { stdout } = await run('redis-cli', ['-h', HOST, '-p', String(port), ...command], { timeout: 5000 });
    return stdout.trim();
  } catch {
    return '';
  }
}

async function waitFor(deadline: number, check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('Redis Cluster did not become ready in time');
    await sleep(100);
  }
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** `count` consecutive client ports whose cluster bus ports are free too. */
async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    const wanted = ports.flatMap((port) => [port, port + BUS_OFFSET]);
    if ((await Promise.all(wanted.map(isFree))).every(Boolean)) return ports;
  }
  throw new Error('found no free ports for a Redis Cluster');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

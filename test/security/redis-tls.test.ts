import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../chaos/redis-server.js';
import { formatResult } from '../../chaos/report.js';
import { runChaos } from '../../chaos/run-chaos.js';

// TLS through the ioredis `tls` option (docs/reliability.md), against a redis-server started with
// certificates generated here by openssl: a CA, a server certificate for 127.0.0.1, and a client
// certificate (the server requires one: mutual TLS).

const run = promisify(execFile);
let dir: string;
const files = (name: string) => join(dir, name);

async function openssl(...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tablecache-tls-'));
  await writeFile(files('san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=tablecache test CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  );
  for (const who of ['server', 'client']) {
    await openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=tablecache ${who}`,
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
    );
    const ext = who === 'server' ? ['-extfile', 'san.cnf'] : [];
    await openssl(
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      `${who}.crt`,
      ...ext,
    );
  }
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Redis over TLS', () => {
  it('runs the workload over mutual TLS with the certificates in the ioredis tls option', async () => {
    const port = await freePort();
    const [ca, cert, key] = await Promise.all(['ca.crt', 'client.crt', 'client.key'].map((f) => readFile(files(f))));
    const tls = { ca, cert, key };
    const result = await runChaos({
      ops: 800,
      workers: 3,
      seconds: 15,
      seed: 23,
      faults: [],
      redisServer: {
        tls: true,
        port,
        args: [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          files('server.crt'),
          '--tls-key-file',
          files('server.key'),
          '--tls-ca-cert-file',
          files('ca.crt'),
          '--tls-auth-clients',
          'yes',
        ],
        admin: { tls },
        client: { tls },
      },
    });
    expect(result.cache.storeErrors, formatResult(result)).toBe(0);
    expect(result.cache.hits).toBeGreaterThan(0);
    expect(result.check.anomalies).toEqual([]);
  }, 60_000);

  it('without the client certificate the server refuses the connection: queries are still answered', async () => {
    const port = await freePort();
    const ca = await readFile(files('ca.crt'));
    const [cert, key] = await Promise.all(['client.crt', 'client.key'].map((f) => readFile(files(f))));
    const result = await runChaos({
      ops: 200,
      workers: 2,
      seconds: 15,
      seed: 24,
      faults: [],
      patterns: ['cache-aside'],
      redisServer: {
        tls: true,
        port,
        args: [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          files('server.crt'),
          '--tls-key-file',
          files('server.key'),
          '--tls-ca-cert-file',
          files('ca.crt'),
          '--tls-auth-clients',
          'yes',
        ],
        admin: { tls: { ca, cert, key } },
        client: { tls: { ca }, maxRetriesPerRequest: 0, retryStrategy: () => null },
      },
    });
    expect(result.opsFailed).toBe(0);
    expect(result.cache.hits).toBe(0);
    expect(result.cache.storeErrors).toBeGreaterThan(0);
    expect(result.check.anomalies).toEqual([]);
  }, 60_000);
});

import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreGuard, UNAVAILABLE } from '../../src/engine/store-guard.js';
import type { StoreError } from '../../src/errors.js';
import { Telemetry } from '../../src/telemetry.js';

// The store timeout measures the store, not the caller's own process: an answer that reached the
// socket while the event loop was busy (a GC pause, a long task, a loaded machine) is not a timeout.

let server: Server;
let near: Socket;
let far: Socket;

beforeAll(async () => {
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer(resolve);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  near = connect(address.port, '127.0.0.1');
  far = await accepted;
});
afterAll(async () => {
  near.destroy();
  far.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A call answered by a loopback socket: the answer is in the kernel's buffer as soon as it is sent. */
function answeredCall(): Promise<string> {
  const answer = new Promise<string>((resolve) => near.once('data', (d) => resolve(String(d))));
  far.write('ok');
  return answer;
}

/** Keeps the event loop busy, as a long task or a GC pause would. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

describe('store timeout', () => {
  it('an answer that arrived while the process was busy past the deadline is not a timeout', async () => {
    const errors: StoreError[] = [];
    const guard = new StoreGuard(
      { timeoutMs: 50, failureThreshold: 100, cooldownMs: 1000, onError: (e) => errors.push(e) },
      new Telemetry({}),
    );
    for (let i = 0; i < 5; i++) {
      const result = guard.run('get', answeredCall);
      busy(300);
      expect(await result).toBe('ok');
    }
    expect(errors).toEqual([]);
  });

  it('a call that never answers still times out and counts as a failure', async () => {
    const errors: StoreError[] = [];
    const guard = new StoreGuard(
      { timeoutMs: 50, failureThreshold: 100, cooldownMs: 1000, onError: (e) => errors.push(e) },
      new Telemetry({}),
    );
    const result = guard.run('get', () => new Promise<string>(() => {}));
    busy(300);
    expect(await result).toBe(UNAVAILABLE);
    expect(errors.map((e) => e.message)).toEqual(['store get failed: store get timed out after 50 ms']);
  });
});

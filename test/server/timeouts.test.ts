import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, it } from 'node:test';
import { pino } from 'pino';
import { startDaemon, type Daemon } from '../../src/server/index.ts';
import { tmpHome } from '../helpers/paths.ts';

/**
 * Item 2 of the hardening issue (slowloris): stalled connections, half-sent headers or bodies,
 * are closed after the configured timeouts with a 408 JSON answer, idle keep-alive connections
 * are closed, one client address cannot hold more than its cap, and good requests are served
 * meanwhile. Short timeouts are configured so the test is quick; bounds are generous.
 */
const LIMITS = { headersTimeoutMs: 1000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 1000, maxConnectionsPerClient: 30 };

let daemon: Daemon;

before(async () => {
  daemon = await startDaemon({ home: tmpHome(), port: 0, adminPort: 0, log: pino({ level: 'silent' }), httpLimits: LIMITS });
});

after(async () => {
  await daemon?.close();
});

interface Conn {
  socket: Socket;
  /** what the server sent, and when the connection closed (ms after it opened) */
  closed: Promise<{ received: string; afterMs: number }>;
}

/** A raw connection from `localAddress` (a loopback address of its own, so caps are per test). */
async function open(port: number, localAddress: string, send = ''): Promise<Conn> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const started = Date.now();
  let received = '';
  socket.on('data', (d) => (received += d.toString()));
  socket.on('error', () => {});
  // a connection the server never closes fails the test instead of hanging it
  const guard = setTimeout(() => socket.destroy(), 15_000);
  const closed = new Promise<{ received: string; afterMs: number }>((resolve) =>
    socket.once('close', () => {
      clearTimeout(guard);
      resolve({ received, afterMs: Date.now() - started });
    }),
  );
  if (send) socket.write(send);
  return { socket, closed };
}

function assertJsonError(raw: string, status: number, code: string): void {
  const [head, body] = raw.split('\r\n\r\n');
  assert.match(head!, new RegExp(`^HTTP/1.1 ${status} `), raw);
  assert.equal((JSON.parse(body!) as { error: { code: string } }).error.code, code, raw);
}

it('closes stalled connections after the header and request timeouts with 408, serving good requests meanwhile', async () => {
  const port = daemon.state.port;
  const halfHeaders = await Promise.all(Array.from({ length: 10 }, () => open(port, '127.0.0.2', 'POST /endpoints/dogs/invocations HTTP/1.1\r\nHost: kennel\r\n')));
  const halfBodies = await Promise.all(
    Array.from({ length: 10 }, () => open(port, '127.0.0.2', `POST /endpoints/dogs/invocations HTTP/1.1\r\nHost: kennel\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`)),
  );
  const silent = await Promise.all(Array.from({ length: 5 }, () => open(port, '127.0.0.2')));
  let served = 0;
  const good = (async () => {
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(res.status, 200);
      served++;
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  const results = await Promise.all([...halfHeaders, ...halfBodies, ...silent].map((c) => c.closed));
  await good;
  assert.equal(served, 10);
  for (const r of results) {
    assert.ok(r.afterMs < 10_000, `closed after ${r.afterMs} ms`);
    assertJsonError(r.received, 408, 'request_timeout');
  }
});

it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
  const c = await open(daemon.state.port, '127.0.0.3', 'GET /healthz HTTP/1.1\r\nHost: kennel\r\n\r\n');
  const r = await c.closed;
  assert.match(r.received, /^HTTP\/1.1 200 /);
  assert.match(r.received, /connection: keep-alive/i); // kept open after a request that was read whole
  assert.ok(r.afterMs < 8000, `closed after ${r.afterMs} ms`);
});

it('answers 429 to a client address over its connection cap', async () => {
  const held = await Promise.all(Array.from({ length: LIMITS.maxConnectionsPerClient }, () => open(daemon.state.port, '127.0.0.4')));
  // its request is not handled: the 429 is the only answer
  const refused = await open(daemon.state.port, '127.0.0.4', 'GET /healthz HTTP/1.1\r\nHost: kennel\r\n\r\n');
  const r = await refused.closed;
  assertJsonError(r.received, 429, 'too_many_connections');
  assert.equal(r.received.match(/HTTP\/1\.1 /g)?.length, 1, r.received);
  // another address is not affected
  assert.equal((await fetch(`http://127.0.0.1:${daemon.state.port}/healthz`)).status, 200);
  for (const c of held) c.socket.destroy();
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { daemonPaths, startDaemon, type Daemon } from '../../src/server/index.ts';
import { kennelBin } from '../foundation/cli.ts';
import { tmpHome } from '../helpers/paths.ts';

/**
 * Item 8 of the hardening issue (the HTTP and file-mode parts): requests Node's HTTP parser or
 * server refuses by itself get Kennel's JSON error shape on both ports, and the workspace is
 * the owner's only (folder 0700, database, WAL, state and log files 0600).
 */
let home: string;
let daemon: Daemon;

before(async () => {
  home = tmpHome();
  chmodSync(home, 0o755); // as a folder made by hand would be
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
});

after(async () => {
  await daemon?.close();
});

/** Sends raw bytes and returns the first answer (head and Content-Length body), or what came before the server closed. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => socket.write(request));
    let received = '';
    socket.on('data', (d) => {
      received += d.toString();
      const at = received.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(received.slice(0, at))?.[1];
      if (at >= 0 && length !== undefined && Buffer.byteLength(received.slice(at + 4)) >= Number(length)) socket.destroy();
    });
    socket.on('end', () => socket.end());
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${JSON.stringify(request.slice(0, 60))}`)));
  });
}

const CASES: Array<{ what: string; request: string; status: number; code: string }> = [
  { what: 'not HTTP at all', request: 'HELLO THERE\r\n\r\n', status: 400, code: 'bad_request' },
  { what: 'a lower-case method', request: 'get /healthz HTTP/1.1\r\nHost: k\r\n\r\n', status: 400, code: 'bad_request' },
  { what: 'an unknown HTTP version', request: 'GET /healthz HTTP/7.3\r\nHost: k\r\n\r\n', status: 400, code: 'bad_request' },
  { what: 'a header without a colon', request: 'GET /healthz HTTP/1.1\r\nHost: k\r\nBroken header\r\n\r\n', status: 400, code: 'bad_request' },
  { what: 'a bad Content-Length', request: 'POST /healthz HTTP/1.1\r\nHost: k\r\nContent-Length: ten\r\n\r\n', status: 400, code: 'bad_request' },
  { what: 'two different Content-Lengths', request: 'POST /healthz HTTP/1.1\r\nHost: k\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', status: 400, code: 'bad_request' },
  { what: 'Content-Length with Transfer-Encoding', request: 'POST /healthz HTTP/1.1\r\nHost: k\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', status: 400, code: 'bad_request' },
  { what: 'broken chunked framing', request: 'POST /healthz HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n', status: 400, code: 'bad_request' },
  { what: 'headers over 16 KiB', request: `GET /healthz HTTP/1.1\r\nHost: k\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'headers_too_large' },
  { what: 'a URL over 16 KiB', request: `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: k\r\n\r\n`, status: 431, code: 'headers_too_large' },
  // a route of each port with a name parameter (NAMED_ROUTE)
  { what: 'a name in the URL too long for the router', request: 'NAMED_ROUTE HTTP/1.1\r\nHost: k\r\nContent-Length: 0\r\n\r\n', status: 414, code: 'uri_too_long' },
  { what: 'a bad percent-encoding', request: 'GET /endpoints/%zz/invocations HTTP/1.1\r\nHost: k\r\n\r\n', status: 400, code: 'bad_url' },
  { what: 'an Expect other than 100-continue', request: 'POST /healthz HTTP/1.1\r\nHost: k\r\nExpect: teapot\r\nContent-Length: 0\r\n\r\n', status: 417, code: 'expectation_failed' },
  { what: 'no Host header', request: 'GET /healthz HTTP/1.1\r\n\r\n', status: 400, code: 'missing_host' },
];

describe('protocol-level refusals carry the JSON error shape', () => {
  for (const port of ['data plane', 'admin port'] as const) {
    for (const c of CASES) {
      it(`${port}: ${c.what} -> ${c.status} ${c.code}`, async () => {
        const long = 'a'.repeat(300);
        const request = c.request.replace('NAMED_ROUTE', port === 'data plane' ? `POST /endpoints/${long}/invocations` : `GET /v1/endpoints/${long}`);
        const answer = await rawRequest(port === 'data plane' ? daemon.state.port : daemon.state.adminPort, request);
        const at = answer.indexOf('\r\n\r\n');
        const head = answer.slice(0, at);
        assert.match(head, new RegExp(`^HTTP/1.1 ${c.status} `), answer.slice(0, 300));
        assert.match(head, /content-type: application\/json/i);
        const body = JSON.parse(answer.slice(at + 4)) as { error: { code: string; message: string } };
        assert.equal(body.error.code, c.code);
        assert.ok(body.error.message.endsWith('.'), body.error.message);
      });
    }
  }
  it('the daemon still serves afterwards', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${daemon.state.port}/healthz`)).status, 200);
  });
});

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);

describe('the workspace is the owner\'s only', () => {
  it('folder 0700, database with its WAL and shared memory 0600, daemon state 0600', () => {
    assert.equal(mode(home), '700');
    for (const file of ['kennel.db', 'kennel.db-wal', 'kennel.db-shm']) {
      assert.ok(existsSync(join(home, file)), file);
      assert.equal(mode(join(home, file)), '600', file);
    }
    const p = daemonPaths(home);
    for (const file of [p.state, p.pid, p.token]) assert.equal(mode(file), '600', file);
    assert.equal(mode(p.dir), '700');
  });

  it('daemon.log of a detached daemon is 0600', async () => {
    const other = tmpHome();
    const env = { ...process.env, KENNEL_HOME: other };
    const run = promisify(execFile);
    await run(process.execPath, [kennelBin, 'up', '--detach', '--port', '0', '--admin-port', '0'], { env });
    try {
      assert.equal(mode(daemonPaths(other).log), '600');
    } finally {
      await run(process.execPath, [kennelBin, 'down'], { env });
    }
  });
});

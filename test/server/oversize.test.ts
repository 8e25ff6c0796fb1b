import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { startDaemon, type Daemon } from '../../src/server/index.ts';
import { readAdminToken } from '../../src/server/state.ts';
import { kennelBin } from '../foundation/cli.ts';
import { tmpDir, tmpHome } from '../helpers/paths.ts';

/**
 * Item 1 of the hardening issue: a body over the limit is answered 413 with a JSON error that
 * the client reads, on every data-plane route and the admin port, while the client is still
 * sending (the body is far larger than what the server reads before answering, and than the
 * socket buffers). Clients:
 * Node's fetch, Python's urllib (which sends the whole body before reading) and curl.
 */
const run = promisify(execFile);
/** 10 tries on the endpoint route, 3 on each other route (the bytes cost time on a 2-core machine) */
const triesOf = (route: string) => (route === 'endpoint' ? 10 : 3);
const body = Buffer.alloc(6 * 1024 * 1024, 0x41);
const bodyFile = join(tmpDir(), 'big.bin');
writeFileSync(bodyFile, body);

let home: string;
let daemon: Daemon;
let routes: Array<{ name: string; url: string; headers: Record<string, string> }>;

before(async () => {
  home = tmpHome();
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }), maxImageBytes: 16 * 1024 });
  const data = `http://127.0.0.1:${daemon.state.port}`;
  const sigv4 = 'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/sagemaker/aws4_request, SignedHeaders=host;x-amz-date, Signature=00';
  routes = [
    { name: 'endpoint', url: `${data}/endpoints/dogs/invocations`, headers: { 'content-type': 'image/jpeg' } },
    { name: 'SageMaker InvokeEndpoint', url: `${data}/endpoints/dogs/invocations`, headers: { 'content-type': 'application/x-image', authorization: sigv4, 'x-amz-date': '20260101T000000Z' } },
    { name: 'function', url: `${data}/functions/classify/invoke`, headers: { 'content-type': 'application/json' } },
    { name: 'HTTP API /v1', url: `${data}/v1/classify`, headers: { 'content-type': 'image/jpeg' } },
    { name: 'Lambda Invoke', url: `${data}/2015-03-31/functions/classify/invocations`, headers: { 'content-type': 'application/json' } },
    { name: 'admin', url: `http://127.0.0.1:${daemon.state.adminPort}/v1/endpoints`, headers: { 'content-type': 'application/json', authorization: `Bearer ${readAdminToken(home)}` } },
  ];
});

after(async () => {
  await daemon?.close();
});

/** The JSON error of a 413 in either shape: Kennel's {"error": {...}} or AWS's {"message"/"Message", __type}. */
function assertTooLarge(status: number, text: string, what: string): void {
  assert.equal(status, 413, `${what}: ${status} ${text.slice(0, 200)}`);
  const parsed = JSON.parse(text) as { error?: { code: string }; message?: string; Message?: string };
  assert.ok(parsed.error?.code === 'too_large' || parsed.message || parsed.Message, `${what}: ${text}`);
}

describe('an over-limit body gets a 413 JSON answer, never a reset', () => {
  it('through Node fetch, every try on every route', async () => {
    for (const r of routes) {
      for (let i = 0; i < triesOf(r.name); i++) {
        const res = await fetch(r.url, { method: 'POST', headers: r.headers, body }).catch((e: Error & { cause?: unknown }) => assert.fail(`${r.name}, try ${i + 1}: ${String(e.cause ?? e)}`));
        assertTooLarge(res.status, await res.text(), `${r.name}, try ${i + 1}`);
      }
    }
  });

  it('through Python urllib, which reads the answer only after sending everything, every try on every route', async () => {
    const script = `
import json, sys, urllib.request, urllib.error
routes, path = json.loads(sys.argv[1]), sys.argv[2]
data = open(path, 'rb').read()
out = []
for r in routes:
    for i in range(r['tries']):
        try:
            urllib.request.urlopen(urllib.request.Request(r['url'], data=data, headers=r['headers'], method='POST'), timeout=20)
            out.append([r['name'], 200, ''])
        except urllib.error.HTTPError as e:
            out.append([r['name'], e.code, e.read().decode()])
        except Exception as e:
            out.append([r['name'], 0, repr(e)])
print(json.dumps(out))
`;
    const { stdout } = await run('python3', ['-c', script, JSON.stringify(routes.map((r) => ({ ...r, tries: triesOf(r.name) }))), bodyFile], { maxBuffer: 16 * 1024 * 1024 });
    const results = JSON.parse(stdout) as Array<[string, number, string]>;
    assert.equal(results.length, 10 + 3 * (routes.length - 1));
    for (const [name, status, text] of results) assertTooLarge(status, text, `python ${name}`);
  });

  it('through curl, every try on every route', async () => {
    for (const r of routes) {
      for (let i = 0; i < triesOf(r.name); i++) {
        const headers = Object.entries(r.headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
        const { stdout } = await run('curl', ['-sS', '-w', '\n%{http_code}', ...headers, '--data-binary', `@${bodyFile}`, r.url]).catch((e: Error & { stderr?: string }) => assert.fail(`curl ${r.name}, try ${i + 1}: ${e.stderr ?? e.message}`));
        const at = stdout.lastIndexOf('\n');
        assertTooLarge(Number(stdout.slice(at + 1)), stdout.slice(0, at), `curl ${r.name}, try ${i + 1}`);
      }
    }
  });
});

it('kennel invoke with a too-large file says so, with the limit, before sending', async () => {
  const failed = await run(process.execPath, [kennelBin, 'invoke', 'dogs', bodyFile], { env: { ...process.env, KENNEL_HOME: home } }).then(
    () => assert.fail('kennel invoke succeeded'),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /too large \(limit 0\.02 MiB\)/);
  assert.doesNotMatch(failed.stderr, /could not reach/i);
});

import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createFunction, FunctionGateway, functionsRoutes } from '../../src/functions/index.ts';
import { createKey, readAudit, type Actor } from '../../src/security/index.ts';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { sharedDir, tmpHome } from '../helpers/paths.ts';
import { securedApp } from '../security/app.ts';
import { FakeEndpoints } from './fake-endpoint.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const jpeg = readFileSync(path.join(sharedDir(), 'data/real-photos/aipnd-dogs/Beagle_01125.jpg'));
const by: Actor = { principal: 'local:test', plane: 'cli' };

let ws: Workspace;
let gateway: FunctionGateway;
let server: Awaited<ReturnType<typeof securedApp>>;
let caller: string;
let other: string;

const post = (route: string, key: string | undefined, body: unknown, contentType = 'application/json') =>
  fetch(server.url + route, {
    method: 'POST',
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': contentType },
    body: Buffer.isBuffer(body) ? body : typeof body === 'string' ? body : JSON.stringify(body),
  });

before(async () => {
  ws = openWorkspace(tmpHome());
  await createFunction(ws, 'classify', { endpoint: 'dogs', route: '/v1/classify' }, by);
  await createFunction(ws, 'slow', { endpoint: 'dogs', handler: path.join(here, 'fixtures/handler.ts'), reservedConcurrency: 1 }, by);
  caller = createKey(ws, 'web-app', { allow: ['function:Invoke:function/classify', 'function:Invoke:function/slow', 'function:Invoke:function/echo'], expiresInMs: 3_600_000 }, by).key;
  other = createKey(ws, 'other-app', { allow: ['function:Invoke:function/slow'], expiresInMs: 3_600_000 }, by).key;
  gateway = new FunctionGateway({ ws, endpoints: new FakeEndpoints() });
  server = await securedApp({ ws, plane: 'data' }, async (app) => {
    await app.register(functionsRoutes, { gateway, bodyLimit: 1024 * 1024 });
  });
});

after(async () => {
  await server.close();
  await gateway.close();
  ws.close();
});

describe('function routes over HTTP', () => {
  it('POST /functions/NAME/invoke runs the function for an authorised key', async () => {
    const res = await post('/functions/classify/invoke', caller, { image: jpeg.toString('base64') });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-kennel-cold-start'), 'true');
    const out = (await res.json()) as { predictions: Array<{ label: string }>; model: string };
    assert.equal(out.predictions[0]!.label, 'Beagle');
    assert.equal((await post('/functions/classify/invoke', caller, { image: jpeg.toString('base64') })).headers.get('x-kennel-cold-start'), 'false');
  });

  it('refuses missing keys (401), keys without the grant (403), and bad input (4xx)', async () => {
    assert.equal((await post('/functions/classify/invoke', undefined, { image: 'AAAA' })).status, 401);
    const forbidden = await post('/functions/classify/invoke', other, { image: 'AAAA' });
    assert.equal(forbidden.status, 403);
    assert.match(((await forbidden.json()) as { error: { message: string } }).error.message, /other-app is not allowed to function:Invoke on function\/classify/);
    assert.equal((await post('/functions/nope/invoke', caller, {})).status, 403, 'a function the key may not invoke, existing or not');
    assert.equal((await post('/functions/classify/invoke', caller, '{"image": ')).status, 400);
    assert.equal((await post('/functions/classify/invoke', caller, { image: 'A'.repeat(2 * 1024 * 1024) })).status, 413);
    assert.equal((await post('/functions/classify/invoke', caller, jpeg, 'image/jpeg')).status, 415);
    assert.equal((await post('/functions/classify/invoke', caller, { url: 'http://169.254.169.254/' })).status, 400);
    assert.equal((await post('/functions/classify/invoke', caller, { image: Buffer.from('just some plain text, not an image').toString('base64') })).status, 415);
  });

  it('maps the HTTP API route /v1/classify to the function, for JSON or raw image bodies', async () => {
    const raw = await post('/v1/classify', caller, jpeg, 'image/jpeg');
    assert.equal(raw.status, 200);
    assert.equal(((await raw.json()) as { predictions: unknown[] }).predictions.length, 5);
    const json = await post('/v1/classify', caller, { image: jpeg.toString('base64'), topK: 2 });
    assert.equal(((await json.json()) as { predictions: unknown[] }).predictions.length, 2);
    assert.equal((await post('/v1/nothing-here', caller, {})).status, 404);
    assert.equal((await post('/v1/classify', other, jpeg, 'image/jpeg')).status, 403);
  });

  it('gives user handlers on an HTTP API route the request as a payload 2.0 event, without credentials', async () => {
    await createFunction(ws, 'echo', { endpoint: 'dogs', handler: path.join(here, 'fixtures/handler.ts'), route: '/v1/echo' }, by);
    const res = await fetch(`${server.url}/v1/echo?x=1`, { method: 'POST', headers: { 'x-api-key': caller, cookie: 'a=b', 'content-type': 'image/jpeg', 'x-custom': 'yes' }, body: jpeg });
    assert.equal(res.status, 200);
    const got = (await res.json()) as { body: string; isBase64Encoded: boolean; headerNames: string[]; principal: string };
    assert.equal(got.isBase64Encoded, true);
    assert.deepEqual(Buffer.from(got.body, 'base64'), jpeg);
    assert.equal(got.principal, 'web-app');
    assert.ok(got.headerNames.includes('x-custom') && !got.headerNames.includes('x-api-key') && !got.headerNames.includes('cookie'));
    const json = await post('/v1/echo', caller, { hello: 'there' });
    assert.deepEqual(JSON.parse(((await json.json()) as { body: string }).body), { hello: 'there' });
  });

  it('throttles at the reserved concurrency over HTTP with 429 and Retry-After', async () => {
    const [first, second] = await Promise.all([post('/functions/slow/invoke', caller, { mode: 'sleep', ms: 600 }), new Promise<Response>((r) => setTimeout(() => r(post('/functions/slow/invoke', other, { mode: 'plain' })), 300))]);
    assert.equal(first.status, 200);
    assert.equal(second.status, 429);
    assert.equal(second.headers.get('retry-after'), '1');
    assert.match(((await second.json()) as { error: { message: string } }).error.message, /concurrency limit \(1 concurrent executions\)/);
  });

  it('mounts on an app that already parses image bodies (like the daemon data plane)', async () => {
    const app = Fastify();
    app.addContentTypeParser(['image/jpeg', 'image/png'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    await app.register(functionsRoutes, { gateway });
    await app.ready();
    await app.close();
  });

  it('audits every invocation with who, what, status and latency, and no keys or image bytes', () => {
    const entries = readAudit(ws, { plane: 'data', limit: 1000 });
    const ok = entries.find((e) => e.principal === 'web-app' && e.resource === 'function/classify' && e.status === 200);
    assert.ok(ok, 'a successful invocation is recorded');
    assert.equal(ok.action, 'function:Invoke');
    assert.ok(typeof ok.latencyMs === 'number' && ok.latencyMs > 0);
    assert.equal(typeof ok.detail?.coldStart, 'boolean');
    assert.ok(entries.some((e) => e.principal === 'other-app' && e.status === 403));
    assert.ok(entries.some((e) => e.principal === 'other-app' && e.status === 429));
    assert.ok(entries.some((e) => e.principal === 'anonymous' && e.status === 401), 'a call without a key is recorded as anonymous');
    const everything = JSON.stringify(readAudit(ws, { limit: 100_000 }));
    for (const key of [caller, other]) assert.ok(!everything.includes(key.slice(20)), 'no key secret in the audit log');
    assert.ok(!everything.includes(jpeg.toString('base64').slice(0, 64)), 'no image bytes in the audit log');
    // the function's own endpoint calls are audited under its execution role
    assert.ok(readAudit(ws, { principal: 'role/classify' }).some((e) => e.plane === 'function' && e.resource === 'endpoint/dogs' && e.status === 200));
  });
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { LogBook, TrafficSampler, totalsOf, quantile } from '../../src/console/index.ts';
import { createKey, readAudit, revokeKey, cliActor } from '../../src/security/index.ts';
import { buildAdmin } from '../../src/server/admin.ts';
import { ServingMetrics } from '../../src/server/metrics.ts';
import { registerModel, tagModel, type ModelCard } from '../../src/registry/index.ts';
import { ServingRuntime } from '../../src/serving/index.ts';
import { createJob, finishJob, openWorkspace, type Workspace } from '../../src/store/index.ts';
import { tmpHome } from '../helpers/paths.ts';

/**
 * The console API's contract without a browser: every /api/ route but login answers 401
 * without a session or token; sign-in with the admin token or a key allowed console:Login;
 * sessions in an HttpOnly SameSite=Strict cookie; changes need the CSRF token and a same-origin
 * Origin; keys are held to their policies and lose their session when revoked.
 */
const TOKEN = 'a'.repeat(43);
const HOST = '127.0.0.1:8081';
let app: FastifyInstance;
let ws: Workspace;
let runtime: ServingRuntime;
const routes: Array<{ method: string; url: string }> = [];

before(async () => {
  const home = tmpHome();
  ws = openWorkspace(home);
  const log = pino({ level: 'silent' });
  runtime = new ServingRuntime(ws, { log });
  app = buildAdmin(runtime, { log, token: TOKEN, ws, status: () => ({ home, host: '127.0.0.1', port: 1 }), shutdown: () => {}, metrics: async () => [] });
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (r.url.startsWith('/api/') && method !== 'HEAD') routes.push({ method, url: r.url });
  });
  await app.ready();
});

after(async () => {
  await app.close();
  await runtime.close();
  ws.close();
});

/** A concrete URL for a route pattern (parameters filled with well-formed values). */
const concrete = (url: string) =>
  url
    .replace(':version', '1')
    .replace(':sha', 'a'.repeat(64))
    .replace(':id', url.includes('/keys/') ? '0123456789abcdef' : url.includes('/policies/') ? 'pol_0123456789ab' : 'train-20260101000000-abcdef')
    .replace(/:[a-z]+/g, 'x')
    .replace('*', 'anything');

function cookieOf(res: { headers: Record<string, unknown> }): string {
  const set = String(res.headers['set-cookie']);
  return set.split(';')[0]!;
}

async function signIn(token: string): Promise<{ cookie: string; csrf: string }> {
  const res = await app.inject({ method: 'POST', url: '/api/login', headers: { host: HOST, origin: `http://${HOST}` }, payload: { token } });
  assert.equal(res.statusCode, 200, res.body);
  return { cookie: cookieOf(res), csrf: res.json().csrf };
}

test('every /api/ route except login answers 401 without a session or token', async () => {
  assert.ok(routes.length >= 30, `found ${routes.length} console API routes`);
  for (const r of routes) {
    const url = concrete(r.url);
    const res = await app.inject({ method: r.method as 'GET', url, headers: { host: HOST } });
    if (r.url === '/api/login') assert.equal(res.statusCode, 400, 'login without a body is a bad request');
    else assert.equal(res.statusCode, 401, `${r.method} ${url}: ${res.body}`);
  }
  // paths that are no route at all are refused the same way
  assert.equal((await app.inject({ method: 'GET', url: '/api/no-such-thing', headers: { host: HOST } })).statusCode, 401);
  // a wrong bearer token or a stray cookie is no better than none
  assert.equal((await app.inject({ method: 'GET', url: '/api/datasets', headers: { host: HOST, authorization: 'Bearer wrong' } })).statusCode, 401);
  assert.equal((await app.inject({ method: 'GET', url: '/api/datasets', headers: { host: HOST, cookie: 'kennel_console_0=forged' } })).statusCode, 401);
});

test('the admin token signs in: an HttpOnly, SameSite=Strict session cookie, and the token works as a bearer token too', async () => {
  const res = await app.inject({ method: 'POST', url: '/api/login', headers: { host: HOST, origin: `http://${HOST}` }, payload: { token: TOKEN } });
  assert.equal(res.statusCode, 200);
  const setCookie = String(res.headers['set-cookie']);
  assert.match(setCookie, /; HttpOnly/);
  assert.match(setCookie, /; SameSite=Strict/);
  assert.match(setCookie, /; Path=\//);
  assert.equal(res.json().principal, 'local:admin');
  const session = await app.inject({ method: 'GET', url: '/api/session', headers: { host: HOST, cookie: cookieOf(res) } });
  assert.equal(session.statusCode, 200);
  assert.equal(session.json().csrf, res.json().csrf);
  assert.equal((await app.inject({ method: 'GET', url: '/api/datasets', headers: { host: HOST, authorization: `Bearer ${TOKEN}` } })).statusCode, 200);
  const wrong = await app.inject({ method: 'POST', url: '/api/login', headers: { host: HOST }, payload: { token: 'b'.repeat(43) } });
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.headers['set-cookie'], undefined);
  assert.ok(readAudit(ws, { action: 'console:Login' }).some((e) => e.status === 401), 'failed sign-ins are audited');
});

test('CSRF: a cookie-authenticated change needs the session token and a same-origin Origin', async () => {
  const { cookie, csrf } = await signIn(TOKEN);
  const change = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/api/security/keys', headers: { host: HOST, cookie, ...headers }, payload: { principal: 'csrf-check', expires: '1d' } });
  const missing = await change({ origin: `http://${HOST}` });
  assert.equal(missing.statusCode, 403);
  assert.equal(missing.json().error.code, 'csrf');
  assert.equal((await change({ origin: `http://${HOST}`, 'x-csrf-token': 'x'.repeat(32) })).statusCode, 403, 'a wrong token');
  const foreign = await change({ origin: 'http://evil.example', 'x-csrf-token': csrf });
  assert.equal(foreign.statusCode, 403, 'a foreign Origin, even with the token');
  assert.equal((await change({ 'sec-fetch-site': 'cross-site', 'x-csrf-token': csrf })).statusCode, 403, 'a cross-site fetch');
  assert.equal((await app.inject({ method: 'POST', url: '/api/login', headers: { host: HOST, origin: 'http://evil.example' }, payload: { token: TOKEN } })).statusCode, 403, 'login CSRF');
  const ok = await change({ origin: `http://${HOST}`, 'x-csrf-token': csrf });
  assert.equal(ok.statusCode, 201, ok.body);
  assert.match(ok.json().key, /^kn_[0-9a-f]{16}_/);
  // reads need no token; nothing was created by the refused attempts
  const principals = await app.inject({ method: 'GET', url: '/api/security/principals', headers: { host: HOST, cookie } });
  assert.equal(principals.json().principals.find((p: { name: string }) => p.name === 'csrf-check').keys.length, 1);
});

test('a DNS name as Host is refused (DNS rebinding)', async () => {
  const res = await app.inject({ method: 'GET', url: '/api/session', headers: { host: 'attacker.example:8081', authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.statusCode, 421);
  assert.equal((await app.inject({ method: 'GET', url: '/', headers: { host: 'attacker.example:8081' } })).statusCode, 421);
  assert.equal((await app.inject({ method: 'GET', url: '/api/session', headers: { host: 'localhost:8081', authorization: `Bearer ${TOKEN}` } })).statusCode, 200);
});

test('API keys: console:Login to sign in, their policies for each route, and revocation ends the session', async () => {
  const actor = cliActor();
  const none = createKey(ws, 'nobody', { allow: ['endpoint:Invoke:endpoint/x'] }, actor);
  const denied = await app.inject({ method: 'POST', url: '/api/login', headers: { host: HOST }, payload: { token: none.key } });
  assert.equal(denied.statusCode, 403, 'a key without console:Login');

  const viewer = createKey(ws, 'viewer', { allow: ['console:*:*'] }, actor);
  const { cookie, csrf } = await signIn(viewer.key);
  assert.equal((await app.inject({ method: 'GET', url: '/api/datasets', headers: { host: HOST, cookie } })).statusCode, 200);
  const change = await app.inject({ method: 'POST', url: '/api/security/keys', headers: { host: HOST, cookie, origin: `http://${HOST}`, 'x-csrf-token': csrf }, payload: { principal: 'escalate', allow: ['*:*'] } });
  assert.equal(change.statusCode, 403, 'console:* reads but does not change');
  assert.equal(change.json().error.code, 'forbidden');

  // a key works as a bearer token as well, under the same policies
  assert.equal((await app.inject({ method: 'GET', url: '/api/models', headers: { host: HOST, authorization: `Bearer ${viewer.key}` } })).statusCode, 200);

  revokeKey(ws, viewer.keyId, actor);
  const after = await app.inject({ method: 'GET', url: '/api/datasets', headers: { host: HOST, cookie } });
  assert.equal(after.statusCode, 401, 'the session of a revoked key ends');
  assert.equal((await app.inject({ method: 'POST', url: '/api/login', headers: { host: HOST }, payload: { token: viewer.key } })).statusCode, 401);
});

test('no privilege escalation: a key allowed admin:CreateKey or admin:AttachPolicy hands out only what it holds', async () => {
  const actor = cliActor();
  const ops = createKey(ws, 'ops', { allow: ['admin:CreateKey:*', 'admin:AttachPolicy:*', 'endpoint:Invoke:endpoint/dogs'] }, actor);
  createKey(ws, 'root', { allow: ['*:*'] }, actor);
  const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, headers: { host: HOST, authorization: `Bearer ${ops.key}` }, payload: payload as Record<string, unknown> });
  for (const [url, payload] of [
    ['/api/security/keys', { principal: 'minted', allow: ['*:*'] }],
    ['/api/security/keys', { principal: 'root' }], // a key of a principal that holds more
    ['/api/security/keys', { principal: 'minted', allow: ['endpoint:Invoke:endpoint/*'] }],
    ['/api/security/policies', { principal: 'ops', allow: ['admin:*:*'] }],
    ['/api/security/policies', { principal: 'minted', document: { statements: [{ effect: 'allow', actions: ['model:Read'], resources: ['*'] }] } }],
  ] as const) {
    const res = await post(url, payload);
    assert.equal(res.statusCode, 403, `${url} ${JSON.stringify(payload)}: ${res.body}`);
    assert.equal(res.json().error.code, 'forbidden');
    assert.match(res.json().error.message, /ops may not .* which ops is not allowed itself/);
  }
  assert.ok(readAudit(ws, { principal: 'ops', action: 'admin:CreateKey', failed: true }).some((e) => e.status === 403), 'refusals are audited');
  // within its own grants, delegation works
  assert.equal((await post('/api/security/keys', { principal: 'app', allow: ['endpoint:Invoke:endpoint/dogs'], expires: '1d' })).statusCode, 201);
  assert.equal((await post('/api/security/policies', { principal: 'app', allow: ['endpoint:Invoke:endpoint/dogs'], deny: ['model:*:*'] })).statusCode, 201);
  // the owner (admin token) is not limited
  const owner = await app.inject({ method: 'POST', url: '/api/security/keys', headers: { host: HOST, authorization: `Bearer ${TOKEN}` }, payload: { principal: 'minted', allow: ['model:Read:*'], expires: '1d' } });
  assert.equal(owner.statusCode, 201);
});

test('logout ends the session', async () => {
  const { cookie, csrf } = await signIn(TOKEN);
  const out = await app.inject({ method: 'POST', url: '/api/logout', headers: { host: HOST, cookie, origin: `http://${HOST}`, 'x-csrf-token': csrf } });
  assert.equal(out.statusCode, 200);
  assert.match(String(out.headers['set-cookie']), /Max-Age=0/);
  assert.equal((await app.inject({ method: 'GET', url: '/api/session', headers: { host: HOST, cookie } })).statusCode, 401);
});

test('bad input gets a clear 4xx', async () => {
  const auth = { host: HOST, authorization: `Bearer ${TOKEN}` };
  const cases: Array<[string, string, unknown, number]> = [
    ['POST', '/api/jobs', { kind: 'train', options: { dataset: 'x', backbone: 'y', queue: 'redis://elsewhere' } }, 400],
    ['POST', '/api/jobs', { kind: 'dance' }, 400],
    ['POST', '/api/jobs', { kind: 'train', options: { dataset: 'missing', backbone: 'none' } }, 404],
    ['POST', '/api/endpoints', { name: 'Bad Name!', variants: [] }, 400],
    ['POST', '/api/security/keys', { principal: 'p', allow: ['not a grant'] }, 400],
    ['POST', '/api/security/keys', { principal: 'p', expires: 'soon' }, 400],
    ['POST', '/api/models/x/tags', { tag: 'production' }, 400],
    ['GET', '/api/jobs/not-a-job-id', undefined, 400],
    ['GET', '/api/datasets/missing', undefined, 404],
    ['GET', '/api/models/missing/versions/1', undefined, 404],
    ['GET', '/api/endpoints/missing', undefined, 404],
    ['GET', '/api/security/log?plane=moon', undefined, 400],
  ];
  for (const [method, url, payload, status] of cases) {
    const res = await app.inject({ method: method as 'GET', url, headers: auth, payload: payload as object });
    assert.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
    assert.ok(res.json().error.message, 'a message says what is wrong');
  }
});

test('traffic: the daemon histograms, read in process, become rates and quantiles', async () => {
  const metrics = new ServingMetrics(() => []);
  for (let i = 0; i < 50; i++) metrics.invocation('dogs', 'primary', 200, 0.008);
  for (let i = 0; i < 40; i++) metrics.invocation('dogs', 'primary', 200, 0.03);
  for (let i = 0; i < 10; i++) metrics.invocation('dogs', 'primary', 200, 1.5);
  for (let i = 0; i < 4; i++) metrics.invocation('dogs', 'primary', 503, 0.001, 'overloaded');
  for (let i = 0; i < 7; i++) metrics.invocation('dogs', '', 429, 0.001, 'throttled');
  const t = totalsOf(await metrics.invocationSamples()).get('dogs')!;
  assert.equal(t.count, 111);
  assert.equal(t.errors, 4, '429s are counted apart from errors');
  assert.equal(t.throttled, 7);
  assert.equal(t.buckets.get(Infinity), 111, 'every variant and status summed');
  assert.equal(t.buckets.get(0.01), 61);
  const buckets: Array<[number, number]> = [[0.01, 50], [0.05, 90], [Infinity, 100]];
  assert.equal(quantile(0.5, buckets), 0.01);
  assert.ok(Math.abs(quantile(0.7, buckets)! - 0.03) < 1e-9, 'linear inside the bucket');
  assert.equal(quantile(0.5, []), null);
});

test('traffic: live points while watched, an hour of 30 s history always, both bounded by age', async () => {
  let now = 1_000_000;
  let count = 0;
  let throttled = 0;
  const sampler = new TrafficSampler({
    scrape: async () => [
      { metricName: 'kennel_invocation_duration_seconds_count', labels: { endpoint: 'dogs', status: '200' }, value: count },
      { metricName: 'kennel_invocation_errors_total', labels: { endpoint: 'dogs', status: '429', code: 'throttled' }, value: throttled },
    ],
    endpoints: () => ['dogs'],
    intervalMs: 2000,
    now: () => now,
  });
  // the timer is left out: each tick is 2 s of this clock, with 20 requests and one 429 in it
  const tick = async (watch: boolean) => {
    now += 2000;
    count += 20;
    throttled += 1;
    if (watch) sampler.read('dogs');
    await sampler.sample();
  };
  try {
    await sleep(0); // the first sample, at construction, is the history's baseline
    await tick(true); // the live baseline
    for (let i = 0; i < 30; i++) await tick(true); // a minute watched
    const watched = sampler.read('dogs');
    assert.equal(watched.points.length, 30, 'a live point every 2 s');
    assert.deepEqual(watched.points.at(-1)!, { ...watched.points.at(-1)!, rps: 10, errorsPerS: 0, throttledPerS: 0.5 }, '429s apart from errors');
    assert.equal(watched.history.length, 2, 'a history point every 30 s');
    for (let i = 0; i < 1800; i++) await tick(false); // an hour nobody watches
    const later = sampler.read('dogs');
    assert.deepEqual(later.points, [], 'no live points while nobody watched');
    assert.ok(later.history.length >= 120 && later.history.length <= 121, `an hour of history, bounded: ${later.history.length} points`);
    // trimmed at each history point, so the oldest may be up to one interval over the hour
    assert.ok(later.history.every((p) => p.t >= now - 3_630_000 && p.rps === 10));
  } finally {
    sampler.close();
  }
});

test('logs: a bounded ring per source, replica lines apart, secrets redacted', () => {
  const token = 'admin-token-0123456789abcdef';
  const book = new LogBook({ keep: 3, maxReplicas: 2, secrets: [token] });
  const log = pino({ base: { pid: 1 } }, book);
  log.info({ replica: 'r1', output: 'loaded model' }, 'replica output');
  log.warn({ headers: { authorization: 'Bearer abc.def' }, key: 'kn_0123456789abcdef_SECRETsecretSECRETsecret' }, `sign-in with ${token} and x-api-key: hunter2hunter2`);
  for (let i = 0; i < 5; i++) log.info(`line ${i}`);
  log.info({ replica: 'r2' }, 'replica started');
  log.info({ replica: 'r3' }, 'replica started');
  const daemon = book.daemonLines();
  assert.equal(daemon.length, 3, 'bounded');
  assert.deepEqual(book.linesOf('r1'), [], 'the oldest replica is forgotten past maxReplicas');
  assert.equal(book.linesOf('r3')[0]!.text, 'replica started');
  const fresh = new LogBook({ secrets: [token] });
  pino({ base: { pid: 1 } }, fresh).warn({ headers: { authorization: 'Bearer abc.def' }, key: 'kn_0123456789abcdef_SECRETsecretSECRETsecret' }, `sign-in with ${token} and x-api-key: hunter2hunter2`);
  const [line] = fresh.daemonLines();
  assert.equal(line!.level, 'warn');
  for (const secret of [token, 'abc.def', 'SECRETsecret', 'hunter2']) assert.ok(!line!.text.includes(secret), `${secret} is redacted in: ${line!.text}`);
  assert.match(line!.text, /kn_0123456789abcdef_\[redacted\]/, 'a key keeps its public id');
});

test('delete a model version: the CLI guards (production tag, 409 with a hint), ?force=1, admin:DeleteModel, artifacts freed, audited', async () => {
  const card = { labels: ['a'], preprocess: {} as ModelCard['preprocess'], inputName: 'x', outputName: 'y', temperature: 1, source: 'imported' as const };
  await registerModel(ws, 'gone', Buffer.from('graph of gone 1'), card);
  tagModel(ws, 'gone@1', 'production');
  const url = '/api/models/gone/versions/1';
  const del = (q: string, auth = TOKEN) => app.inject({ method: 'DELETE', url: url + q, headers: { host: HOST, authorization: `Bearer ${auth}` } });

  const refused = await del('');
  assert.equal(refused.statusCode, 409, refused.body);
  assert.match(refused.json().error.message, /gone@1 is tagged production/);
  assert.match(refused.json().error.hint, /--force/);

  const viewer = createKey(ws, 'delete-viewer', { allow: ['console:*:*'] }, cliActor());
  assert.equal((await del('?force=1', viewer.key)).statusCode, 403, 'console:* does not delete');
  assert.ok(readAudit(ws, { action: 'admin:DeleteModel', failed: true }).some((e) => e.status === 403 && e.principal === 'delete-viewer'));

  const ok = await del('?force=1');
  assert.equal(ok.statusCode, 200, ok.body);
  assert.deepEqual(ok.json().deleted, ['gone@1']);
  assert.ok(ok.json().freed.files >= 1 && ok.json().freed.bytes > 0, 'the graph is freed');
  assert.equal((await app.inject({ method: 'GET', url, headers: { host: HOST, authorization: `Bearer ${TOKEN}` } })).statusCode, 404);
  assert.ok(readAudit(ws, { action: 'admin:DeleteModel' }).some((e) => e.status === 200 && e.resource === 'model/gone'));
  assert.equal((await del('?force=1')).statusCode, 404, 'already gone');

  // the other deletes answer through the same services
  assert.equal((await app.inject({ method: 'DELETE', url: '/api/datasets/none/versions/1', headers: { host: HOST, authorization: `Bearer ${TOKEN}` } })).statusCode, 404);
  assert.equal((await app.inject({ method: 'DELETE', url: '/api/backbones/none', headers: { host: HOST, authorization: `Bearer ${TOKEN}` } })).statusCode, 404);
  assert.equal((await app.inject({ method: 'DELETE', url: '/api/jobs/train-20260101000000-abcdef', headers: { host: HOST, authorization: `Bearer ${TOKEN}` } })).statusCode, 404);
});

test('batch transform jobs are on the jobs page with their model, running or completed', async () => {
  const job = createJob(ws, 'transform', { key: 'k', model: 'mnet@1', source: 'folder ./photos', out: '/tmp/r.jsonl', images: 10, topK: 5, shardSize: 256 });
  const list = async () => (await app.inject({ method: 'GET', url: '/api/jobs', headers: { host: HOST, authorization: `Bearer ${TOKEN}` } })).json() as { jobs: Array<{ id: string; kind: string; status: string; model?: string; seconds?: number }> };
  const running = (await list()).jobs.find((j) => j.id === job.id)!;
  assert.deepEqual([running.kind, running.status, running.model], ['transform', 'running', 'mnet@1']);
  finishJob(ws, job.id, 'completed', { result: { model: 'mnet@1', images: 10, failed: 0, seconds: 1.5 } });
  const done = (await list()).jobs.find((j) => j.id === job.id)!;
  assert.deepEqual([done.status, done.model, done.seconds], ['completed', 'mnet@1', 1.5]);
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createFunction } from '../../src/functions/index.ts';
import { createKey, readAudit, type Actor } from '../../src/security/index.ts';
import { startDaemon, type Daemon } from '../../src/server/index.ts';
import type { Workspace } from '../../src/store/index.ts';
import { readAdminToken } from '../../src/server/state.ts';
import { tmpHome } from '../helpers/paths.ts';
import { photo, workspaceWithModel } from '../serving/fixtures.ts';
import { MATRIX, runMatrix, setupMatrix, type Caller, type Check } from './matrix.ts';

/**
 * The authorization matrix against the daemon's real data plane: endpoint invocations, the
 * function routes (POST /functions/NAME/invoke and the /v1/... HTTP API mapping), with real
 * photos, a real endpoint and the daemon's own function gateway.
 */
const by: Actor = { principal: 'local:test', plane: 'cli' };
const beagle = photo();

let home: string;
let ws: Workspace;
let daemon: Daemon;
let base: string;
let keys: Record<Caller, string | undefined>;

before(async () => {
  home = tmpHome();
  ws = await workspaceWithModel(home, 'mnet', 'c');
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
  base = `http://127.0.0.1:${daemon.state.port}`;
  await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet' }], instances: 1 });
  await createFunction(ws, 'classify', { endpoint: 'dogs', route: '/v1/classify' }, by);
  await createFunction(ws, 'admin-tool', { endpoint: 'dogs', route: '/v1/admin-tool' }, by);
  keys = await setupMatrix(ws);
});

after(async () => {
  await daemon?.close();
  ws?.close();
});

const keyHeaders = (key: string | undefined, variant: number): Record<string, string> => (key === undefined ? {} : variant % 2 ? { 'x-api-key': key } : { authorization: `Bearer ${key}` });

/** The data plane has routes for these actions; model and admin actions have none (the admin API is a separate, token-only port). */
const ROUTED = new Set(['endpoint:Invoke', 'function:Invoke']);

const daemonCheck: Check = async (key, action, resource, variant) => {
  const name = resource.split('/')[1]!;
  const headers = keyHeaders(key, variant);
  let res: Response;
  if (action === 'endpoint:Invoke') {
    res = await fetch(`${base}/endpoints/${name}/invocations`, { method: 'POST', headers: { ...headers, 'content-type': 'image/jpeg' }, body: beagle });
  } else if (action === 'function:Invoke') {
    // both function routes, in turn: the JSON event route and the HTTP API mapping with raw bytes
    res =
      Math.floor(variant / 2) % 2
        ? await fetch(`${base}/v1/${name}`, { method: 'POST', headers: { ...headers, 'content-type': 'image/jpeg' }, body: beagle })
        : await fetch(`${base}/functions/${name}/invoke`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ image: beagle.toString('base64') }) });
  } else {
    res = await fetch(`${base}/${action === 'model:Read' ? 'models' : 'admin/keys'}/${name}`, { method: action === 'model:Read' ? 'GET' : 'POST', headers });
  }
  const body = (await res.json()) as { predictions?: unknown[]; error?: { message: string } };
  if (res.status === 200) assert.ok(body.predictions?.length, 'an allowed call is answered by the model');
  if (res.status === 401) assert.equal(res.headers.get('www-authenticate'), 'Bearer');
  if (res.status >= 400) assert.ok(body.error?.message, 'errors carry a message');
  return res.status;
};

describe('the daemon data plane', () => {
  it(`holds the authorization matrix on its real routes (${MATRIX.filter((c) => ROUTED.has(c.action)).length} cases, both key headers, both function routes)`, async () => {
    const auditBefore = readAudit(ws, { plane: 'data', limit: 100_000 }).length;
    const wrong = await runMatrix(keys, daemonCheck);
    assert.deepEqual(wrong.filter((c) => ROUTED.has(c.action)), []);
    // no model or admin action is reachable on the data plane, whatever the key
    const unrouted = MATRIX.filter((c) => !ROUTED.has(c.action));
    assert.deepEqual(wrong.filter((c) => !ROUTED.has(c.action)).map((c) => [c.caller, c.action, c.got]), unrouted.map((c) => [c.caller, c.action, 404]));
    // every secured request was audited with its result; no entry holds a key secret
    const entries = readAudit(ws, { plane: 'data', limit: 100_000 });
    assert.equal(entries.length - auditBefore, MATRIX.length - unrouted.length);
    const text = JSON.stringify(entries);
    for (const key of Object.values(keys)) if (key?.startsWith('kn_')) assert.ok(!text.includes(key.slice(20)), 'the audit log holds no key secret');
    assert.equal(entries.find((e) => e.principal === 'invoker' && e.resource === 'function/admin-tool')?.status, 403);
  });

  it('keeps /healthz and /metrics public', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /kennel_auth_requests_total\{plane="data",outcome="allowed"\} [1-9]/);
  });

  it('throttles a key over its rate with 429 and Retry-After', async () => {
    const { key } = createKey(ws, 'slow', { allow: ['endpoint:Invoke:endpoint/dogs'], ratePerSecond: 0.01, burst: 1 }, by);
    const send = () => fetch(`${base}/endpoints/dogs/invocations`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'image/jpeg' }, body: beagle });
    assert.equal((await send()).status, 200);
    const throttled = await send();
    assert.equal(throttled.status, 429);
    assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
  });

  it('keeps the admin API on loopback; a key there is held to its policies like on the console API (admin:*:* does not read)', async () => {
    assert.equal(daemon.state.host, '127.0.0.1');
    const admin = `http://127.0.0.1:${daemon.state.adminPort}/v1/endpoints`;
    assert.equal((await fetch(admin, { headers: { authorization: `Bearer ${keys.admin}` } })).status, 403);
    assert.equal((await fetch(admin, { headers: { authorization: `Bearer ${keys['wrong-secret']}` } })).status, 401);
    assert.equal((await fetch(admin, { headers: { authorization: `Bearer ${readAdminToken(home)}` } })).status, 200);
  });
});

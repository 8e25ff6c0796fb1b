import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { readAudit } from '../../src/security/index.ts';
import { tmpHome } from '../helpers/paths.ts';
import { securedApp } from './app.ts';
import { MATRIX, authorizerCheck, runMatrix, setupMatrix, type Caller, type Check } from './matrix.ts';

let ws: Workspace;
let keys: Record<Caller, string | undefined>;

before(async () => {
  ws = openWorkspace(tmpHome());
  keys = await setupMatrix(ws);
});
after(() => ws.close());

describe('authorization matrix', () => {
  it(`holds at the service level (${MATRIX.length} cases, both key headers)`, async () => {
    assert.deepEqual(await runMatrix(keys, authorizerCheck(ws)), []);
  });

  it('holds over real HTTP through the fastify plugin', async () => {
    const param = (name: string) => (req: FastifyRequest) => (req.params as Record<string, string>)[name]!;
    const server = await securedApp({ ws, plane: 'data' }, (app) => {
      app.post('/endpoints/:name/invocations', { config: { auth: { action: 'endpoint:Invoke', resource: (r) => `endpoint/${param('name')(r)}` } } }, async () => ({ ok: true }));
      app.post('/functions/:name/invoke', { config: { auth: { action: 'function:Invoke', resource: (r) => `function/${param('name')(r)}` } } }, async () => ({ ok: true }));
      app.get('/models/:name', { config: { auth: { action: 'model:Read', resource: (r) => `model/${param('name')(r)}` } } }, async () => ({ ok: true }));
      app.post('/admin/keys/:principal', { config: { auth: { action: 'admin:CreateKey', resource: (r) => `principal/${param('principal')(r)}` } } }, async () => ({ ok: true }));
    });
    const routeFor: Record<string, (name: string) => [string, string]> = {
      'endpoint:Invoke': (n) => ['POST', `/endpoints/${n}/invocations`],
      'function:Invoke': (n) => ['POST', `/functions/${n}/invoke`],
      'model:Read': (n) => ['GET', `/models/${n}`],
      'admin:CreateKey': (n) => ['POST', `/admin/keys/${n}`],
    };
    const httpCheck: Check = async (key, action, resource, variant) => {
      const [method, path] = routeFor[action]!(resource.split('/')[1]!);
      const headers: Record<string, string> = key === undefined ? {} : variant % 2 ? { 'x-api-key': key } : { authorization: `Bearer ${key}` };
      const res = await fetch(server.url + path, { method, headers });
      const body = (await res.json()) as { error?: { message: string } };
      if (res.status === 401) assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      if (res.status >= 400) assert.ok(body.error?.message, 'errors carry a message');
      return res.status;
    };
    try {
      const auditBefore = readAudit(ws, { plane: 'data', limit: 10_000 }).length;
      assert.deepEqual(await runMatrix(keys, httpCheck), []);
      // every request was audited with its result, and no entry holds a key
      const entries = readAudit(ws, { plane: 'data', limit: 10_000 });
      assert.equal(entries.length - auditBefore, MATRIX.length);
      const text = JSON.stringify(entries);
      for (const key of Object.values(keys)) if (key?.startsWith('kn_')) assert.ok(!text.includes(key.slice(20)), 'the audit log holds no key secret');
      const denied = entries.find((e) => e.principal === 'invoker' && e.resource === 'function/admin-tool');
      assert.equal(denied?.status, 403);
      assert.equal(denied?.action, 'function:Invoke');
      assert.ok(entries.some((e) => e.status === 401 && e.principal === undefined && e.keyId === '0123456789abcdef'), 'a failed key is recorded by its public id');
    } finally {
      await server.close();
    }
  });

  it('denies a route that declares no access rule, and lets public routes through', async () => {
    const server = await securedApp({ ws, plane: 'data' }, (app) => {
      app.get('/forgotten', async () => ({ ok: true }));
      app.get('/healthz', { config: { auth: 'public' } }, async () => ({ ok: true }));
    });
    try {
      const forgotten = await fetch(`${server.url}/forgotten`, { headers: { authorization: `Bearer ${keys.full}` } });
      assert.equal(forgotten.status, 403);
      assert.match(((await forgotten.json()) as { error: { message: string } }).error.message, /declares no access rule/);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${server.url}/nowhere`)).status, 404);
    } finally {
      await server.close();
    }
  });
});

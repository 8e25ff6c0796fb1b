import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Ajv } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { cliActor, createKey, readAudit } from '../../src/security/index.ts';
import { buildAdmin } from '../../src/server/admin.ts';
import { ServingRuntime } from '../../src/serving/index.ts';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { tmpHome } from '../helpers/paths.ts';

/**
 * The admin API's OpenAPI document (GET /v1/openapi.json) is generated from the route
 * declarations, and the one auth hook serves /v1 as it serves /api: the admin token, an API key
 * held to its policies, or a console session.
 */
const TOKEN = 'b'.repeat(43);
const HOST = '127.0.0.1:8081';
let app: FastifyInstance;
let ws: Workspace;
let runtime: ServingRuntime;

before(async () => {
  const home = tmpHome();
  ws = openWorkspace(home);
  const log = pino({ level: 'silent' });
  runtime = new ServingRuntime(ws, { log });
  app = buildAdmin(runtime, { log, token: TOKEN, ws, status: () => ({ home, host: '127.0.0.1', port: 1 }), shutdown: () => {}, metrics: async () => [] });
  await app.ready();
});

after(async () => {
  await app.close();
  await runtime.close();
  ws.close();
});

type Operation = { security?: Array<Record<string, unknown>>; parameters?: Array<{ name: string; in: string; required?: boolean; schema: object }>; requestBody?: { content: Record<string, { schema: object }> }; responses: Record<string, unknown>; 'x-kennel-action'?: string; 'x-kennel-resource'?: string };
type Doc = { openapi: string; info: { title: string; version: string }; paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, { type: string; scheme?: string; in?: string; name?: string }> }; security: unknown[] };

const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers: { host: HOST, ...headers } });

test('GET /v1/openapi.json: valid OpenAPI 3.x listing every /v1 route with its auth', async () => {
  assert.equal((await get('/v1/openapi.json')).statusCode, 401, 'the document needs a caller like the rest of /v1');
  const res = await get('/v1/openapi.json', { authorization: `Bearer ${TOKEN}` });
  assert.equal(res.statusCode, 200, res.body);
  assert.match(String(res.headers['content-type']), /application\/json/);
  const doc = res.json() as Doc;
  assert.match(doc.openapi, /^3\.\d+\.\d+$/);
  assert.ok(doc.info.title && doc.info.version);

  const expected: Array<[string, string, string | undefined]> = [
    ['/v1/status', 'get', 'console:Read'],
    ['/v1/shutdown', 'post', 'admin:StopDaemon'],
    ['/v1/endpoints', 'get', 'console:Read'],
    ['/v1/endpoints', 'post', 'admin:CreateEndpoint'],
    ['/v1/endpoints/{name}', 'get', 'console:Read'],
    ['/v1/endpoints/{name}', 'patch', 'admin:UpdateEndpoint'],
    ['/v1/endpoints/{name}', 'delete', 'admin:DeleteEndpoint'],
    ['/v1/openapi.json', 'get', undefined],
  ];
  for (const [path, method, action] of expected) {
    const op = doc.paths[path]?.[method];
    assert.ok(op, `${method.toUpperCase()} ${path} is listed`);
    assert.ok(op.security && op.security.length > 0, `${method} ${path} requires a caller`);
    assert.ok(op.responses['401'], `${method} ${path} documents 401`);
    if (action) assert.equal(op['x-kennel-action'], action);
  }
  assert.equal(doc.paths['/v1/endpoints/{name}']!.delete!['x-kennel-resource'], 'endpoint/{name}');
  assert.deepEqual(doc.paths['/healthz']!.get!.security, [], 'health checks are public');
  // the console's API is the same admin API
  assert.ok(doc.paths['/api/jobs']?.post, 'console routes are listed');
  assert.equal(doc.paths['/api/jobs/{id}/cancel']!.post!['x-kennel-action'], 'admin:CancelJob');

  // security schemes: bearer (admin token or key), x-api-key, the console's session cookie
  const schemes = doc.components.securitySchemes;
  assert.equal(schemes.bearer?.type, 'http');
  assert.equal(schemes.bearer?.scheme, 'bearer');
  assert.deepEqual([schemes.apiKey?.in, schemes.apiKey?.name], ['header', 'x-api-key']);
  assert.equal(schemes.consoleSession?.in, 'cookie');
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      assert.ok(['get', 'post', 'put', 'patch', 'delete'].includes(method), `${method} ${path}`);
      for (const s of op.security ?? []) for (const name of Object.keys(s)) assert.ok(schemes[name], `${path}: scheme ${name} is declared`);
      // every template parameter is declared as a path parameter, and nothing else is
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name).sort();
      assert.deepEqual(declared, templated, `${method} ${path} path parameters`);
      assert.ok(!path.includes(':') && !path.includes('*'), path);
    }
  }

  // the schemas are the route declarations', and are valid JSON Schema
  const create = doc.paths['/v1/endpoints']!.post!;
  const body = create.requestBody?.content['application/json']?.schema as { properties?: Record<string, unknown> };
  assert.ok(body?.properties?.name, 'the create body comes from CreateEndpointSchema');
  assert.ok(create.parameters?.some((p) => p.in === 'query' && p.name === 'wait'));
  const ajv = new Ajv({ strict: false });
  for (const ops of Object.values(doc.paths)) for (const op of Object.values(ops)) {
    for (const p of op.parameters ?? []) ajv.compile(p.schema);
    for (const c of Object.values(op.requestBody?.content ?? {})) ajv.compile(c.schema);
  }
});

test('/v1 takes the callers /api takes: the admin token, an API key held to its policies, a console session', async () => {
  const viewer = createKey(ws, 'v1-viewer', { allow: ['console:Read:endpoint/*', 'console:Login:console/login'] }, cliActor());
  assert.equal((await get('/v1/endpoints', { authorization: `Bearer ${viewer.key}` })).statusCode, 200);
  assert.equal((await get('/v1/endpoints', { 'x-api-key': viewer.key })).statusCode, 200);
  assert.equal((await get('/v1/status', { authorization: `Bearer ${viewer.key}` })).statusCode, 403, 'not allowed console:Read on console/overview');
  const remove = await app.inject({ method: 'DELETE', url: '/v1/endpoints/dogs', headers: { host: HOST, authorization: `Bearer ${viewer.key}` } });
  assert.equal(remove.statusCode, 403, remove.body);

  const login = await app.inject({ method: 'POST', url: '/api/login', headers: { host: HOST, origin: `http://${HOST}` }, payload: { token: TOKEN } });
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  assert.equal((await get('/v1/status', { cookie })).statusCode, 200, 'a console session reads /v1');
  const change = await app.inject({ method: 'POST', url: '/v1/shutdown', headers: { host: HOST, cookie, origin: `http://${HOST}` } });
  assert.equal(change.statusCode, 403, 'a cookie change without the CSRF token is refused');
});

test('the auth hook audits routes declared audit: true, and refuses the answer (503) when the entry cannot be written', async () => {
  const headers = { host: HOST, authorization: `Bearer ${TOKEN}` };
  const cancel = await app.inject({ method: 'POST', url: '/api/jobs/train-20260101000000-abcdef/cancel', headers });
  assert.equal(cancel.statusCode, 404, cancel.body);
  const entry = readAudit(ws, { action: 'admin:CancelJob' })[0];
  assert.equal(entry?.principal, 'local:admin');
  assert.equal(entry?.resource, 'job/train-20260101000000-abcdef');
  assert.equal(entry?.status, 404);

  ws.db.exec("CREATE TRIGGER audit_fault BEFORE INSERT ON audit_log BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END");
  try {
    const refused = await app.inject({ method: 'POST', url: '/api/jobs/train-20260101000000-abcdef/cancel', headers });
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(refused.json().error.code, 'audit_unavailable');
  } finally {
    ws.db.exec('DROP TRIGGER audit_fault');
  }
});

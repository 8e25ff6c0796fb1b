import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import type { RouteAuth } from '../security/index.js';

/** A route as fastify registered it, with what the document says about it. */
interface RouteDoc {
  method: string;
  url: string;
  schema?: FastifySchema;
  auth?: RouteAuth | 'public' | 'signed-in';
}

type Json = Record<string, unknown>;

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** Every scheme the admin port's auth hook accepts; any one of them identifies the caller. */
const SECURITY_SCHEMES: Json = {
  bearer: { type: 'http', scheme: 'bearer', description: 'The admin token (KENNEL_HOME/daemon/admin-token: the workspace owner, local:admin) or an API key kn_<id>_<secret>.' },
  apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'An API key kn_<id>_<secret>; its policies decide what it may do.' },
  consoleSession: { type: 'apiKey', in: 'cookie', name: 'kennel_console_PORT', description: 'A console session (POST /api/login; PORT is the admin port). Changes also need the x-csrf-token header from GET /api/session.' },
};
const ANY_CALLER = Object.keys(SECURITY_SCHEMES).map((name) => ({ [name]: [] }));

/**
 * Collects the routes of `app` as they are registered (a root onRoute hook sees those of every
 * plugin), for the OpenAPI document. Add it before the routes are registered.
 */
export function collectRoutes(app: FastifyInstance, include: (url: string) => boolean): RouteDoc[] {
  const routes: RouteDoc[] = [];
  app.addHook('onRoute', (r: RouteOptions) => {
    if (!include(r.url) || r.url.includes('*')) return;
    for (const method of [r.method].flat()) if (METHODS.has(method)) routes.push({ method, url: r.url, schema: r.schema, auth: r.config?.auth });
  });
  return routes;
}

/** `/v1/endpoints/:name` -> `/v1/endpoints/{name}` */
const openApiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** The resource a rule names, with route parameters as `{name}` placeholders. */
function resourcePattern(rule: RouteAuth): string {
  const params = new Proxy({}, { get: (_t, key) => (typeof key === 'string' ? `{${key}}` : undefined) });
  try {
    return rule.resource({ params, query: {}, body: undefined } as never);
  } catch {
    return '*';
  }
}

function parameters(schema: FastifySchema | undefined): Json[] {
  const out: Json[] = [];
  for (const [where, s] of [['path', schema?.params], ['query', schema?.querystring]] as const) {
    const obj = s as { properties?: Record<string, unknown>; required?: string[] } | undefined;
    for (const [name, prop] of Object.entries(obj?.properties ?? {})) out.push({ name, in: where, required: where === 'path' || (obj?.required ?? []).includes(name), schema: prop });
  }
  return out;
}

function operation(r: RouteDoc): Json {
  const op: Json = { operationId: `${r.method.toLowerCase()}${openApiPath(r.url).replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}` };
  const params = parameters(r.schema);
  if (params.length) op.parameters = params;
  if (r.schema?.body) op.requestBody = { required: true, content: { 'application/json': { schema: r.schema.body } } };
  const responses: Json = {};
  for (const [status, schema] of Object.entries((r.schema?.response ?? {}) as Json)) responses[status] = { description: `HTTP ${status}`, content: { 'application/json': { schema } } };
  if (!Object.keys(responses).length) responses.default = { description: 'The answer (JSON), or {"error": {"code", "message", "hint"}}' };
  if (r.auth === 'public') op.security = [];
  else {
    op.security = ANY_CALLER;
    responses['401'] = { description: 'No caller: send the admin token, an API key, or a console session' };
    if (typeof r.auth === 'object') {
      op['x-kennel-action'] = r.auth.action;
      op['x-kennel-resource'] = resourcePattern(r.auth);
      responses['403'] = { description: `The caller's policies do not allow ${r.auth.action}` };
    } else op['x-kennel-action'] = 'any signed-in caller';
  }
  op.responses = responses;
  return op;
}

/** An OpenAPI 3.1 document of the collected routes (their fastify schemas are JSON Schema). */
export function openApiDocument(routes: readonly RouteDoc[], info: { title: string; version: string; description?: string }): Json {
  const paths: Record<string, Json> = {};
  for (const r of [...routes].sort((a, b) => a.url.localeCompare(b.url))) {
    const path = openApiPath(r.url);
    (paths[path] ??= {})[r.method.toLowerCase()] = operation(r);
  }
  return { openapi: '3.1.0', info, servers: [{ url: '/' }], security: ANY_CALLER, components: { securitySchemes: SECURITY_SCHEMES }, paths };
}

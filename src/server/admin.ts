import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { consolePlugin, type LogBook, type MetricSample } from '../console/index.js';
import { Errors, KennelError } from '../core/index.js';
import { checkDrift, driftHistory, JobRunner } from '../housekeeping/index.js';
import { AdminAuth, actorOf, adminAuthPlugin, auditedAsync, callerOf, type Actor, type RouteAuth } from '../security/index.js';
import type { Workspace } from '../store/index.js';
import { CreateEndpointSchema, UpdateEndpointSchema, type ServingRuntime } from '../serving/index.js';
import { dataPlaneUrl } from './client.js';
import { sendError } from './errors.js';
import { applyHttpLimits, DEFAULT_HTTP_LIMITS, httpServerOptions, type HttpLimits } from './http-limits.js';
import { collectRoutes, openApiDocument } from './openapi.js';
import type { DaemonState } from './state.js';

export interface AdminOptions {
  log: Logger;
  token: string;
  /** where endpoint changes are audited (before they are made: a change that cannot be recorded is refused) */
  ws: Workspace;
  /** what GET /v1/status reports */
  status: () => Record<string, unknown>;
  /** POST /v1/shutdown: the daemon stops after answering */
  shutdown: () => void;
  /** the daemon's invocation metrics, in process (the console's endpoint charts) */
  metrics: () => Promise<MetricSample[]>;
  /** the daemon's recent log lines (the console's logs view) */
  logs?: LogBook;
  /** default DEFAULT_HTTP_LIMITS */
  httpLimits?: HttpLimits;
}

const jsonSchema = (schema: z.ZodType) => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Record<string, unknown>;
  return rest;
};

/** Reading what the console shows (the same action for /v1/ reads). */
const READ = 'console:Read';

const nameParams = { type: 'object', properties: { name: { type: 'string', maxLength: 63 } }, required: ['name'] } as const;
const waitQuery = { type: 'object', properties: { wait: { type: 'boolean', default: true } } } as const;

/** Access to one endpoint (`endpoint/<name>`), or to all of them. */
const onEndpoint = (action: string): RouteAuth => ({ action, resource: (req) => `endpoint/${(req.params as { name?: string }).name ?? ''}` });

/**
 * The admin API, one for the CLI, the console and any SDK: /v1/ (endpoint
 * create/update/describe/list/delete, daemon status and shutdown, the OpenAPI document) and the
 * console's pages at / with its JSON API under /api/. One auth hook (adminAuthPlugin) serves
 * every route: the caller is the admin token (local:admin, the workspace owner), an API key, or
 * a console session, and each route declares its action and resource in config.auth, as on the
 * data plane. Endpoint changes are audited by the service before they are made. Bodies are
 * checked against JSON schemas generated from the service's zod schemas, so the HTTP layer and
 * the service agree on what is valid; GET /v1/openapi.json describes every route from the same
 * declarations. Jobs started through the API run in the daemon's jobs service.
 */
export function buildAdmin(runtime: ServingRuntime, opts: AdminOptions): FastifyInstance {
  const limits = opts.httpLimits ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({ ...httpServerOptions(limits, opts.log), loggerInstance: opts.log as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), frameworkErrors: (err, req, reply) => sendError(err, req, reply) });
  applyHttpLimits(app, limits, opts.log);
  app.setErrorHandler((err, req, reply) => sendError(err, req, reply));
  app.setNotFoundHandler((req, reply) => sendError(Errors.NotFound(`There is no ${req.method} ${req.url.split('?')[0]} in the admin API.`), req, reply));

  const routes = collectRoutes(app, (url) => url === '/healthz' || url.startsWith('/v1/') || url.startsWith('/api/'));
  const auth = new AdminAuth(opts.ws, opts.token);
  const runner = new JobRunner(opts.ws, opts.log);
  app.register(adminAuthPlugin, { auth, ws: opts.ws });
  // stopping the daemon cancels its jobs (they keep their finished work)
  app.addHook('onClose', async () => runner.close());

  app.get('/healthz', { config: { auth: 'public' } }, async () => ({ ok: true }));

  // options read when the server starts: status() describes the running daemon only by then
  app.register(consolePlugin, () => ({ home: opts.status().home as string, runtime, auth, runner, status: opts.status, dataPlaneUrl: () => dataPlaneUrl(opts.status() as Pick<DaemonState, 'host' | 'port'>), metrics: opts.metrics, logs: opts.logs }));

  app.register(async (api) => {
    api.addHook('onResponse', async (req, reply) => {
      if (req.method !== 'GET') req.log.info({ method: req.method, url: req.url, status: reply.statusCode }, 'admin request');
    });

    api.get('/v1/openapi.json', { config: { auth: 'signed-in' } }, async () => openApiDocument(routes, { title: 'Kennel admin API', version: '1', description: 'The daemon\'s admin port: /v1/ and the console\'s /api/. Each operation names the action and resource its caller\'s policies must allow (x-kennel-action, x-kennel-resource); the admin token may do everything.' }));
    api.get('/v1/status', { config: { auth: { action: READ, resource: () => 'console/overview' } } }, async () => opts.status());
    api.post('/v1/shutdown', { config: { auth: { action: 'admin:StopDaemon', resource: () => 'settings/daemon', audit: true } } }, async (_req, reply) => {
      reply.code(202);
      setImmediate(opts.shutdown);
      return { stopping: true };
    });

    const actor = (req: FastifyRequest): Actor & { requestId: string } => ({ ...actorOf(callerOf(req)), requestId: req.id });
    api.get('/v1/endpoints', { config: { auth: { action: READ, resource: () => 'endpoint/*' } } }, async () => ({ endpoints: runtime.list() }));
    api.post<{ Body: { name?: string }; Querystring: { wait: boolean } }>('/v1/endpoints', { schema: { body: jsonSchema(CreateEndpointSchema), querystring: waitQuery }, config: { auth: { action: 'admin:CreateEndpoint', resource: (req) => `endpoint/${String((req.body as { name?: unknown } | undefined)?.name ?? '')}` } } }, async (req, reply) => {
      const d = await auditedAsync(opts.ws, actor(req), 'admin:CreateEndpoint', `endpoint/${req.body.name}`, () => runtime.create(req.body, { wait: req.query.wait }), { body: req.body });
      reply.code(d.unchanged ? 200 : 201);
      return d;
    });
    api.get<{ Params: { name: string } }>('/v1/endpoints/:name', { schema: { params: nameParams }, config: { auth: onEndpoint(READ) } }, async (req) => runtime.describe(req.params.name));
    api.patch<{ Params: { name: string }; Querystring: { wait: boolean } }>(
      '/v1/endpoints/:name',
      { schema: { params: nameParams, body: jsonSchema(UpdateEndpointSchema), querystring: waitQuery }, config: { auth: onEndpoint('admin:UpdateEndpoint') } },
      async (req) => auditedAsync(opts.ws, actor(req), 'admin:UpdateEndpoint', `endpoint/${req.params.name}`, () => runtime.update(req.params.name, req.body, { wait: req.query.wait }), { body: req.body }),
    );
    api.get<{ Params: { name: string } }>('/v1/endpoints/:name/shadow-report', { schema: { params: nameParams }, config: { auth: onEndpoint(READ) } }, async (req) => runtime.shadowReport(req.params.name));
    const driftQuery = { type: 'object', properties: { last: { type: 'integer', minimum: 2, maximum: 5000, default: 200 }, model: { type: 'string', minLength: 1, maxLength: 200 } }, additionalProperties: false } as const;
    // a check now, on the newest captures (stored with the scheduled ones: it is part of the history)
    api.get<{ Params: { name: string }; Querystring: { last: number; model?: string } }>('/v1/endpoints/:name/drift', { schema: { params: nameParams, querystring: driftQuery }, config: { auth: onEndpoint(READ) } }, async (req) => {
      runtime.flushCapture(req.params.name);
      return checkDrift(opts.ws, req.params.name, { last: req.query.last, model: req.query.model });
    });
    const historyQuery = { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 2000, default: 100 } }, additionalProperties: false } as const;
    api.get<{ Params: { name: string }; Querystring: { limit: number } }>('/v1/endpoints/:name/drift/history', { schema: { params: nameParams, querystring: historyQuery }, config: { auth: onEndpoint(READ) } }, async (req) => {
      runtime.describe(req.params.name); // 404 for an unknown endpoint
      return { endpoint: req.params.name, results: driftHistory(opts.ws, req.params.name, req.query.limit) };
    });
    api.post<{ Params: { name: string }; Querystring: { wait: boolean } }>(
      '/v1/endpoints/:name/promote-shadow',
      { schema: { params: nameParams, querystring: waitQuery }, config: { auth: onEndpoint('admin:UpdateEndpoint') } },
      async (req) => auditedAsync(opts.ws, actor(req), 'admin:UpdateEndpoint', `endpoint/${req.params.name}`, () => runtime.promoteShadow(req.params.name, { wait: req.query.wait }), { body: { promoteShadow: true } }),
    );
    api.delete<{ Params: { name: string } }>('/v1/endpoints/:name', { schema: { params: nameParams }, config: { auth: onEndpoint('admin:DeleteEndpoint') } }, async (req) => {
      await auditedAsync(opts.ws, actor(req), 'admin:DeleteEndpoint', `endpoint/${req.params.name}`, () => runtime.delete(req.params.name));
      return { deleted: req.params.name };
    });
  });
  return app;
}

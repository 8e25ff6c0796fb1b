import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { consolePlugin, type LogBook } from '../console/index.js';
import * as Errors from '../core/error-codes.js';
import { auditedAsync, sameSecret, type Actor } from '../security/index.js';
import type { Workspace } from '../store/index.js';
import { CreateEndpointSchema, UpdateEndpointSchema, type ServingRuntime } from '../serving/index.js';
import { dataPlaneUrl } from './client.js';
import { sendError } from './errors.js';
import { applyHttpLimits, DEFAULT_HTTP_LIMITS, httpServerOptions, type HttpLimits } from './http-limits.js';
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
  /** the daemon's Prometheus text (the console's endpoint charts) */
  metrics: () => Promise<string>;
  /** the daemon's recent log lines (the console's logs view) */
  logs?: LogBook;
  /** default DEFAULT_HTTP_LIMITS */
  httpLimits?: HttpLimits;
}

const jsonSchema = (schema: z.ZodType) => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Record<string, unknown>;
  return rest;
};

const nameParams = { type: 'object', properties: { name: { type: 'string', maxLength: 63 } }, required: ['name'] } as const;
const waitQuery = { type: 'object', properties: { wait: { type: 'boolean', default: true } } } as const;

/**
 * The admin API (bearer admin token): endpoint create/update/describe/list/delete (changes
 * audited as local:admin), daemon status and shutdown. Bodies are checked against JSON schemas generated from the service's zod
 * schemas, so the HTTP layer and the service agree on what is valid.
 *
 * The web console shares the port: its pages at / and its JSON API under /api/, with its own
 * sign-in (session cookie, or the token or an API key as a bearer token).
 */
export function buildAdmin(runtime: ServingRuntime, opts: AdminOptions): FastifyInstance {
  const limits = opts.httpLimits ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({ ...httpServerOptions(limits, opts.log), loggerInstance: opts.log as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), frameworkErrors: (err, req, reply) => sendError(err, req, reply) });
  applyHttpLimits(app, limits, opts.log);
  app.setErrorHandler((err, req, reply) => sendError(err, req, reply));
  app.setNotFoundHandler((req, reply) => sendError(Errors.NotFound(`There is no ${req.method} ${req.url.split('?')[0]} in the admin API.`), req, reply));

  app.get('/healthz', async () => ({ ok: true }));

  // options read when the server starts: status() describes the running daemon only by then
  app.register(consolePlugin, () => ({ home: opts.status().home as string, runtime, adminToken: opts.token, status: opts.status, dataPlaneUrl: () => dataPlaneUrl(opts.status() as Pick<DaemonState, 'host' | 'port'>), metrics: opts.metrics, logs: opts.logs }));

  app.register(async (api) => {
    api.addHook('onRequest', async (req) => {
      const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
      if (!m || !sameSecret(m[1]!, opts.token)) {
        throw Errors.Unauthorized('The admin token is missing or wrong.', 'The CLI reads it from KENNEL_HOME/daemon/admin-token; send it as Authorization: Bearer TOKEN.');
      }
    });
    api.addHook('onResponse', async (req, reply) => {
      if (req.method !== 'GET') req.log.info({ method: req.method, url: req.url, status: reply.statusCode }, 'admin request');
    });

    api.get('/v1/status', async () => opts.status());
    api.post('/v1/shutdown', async (_req, reply) => {
      reply.code(202);
      setImmediate(opts.shutdown);
      return { stopping: true };
    });

    // the admin token is the workspace owner's
    const owner = (req: FastifyRequest): Actor & { requestId: string } => ({ principal: 'local:admin', plane: 'admin', requestId: req.id });
    api.get('/v1/endpoints', async () => ({ endpoints: runtime.list() }));
    api.post<{ Body: { name?: string }; Querystring: { wait: boolean } }>('/v1/endpoints', { schema: { body: jsonSchema(CreateEndpointSchema), querystring: waitQuery } }, async (req, reply) => {
      const d = await auditedAsync(opts.ws, owner(req), 'admin:CreateEndpoint', `endpoint/${req.body.name}`, () => runtime.create(req.body, { wait: req.query.wait }), { body: req.body });
      reply.code(d.unchanged ? 200 : 201);
      return d;
    });
    api.get<{ Params: { name: string } }>('/v1/endpoints/:name', { schema: { params: nameParams } }, async (req) => runtime.describe(req.params.name));
    api.patch<{ Params: { name: string }; Querystring: { wait: boolean } }>(
      '/v1/endpoints/:name',
      { schema: { params: nameParams, body: jsonSchema(UpdateEndpointSchema), querystring: waitQuery } },
      async (req) => auditedAsync(opts.ws, owner(req), 'admin:UpdateEndpoint', `endpoint/${req.params.name}`, () => runtime.update(req.params.name, req.body, { wait: req.query.wait }), { body: req.body }),
    );
    api.delete<{ Params: { name: string } }>('/v1/endpoints/:name', { schema: { params: nameParams } }, async (req) => {
      await auditedAsync(opts.ws, owner(req), 'admin:DeleteEndpoint', `endpoint/${req.params.name}`, () => runtime.delete(req.params.name));
      return { deleted: req.params.name };
    });
  });
  return app;
}

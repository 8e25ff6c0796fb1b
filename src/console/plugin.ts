import type { FastifyPluginAsync } from 'fastify';
import { Errors, KennelError } from '../core/index.js';
import type { JobRunner } from '../housekeeping/index.js';
import { callerOf, checkHost, type AdminAuth } from '../security/index.js';
import type { ServingRuntime } from '../serving/index.js';
import { openWorkspace } from '../store/index.js';
import { dataRoutes } from './api-data.js';
import { deleteRoutes } from './api-delete.js';
import { endpointRoutes } from './api-endpoints.js';
import { functionRoutes } from './api-functions.js';
import { jobRoutes } from './api-jobs.js';
import { securityRoutes } from './api-security.js';
import { Assets, securityHeaders } from './assets.js';
import type { ConsoleContext } from './context.js';
import { LogBook } from './logs.js';
import { Streams } from './sse.js';
import { TrafficSampler, type MetricSample } from './traffic.js';

export interface ConsoleOptions {
  /** the workspace (KENNEL_HOME); the console opens its own connection to it */
  home: string;
  runtime: ServingRuntime;
  /** the daemon's jobs service: jobs started from the console run there */
  runner: JobRunner;
  /** the admin port's sign-in and access checks (adminAuthPlugin, registered by the admin API, applies them to every route) */
  auth: AdminAuth;
  /** the daemon's invocation metrics, in process (endpoint traffic charts) */
  metrics: () => Promise<MetricSample[]>;
  /** the data plane's base URL (shown with each endpoint) */
  dataPlaneUrl: () => string;
  status: () => Record<string, unknown>;
  /** the daemon's recent log lines; without it the logs view is empty */
  logs?: LogBook;
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Kennel console</title><p>The Kennel console is not built. Run <code>npm run build</code> in the Kennel folder, then reload.</p>`;

/**
 * The web console: the front end at / and /assets/, and its JSON API under /api/. Every route
 * declares its rule in config.auth, which the admin port's one auth hook (adminAuthPlugin)
 * applies: every API route but POST /api/login needs a session cookie or a bearer token (401
 * otherwise), and the caller's permission for its action (403). Jobs started here run in the
 * daemon's jobs service; open event streams are closed first so they never hold the shutdown.
 */
export const consolePlugin: FastifyPluginAsync<ConsoleOptions> = async (app, opts) => {
  const assets = new Assets();
  const ws = openWorkspace(opts.home);
  const streams = new Streams();
  const traffic = new TrafficSampler({ scrape: opts.metrics, endpoints: () => opts.runtime.list().map((e) => e.name) });
  const auth = opts.auth;
  const ctx: ConsoleContext = { ws, runtime: opts.runtime, auth, runner: opts.runner, traffic, streams, status: opts.status, dataPlaneUrl: opts.dataPlaneUrl, logs: opts.logs ?? new LogBook() };

  app.addHook('preClose', async () => streams.closeAll());
  app.addHook('onClose', async () => {
    traffic.close();
    ws.close();
  });

  app.addHook('onRequest', async (req) => checkHost(req));

  app.get('/', { config: { auth: 'public' } }, async (req, reply) => {
    if (!assets.send('index.html', req, reply, 'revalidate')) securityHeaders(reply).code(503).type('text/html; charset=utf-8').send(NOT_BUILT);
    return reply;
  });
  app.get<{ Params: { file: string } }>('/assets/:file', { config: { auth: 'public' } }, async (req, reply) => {
    if (req.params.file === 'index.html' || !assets.send(req.params.file, req, reply, 'immutable')) throw Errors.NotFound(`There is no console asset ${req.params.file.slice(0, 100)}.`, 'Reload the page: the console may have been rebuilt.');
    return reply;
  });

  app.register(async (api) => {
    api.addHook('onRequest', async (req, reply) => {
      reply.header('cache-control', 'no-store');
      securityHeaders(reply);
    });
    // answers refused by the admin port's auth hook (it runs before the hook above) get them too
    api.addHook('onSend', async (_req, reply, payload) => {
      if (!reply.hasHeader('cache-control')) securityHeaders(reply.header('cache-control', 'no-store'));
      return payload;
    });
    api.post<{ Body: { token: string } }>(
      '/api/login',
      { schema: { body: { type: 'object', properties: { token: { type: 'string', minLength: 1, maxLength: 512 } }, required: ['token'], additionalProperties: false } }, config: { auth: 'public' } },
      async (req, reply) => auth.login(req, reply, req.body.token),
    );

    api.get('/api/session', { config: { auth: 'signed-in' } }, async (req) => {
      const c = callerOf(req);
      return { principal: c.principal, keyId: c.keyId, owner: c.owner, csrf: auth.csrfOf(c) };
    });
    api.post('/api/logout', { config: { auth: 'signed-in' } }, async (req, reply) => {
      auth.logout(req, reply, callerOf(req));
      return { signedOut: true };
    });

    for (const routes of [dataRoutes, jobRoutes, endpointRoutes, functionRoutes, securityRoutes, deleteRoutes]) routes(api, ctx);
    // unknown API paths: 401 first like every other API route, then 404
    api.all('/api/*', { config: { auth: 'signed-in' } }, async (req) => {
      throw Errors.NotFound(`There is no ${req.method} ${req.url.split('?')[0]!.slice(0, 200)} in the console API.`);
    });
  });
};

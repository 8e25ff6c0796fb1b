import type { FastifyPluginAsync } from 'fastify';
import { KennelError } from '../core/errors.js';
import type { ServingRuntime } from '../serving/index.js';
import { openWorkspace } from '../store/index.js';
import { dataRoutes } from './api-data.js';
import { deleteRoutes } from './api-delete.js';
import { endpointRoutes } from './api-endpoints.js';
import { functionRoutes } from './api-functions.js';
import { jobRoutes } from './api-jobs.js';
import { securityRoutes } from './api-security.js';
import { Assets, securityHeaders } from './assets.js';
import { ConsoleAuth, checkHost } from './auth.js';
import type { ConsoleContext } from './context.js';
import { LogBook } from './logs.js';
import { JobRunner } from './runner.js';
import { Streams } from './sse.js';
import { TrafficSampler } from './traffic.js';

export interface ConsoleOptions {
  /** the workspace (KENNEL_HOME); the console opens its own connection to it */
  home: string;
  runtime: ServingRuntime;
  /** the daemon's admin token: signs in as the workspace owner */
  adminToken: string;
  /** the daemon's Prometheus metrics text (endpoint traffic charts) */
  metrics: () => Promise<string>;
  /** the data plane's base URL (shown with each endpoint) */
  dataPlaneUrl: () => string;
  status: () => Record<string, unknown>;
  /** the daemon's recent log lines; without it the logs view is empty */
  logs?: LogBook;
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Kennel console</title><p>The Kennel console is not built. Run <code>npm run build</code> in the Kennel folder, then reload.</p>`;

/**
 * The web console: the front end at / and /assets/, and its JSON API under /api/. Every API
 * route but POST /api/login needs a session cookie or a bearer token (401 otherwise), and checks
 * the caller's permission for its action (403). Jobs started here run in the daemon and are
 * cancelled when it stops; open event streams are closed first so they never hold the shutdown.
 */
export const consolePlugin: FastifyPluginAsync<ConsoleOptions> = async (app, opts) => {
  const assets = new Assets();
  const ws = openWorkspace(opts.home);
  const runner = new JobRunner(ws, app.log);
  const streams = new Streams();
  const traffic = new TrafficSampler({ scrape: opts.metrics, endpoints: () => opts.runtime.list().map((e) => e.name) });
  const auth = new ConsoleAuth(ws, opts.adminToken);
  const ctx: ConsoleContext = { ws, runtime: opts.runtime, auth, runner, traffic, streams, status: opts.status, dataPlaneUrl: opts.dataPlaneUrl, logs: opts.logs ?? new LogBook() };

  app.addHook('preClose', async () => streams.closeAll());
  app.addHook('onClose', async () => {
    traffic.close();
    await runner.close();
    ws.close();
  });

  app.addHook('onRequest', async (req) => checkHost(req));

  app.get('/', async (req, reply) => {
    if (!assets.send('index.html', req, reply, 'revalidate')) securityHeaders(reply).code(503).type('text/html; charset=utf-8').send(NOT_BUILT);
    return reply;
  });
  app.get<{ Params: { file: string } }>('/assets/:file', async (req, reply) => {
    if (req.params.file === 'index.html' || !assets.send(req.params.file, req, reply, 'immutable')) throw new KennelError(`There is no console asset ${req.params.file.slice(0, 100)}.`, 'Reload the page: the console may have been rebuilt.', 404, 'not_found');
    return reply;
  });

  app.register(async (api) => {
    api.addHook('onRequest', async (req, reply) => {
      reply.header('cache-control', 'no-store');
      securityHeaders(reply);
    });
    api.post<{ Body: { token: string } }>(
      '/api/login',
      { schema: { body: { type: 'object', properties: { token: { type: 'string', minLength: 1, maxLength: 512 } }, required: ['token'], additionalProperties: false } } },
      async (req, reply) => auth.login(req, reply, req.body.token),
    );

    api.register(async (secured) => {
      secured.addHook('onRequest', async (req) => {
        req.consoleCaller = auth.authenticate(req);
      });
      secured.addHook('preHandler', async (req) => {
        const access = req.routeOptions.config.console;
        if (!access) throw new KennelError(`There is no ${req.method} ${req.url.split('?')[0]!.slice(0, 200)} in the console API.`, undefined, 404, 'not_found');
        if (access !== 'signed-in') auth.assertAllowed(req.consoleCaller!, access.action, access.resource(req), req);
      });

      secured.get('/api/session', { config: { console: 'signed-in' } }, async (req) => {
        const c = req.consoleCaller!;
        return { principal: c.principal, keyId: c.keyId, owner: c.owner, csrf: auth.csrfOf(c) };
      });
      secured.post('/api/logout', { config: { console: 'signed-in' } }, async (req, reply) => {
        auth.logout(req, reply, req.consoleCaller!);
        return { signedOut: true };
      });

      for (const routes of [dataRoutes, jobRoutes, endpointRoutes, functionRoutes, securityRoutes, deleteRoutes]) routes(secured, ctx);
      // unknown API paths: 401 first like every other API route, then 404 (from the preHandler)
      secured.all('/api/*', async () => undefined);
    });
  });
};

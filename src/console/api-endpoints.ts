import type { FastifyRequest } from 'fastify';
import { Errors, KennelError } from '../core/index.js';
import { fetchImage } from '../net/index.js';
import { actorOf, auditedAsync, callerOf, type Caller } from '../security/index.js';
import { driftHistory } from '../housekeeping/index.js';
import { DEFAULT_MAX_IMAGE_BYTES, IMAGE_TYPES, captureCounts, checkImage } from '../serving/index.js';
import type { DriftView, EndpointLogs } from './api-types.js';
import { READ, nameParams, on, onAll, stream, type ConsoleContext, type RouteModule } from './context.js';

/** Predictions shown on the Try it page (kennel invoke by the owner may ask for others with ?topK=). */
const TOP_K = 5;
const topKQuery = { type: 'object', properties: { topK: { type: 'integer', minimum: 1, maximum: 1000 }, explain: { type: 'boolean' } }, additionalProperties: false } as const;

/** Runs an endpoint change, recorded in the audit log before it is made (refused when it cannot be) and with its outcome. */
function auditedChange<T>(ctx: ConsoleContext, caller: Caller, req: FastifyRequest, action: string, resource: string, change: () => Promise<T>): Promise<T> {
  return auditedAsync(ctx.ws, { ...actorOf(caller), requestId: req.id }, action, resource, change, { console: true, method: req.method, route: req.routeOptions.url, body: req.body });
}

function describe(ctx: ConsoleContext, name: string) {
  const endpoint = ctx.runtime.describe(name);
  return { endpoint, invokeUrl: ctx.dataPlaneUrl() + endpoint.path, traffic: ctx.traffic.read(name) };
}

/** Recent log lines of the endpoint's replicas, and the daemon's when the caller may read them. */
function logsOf(ctx: ConsoleContext, req: FastifyRequest, name: string): EndpointLogs {
  const endpoint = ctx.runtime.describe(name);
  const daemon = ctx.auth.allows(ctx.auth.authenticate(req), READ, DAEMON_LOGS) ? ctx.logs.daemonLines() : null;
  return { daemon, replicas: endpoint.replicas.map((r) => ({ id: r.id, state: r.state, lines: ctx.logs.linesOf(r.id) })), keep: ctx.logs.keep };
}

/** The daemon's log covers every endpoint and job, so it needs a grant of its own. */
const DAEMON_LOGS = 'daemon/logs';

/**
 * Endpoints: list and detail with live replicas, events and traffic; create, update (a rolling
 * update when a variant's model changes; weights; scaling), delete; and Try it, which classifies
 * an uploaded image or an image URL (fetched by the SSRF-safe fetcher) through the endpoint.
 */
export const endpointRoutes: RouteModule = (api, ctx) => {
  api.addContentTypeParser([...IMAGE_TYPES, 'application/octet-stream'], { parseAs: 'buffer', bodyLimit: DEFAULT_MAX_IMAGE_BYTES }, (_req, body, done) => done(null, body));

  api.get('/api/endpoints', { config: { auth: onAll(READ, 'endpoint') } }, async () => ({ endpoints: ctx.runtime.list() }));
  api.get('/api/endpoints/stream', { config: { auth: onAll(READ, 'endpoint') } }, async (req, reply) => stream(ctx, req, reply, 2000, () => ({ endpoints: ctx.runtime.list() })));

  api.post<{ Body: { name?: unknown } }>('/api/endpoints', { config: { auth: { action: 'admin:CreateEndpoint', resource: (req) => `endpoint/${String((req.body as { name?: unknown } | null)?.name ?? '')}` } } }, async (req, reply) => {
    const name = String(req.body?.name ?? '');
    const created = await auditedChange(ctx, callerOf(req), req, 'admin:CreateEndpoint', `endpoint/${name}`, () => ctx.runtime.create(req.body, { wait: false }));
    reply.code(201);
    return created;
  });

  api.get<{ Params: { name: string } }>('/api/endpoints/:name', { schema: { params: nameParams }, config: { auth: on(READ, 'endpoint') } }, async (req) => describe(ctx, req.params.name));
  api.get<{ Params: { name: string } }>('/api/endpoints/:name/stream', { schema: { params: nameParams }, config: { auth: on(READ, 'endpoint') } }, async (req, reply) => {
    ctx.runtime.describe(req.params.name); // 404 before the stream starts
    stream(ctx, req, reply, 2000, () => describe(ctx, req.params.name));
  });

  api.get<{ Params: { name: string } }>('/api/endpoints/:name/logs', { schema: { params: nameParams }, config: { auth: on(READ, 'endpoint') } }, async (req) => logsOf(ctx, req, req.params.name));
  // the shadow's comparison with the primary, live (kennel endpoints shadow-report), and its promotion
  api.get<{ Params: { name: string } }>('/api/endpoints/:name/shadow/stream', { schema: { params: nameParams }, config: { auth: on(READ, 'endpoint') } }, async (req, reply) => {
    ctx.runtime.describe(req.params.name); // 404 before the stream starts
    stream(ctx, req, reply, 2000, () => ctx.runtime.shadowReport(req.params.name));
  });
  api.post<{ Params: { name: string } }>('/api/endpoints/:name/promote-shadow', { schema: { params: nameParams }, config: { auth: on('admin:UpdateEndpoint', 'endpoint') } }, async (req) =>
    auditedChange(ctx, callerOf(req), req, 'admin:UpdateEndpoint', `endpoint/${req.params.name}`, () => ctx.runtime.promoteShadow(req.params.name, { wait: false })),
  );

  // data capture and the stored drift checks (kennel endpoints drift; the daemon checks on a schedule)
  api.get<{ Params: { name: string } }>('/api/endpoints/:name/drift', { schema: { params: nameParams }, config: { auth: on(READ, 'endpoint') } }, async (req): Promise<DriftView> => {
    const { spec } = ctx.runtime.describe(req.params.name);
    return { capture: spec.capture, captures: captureCounts(ctx.ws, req.params.name).rows, results: driftHistory(ctx.ws, req.params.name, 200) };
  });

  api.get<{ Params: { name: string } }>('/api/endpoints/:name/logs/stream', { schema: { params: nameParams }, config: { auth: on(READ, 'endpoint') } }, async (req, reply) => {
    ctx.runtime.describe(req.params.name); // 404 before the stream starts
    stream(ctx, req, reply, 1000, () => logsOf(ctx, req, req.params.name));
  });

  api.patch<{ Params: { name: string } }>('/api/endpoints/:name', { schema: { params: nameParams }, config: { auth: on('admin:UpdateEndpoint', 'endpoint') } }, async (req) =>
    auditedChange(ctx, callerOf(req), req, 'admin:UpdateEndpoint', `endpoint/${req.params.name}`, () => ctx.runtime.update(req.params.name, req.body, { wait: false })),
  );

  api.delete<{ Params: { name: string } }>('/api/endpoints/:name', { schema: { params: nameParams }, config: { auth: on('admin:DeleteEndpoint', 'endpoint') } }, async (req) => {
    await auditedChange(ctx, callerOf(req), req, 'admin:DeleteEndpoint', `endpoint/${req.params.name}`, () => ctx.runtime.delete(req.params.name));
    return { deleted: req.params.name };
  });

  api.post<{ Params: { name: string }; Body: Buffer | { url?: unknown }; Querystring: { topK?: number; explain?: boolean } }>(
    '/api/endpoints/:name/invocations',
    { bodyLimit: DEFAULT_MAX_IMAGE_BYTES, schema: { params: nameParams, querystring: topKQuery }, config: { auth: { ...on('endpoint:Invoke', 'endpoint'), audit: true } } },
    async (req) => {
      req.auditDetail = { tryIt: true };
      const target = ctx.runtime.router.route(req.params.name);
      let image: Uint8Array;
      let source: { url: string; contentType: string; bytes: number; fetchMs: number } | undefined;
      if (Buffer.isBuffer(req.body)) {
        image = checkImage(req.body);
      } else {
        const url = req.body?.url;
        if (typeof url !== 'string' || url.length === 0 || url.length > 2048) throw Errors.InvalidRequest('Send an image, or JSON {"url": "https://..."}.', 'Drop a photo on the page, or paste the address of an image.');
        const t = performance.now();
        const fetched = await fetchImage(url);
        image = checkImage(fetched.bytes);
        source = { url: fetched.url, contentType: fetched.contentType, bytes: fetched.bytes.length, fetchMs: performance.now() - t };
      }
      const t = performance.now();
      const result = await ctx.runtime.router.invoke(target, image, { topK: req.query.topK ?? TOP_K, requestId: req.id, explain: req.query.explain ?? false });
      const latencyMs = performance.now() - t;
      req.auditDetail = { tryIt: true, url: source?.url };
      return { predictions: result.predictions, model: result.model, variant: result.variant, replica: result.replica, latencyMs, source, explanation: result.explanation };
    },
  );
};

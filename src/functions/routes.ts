import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Errors, KennelError } from '../core/index.js';
import { ThrottledError } from '../security/index.js';
import type { FunctionGateway, Invocation } from './gateway.js';
import { HTTP_API_PREFIX } from './store.js';
import { PARSED_BODY } from './types.js';

export interface FunctionsRoutesOptions {
  gateway: FunctionGateway;
  /** largest request body, default 14 MiB (a 10 MiB image in base64) */
  bodyLimit?: number;
}

// never passed on to handlers
const CREDENTIAL_HEADERS = new Set(['authorization', 'x-api-key', 'cookie', 'proxy-authorization']);
const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/avif', 'application/octet-stream'];

/** A handler's error answer as one line (its JSON error message, else the start of the body), short enough that the audit log keeps it. */
function errorOfBody(body: string, base64: boolean): string {
  const text = base64 ? '' : body;
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; errorMessage?: unknown };
    const m = typeof j.error === 'object' ? j.error?.message : (j.error ?? j.message ?? j.errorMessage);
    if (typeof m === 'string') return m.slice(0, 240);
  } catch {
    /* not JSON */
  }
  return text.slice(0, 240) || 'The function answered with an error and no message.';
}

function send(reply: FastifyReply, req: FastifyRequest, inv: Invocation): FastifyReply {
  const { response } = inv;
  req.kennelAudit = { function: inv.function, coldStart: inv.coldStart, durationMs: Math.round(inv.durationMs * 100) / 100, statusCode: response.statusCode, ...(response.statusCode >= 400 ? { error: errorOfBody(response.body, response.isBase64Encoded === true) } : {}) };
  reply.code(response.statusCode).headers(response.headers).header('x-kennel-cold-start', String(inv.coldStart)).header('x-request-id', inv.requestId);
  return reply.send(response.isBase64Encoded ? Buffer.from(response.body, 'base64') : response.body);
}

async function invoke(gateway: FunctionGateway, name: string, event: unknown, req: FastifyRequest, reply: FastifyReply) {
  try {
    return send(reply, req, await gateway.invoke(name, event, { requestId: req.id }));
  } catch (e) {
    if (e instanceof ThrottledError) reply.header('retry-after', String(e.retryAfterSeconds));
    throw e;
  }
}

/**
 * The public function routes; register after securityPlugin so its hooks apply:
 * - POST /functions/NAME/invoke: the JSON body is the event; the handler's proxy response
 *   becomes the HTTP response (function:Invoke on function/NAME);
 * - POST /v1/...: HTTP API routes mapped to functions (--route); the handler gets an HTTP API
 *   (payload 2.0) event, and the body may also be raw image bytes.
 */
export const functionsRoutes: FastifyPluginAsync<FunctionsRoutesOptions> = async (app, { gateway, bodyLimit = 14 * 1024 * 1024 }) => {
  // the daemon's data plane may parse image bodies already (fastify refuses a second parser)
  const missing = IMAGE_TYPES.filter((t) => !app.hasContentTypeParser(t));
  if (missing.length) app.addContentTypeParser(missing, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.post<{ Params: { name: string } }>(
    '/functions/:name/invoke',
    { bodyLimit, config: { auth: { action: 'function:Invoke', resource: (req) => `function/${(req.params as { name: string }).name}` } } },
    async (req, reply) => {
      if (Buffer.isBuffer(req.body)) throw Errors.UnsupportedMediaType('The invoke body must be the JSON event.', 'Send Content-Type: application/json, e.g. {"url": "https://..."}; raw images go to an HTTP API route (--route).');
      return invoke(gateway, req.params.name, req.body ?? {}, req, reply);
    },
  );

  // looked up once per request: by the access check, then by the handler
  const routed = new WeakMap<FastifyRequest, string>();
  const routeName = (req: FastifyRequest) => {
    const known = routed.get(req);
    if (known) return known;
    const path = req.url.split('?')[0]!;
    const name = gateway.functionForRoute(path);
    if (!name) throw Errors.NotFound(`No function is mapped to ${path.slice(0, 200)}.`, 'Map one with kennel functions update NAME --route /v1/...');
    routed.set(req, name);
    return name;
  };

  app.post(`${HTTP_API_PREFIX}*`, { bodyLimit, config: { auth: { action: 'function:Invoke', resource: (req) => `function/${routeName(req)}` } } }, async (req, reply) => {
    const name = routeName(req);
    const [rawPath, rawQueryString = ''] = req.url.split('?') as [string, string?];
    const raw = Buffer.isBuffer(req.body);
    let body: string | undefined;
    const event = {
      version: '2.0',
      routeKey: `POST ${rawPath}`,
      rawPath,
      rawQueryString,
      headers: Object.fromEntries(Object.entries(req.headers).filter(([k, v]) => !CREDENTIAL_HEADERS.has(k) && typeof v === 'string')),
      // encoded only when a handler reads it (the built-in one uses PARSED_BODY instead)
      get body(): string {
        return (body ??= raw ? (req.body as Buffer).toString('base64') : req.body === undefined ? '' : JSON.stringify(req.body));
      },
      isBase64Encoded: raw,
      requestContext: { requestId: req.id, http: { method: 'POST', path: rawPath, sourceIp: req.ip }, authorizer: { principal: req.kennelAuth?.principal } },
      [PARSED_BODY]: req.body,
    };
    return invoke(gateway, name, event, req, reply);
  });
};

import { randomUUID } from 'node:crypto';
import { parse as parseQuery } from 'node:querystring';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { asyncRequestHeaders, checkAccept, FAILURE_LOCATION_HEADER, INVOKED_VARIANT_HEADER, lambdaRoutes, OUTPUT_LOCATION_HEADER, targetVariant } from '../aws/index.js';
import { Errors, KennelError } from '../core/index.js';
import { functionsRoutes, type FunctionGateway } from '../functions/index.js';
import { fetchImage } from '../net/index.js';
import { securityPlugin } from '../security/index.js';
import { DEFAULT_MAX_IMAGE_BYTES, IMAGE_TYPES, checkImage, decodeBase64Image, type AsyncInference, type ServingRuntime } from '../serving/index.js';
import type { Workspace } from '../store/index.js';
import { sendError } from './errors.js';
import { applyHttpLimits, DEFAULT_HTTP_LIMITS, httpServerOptions, type HttpLimits } from './http-limits.js';
import type { ServingMetrics } from './metrics.js';
import { oipRoutes } from './oip.js';

export interface DataPlaneOptions {
  log: Logger;
  /** keys, policies, the audit log and function definitions */
  ws: Workspace;
  /** runs the functions behind POST /functions/NAME/invoke and the /v1/... routes */
  gateway: FunctionGateway;
  maxImageBytes?: number;
  /** default DEFAULT_HTTP_LIMITS */
  httpLimits?: HttpLimits;
  /** runs POST /endpoints/NAME/async-invocations (InvokeEndpointAsync) */
  asyncInference: AsyncInference;
}

/**
 * Raw-body content types: the image types, octet-stream, and what SageMaker clients send
 * (application/x-image, image/jpg). The bytes are sniffed either way; the label is never trusted.
 */
const RAW_TYPES = [...IMAGE_TYPES, 'application/octet-stream', 'application/x-image', 'image/jpg'];

/** Request ids from clients are kept when they are short and plain, so they can be logged and echoed safely. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

declare module 'fastify' {
  interface FastifyRequest {
    /** set once the endpoint is known to exist: labels for metrics */
    invocation?: { endpoint: string; variant: string };
  }
}

interface InvokeRoute {
  Params: { name: string };
  Querystring: { topK: number; explain?: number | string };
  Body: Buffer | { image?: string; url?: string };
}

/**
 * The data plane:
 * - POST /endpoints/NAME/invocations with raw image bytes, or JSON {"image": base64} or {"url":
 *   "https://..."} (endpoint:Invoke on endpoint/NAME). It is also SageMaker Runtime's
 *   InvokeEndpoint: SigV4-signed requests from boto3 and the AWS SDKs, X-Amzn-SageMaker-Target-
 *   Variant, Accept, X-Amzn-Invoked-Production-Variant, and AWS's error shapes for them;
 * - the function routes: POST /functions/NAME/invoke, the /v1/... HTTP API mappings, and Lambda's
 *   Invoke API, POST /2015-03-31/functions/NAME/invocations (function:Invoke);
 * - POST /endpoints/NAME/async-invocations (SageMaker's InvokeEndpointAsync: the input is a
 *   location, X-Amzn-SageMaker-InputLocation; 202 with InferenceId and OutputLocation), and GET
 *   /endpoints/NAME/async-invocations/ID[/output] for its status and answer (endpoint:Invoke);
 * - the Open Inference Protocol (KServe V2 REST, src/server/oip.ts): GET /v2/health/live|ready,
 *   GET /v2/models/NAME[/versions/V][/ready], POST /v2/models/NAME[/versions/V]/infer
 *   (endpoint:Invoke, like the invocations route);
 * - GET /metrics (Prometheus) and GET /healthz, both public.
 * Every route declares its access rule; the security plugin authenticates the key (API key or
 * SigV4), rate-limits, authorizes and audits. Every error is a JSON body {"error": {code,
 * message, hint}} with a 4xx/5xx status (AWS's shape for AWS callers); overload answers 503
 * with Retry-After.
 */
export function buildDataPlane(runtime: ServingRuntime, metrics: ServingMetrics, opts: DataPlaneOptions): FastifyInstance {
  const maxImageBytes = opts.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  // a base64 body is 4/3 of the image, plus JSON framing
  const maxJsonBytes = Math.ceil((maxImageBytes * 4) / 3) + 64 * 1024;
  const limits = opts.httpLimits ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({
    ...httpServerOptions(limits, opts.log),
    loggerInstance: opts.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    frameworkErrors: (err, req, reply) => sendError(err, req, reply),
    bodyLimit: maxJsonBytes,
    requestIdHeader: false,
    // no type coercion: {"image": 42} must be refused, not turned into the string "42";
    // whole numbers in the query string are parsed here instead, so ?topK=3 still validates
    ajv: { customOptions: { coerceTypes: false } },
    routerOptions: { querystringParser: (q) => Object.fromEntries(Object.entries(parseQuery(q)).map(([k, v]) => [k, typeof v === 'string' && /^-?\d{1,9}$/.test(v) ? Number(v) : v])) },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
  });
  applyHttpLimits(app, limits, opts.log);

  // only images and JSON: fastify's default text/plain parser would let any text through
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(RAW_TYPES, { parseAs: 'buffer', bodyLimit: maxImageBytes }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err, req, reply) => sendError(err, req, reply));
  app.setNotFoundHandler((req, reply) => sendError(Errors.NotFound(`There is no ${req.method} ${req.url.split('?')[0]} here.`, 'Invoke an endpoint with POST /endpoints/NAME/invocations.'), req, reply));

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  // not encapsulated: its hooks apply to every route below, and a route without config.auth is denied
  app.register(securityPlugin, { ws: opts.ws, plane: 'data', registry: metrics.registry });
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const inv = req.invocation ?? knownEndpoint(runtime, req);
    if (!inv) return;
    const seconds = reply.elapsedTime / 1000;
    metrics.invocation(inv.endpoint, inv.variant, reply.statusCode, seconds, reply.getHeader('x-kennel-error') as string | undefined);
    // answered requests at debug level (one line each would cost the daemon CPU at full load); refused ones at info
    req.log[reply.statusCode < 400 ? 'debug' : 'info']({ endpoint: inv.endpoint, variant: inv.variant, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'invocation');
  });

  app.post<InvokeRoute>(
    '/endpoints/:name/invocations',
    {
      config: { awsApi: 'sagemaker', auth: { action: 'endpoint:Invoke', resource: (req) => `endpoint/${(req.params as { name: string }).name}`, awsService: 'sagemaker' } },
      schema: {
        params: { type: 'object', properties: { name: { type: 'string', maxLength: 63 } }, required: ['name'] },
        querystring: { type: 'object', properties: { topK: { type: 'integer', minimum: 1, maximum: 1000, default: 5 }, explain: { enum: [0, 1, 'true', 'false'] } } },
        body: {
          content: {
            'application/json': { schema: { type: 'object', properties: { image: { type: 'string' }, url: { type: 'string' } } } },
            ...Object.fromEntries(RAW_TYPES.map((t) => [t, { schema: {} }])),
          },
        },
      },
    },
    async (req, reply) => {
      checkAccept(req);
      const target = runtime.router.route(req.params.name, targetVariant(req));
      req.invocation = { endpoint: target.endpoint, variant: target.variant.name };
      const image = await imageOf(req.body, maxImageBytes);
      const result = await runtime.router.invoke(target, image, { topK: req.query.topK, requestId: req.id, explain: wantsExplanation(req) });
      reply.header('x-kennel-variant', result.variant).header('x-kennel-replica', result.replica).header(INVOKED_VARIANT_HEADER, result.variant).header('x-amzn-requestid', req.id);
      return { predictions: result.predictions, model: result.model, variant: result.variant, ...(result.explanation ? { explanation: result.explanation } : {}) };
    },
  );

  const invokeAuth = { action: 'endpoint:Invoke', resource: (req: FastifyRequest) => `endpoint/${(req.params as { name: string }).name}`, awsService: 'sagemaker' as const };
  const nameParams = { type: 'object', properties: { name: { type: 'string', maxLength: 63 } }, required: ['name'] } as const;
  // SageMaker Runtime's InvokeEndpointAsync: the input is a location, the answer goes to one
  app.post<{ Params: { name: string }; Querystring: { topK: number } }>(
    '/endpoints/:name/async-invocations',
    { config: { awsApi: 'sagemaker', auth: invokeAuth }, schema: { params: nameParams, querystring: { type: 'object', properties: { topK: { type: 'integer', minimum: 1, maximum: 1000, default: 5 } } } } },
    async (req, reply) => {
      checkAccept(req);
      const { inputLocation, ...headers } = asyncRequestHeaders(req);
      const accepted = await opts.asyncInference.accept(req.params.name, inputLocation, { topK: req.query.topK, requestId: req.id, ...headers });
      req.kennelAudit = { ...req.kennelAudit, inferenceId: accepted.InferenceId };
      reply.code(202).header(OUTPUT_LOCATION_HEADER, accepted.OutputLocation).header(FAILURE_LOCATION_HEADER, accepted.FailureLocation).header('x-amzn-requestid', req.id);
      return accepted;
    },
  );
  const requestParams = { type: 'object', properties: { name: { type: 'string', maxLength: 63 }, id: { type: 'string', maxLength: 64 } }, required: ['name', 'id'] } as const;
  const requestOf = async (p: { name: string; id: string }) => {
    const r = await opts.asyncInference.store.status(p.name, p.id);
    if (!r) throw Errors.NotFound(`Endpoint ${p.name} has no asynchronous request ${p.id}.`, `kennel endpoints requests ${p.name} lists them.`);
    return r;
  };
  const answerOf = async (sha: string): Promise<unknown> => JSON.parse(Buffer.from(await opts.ws.artifacts.get(sha)).toString('utf8'));
  // a request's status, with its answer once completed (the same key rules as the invocation)
  app.get<{ Params: { name: string; id: string } }>('/endpoints/:name/async-invocations/:id', { config: { auth: invokeAuth }, schema: { params: requestParams } }, async (req) => {
    const r = await requestOf(req.params);
    return { ...r, ...(r.output ? { answer: await answerOf(r.output) } : {}) };
  });
  // what OutputLocation names: the answer itself
  app.get<{ Params: { name: string; id: string } }>('/endpoints/:name/async-invocations/:id/output', { config: { auth: invokeAuth }, schema: { params: requestParams } }, async (req) => {
    const r = await requestOf(req.params);
    if (!r.output) throw Errors.Conflict(`Request ${r.id} is ${r.status}${r.lastError ? `: ${r.lastError}` : ''}; it has no answer${r.status === 'failed' ? '' : ' yet'}.`, r.status === 'failed' ? `kennel endpoints requests ${r.endpoint} --replay ${r.id} queues it again.` : 'Ask again in a moment.');
    return answerOf(r.output);
  });

  app.get('/metrics', { config: { auth: 'public' } }, async (_req, reply) => {
    reply.type(metrics.contentType());
    return metrics.text();
  });
  app.get('/healthz', { config: { auth: 'public' } }, async () => ({ ok: true }));
  // tensors as JSON numbers take several times the bytes of a base64 image
  app.register(oipRoutes, { runtime, maxImageBytes, bodyLimit: 4 * maxJsonBytes });
  app.register(functionsRoutes, { gateway: opts.gateway, bodyLimit: maxJsonBytes });
  app.register(lambdaRoutes, { ws: opts.ws, gateway: opts.gateway, bodyLimit: maxJsonBytes });
  return app;
}

/**
 * Whether an invocation asks for an explanation: `?explain=1` (or `true`), or SageMaker Clarify's
 * header `X-Amzn-SageMaker-Enable-Explanations`, a JMESPath expression of which Kennel reads the
 * constants: anything but `false` (with or without backticks), `0` or empty turns it on.
 */
function wantsExplanation(req: FastifyRequest<InvokeRoute>): boolean {
  const q = req.query.explain;
  if (q !== undefined) return q === 1 || q === 'true';
  const h = req.headers['x-amzn-sagemaker-enable-explanations'];
  if (typeof h !== 'string') return false;
  const v = h.trim().replace(/^`(.*)`$/, '$1').trim().toLowerCase();
  return v !== '' && v !== 'false' && v !== '0';
}

/**
 * The image of an invocation: the raw body, or from JSON its "image" (base64) or its "url" (the
 * seeds' inference code takes {"url"}), fetched with Kennel's SSRF protections: https, public
 * addresses only.
 */
async function imageOf(body: InvokeRoute['Body'], maxImageBytes: number): Promise<Uint8Array> {
  if (Buffer.isBuffer(body)) return checkImage(body, maxImageBytes);
  const { image, url } = body;
  if ((image === undefined) === (url === undefined)) {
    throw Errors.InvalidRequest(image === undefined ? 'The JSON body has neither an "image" nor a "url" string.' : 'The JSON body has both "image" and "url".', 'Send {"image": "<base64>"} or {"url": "https://..."}.');
  }
  if (image !== undefined) return decodeBase64Image(image, maxImageBytes);
  // fetchImage enforces the size limit and that the bytes are an image
  return (await fetchImage(url!, { maxBytes: maxImageBytes })).bytes;
}

/** Metric labels for requests refused before the handler ran (bad content type, body too large): only for endpoints that exist. */
function knownEndpoint(runtime: ServingRuntime, req: FastifyRequest): { endpoint: string; variant: string } | undefined {
  const m = /^\/endpoints\/([^/?]+)\/invocations/.exec(req.url);
  if (!m) return undefined;
  return runtime.router.has(m[1]!) ? { endpoint: m[1]!, variant: '' } : undefined;
}

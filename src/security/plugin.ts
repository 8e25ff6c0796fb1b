import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Registry } from 'prom-client';
import { Errors, KennelError } from '../core/index.js';
import type { Workspace } from '../store/index.js';
import { appendAudit, AuditUnavailableError } from './audit-log.js';
import { Authorizer, presentedKey, type AuthContext } from './authorizer.js';
import { ThrottledError } from './errors.js';
import { parseKeyId } from './principals.js';
import { RateLimiter } from './ratelimit.js';
import { getSettings, type SecuritySettings } from './settings.js';
import { claimedAccessKeyId, EMPTY_SHA256, isSigV4 } from './sigv4.js';

/** What a route requires: the action, and the resource the request is about. */
export interface RouteAuth {
  action: string;
  resource: (req: FastifyRequest) => string;
  /** an AWS API route: SigV4 signatures must be scoped to this service (default: any Kennel serves) */
  awsService?: 'sagemaker' | 'lambda';
  /** admin port: the auth hook writes one audit entry for the request (changes that no audited service records) */
  audit?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Required on every route of a secured server (the data plane's securityPlugin, the admin
     * port's adminAuthPlugin): `{action, resource}`; 'public' for health checks and the like;
     * 'signed-in' (admin port only) for routes any authenticated caller may use.
     */
    auth?: RouteAuth | 'public' | 'signed-in';
  }
  interface FastifyRequest {
    /** the authenticated caller, set before the handler runs */
    kennelAuth?: AuthContext;
    /** extra facts for this request's audit entry (e.g. coldStart); never secrets or bytes */
    kennelAudit?: Record<string, unknown>;
    kennelTarget?: { action: string; resource: string };
    /** SigV4-signed requests: the sha256 of the raw body, once it has been read */
    kennelBodySha256?: () => string | undefined;
    /** set once this request's audit entry is written, or failed to be */
    kennelAudited?: boolean;
    /** performance.now() when the request arrived, for the audit entry's latency */
    kennelStartedAt?: number;
  }
}

export interface SecurityPluginOptions {
  ws: Workspace;
  /** the public port (CORS applies); the admin port has its own hook, adminAuthPlugin */
  plane: 'data';
  /** default: one with per-key token buckets */
  authorizer?: Authorizer;
  /** where the auth counters go (the daemon's /metrics registry) */
  registry?: Registry;
}

const SETTINGS_TTL_MS = 5000;

function counter(registry: Registry, name: string, help: string): Counter<'plane' | 'outcome'> {
  return (registry.getSingleMetric(name) as Counter<'plane' | 'outcome'> | undefined) ?? new Counter({ name, help, labelNames: ['plane', 'outcome'], registers: [registry] });
}

const AUTHENTICATION_CODES = new Set<unknown>([Errors.Unauthorized, Errors.InvalidSignature, Errors.UnrecognizedClient, Errors.IncompleteSignature]);
const outcomeOf = (e: unknown): string => (e instanceof ThrottledError ? 'throttled' : e instanceof KennelError && AUTHENTICATION_CODES.has(e.kind) ? 'unauthenticated' : 'forbidden');

/**
 * Hashes the body of a SigV4-signed request as fastify's parser reads it, without a second copy:
 * the signature covers the raw bytes, which the parsed body no longer has.
 */
function hashingStream(req: FastifyRequest): Transform {
  const hash = createHash('sha256');
  let digest: string | undefined;
  const stream: Transform & { receivedEncodedLength?: number } = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      stream.receivedEncodedLength = (stream.receivedEncodedLength ?? 0) + chunk.length;
      done(null, chunk);
    },
    flush(done) {
      digest = hash.digest('hex');
      done();
    },
  });
  const bodiless = req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] === undefined || req.headers['content-length'] === '0');
  req.kennelBodySha256 = () => digest ?? (bodiless ? EMPTY_SHA256 : undefined);
  return stream;
}

/**
 * Secures every route of the fastify instance it is registered on (not encapsulated):
 * - onRequest: CORS for allowlisted origins only (data plane; off unless configured);
 * - preParsing: the raw body of SigV4-signed requests is hashed as it is read;
 * - preHandler: routes must declare `config.auth`; the caller is authenticated (API key, or an
 *   AWS access key for SigV4-signed requests),
 *   rate-limited per key (429 + Retry-After) and authorized (401/403). A route without
 *   `config.auth` is denied, so a forgotten declaration fails closed;
 * - onSend: one audit entry per secured request (who, what, status, latency). When it cannot be
 *   written the request is answered 503, or with the `count` policy
 *   (`kennel security audit-failure`) served and counted in kennel_audit_write_failures_total.
 */
const plugin: FastifyPluginAsync<SecurityPluginOptions> = async (app, opts) => {
  const authorizer = opts.authorizer ?? new Authorizer(opts.ws, { rateLimiter: new RateLimiter() });
  const registry = opts.registry ?? new Registry();
  const checks = counter(registry, 'kennel_auth_requests_total', 'Requests checked by the security plugin, by plane and outcome (allowed, unauthenticated, forbidden, throttled)');
  const auditFailures = counter(registry, 'kennel_audit_write_failures_total', 'Requests whose audit entry could not be written, by plane and outcome (refused, served)');
  let cached: { value: SecuritySettings; readAt: number } | undefined;
  const settings = (): SecuritySettings => {
    const t = Date.now();
    if (!cached || t - cached.readAt > SETTINGS_TTL_MS) cached = { value: getSettings(opts.ws), readAt: t };
    return cached.value;
  };

  app.addHook('onRequest', async (req) => {
    req.kennelStartedAt = performance.now();
  });

  if (opts.plane === 'data') {
    app.addHook('onRequest', async (req, reply) => {
      const origin = req.headers.origin;
      if (!origin) return;
      const { origins, credentials } = settings().cors;
      const allowed = origins.includes('*') ? '*' : origins.includes(origin) ? origin : undefined;
      if (allowed) {
        reply.header('access-control-allow-origin', allowed);
        if (allowed !== '*') reply.header('vary', 'Origin');
        if (credentials && allowed !== '*') reply.header('access-control-allow-credentials', 'true');
        reply.header('access-control-expose-headers', 'retry-after, x-request-id, x-amzn-requestid, x-amzn-errortype, x-amzn-invoked-production-variant, x-amz-function-error, x-amz-executed-version, x-amz-log-result');
      }
      if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
        if (allowed) {
          reply.header('access-control-allow-methods', 'GET, POST');
          reply.header('access-control-allow-headers', 'authorization, x-api-key, content-type, x-amz-date, x-amz-content-sha256, x-amz-user-agent, amz-sdk-invocation-id, amz-sdk-request, x-amz-invocation-type, x-amz-log-type, x-amzn-sagemaker-target-variant');
          reply.header('access-control-max-age', '600');
        }
        return reply.code(204).send();
      }
    });
  }

  app.addHook('preParsing', async (req, _reply, payload) => {
    if (!isSigV4(req)) return payload;
    const hashing = hashingStream(req);
    payload.on('error', (e) => hashing.destroy(e));
    return payload.pipe(hashing);
  });

  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.is404) return;
    const declared = req.routeOptions.config.auth;
    if (declared === 'public') return;
    // 'signed-in' means a caller of the admin port: no data-plane caller has one, so it is denied
    const auth = declared === 'signed-in' ? undefined : declared;
    if (!auth) throw Errors.Forbidden('This route declares no access rule, so it is denied.', 'Routes on a secured Kennel server set config.auth ({action, resource} or "public").');
    const target = { action: auth.action, resource: auth.resource(req) };
    req.kennelTarget = target;
    try {
      const identity = authorizer.identifyRequest({ method: req.method, url: req.url, headers: req.headers, bodySha256: req.kennelBodySha256?.() }, auth.awsService ? [auth.awsService] : undefined);
      req.kennelAuth = identity.ctx;
      authorizer.throttle(identity, req.ip);
      authorizer.assertAllowed(identity.ctx, target.action, target.resource);
      checks.inc({ plane: opts.plane, outcome: 'allowed' });
    } catch (e) {
      checks.inc({ plane: opts.plane, outcome: outcomeOf(e) });
      if (e instanceof ThrottledError) reply.header('retry-after', String(e.retryAfterSeconds));
      if (e instanceof KennelError && e.status === 401 && !isSigV4(req)) reply.header('www-authenticate', 'Bearer');
      throw e;
    }
  });

  // the sentence the caller got, so the audit log (and the console's function page) can show it
  app.addHook('onError', async (req, _reply, error) => {
    if (req.kennelTarget) req.kennelAudit = { ...req.kennelAudit, error: error instanceof KennelError ? error.message : 'An unexpected error occurred.' };
  });

  // before the answer goes out, so a request whose entry cannot be written can still be refused
  app.addHook('onSend', async (req, reply, payload) => {
    if (!req.kennelTarget || req.kennelAudited) return payload;
    req.kennelAudited = true;
    try {
      appendAudit(opts.ws, {
        plane: opts.plane,
        principal: req.kennelAuth?.principal,
        keyId: req.kennelAuth?.keyId ?? claimedKeyId(req),
        action: req.kennelTarget.action,
        resource: req.kennelTarget.resource,
        status: reply.statusCode,
        latencyMs: performance.now() - (req.kennelStartedAt ?? performance.now()),
        requestId: req.id,
        detail: { method: req.method, route: req.routeOptions.url, ip: req.ip, ...req.kennelAudit },
      });
    } catch (e) {
      if (!(e instanceof AuditUnavailableError)) throw e;
      const refuse = settings().auditFailure.dataPlane === 'fail-closed';
      auditFailures.inc({ plane: opts.plane, outcome: refuse ? 'refused' : 'served' });
      req.log.error({ reason: e.reason, action: req.kennelTarget.action, resource: req.kennelTarget.resource, status: reply.statusCode, refused: refuse }, 'audit entry not written');
      // the answer is replaced here: an error thrown from onSend would bypass the error handler
      if (refuse) return refusedForAudit(reply, e);
    }
    return payload;
  });
};

/**
 * The answer of a request whose audit entry could not be written (fail-closed), from an onSend
 * hook: an error thrown there would bypass the error handler, so the payload is replaced.
 */
export function refusedForAudit(reply: FastifyReply, e: AuditUnavailableError): string {
  reply.code(e.status).header('content-type', 'application/json; charset=utf-8').header('x-kennel-error', e.code).header('retry-after', '1').removeHeader('content-length');
  return JSON.stringify({ error: { code: e.code, message: e.message, hint: e.hint } });
}

/** The public id of a key that failed to authenticate (never its secret), to trace abuse. */
function claimedKeyId(req: FastifyRequest): string | undefined {
  if (isSigV4(req)) return claimedAccessKeyId(req);
  const key = presentedKey(req.headers);
  if (!key?.startsWith('kn_')) return undefined;
  try {
    return parseKeyId(key);
  } catch {
    return undefined;
  }
}

// applies to the instance it is registered on, like fastify-plugin would make it
(plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export const securityPlugin = plugin;

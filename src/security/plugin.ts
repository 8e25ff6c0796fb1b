import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Registry } from 'prom-client';
import { KennelError } from '../core/errors.js';
import type { Workspace } from '../store/index.js';
import { appendAudit } from './audit-log.js';
import { Authorizer, presentedKey, type AuthContext } from './authorizer.js';
import { ThrottledError } from './errors.js';
import { parseKeyId } from './principals.js';
import { RateLimiter } from './ratelimit.js';
import { getSettings, type CorsSettings } from './settings.js';

/** What a route requires: the action, and the resource the request is about. */
export interface RouteAuth {
  action: string;
  resource: (req: FastifyRequest) => string;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** required on every route of a secured server; 'public' for health checks and the like */
    auth?: RouteAuth | 'public';
  }
  interface FastifyRequest {
    /** the authenticated caller, set before the handler runs */
    kennelAuth?: AuthContext;
    /** extra facts for this request's audit entry (e.g. coldStart); never secrets or bytes */
    kennelAudit?: Record<string, unknown>;
    kennelTarget?: { action: string; resource: string };
  }
}

export interface SecurityPluginOptions {
  ws: Workspace;
  /** 'data' (public port: CORS applies) or 'admin' */
  plane: 'data' | 'admin';
  /** default: one with per-key token buckets */
  authorizer?: Authorizer;
  /** where the auth counters go (the daemon's /metrics registry) */
  registry?: Registry;
  /**
   * For the admin plane: true when a request carries the daemon's own admin token. Such a
   * request acts as `local:admin` with every permission (it is the workspace owner).
   */
  isLocalAdmin?: (req: FastifyRequest) => boolean;
}

const SETTINGS_TTL_MS = 5000;

function counter(registry: Registry): Counter<'plane' | 'outcome'> {
  const name = 'kennel_auth_requests_total';
  return (
    (registry.getSingleMetric(name) as Counter<'plane' | 'outcome'> | undefined) ??
    new Counter({ name, help: 'Requests checked by the security plugin, by plane and outcome (allowed, unauthenticated, forbidden, throttled)', labelNames: ['plane', 'outcome'], registers: [registry] })
  );
}

const outcomeOf = (e: unknown): string => (e instanceof ThrottledError ? 'throttled' : e instanceof KennelError && e.status === 401 ? 'unauthenticated' : 'forbidden');

/**
 * Secures every route of the fastify instance it is registered on (not encapsulated):
 * - onRequest: CORS for allowlisted origins only (data plane; off unless configured);
 * - preHandler: routes must declare `config.auth`; the caller is authenticated (API key),
 *   rate-limited per key (429 + Retry-After) and authorized (401/403). A route without
 *   `config.auth` is denied, so a forgotten declaration fails closed;
 * - onResponse: one audit entry per secured request (who, what, status, latency).
 */
const plugin: FastifyPluginAsync<SecurityPluginOptions> = async (app, opts) => {
  const authorizer = opts.authorizer ?? new Authorizer(opts.ws, { rateLimiter: new RateLimiter() });
  const checks = counter(opts.registry ?? new Registry());
  let cors: { value: CorsSettings; readAt: number } | undefined;
  const corsSettings = (): CorsSettings => {
    const t = Date.now();
    if (!cors || t - cors.readAt > SETTINGS_TTL_MS) cors = { value: getSettings(opts.ws).cors, readAt: t };
    return cors.value;
  };

  if (opts.plane === 'data') {
    app.addHook('onRequest', async (req, reply) => {
      const origin = req.headers.origin;
      if (!origin) return;
      const { origins, credentials } = corsSettings();
      const allowed = origins.includes('*') ? '*' : origins.includes(origin) ? origin : undefined;
      if (allowed) {
        reply.header('access-control-allow-origin', allowed);
        if (allowed !== '*') reply.header('vary', 'Origin');
        if (credentials && allowed !== '*') reply.header('access-control-allow-credentials', 'true');
        reply.header('access-control-expose-headers', 'retry-after, x-request-id');
      }
      if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
        if (allowed) {
          reply.header('access-control-allow-methods', 'GET, POST');
          reply.header('access-control-allow-headers', 'authorization, x-api-key, content-type');
          reply.header('access-control-max-age', '600');
        }
        return reply.code(204).send();
      }
    });
  }

  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.is404) return;
    const auth = req.routeOptions.config.auth;
    if (auth === 'public') return;
    if (!auth) throw new KennelError('This route declares no access rule, so it is denied.', 'Routes on a secured Kennel server set config.auth ({action, resource} or "public").', 403, 'forbidden');
    const target = { action: auth.action, resource: auth.resource(req) };
    req.kennelTarget = target;
    try {
      if (opts.isLocalAdmin?.(req)) {
        req.kennelAuth = { principal: 'local:admin', kind: 'user' };
      } else {
        const identity = authorizer.identify(req.headers);
        req.kennelAuth = identity.ctx;
        authorizer.throttle(identity, req.ip);
        authorizer.assertAllowed(identity.ctx, target.action, target.resource);
      }
      checks.inc({ plane: opts.plane, outcome: 'allowed' });
    } catch (e) {
      checks.inc({ plane: opts.plane, outcome: outcomeOf(e) });
      if (e instanceof ThrottledError) reply.header('retry-after', String(e.retryAfterSeconds));
      if (e instanceof KennelError && e.status === 401) reply.header('www-authenticate', 'Bearer');
      throw e;
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    if (!req.kennelTarget) return;
    appendAudit(opts.ws, {
      plane: opts.plane,
      principal: req.kennelAuth?.principal,
      keyId: req.kennelAuth?.keyId ?? claimedKeyId(req),
      action: req.kennelTarget.action,
      resource: req.kennelTarget.resource,
      status: reply.statusCode,
      latencyMs: reply.elapsedTime,
      requestId: req.id,
      detail: { method: req.method, route: req.routeOptions.url, ip: req.ip, ...req.kennelAudit },
    });
  });
};

/** The public id of a key that failed to authenticate (never its secret), to trace abuse. */
function claimedKeyId(req: FastifyRequest): string | undefined {
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

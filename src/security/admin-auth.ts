import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Errors, KennelError } from '../core/index.js';
import type { Workspace } from '../store/index.js';
import { appendAudit, AuditUnavailableError, type Actor } from './audit-log.js';
import { Authorizer, presentedKey } from './authorizer.js';
import { forbidden, unauthorized } from './errors.js';
import { refusedForAudit } from './plugin.js';
import { getKey, verifyKey } from './principals.js';
import { sameSecret } from './same-secret.js';

/** The principal the admin token acts as: the workspace owner, allowed everything. */
export const OWNER = 'local:admin';

/** Who is calling the admin API (/v1/ and the console's /api/): one principal, however it signed in. */
export interface Caller {
  principal: string;
  /** set when the caller signed in with (or presents) an API key */
  keyId?: string;
  /** the admin token: every permission */
  owner: boolean;
  /** present when the caller is authenticated by the session cookie (then CSRF checks apply) */
  session?: Session;
}

interface Session {
  id: string;
  principal: string;
  keyId?: string;
  owner: boolean;
  csrf: string;
  expiresAt: number;
}

/** Sessions end after this long, however active (then the user signs in again). */
const SESSION_MS = 8 * 3600_000;
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
export const CSRF_HEADER = 'x-csrf-token';

/** Cookie header -> name/value pairs (the console sets exactly one cookie). */
function cookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

/**
 * Only IP literals and localhost are accepted as Host: a DNS name pointing at the loopback
 * address (DNS rebinding) must not reach the console from another site's page.
 */
export function checkHost(req: FastifyRequest): void {
  const host = req.headers.host ?? '';
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  if (name === 'localhost' || isIP(name) !== 0) return;
  throw Errors.MisdirectedRequest(`The console answers only at an IP address or localhost, not at "${name.slice(0, 100)}".`, 'Open http://127.0.0.1:ADMIN_PORT/.');
}

/** A request from another site (foreign Origin) never changes anything, whatever it carries. */
function checkOrigin(req: FastifyRequest): void {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host}`) {
    throw Errors.Csrf('Cross-site requests are refused.', 'Use the console from its own address.');
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') throw Errors.Csrf('Cross-site requests are refused.', 'Use the console from its own address.');
}

/**
 * Sign-in and access control of the admin port, for /v1/ and the console's /api/ alike. The
 * caller presents the admin token (the workspace owner, local:admin) or an API key as
 * Authorization: Bearer (or x-api-key), or a console session: a random id in an HttpOnly,
 * SameSite=Strict cookie, held in memory (a restarted daemon asks to sign in again), opened with
 * the token or a key whose policies allow console:Login. Cookie-authenticated changes need the
 * session's CSRF token header and a same-origin Origin.
 */
export class AdminAuth {
  private readonly sessions = new Map<string, Session>();
  private readonly authorizer: Authorizer;

  constructor(
    private readonly ws: Workspace,
    private readonly adminToken: string,
  ) {
    this.authorizer = new Authorizer(ws);
  }

  /** One cookie per admin port: two daemons on one host must not overwrite each other's session. */
  cookieName(req: FastifyRequest): string {
    return `kennel_console_${req.socket.localPort ?? 0}`;
  }

  /** Checks the token (admin token or API key) and opens a session; audited either way. */
  login(req: FastifyRequest, reply: FastifyReply, token: string): { principal: string; keyId?: string; owner: boolean; csrf: string } {
    checkOrigin(req);
    let caller: Caller;
    try {
      caller = this.fromToken(token);
    } catch (e) {
      this.audit({ principal: 'anonymous', owner: false }, req, 'console:Login', 'console/login', e instanceof KennelError ? e.status : 500);
      throw e;
    }
    if (!caller.owner) this.assertAllowed(caller, 'console:Login', 'console/login', req);
    this.audit(caller, req, 'console:Login', 'console/login', 200);
    for (const [id, s] of this.sessions) if (s.expiresAt <= Date.now()) this.sessions.delete(id);
    const session: Session = { id: randomBytes(32).toString('base64url'), principal: caller.principal, keyId: caller.keyId, owner: caller.owner, csrf: randomBytes(24).toString('base64url'), expiresAt: Date.now() + SESSION_MS };
    this.sessions.set(session.id, session);
    reply.header('set-cookie', `${this.cookieName(req)}=${session.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MS / 1000}`);
    return { principal: session.principal, keyId: session.keyId, owner: session.owner, csrf: session.csrf };
  }

  logout(req: FastifyRequest, reply: FastifyReply, caller: Caller): void {
    if (caller.session) this.sessions.delete(caller.session.id);
    reply.header('set-cookie', `${this.cookieName(req)}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
  }

  /**
   * The caller of an API request (401 when there is none), with the CSRF rules for changes.
   * A key-based session ends as soon as its key is revoked or expires.
   */
  authenticate(req: FastifyRequest): Caller {
    const bearer = presentedKey(req.headers);
    if (bearer !== undefined) return this.fromToken(bearer);
    const id = cookies(req.headers.cookie).get(this.cookieName(req));
    const session = id === undefined ? undefined : this.sessions.get(id);
    if (!session || session.expiresAt <= Date.now()) {
      if (session) this.sessions.delete(session.id);
      throw unauthorized(id === undefined ? 'Sign in to use the console.' : 'The console session has ended.', 'Sign in again with the admin token (KENNEL_HOME/daemon/admin-token) or an API key allowed console:Login.');
    }
    if (session.keyId && getKey(this.ws, session.keyId).state !== 'active') {
      this.sessions.delete(session.id);
      throw unauthorized('The API key of this session is no longer valid.', 'Sign in again with a valid key.');
    }
    if (UNSAFE_METHODS.has(req.method)) {
      checkOrigin(req);
      const given = req.headers[CSRF_HEADER];
      if (typeof given !== 'string' || !sameSecret(given, session.csrf)) throw Errors.Csrf('The CSRF token is missing or wrong.', `Send the session's token (from GET /api/session) as ${CSRF_HEADER}.`);
    }
    return { principal: session.principal, keyId: session.keyId, owner: session.owner, session };
  }

  /** Whether the caller may do `action` on `resource` (for optional parts of an answer; no audit entry). */
  allows(caller: Caller, action: string, resource: string): boolean {
    return caller.owner || this.authorizer.decide(caller.principal, action, resource) === 'allow';
  }

  /** Throws 403 (and audits the refusal) unless the caller may do `action` on `resource`. */
  assertAllowed(caller: Caller, action: string, resource: string, req: FastifyRequest): void {
    if (this.allows(caller, action, resource)) return;
    this.audit(caller, req, action, resource, 403);
    throw forbidden(caller.principal, action, resource);
  }

  audit(caller: Caller, req: FastifyRequest, action: string, resource: string, status: number, detail: Record<string, unknown> = {}): void {
    appendAudit(this.ws, { plane: 'admin', principal: caller.principal, keyId: caller.keyId, action, resource, status, requestId: req.id, detail: { ...(req.routeOptions.url?.startsWith('/v1/') ? {} : { console: true }), method: req.method, route: req.routeOptions.url, ...detail } });
  }

  csrfOf(caller: Caller): string | undefined {
    return caller.session?.csrf;
  }

  /** Ends every session of a key (the key was revoked from the console). */
  endSessionsOfKey(keyId: string): void {
    for (const [id, s] of this.sessions) if (s.keyId === keyId) this.sessions.delete(id);
  }

  private fromToken(token: string): Caller {
    if (sameSecret(token, this.adminToken)) return { principal: OWNER, owner: true };
    if (!token.startsWith('kn_')) throw unauthorized('The token is neither the admin token nor an API key.', 'The admin token is in KENNEL_HOME/daemon/admin-token; API keys look like kn_<id>_<secret>.');
    const v = verifyKey(this.ws, token);
    return { principal: v.principal, keyId: v.keyId, owner: false };
  }
}

/** The actor recorded by audited service calls made for this caller. */
export const actorOf = (caller: Caller): Actor => ({ principal: caller.principal, plane: 'admin', keyId: caller.keyId });

declare module 'fastify' {
  interface FastifyRequest {
    /** the admin port's authenticated caller (null on public routes), set by adminAuthPlugin */
    caller: Caller | null;
    /** extra facts for the admin audit entry of a route declared with audit: true */
    auditDetail: Record<string, unknown> | null;
  }
}

/** The caller of a request on a route that requires one (every rule but 'public'). */
export function callerOf(req: FastifyRequest): Caller {
  const c = req.caller;
  if (!c) throw Errors.Internal('This route has no caller.');
  return c;
}

export interface AdminAuthOptions {
  auth: AdminAuth;
  ws: Workspace;
}

/**
 * The one auth hook of the admin port (registered on its root, not encapsulated). Every route
 * declares its rule in `config.auth`, as on the data plane: `{action, resource}`, 'signed-in' (any
 * caller) or 'public'; a route without one is denied.
 * - onRequest: the caller (admin token, API key or console session) becomes `req.caller`; 401 without one;
 * - preHandler (after the body is parsed, which a resource may name): `{action, resource}` is
 *   checked against the caller's policies; a refusal is audited and answered 403;
 * - onSend: routes declared with `audit: true` get one audit entry (who, what, status, the
 *   handler's `req.auditDetail`); when it cannot be written the answer becomes 503 (fail-closed).
 *   Changes made through audited services (endpoints, tags, keys) are recorded by the service
 *   before they are made, and declare no `audit`.
 * Unknown paths reach the not-found handler, which declares no rule and is left alone.
 */
const plugin: FastifyPluginAsync<AdminAuthOptions> = async (app, opts) => {
  app.decorateRequest('caller', null);
  app.decorateRequest('auditDetail', null);

  app.addHook('onRequest', async (req) => {
    if (req.is404) return;
    const rule = req.routeOptions.config.auth;
    if (rule === 'public') return;
    if (!rule) throw Errors.Forbidden('This route declares no access rule, so it is denied.', 'Routes on a secured Kennel server set config.auth ({action, resource} or "public").');
    req.caller = opts.auth.authenticate(req);
  });

  app.addHook('preHandler', async (req) => {
    const rule = req.routeOptions.config.auth;
    if (typeof rule === 'object' && req.caller) opts.auth.assertAllowed(req.caller, rule.action, rule.resource(req), req);
  });

  app.addHook('onError', async (req, _reply, error) => {
    if (isAudited(req)) req.auditDetail = { ...req.auditDetail, error: error instanceof KennelError ? error.message : 'An unexpected error occurred.' };
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const rule = req.routeOptions.config.auth;
    if (!isAudited(req) || typeof rule !== 'object' || !req.caller || reply.statusCode === 401 || reply.statusCode === 403) return payload;
    try {
      opts.auth.audit(req.caller, req, rule.action, rule.resource(req), reply.statusCode, req.auditDetail ?? {});
    } catch (e) {
      if (!(e instanceof AuditUnavailableError)) throw e;
      req.log.error({ reason: e.reason, action: rule.action, status: reply.statusCode, refused: true }, 'audit entry not written');
      return refusedForAudit(reply, e);
    }
    return payload;
  });
};

const isAudited = (req: FastifyRequest): boolean => {
  const rule = req.routeOptions.config.auth;
  return typeof rule === 'object' && rule.audit === true;
};

(plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export const adminAuthPlugin = plugin;

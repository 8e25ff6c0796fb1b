import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KennelError } from '../core/errors.js';
import * as Errors from '../core/error-codes.js';
import { Authorizer, appendAudit, forbidden, getKey, presentedKey, sameSecret, unauthorized, verifyKey, type Actor } from '../security/index.js';
import type { Workspace } from '../store/index.js';

/** The principal the admin token acts as: the workspace owner, allowed everything. */
export const OWNER = 'local:admin';

/** Who is calling the console API. */
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

/** What a console route needs: an action on a resource, checked against the caller's policies. */
export interface ConsoleAccess {
  action: string;
  resource: (req: FastifyRequest) => string;
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
 * Console sign-in and access control. A session (random id in an HttpOnly, SameSite=Strict
 * cookie, held in memory: a restarted daemon asks to sign in again) comes from the admin token or
 * from an API key whose policies allow console:Login. Scripts and tools may instead send the
 * token or a key as Authorization: Bearer on every request. Cookie-authenticated changes need
 * the session's CSRF token header and a same-origin Origin.
 */
export class ConsoleAuth {
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
    appendAudit(this.ws, { plane: 'admin', principal: caller.principal, keyId: caller.keyId, action, resource, status, requestId: req.id, detail: { console: true, method: req.method, route: req.routeOptions.url, ...detail } });
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

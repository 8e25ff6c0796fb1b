import type { IncomingHttpHeaders } from 'node:http';
import type { Workspace } from '../store/index.js';
import { forbidden, unauthorized } from './errors.js';
import { policiesFor } from './policies.js';
import { evaluate, type Decision } from './policy.js';
import { ANONYMOUS, verifyKey, type PrincipalKind, type VerifiedKey } from './principals.js';
import { RateLimiter } from './ratelimit.js';
import { getSettings, type RateLimitSettings } from './settings.js';
import { isSigV4, verifySigV4, type SignedRequest } from './sigv4.js';

/** Who a request is from, once authenticated. */
export interface AuthContext {
  principal: string;
  kind: PrincipalKind;
  /** the public id of the key used (absent for anonymous callers) */
  keyId?: string;
}

export interface Identity {
  ctx: AuthContext;
  limit?: RateLimitSettings;
}

export interface AuthorizerOptions {
  /** per-key token buckets; leave out to not rate-limit (service-level callers, tests) */
  rateLimiter?: RateLimiter;
  clock?: () => number;
}

/** The API key in a request: "Authorization: Bearer <key>" or "x-api-key: <key>". */
export function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1]! : auth; // a non-Bearer Authorization value is presented as is, so it fails as malformed
  }
  const header = headers['x-api-key'];
  return Array.isArray(header) ? header[0] : header;
}

const SETTINGS_TTL_MS = 5000;

function identityOf(v: VerifiedKey): Identity {
  // a key with only a rate gets bursts of twice that rate
  const limit = v.ratePerSecond === undefined ? undefined : { perSecond: v.ratePerSecond, burst: v.burst ?? Math.max(1, Math.ceil(2 * v.ratePerSecond)) };
  return { ctx: { principal: v.principal, kind: v.kind, keyId: v.keyId }, limit };
}

/**
 * Authentication (API key -> principal), per-key rate limiting, and authorization (the
 * principal's policies: default deny, explicit deny wins). State is read from the workspace on
 * every request, so a key revoked from the CLI stops working at once in a running daemon.
 */
export class Authorizer {
  private readonly clock: () => number;
  private rateDefaults?: { value: RateLimitSettings; readAt: number };

  constructor(
    private readonly ws: Workspace,
    private readonly opts: AuthorizerOptions = {},
  ) {
    this.clock = opts.clock ?? Date.now;
  }

  /** The caller behind the headers; without a key, the `anonymous` principal. Throws 401. */
  authenticate(headers: IncomingHttpHeaders): AuthContext {
    return this.identify(headers).ctx;
  }

  /** authenticate(), plus the key's own rate limit when it has one */
  identify(headers: IncomingHttpHeaders): Identity {
    const key = presentedKey(headers);
    if (key === undefined || key === '') return { ctx: { principal: ANONYMOUS, kind: 'anonymous' } };
    return identityOf(verifyKey(this.ws, key, this.clock()));
  }

  /**
   * identify() for a whole request: one signed with AWS Signature Version 4 (header or presigned
   * query) is verified with its access key, for one of `services` (default: any Kennel serves);
   * any other is identified by its API key, if any.
   */
  identifyRequest(req: SignedRequest, services?: readonly string[]): Identity {
    if (!isSigV4(req)) return this.identify(req.headers);
    return identityOf(verifySigV4(this.ws, req, { services, at: this.clock() }));
  }

  decide(principal: string, action: string, resource: string): Decision {
    return evaluate(policiesFor(this.ws, principal), action, resource);
  }

  /** Throws 403 (401 for anonymous callers: they should send a key) unless policies allow it. */
  assertAllowed(ctx: AuthContext, action: string, resource: string): void {
    if (this.decide(ctx.principal, action, resource) === 'allow') return;
    if (ctx.kind === 'anonymous') throw unauthorized('This request needs an API key.');
    throw forbidden(ctx.principal, action, resource);
  }

  /**
   * authenticate -> rate limit -> authorize. `clientIp` buckets anonymous callers (who have no
   * key) by address.
   */
  authorize(headers: IncomingHttpHeaders, action: string, resource: string, opts: { clientIp?: string } = {}): AuthContext {
    const identity = this.identify(headers);
    this.throttle(identity, opts.clientIp);
    this.assertAllowed(identity.ctx, action, resource);
    return identity.ctx;
  }

  /** Takes a token from the caller's bucket (its key's, or its address's when anonymous); throws 429. */
  throttle(identity: Identity, clientIp?: string): void {
    this.opts.rateLimiter?.take(identity.ctx.keyId ?? `anonymous:${clientIp ?? ''}`, identity.limit ?? this.defaultLimit());
  }

  private defaultLimit(): RateLimitSettings {
    const t = this.clock();
    if (!this.rateDefaults || t - this.rateDefaults.readAt > SETTINGS_TTL_MS) this.rateDefaults = { value: getSettings(this.ws).rateLimit, readAt: t };
    return this.rateDefaults.value;
  }
}

/**
 * Identity and access: principals with hashed API keys (expiry, rotation, revocation) and AWS
 * access keys (SigV4-signed requests; secrets sealed with the workspace master key), IAM-like
 * policies (default deny, explicit deny wins), per-key rate limits, CORS settings, the
 * append-only audit log, the security audit, and a fastify plugin that applies all of it.
 */
export { Authorizer, presentedKey } from './authorizer.js';
export { RateLimiter } from './ratelimit.js';
export { ThrottledError, unauthorized, forbidden } from './errors.js';
export { parseDuration } from './duration.js';
export { sameSecret } from './same-secret.js';
export {
  parsePolicyDocument,
  parseGrant,
  policyFromGrants,
  evaluate,
  actionMatches,
  resourceMatches,
  type PolicyDocument,
  type Statement,
  type Effect,
  type Decision,
} from './policy.js';
export {
  ANONYMOUS,
  createKey,
  createAwsKey,
  revokeKey,
  rotateKey,
  listKeys,
  getKey,
  verifyKey,
  parseKeyId,
  ensurePrincipal,
  getPrincipal,
  listPrincipals,
  type Principal,
  type PrincipalKind,
  type ApiKeyInfo,
  type CreatedKey,
  type CreatedAwsKey,
  type RotatedKey,
  type CreateKeyOptions,
  type KeyState,
} from './principals.js';
export { attachPolicy, attachPolicyRow, detachPolicy, getPolicy, listPolicies, policiesFor, type AttachedPolicy } from './policies.js';
export {
  getSettings,
  setCors,
  setRateLimit,
  setAuditFailure,
  DEFAULT_SETTINGS,
  AUDIT_FAILURE_POLICIES,
  type SecuritySettings,
  type CorsSettings,
  type RateLimitSettings,
  type AuditFailurePolicy,
  type AuditFailureSettings,
} from './settings.js';
export { appendAudit, audited, auditedAsync, AuditUnavailableError, readAudit, cliActor, type Actor, type AuditEntry, type AuditRecord, type AuditQuery, type Plane } from './audit-log.js';
export { runSecurityAudit, type Finding, type Severity, type AuditOptions } from './audit.js';
export { securityPlugin, type SecurityPluginOptions, type RouteAuth } from './plugin.js';
export { AdminAuth, adminAuthPlugin, actorOf, callerOf, checkHost, CSRF_HEADER, OWNER, type AdminAuthOptions, type Caller } from './admin-auth.js';
export { isSigV4 } from './sigv4.js';
export { masterKeyPath } from './sealing.js';

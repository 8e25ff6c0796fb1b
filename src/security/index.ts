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
export { parsePolicyDocument, parseGrant, policyFromGrants, evaluate, type PolicyDocument } from './policy.js';
export { createKey, createAwsKey, revokeKey, rotateKey, listKeys, getKey, verifyKey, ensurePrincipal, getPrincipal, listPrincipals, type CreateKeyOptions } from './principals.js';
export { attachPolicy, attachPolicyRow, detachPolicy, listPolicies, type AttachedPolicy } from './policies.js';
export { getSettings, setCors, setRateLimit, setAuditFailure, AUDIT_FAILURE_POLICIES, type AuditFailurePolicy } from './settings.js';
export { appendAudit, audited, auditedAsync, AuditUnavailableError, readAudit, cliActor, type Actor, type AuditRecord, type Plane } from './audit-log.js';
export { runSecurityAudit, type Finding } from './audit.js';
export { securityPlugin, type SecurityPluginOptions } from './plugin.js';
export { isSigV4 } from './sigv4.js';
export { masterKeyPath } from './sealing.js';

import { Errors, KennelError } from '../core/index.js';
import type { Workspace } from '../store/index.js';
import { audited, type Actor } from './audit-log.js';

/** CORS is off while `origins` is empty; when on, only listed origins (never * with credentials). */
export interface CorsSettings {
  origins: string[];
  credentials: boolean;
}

/** The token bucket every key gets unless the key sets its own. */
export interface RateLimitSettings {
  perSecond: number;
  burst: number;
}

/**
 * What the data plane does with a request whose audit row cannot be written: 'fail-closed'
 * answers 503 audit_unavailable; 'count' serves it, counted in kennel_audit_write_failures_total
 * and logged at error level. Admin changes always fail closed.
 */
export const AUDIT_FAILURE_POLICIES = ['fail-closed', 'count'] as const;
export type AuditFailurePolicy = (typeof AUDIT_FAILURE_POLICIES)[number];

export interface AuditFailureSettings {
  dataPlane: AuditFailurePolicy;
}

export interface SecuritySettings {
  cors: CorsSettings;
  rateLimit: RateLimitSettings;
  auditFailure: AuditFailureSettings;
}

export const DEFAULT_SETTINGS: SecuritySettings = {
  cors: { origins: [], credentials: false },
  rateLimit: { perSecond: 50, burst: 100 },
  auditFailure: { dataPlane: 'fail-closed' },
};

export function getSettings(ws: Workspace): SecuritySettings {
  const rows = ws.db.prepare('SELECT key, value FROM security_settings').all() as Array<{ key: string; value: string }>;
  const stored = Object.fromEntries(rows.map((r) => [r.key, JSON.parse(r.value)]));
  return { cors: stored.cors ?? DEFAULT_SETTINGS.cors, rateLimit: stored.rate_limit ?? DEFAULT_SETTINGS.rateLimit, auditFailure: stored.audit_failure ?? DEFAULT_SETTINGS.auditFailure };
}

const put = (ws: Workspace, key: string, value: unknown) =>
  ws.db.prepare('INSERT INTO security_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(value));

function checkOrigin(origin: string): string {
  if (origin === '*') return origin;
  let parsed: URL | undefined;
  try {
    parsed = new URL(origin);
  } catch {
    /* reported below */
  }
  if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin.replace(/\/$/, '')) {
    throw Errors.InvalidRequest(`"${origin}" is not an origin.`, 'An origin is scheme://host[:port] with no path, e.g. https://app.example.com.');
  }
  return parsed.origin;
}

/** Sets the CORS allowlist; an empty list turns CORS off. */
export function setCors(ws: Workspace, cors: CorsSettings, by: Actor): CorsSettings {
  const origins = [...new Set(cors.origins.map(checkOrigin))];
  if (cors.credentials && origins.includes('*')) {
    throw Errors.InvalidRequest('CORS cannot allow every origin (*) with credentials.', 'List the origins that may send credentials, e.g. --allow-origin https://app.example.com.');
  }
  const value = { origins, credentials: cors.credentials && origins.length > 0 };
  return audited(ws, by, 'admin:SetCors', 'settings/cors', () => (put(ws, 'cors', value), value), () => value);
}

export function setRateLimit(ws: Workspace, limit: RateLimitSettings, by: Actor): RateLimitSettings {
  checkRate(limit.perSecond, limit.burst);
  return audited(ws, by, 'admin:SetRateLimit', 'settings/rate_limit', () => (put(ws, 'rate_limit', limit), limit), () => ({ ...limit }));
}

export function setAuditFailure(ws: Workspace, value: AuditFailureSettings, by: Actor): AuditFailureSettings {
  if (!AUDIT_FAILURE_POLICIES.includes(value.dataPlane)) throw Errors.InvalidRequest(`The data-plane audit policy must be one of ${AUDIT_FAILURE_POLICIES.join(', ')}.`);
  return audited(ws, by, 'admin:SetAuditFailure', 'settings/audit_failure', () => (put(ws, 'audit_failure', value), value), () => ({ ...value }));
}

export function checkRate(perSecond: number, burst: number): void {
  if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw Errors.InvalidRequest('The rate limit must be a positive number of requests per second.');
  if (!Number.isInteger(burst) || burst < 1) throw Errors.InvalidRequest('The burst must be a whole number of at least 1.');
}

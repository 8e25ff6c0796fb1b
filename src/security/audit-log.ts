import { userInfo } from 'node:os';
import { Errors, KennelError } from '../core/index.js';
import { now, type Workspace } from '../store/index.js';

export type Plane = 'cli' | 'admin' | 'data' | 'function';

/** Who makes an admin change: the local CLI user, or a principal through the admin API. */
export interface Actor {
  principal: string;
  plane: 'cli' | 'admin';
  keyId?: string;
}

export interface AuditEntry {
  plane: Plane;
  principal?: string;
  keyId?: string;
  action: string;
  resource: string;
  status: number;
  latencyMs?: number;
  requestId?: string;
  detail?: Record<string, unknown>;
}

export interface AuditRecord extends AuditEntry {
  id: number;
  ts: string;
}

/** The local user running the CLI: anyone who can write the workspace is its administrator. */
export function cliActor(): Actor {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry (some containers) */
  }
  return { principal: `local:${user}`, plane: 'cli' };
}

const KEY_IN_TEXT = /kn_([0-9a-f]{16})_[A-Za-z0-9_-]+/g;
const MAX_STRING = 256;

/**
 * What is stored is scrubbed first (details, and action and resource, which may echo what a
 * caller typed): anything shaped like an API key keeps only its public id, and long strings
 * (base64 images, bodies) are replaced by their length.
 */
function scrub(value: unknown): unknown {
  if (typeof value === 'string') {
    const s = value.replace(KEY_IN_TEXT, 'kn_$1_[redacted]');
    return s.length > MAX_STRING ? `[${s.length} characters omitted]` : s;
  }
  if (Array.isArray(value)) return value.slice(0, 20).map(scrub);
  if (value && typeof value === 'object') {
    if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes omitted]`;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v)]));
  }
  return value;
}

/** The audit row of a request or change could not be written (a full disk, a failing database): it is refused. */
export class AuditUnavailableError extends KennelError {
  constructor(
    message: string,
    /** what the database said, for the daemon's log only */
    readonly reason: string,
  ) {
    super(message, 'Free disk space in KENNEL_HOME (kennel.db lives there) and retry.', Errors.AuditUnavailable.status, Errors.AuditUnavailable.code);
    this.name = 'AuditUnavailableError';
  }
}

/**
 * Appends one entry; an entry that cannot be written throws AuditUnavailableError. The table
 * has triggers that refuse UPDATE and DELETE, and this module offers no way to change or remove
 * entries.
 */
export function appendAudit(ws: Workspace, e: AuditEntry): void {
  try {
    ws.db
      .prepare('INSERT INTO audit_log (ts, plane, principal, key_id, action, resource, status, latency_ms, request_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(now(), e.plane, e.principal ?? null, e.keyId ?? null, scrub(e.action), scrub(e.resource), e.status, e.latencyMs ?? null, e.requestId ?? null, e.detail ? JSON.stringify(scrub(e.detail)) : null);
  } catch (err) {
    throw new AuditUnavailableError('The audit log cannot be written, so this request was refused.', err instanceof Error ? err.message : String(err));
  }
}

/**
 * Runs an admin change and records it with its outcome (the error status when it fails), in one
 * transaction: when the entry cannot be written the change is rolled back and refused (503),
 * so no change goes unrecorded. Changes are database writes; files they store (artifacts) are
 * content-addressed and harmless when left behind.
 */
export function audited<T>(ws: Workspace, by: Actor, action: string, resource: string, change: () => T, detail?: (result: T) => Record<string, unknown>): T {
  const started = performance.now();
  const entry = { plane: by.plane, principal: by.principal, keyId: by.keyId, action, resource };
  try {
    return ws.db.transaction(() => {
      const result = change();
      appendAudit(ws, { ...entry, status: 200, latencyMs: performance.now() - started, detail: detail?.(result) });
      return result;
    })();
  } catch (e) {
    if (e instanceof AuditUnavailableError) throw e;
    appendAudit(ws, { ...entry, status: e instanceof KennelError ? e.status : 500, latencyMs: performance.now() - started, detail: { error: e instanceof Error ? e.message : String(e) } });
    throw e;
  }
}

/**
 * An admin change that is not one database transaction (an endpoint starts replicas): the
 * request is recorded before anything changes (status 202, refused with 503 when that entry
 * cannot be written), then its outcome.
 */
export async function auditedAsync<T>(ws: Workspace, by: Actor & { requestId?: string }, action: string, resource: string, change: () => Promise<T>, detail?: Record<string, unknown>): Promise<T> {
  const started = performance.now();
  const entry = { plane: by.plane, principal: by.principal, keyId: by.keyId, action, resource, requestId: by.requestId };
  appendAudit(ws, { ...entry, status: 202, detail: { ...detail, phase: 'requested' } });
  let result: T;
  try {
    result = await change();
  } catch (e) {
    appendAudit(ws, { ...entry, status: e instanceof KennelError ? e.status : 500, latencyMs: performance.now() - started, detail: { ...detail, error: e instanceof Error ? e.message : String(e) } });
    throw e;
  }
  appendAudit(ws, { ...entry, status: 200, latencyMs: performance.now() - started, detail });
  return result;
}

interface Row {
  id: number;
  ts: string;
  plane: Plane;
  principal: string | null;
  key_id: string | null;
  action: string;
  resource: string;
  status: number;
  latency_ms: number | null;
  request_id: string | null;
  detail: string | null;
}

export interface AuditQuery {
  principal?: string;
  plane?: Plane;
  action?: string;
  resource?: string;
  /** only refused or failed requests (status 400 and above) */
  failed?: boolean;
  /** ISO time; entries at or after it */
  since?: string;
  /** newest entries first, at most this many (default 100) */
  limit?: number;
}

export function readAudit(ws: Workspace, q: AuditQuery = {}): AuditRecord[] {
  const filters: Array<[string, unknown]> = [];
  if (q.principal) filters.push(['principal = ?', q.principal]);
  if (q.plane) filters.push(['plane = ?', q.plane]);
  if (q.action) filters.push(['action = ? COLLATE NOCASE', q.action]);
  if (q.resource) filters.push(['resource = ?', q.resource]);
  if (q.failed) filters.push(['status >= ?', 400]);
  if (q.since) filters.push(['ts >= ?', q.since]);
  const where = filters.map((f) => f[0]);
  const args = filters.map((f) => f[1]);
  const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
  const rows = ws.db.prepare(sql).all(...args, q.limit ?? 100) as Row[];
  return rows.map((r) => ({
    id: r.id,
    ts: r.ts,
    plane: r.plane,
    principal: r.principal ?? undefined,
    keyId: r.key_id ?? undefined,
    action: r.action,
    resource: r.resource,
    status: r.status,
    latencyMs: r.latency_ms ?? undefined,
    requestId: r.request_id ?? undefined,
    detail: r.detail ? JSON.parse(r.detail) : undefined,
  }));
}

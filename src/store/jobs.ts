import { randomBytes } from 'node:crypto';
import type { Workspace } from './workspace.js';
import { now } from './workspace.js';

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface Job<P = unknown, R = unknown> {
  id: string;
  kind: string;
  status: JobStatus;
  params: P;
  result?: R;
  error?: string;
  createdAt: string;
  updatedAt: string;
}

/** A sortable, readable id: kind, UTC time, random suffix. */
export function newJobId(kind: string): string {
  const t = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `${kind}-${t}-${randomBytes(3).toString('hex')}`;
}

export function createJob<P>(ws: Workspace, kind: string, params: P, status: JobStatus = 'running'): Job<P> {
  const id = newJobId(kind);
  const t = now();
  ws.db.prepare('INSERT INTO jobs (id, kind, status, params, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)').run(id, kind, status, JSON.stringify(params), t, t);
  return { id, kind, status, params, createdAt: t, updatedAt: t };
}

export function finishJob(ws: Workspace, id: string, status: JobStatus, outcome: { result?: unknown; error?: string }): void {
  ws.db
    .prepare('UPDATE jobs SET status = ?, result = ?, error = ?, updated_at = ? WHERE id = ?')
    .run(status, outcome.result === undefined ? null : JSON.stringify(outcome.result), outcome.error ?? null, now(), id);
}

interface Row {
  id: string;
  kind: string;
  status: JobStatus;
  params: string;
  result: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

const fromRow = (r: Row): Job => ({
  id: r.id,
  kind: r.kind,
  status: r.status,
  params: JSON.parse(r.params),
  result: r.result ? JSON.parse(r.result) : undefined,
  error: r.error ?? undefined,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export function getJob(ws: Workspace, id: string): Job | undefined {
  const r = ws.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
  return r && fromRow(r);
}

/** The `limit` newest jobs, newest first. */
export function recentJobs(ws: Workspace, limit: number): Job[] {
  return (ws.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?').all(limit) as Row[]).map(fromRow);
}

export function listJobs(ws: Workspace, kind?: string): Job[] {
  const rows = (kind ? ws.db.prepare('SELECT * FROM jobs WHERE kind = ? ORDER BY created_at, id').all(kind) : ws.db.prepare('SELECT * FROM jobs ORDER BY created_at, id').all()) as Row[];
  return rows.map(fromRow);
}

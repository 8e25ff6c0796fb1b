import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { type Workspace, now } from './workspace.js';

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
  /** the host and process that run (or last ran) the job */
  host?: string;
  pid?: number;
}

/** A sortable, readable id: kind, UTC time, random suffix. */
export function newJobId(kind: string): string {
  const t = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `${kind}-${t}-${randomBytes(3).toString('hex')}`;
}

export function createJob<P>(ws: Workspace, kind: string, params: P, status: JobStatus = 'running'): Job<P> {
  const id = newJobId(kind);
  const t = now();
  const host = hostname();
  ws.db.prepare('INSERT INTO jobs (id, kind, status, params, created_at, updated_at, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(id, kind, status, JSON.stringify(params), t, t, host, process.pid);
  return { id, kind, status, params, createdAt: t, updatedAt: t, host, pid: process.pid };
}

/** Records a job's new status; a job set running again (a resumed tuning job) now runs in this process. */
export function finishJob(ws: Workspace, id: string, status: JobStatus, outcome: { result?: unknown; error?: string }): void {
  const result = outcome.result === undefined ? null : JSON.stringify(outcome.result);
  if (status === 'running') ws.db.prepare('UPDATE jobs SET status = ?, result = ?, error = ?, updated_at = ?, host = ?, pid = ? WHERE id = ?').run(status, result, outcome.error ?? null, now(), hostname(), process.pid, id);
  else ws.db.prepare('UPDATE jobs SET status = ?, result = ?, error = ?, updated_at = ? WHERE id = ?').run(status, result, outcome.error ?? null, now(), id);
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
  host: string | null;
  pid: number | null;
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
  host: r.host ?? undefined,
  pid: r.pid ?? undefined,
});

export function getJob(ws: Workspace, id: string): Job | undefined {
  const r = ws.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
  return r && fromRow(r);
}

export interface JobFilter {
  kind?: string;
  status?: JobStatus;
  /** the dataset name a job trained or tuned on */
  dataset?: string;
  limit?: number;
  /** default: oldest first */
  newestFirst?: boolean;
}

export function findJobs(ws: Workspace, filter: JobFilter): Job[] {
  const conditions: Array<[string, string | undefined]> = [
    ['kind = ?', filter.kind],
    ['status = ?', filter.status],
    ["json_extract(params, '$.dataset') = ?", filter.dataset],
  ];
  const used = conditions.filter(([, v]) => v !== undefined);
  const where = used.map(([sql]) => sql);
  const args: Array<string | number> = used.map(([, v]) => v!);
  const order = filter.newestFirst ? 'created_at DESC, id DESC' : 'created_at, id';
  const sql = `SELECT * FROM jobs${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order}${filter.limit ? ' LIMIT ?' : ''}`;
  if (filter.limit) args.push(filter.limit);
  return (ws.db.prepare(sql).all(...args) as Row[]).map(fromRow);
}

/** The `limit` newest jobs, newest first. */
export const recentJobs = (ws: Workspace, limit: number): Job[] => findJobs(ws, { limit, newestFirst: true });

export const listJobs = (ws: Workspace, kind?: string): Job[] => findJobs(ws, { kind });

/** Removes a job's row (its artifacts are left to the garbage collector). */
export function removeJob(ws: Workspace, id: string): void {
  ws.db.prepare('DELETE FROM jobs WHERE id = ?').run(id);
}

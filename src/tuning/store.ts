import { hostname } from 'node:os';
import { now, type Workspace } from '../store/index.js';
import type { Params } from './space.js';
import type { TrialEpoch, TrialOutcome } from './trial.js';

export type TrialStatus = 'queued' | 'running' | 'completed' | 'stopped' | 'failed';
export const FINISHED: readonly TrialStatus[] = ['completed', 'stopped', 'failed'];

export interface TrialRecord {
  id: number;
  params: Params;
  status: TrialStatus;
  objective: number | null;
  /** epochs run */
  epochs: number | null;
  bestEpoch: number | null;
  seconds: number | null;
  curve: Array<number | null>;
  history: TrialEpoch[];
  error?: string;
  /** times the trial was started (more than 1 after a crash or a resume) */
  attempts: number;
}

interface Row {
  trial: number;
  params: string;
  status: TrialStatus;
  objective: number | null;
  epochs: number | null;
  best_epoch: number | null;
  seconds: number | null;
  curve: string | null;
  history: string | null;
  error: string | null;
  attempts: number;
}

const fromRow = (r: Row): TrialRecord => ({
  id: r.trial,
  params: JSON.parse(r.params) as Params,
  status: r.status,
  objective: r.objective,
  epochs: r.epochs,
  bestEpoch: r.best_epoch,
  seconds: r.seconds,
  curve: r.curve ? (JSON.parse(r.curve) as Array<number | null>) : [],
  history: r.history ? (JSON.parse(r.history) as TrialEpoch[]) : [],
  error: r.error ?? undefined,
  attempts: r.attempts,
});

export function listTrials(ws: Workspace, job: string): TrialRecord[] {
  return (ws.db.prepare('SELECT * FROM tune_trials WHERE job = ? ORDER BY trial').all(job) as Row[]).map(fromRow);
}

/** Writes suggested trials, all or none, before any of them runs. */
export function queueTrials(ws: Workspace, job: string, trials: Array<{ id: number; params: Params }>): void {
  const t = now();
  const insert = ws.db.prepare("INSERT INTO tune_trials (job, trial, params, status, created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?)");
  ws.db.transaction(() => {
    for (const tr of trials) insert.run(job, tr.id, JSON.stringify(tr.params), t, t);
  })();
}

export function markRunning(ws: Workspace, job: string, ids: number[]): void {
  const update = ws.db.prepare("UPDATE tune_trials SET status = 'running', attempts = attempts + 1, updated_at = ? WHERE job = ? AND trial = ?");
  ws.db.transaction(() => {
    for (const id of ids) update.run(now(), job, id);
  })();
}

/** A finished trial's result, in one statement: a crash leaves the trial either unfinished or fully recorded. */
export function recordOutcome(ws: Workspace, job: string, id: number, o: TrialOutcome & { seconds: number }): void {
  ws.db
    .prepare('UPDATE tune_trials SET status = ?, objective = ?, epochs = ?, best_epoch = ?, seconds = ?, curve = ?, history = ?, error = ?, updated_at = ? WHERE job = ? AND trial = ?')
    .run(o.status, o.objective, o.epochs, o.bestEpoch, o.seconds, JSON.stringify(o.curve), JSON.stringify(o.history), o.error ?? null, now(), job, id);
}

/** Running trials of an interrupted session go back to the queue (their params stay). */
export function requeueRunning(ws: Workspace, job: string): number {
  return ws.db.prepare("UPDATE tune_trials SET status = 'queued', updated_at = ? WHERE job = ? AND status = 'running'").run(now(), job).changes;
}

/** Records that this process now coordinates the job. */
export function startSession(ws: Workspace, job: string): void {
  ws.db.prepare('INSERT INTO tune_sessions (job, host, pid, started_at) VALUES (?, ?, ?, ?)').run(job, hostname(), process.pid, now());
}

/** The process coordinating the job, when it is alive on this machine (one on another machine cannot be checked, so it is not reported). */
export function liveSession(ws: Workspace, job: string): { host: string; pid: number } | undefined {
  const s = ws.db.prepare('SELECT host, pid FROM tune_sessions WHERE job = ? ORDER BY id DESC LIMIT 1').get(job) as { host: string; pid: number } | undefined;
  if (!s || s.pid === process.pid || s.host !== hostname()) return undefined;
  try {
    process.kill(s.pid, 0);
    return s;
  } catch {
    return undefined;
  }
}

export function sessionCount(ws: Workspace, job: string): number {
  return (ws.db.prepare('SELECT COUNT(*) AS n FROM tune_sessions WHERE job = ?').get(job) as { n: number }).n;
}

/** Removes a tuning job's trials and sessions (before its job row goes). */
export function deleteTuneRecords(ws: Workspace, job: string): void {
  ws.db.prepare('DELETE FROM tune_trials WHERE job = ?').run(job);
  ws.db.prepare('DELETE FROM tune_sessions WHERE job = ?').run(job);
}

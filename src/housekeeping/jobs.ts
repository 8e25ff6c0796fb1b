import { hostname } from 'node:os';
import { isAlive, notFound, Errors } from '../core/index.js';
import { collectGarbage, finishJob, getJob, removeJob, type CollectReport, type Job, type Workspace } from '../store/index.js';
import { deleteTuneRecords } from '../tuning/index.js';

export function requireJob(ws: Workspace, id: string): Job {
  const job = getJob(ws, id);
  if (!job) throw notFound(`Job ${id}`, 'List jobs with kennel jobs list.');
  return job;
}

/** Whether a running job's process is gone (it crashed or was killed), so the row is stale. */
const orphaned = (job: Job): boolean => job.host === hostname() && (job.pid === undefined || !isAlive(job.pid));

/**
 * How a cancel reaches the job: `signalled` (its kennel process got SIGINT and stops at the next
 * step, keeping finished work), `marked` (its process had exited; the row is set cancelled), or
 * `daemon` (the daemon runs it: cancel it through the admin API).
 */
export type CancelRoute = 'signalled' | 'marked' | 'daemon';

export function cancelJob(ws: Workspace, id: string, opts: { daemonPid?: number } = {}): { job: string; route: CancelRoute } {
  const job = requireJob(ws, id);
  if (job.status !== 'running' && job.status !== 'queued') throw Errors.Conflict(`Job ${id} is ${job.status}; only a queued or running job can be cancelled.`);
  if (job.host !== undefined && job.host !== hostname()) throw Errors.Conflict(`Job ${id} runs on host ${job.host}.`, 'Cancel it there (Ctrl-C, or kennel jobs cancel on that host).');
  if (job.pid !== undefined && job.pid === opts.daemonPid) return { job: id, route: 'daemon' };
  if (job.status === 'queued' || orphaned(job)) {
    finishJob(ws, id, 'cancelled', { error: job.status === 'queued' ? 'cancelled before it started' : 'cancelled after its process had exited' });
    return { job: id, route: 'marked' };
  }
  process.kill(job.pid!, 'SIGINT'); // the same clean stop as Ctrl-C in its terminal
  return { job: id, route: 'signalled' };
}

/** Deletes a finished job (a tuning job with its trials) and frees what only it referenced (its telemetry). */
export function deleteJob(ws: Workspace, id: string): { deleted: string; gc: CollectReport } {
  const job = requireJob(ws, id);
  if ((job.status === 'running' || job.status === 'queued') && !orphaned(job)) throw Errors.Conflict(`Job ${id} is ${job.status}.`, `Cancel it first: kennel jobs cancel ${id}`);
  const gc = collectGarbage(ws, {
    apply: true,
    release: () =>
      ws.db.transaction(() => {
        deleteTuneRecords(ws, id);
        removeJob(ws, id);
      })(),
  });
  return { deleted: id, gc };
}

import type { Command } from 'commander';
import { cancelJob, deleteJob, requireJob } from '../../housekeeping/index.js';
import { adminRequest, readState } from '../../server/index.js';
import { collectStoreGarbage, defaultHome, findJobs, type CollectReport, type Job, type JobStatus } from '../../store/index.js';
import { parseDuration } from '../../security/index.js';
import { bytesText, deletedText, jsonCommand, table, withWorkspace, type CommandContext } from '../output.js';
import { oneOf } from '../options.js';

const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const satisfies readonly JobStatus[];
/** Paths listed by a human-readable gc report; --json lists all. */
const LISTED = 20;

function gcText(r: CollectReport): string {
  const counts = ['artifact', 'temp', 'partial-download'].map((k) => [k, r.items.filter((i) => i.kind === k).length] as const).filter(([, n]) => n > 0);
  const what = counts.length ? counts.map(([k, n]) => `${n} ${k}${n === 1 ? '' : 's'}`).join(', ') : 'nothing';
  const head = `${r.applied ? 'removed' : 'would remove'} ${what} (${bytesText(r.bytes)}); kept ${r.kept.referenced} referenced artifacts${r.kept.recent ? ` and ${r.kept.recent} newer than the grace period` : ''}`;
  const listed = r.items.slice(0, LISTED).map((i) => `  ${i.path}  ${bytesText(i.bytes)}`);
  if (r.items.length > LISTED) listed.push(`  ... and ${r.items.length - LISTED} more (--json lists all)`);
  return [head, ...listed, ...(!r.applied && r.items.length ? ['run kennel gc --yes to remove them'] : [])].join('\n');
}

const jobRow = (j: Job) => {
  const p = j.params as { dataset?: string; datasetVersion?: number; backbone?: string; model?: string };
  const r = j.result as { model?: string } | undefined;
  return { id: j.id, kind: j.kind, status: j.status, dataset: p.dataset ? `${p.dataset}${p.datasetVersion ? `@${p.datasetVersion}` : ''}` : undefined, backbone: p.backbone, model: r?.model ?? (j.kind === 'transform' ? p.model : undefined), createdAt: j.createdAt, updatedAt: j.updatedAt, error: j.error };
};

export function registerHousekeeping(program: Command): void {
  jsonCommand(
    program
      .command('gc')
      .description('Find artifacts no dataset, model, backbone, job or function references, and stale temp files (tmp/, interrupted downloads); lists them with their size, and removes them with --yes. Files changed within the grace period are kept, so a running import is safe. With an S3 artifact store (--artifacts), its unreferenced objects too.')
      .option('--yes', 'remove them (default: a dry run that only lists)')
      .option('--grace <duration>', 'keep anything changed more recently than this, e.g. 1h, 10m, 0s', '1h'),
    {
      action: (ctx: CommandContext<{ yes?: boolean; grace: string; json?: boolean }>) => {
        const graceMs = parseDuration(ctx.opts.grace, '--grace', { allowZero: true });
        return collectStoreGarbage(ctx.ws, { apply: !!ctx.opts.yes, graceMs });
      },
      human: gcText,
    },
  );

  const jobs = program.command('jobs').description('Training, tuning and batch transform jobs: list, show, cancel, delete.');
  jsonCommand(
    jobs
      .command('list')
      .description('List jobs, newest first.')
      .option('--kind <kind>', 'train, tune or transform', oneOf('--kind', ['train', 'tune', 'transform'] as const))
      .option('--status <status>', JOB_STATUSES.join(', '), oneOf('--status', JOB_STATUSES))
      .option('--dataset <name>', 'only jobs on this dataset'),
    {
      action: ({ ws, opts }: CommandContext<{ kind?: string; status?: JobStatus; dataset?: string; json?: boolean }>) => findJobs(ws, { kind: opts.kind, status: opts.status, dataset: opts.dataset, newestFirst: true }).map(jobRow),
      json: (rows) => ({ jobs: rows }),
      human: (rows) =>
        rows.length
          ? table(['JOB', 'KIND', 'STATUS', 'DATASET', 'BACKBONE', 'MODEL', 'CREATED'], rows.map((j) => [j.id, j.kind, j.status, j.dataset ?? '-', j.backbone ?? '-', j.model ?? '-', j.createdAt.slice(0, 19).replace('T', ' ')]))
          : 'no jobs match: start one with kennel train --dataset NAME --backbone ID',
    },
  );

  jsonCommand(jobs.command('show <job>').description('Show a job: its options, status, result summary or error.'), {
    jsonHelp: 'print JSON (the whole job row)',
    action: ({ ws }, id: string) => requireJob(ws, id),
    human: (job) => {
      const row = jobRow(job);
      return [
        `${job.id}  ${job.kind}  ${job.status}${job.pid ? `  (pid ${job.pid} on ${job.host})` : ''}`,
        `  created ${job.createdAt}, updated ${job.updatedAt}`,
        `  options: ${Object.entries(job.params as Record<string, unknown>).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ')}`,
        row.model ? `  model: ${row.model}` : '',
        job.error ? `  error: ${job.error}` : '',
        job.status === 'completed' && (job.kind === 'train' || job.kind === 'tune') ? `next: kennel rules ${job.id}, kennel report ${job.id}` : '',
      ]
        .filter(Boolean)
        .join('\n');
    },
  });

  jsonCommand(jobs.command('cancel <job>').description('Stop a running job as Ctrl-C would (finished work is kept; a tuning job can be resumed). A job whose process has exited is marked cancelled.'), {
    action: async (_ctx, id: string) => {
      const home = defaultHome();
      // the workspace is closed before the daemon is asked
      const r = await withWorkspace((ws) => cancelJob(ws, id, { daemonPid: readState(home)?.pid }));
      if (r.route === 'daemon') await adminRequest(home, 'POST', `/api/jobs/${encodeURIComponent(id)}/cancel`);
      return { r, id };
    },
    json: ({ r }) => r,
    human: ({ r, id }) => `job ${id}: ${{ signalled: 'asked it to stop; it ends as cancelled after the current step', marked: 'its process had exited; marked cancelled', daemon: 'the daemon is stopping it' }[r.route]}`,
  });

  jsonCommand(jobs.command('delete <job>').description('Delete a finished job (a tuning job with its trials) and free what only it used (its telemetry). Models it registered stay.'), {
    action: ({ ws }, id: string) => deleteJob(ws, id),
    human: (r) => deletedText({ deleted: [r.deleted], gc: r.gc }),
  });
}

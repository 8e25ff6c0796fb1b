import { CancelledError, KennelError, errorMessage, type ProgressEvent } from '../core/index.js';
import type { Workspace } from '../store/index.js';
import { train, type TrainOptions } from '../training/index.js';
import { tune, type TuneOptions } from '../tuning/index.js';

/** Where the runner reports how a job ended (the daemon's pino logger fits). */
export interface JobLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A job the daemon runs: its progress, and a way to stop it. */
interface Run {
  controller: AbortController;
  /** the latest event of each phase, in the order the phases began */
  phases: ProgressEvent[];
  done: Promise<void>;
}

export type JobRequest = { kind: 'train'; options: TrainOptions } | { kind: 'tune'; options: TuneOptions };

/**
 * The jobs service of the daemon: training and tuning jobs started through the admin API (the
 * console's /api/jobs, /v1/jobs) run inside the daemon, with the same services as the CLI; the
 * job rows and results are the same. This keeps their live progress
 * (phase bars) and lets the page cancel them (the services stop at the next batch and keep what
 * is finished, so a cancelled tuning job can be resumed with kennel tune resume).
 */
export class JobRunner {
  private readonly runs = new Map<string, Run>();

  constructor(
    private readonly ws: Workspace,
    private readonly log: JobLog,
  ) {}

  /** Starts a job and resolves with its id once it is recorded; invalid options reject (4xx) before any job exists. */
  start(request: JobRequest): Promise<string> {
    const controller = new AbortController();
    const phases: ProgressEvent[] = [];
    const progress = (e: ProgressEvent) => {
      const known = phases.find((p) => p.phase === e.phase);
      if (known) Object.assign(known, e);
      else phases.push({ ...e });
    };
    const run: Run = { controller, phases, done: Promise.resolve() };
    return new Promise<string>((resolve, reject) => {
      let id: string | undefined;
      const onJob = (job: string) => {
        id = job;
        this.runs.set(job, run);
        resolve(job);
      };
      const hooks = { progress, signal: controller.signal, onJob };
      const work = request.kind === 'train' ? train(this.ws, request.options, hooks) : tune(this.ws, request.options, hooks);
      run.done = work.then(
        () => undefined,
        (e: unknown) => {
          if (id === undefined) return reject(e);
          if (!(e instanceof CancelledError) && !(e instanceof KennelError)) this.log.error({ err: e, job: id }, 'console job failed');
          else this.log.info({ job: id, reason: errorMessage(e) }, 'console job stopped');
        },
      ).finally(() => {
        if (id !== undefined) this.runs.delete(id);
      });
    });
  }

  /** Live progress of a job this daemon runs; undefined for jobs run elsewhere (the CLI, another daemon). */
  progress(job: string): ProgressEvent[] | undefined {
    return this.runs.get(job)?.phases;
  }

  /** Asks a running job to stop; it ends as cancelled shortly after. */
  cancel(job: string): boolean {
    const run = this.runs.get(job);
    if (!run) return false;
    run.controller.abort();
    return true;
  }

  /** Cancels every job and waits for them to record their end (the daemon is stopping). */
  async close(): Promise<void> {
    const runs = [...this.runs.values()];
    for (const r of runs) r.controller.abort();
    await Promise.all(runs.map((r) => r.done));
  }
}

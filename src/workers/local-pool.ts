import { availableParallelism } from 'node:os';
import { Errors, CancelledError, KennelError, Child } from '../core/index.js';
import type { ChildConfig, FromChild, TaskFailure, ToChild } from './child.js';
import { Channel, DEFAULT_ATTEMPTS, PoisonedTaskError, thisWorker, type Engine, type RunOptions, type TaskDone, type WorkerInfo } from './engine.js';
import { LocalPresence } from './presence.js';
import type { Task } from './task.js';

interface Pending {
  task: Task;
  attempts: number;
  /** workers on which it failed, so a retry prefers another one */
  failedOn: Set<string>;
}

interface Proc {
  id: string;
  child: Child<ToChild, FromChild>;
  info: WorkerInfo;
  ready: boolean;
  /** settles when the process is ready, or has exited before that */
  started: Promise<boolean>;
  job?: { pending: Pending; startedAt: string };
}

interface RunState {
  out: Channel<TaskDone>;
  pending: Pending[];
  remaining: number;
  opts: RunOptions;
  finished: boolean;
}

/** Worker processes that exit before they are ready this many times in a row stop the run. */
const MAX_START_FAILURES = 2;
const STOP_GRACE_MS = 5_000;

/**
 * A pool of N local worker processes (child.ts in a process Child). Processes, not threads:
 * a crash or out-of-memory kills one task, which is retried on another worker, not the job.
 * Each process gets an equal share of the cores for ONNX Runtime.
 */
export class LocalPool implements Engine {
  readonly backend = 'local' as const;
  readonly concurrency: number;
  readonly threads: number;
  private readonly procs: Proc[] = [];
  private readonly presence: LocalPresence;
  private state?: RunState;
  private startFailures = 0;
  private seq = 0;
  private closing = false;

  constructor(private readonly opts: { workers: number; home: string; taskModules: string[]; device: string; attempts?: number; threads?: number }) {
    this.concurrency = Math.max(1, opts.workers);
    this.threads = opts.threads ?? Math.max(1, Math.floor(availableParallelism() / this.concurrency));
    this.presence = new LocalPresence(opts.home, () => this.workers());
  }

  /** Processes start with the first run, and only as many as it has tasks. */
  async start(): Promise<void> {}

  /** The live worker processes, as `kennel workers list` shows them. */
  workers(): WorkerInfo[] {
    return this.procs.map((p) => ({ ...p.info, task: p.job && { id: p.job.pending.task.id, label: p.job.pending.task.label, startedAt: p.job.startedAt } }));
  }

  run(tasks: Task[], opts: RunOptions = {}): AsyncIterable<TaskDone> {
    if (this.state && !this.state.finished) throw new Error('LocalPool runs one batch of tasks at a time');
    const state: RunState = { out: new Channel(), pending: tasks.map((task) => ({ task, attempts: 0, failedOn: new Set() })), remaining: tasks.length, opts, finished: false };
    this.state = state;
    const onAbort = () => this.finish(state, new CancelledError());
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    else if (!tasks.length) this.finish(state);
    else {
      this.presence.start();
      this.fill();
      this.assign();
    }
    const self = this;
    return (async function* () {
      try {
        yield* state.out;
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
        // a consumer that stops early (its own error) cancels what is still running
        if (!state.finished) self.finish(state, new CancelledError());
      }
    })();
  }

  /**
   * Starts the whole pool now and waits until every process is ready, instead of with the first
   * run: a run that must not pay for process start-up (a benchmark, a latency-sensitive job).
   */
  async warm(): Promise<void> {
    while (this.procs.length < this.concurrency) this.spawn();
    const started = await Promise.all(this.procs.map((p) => p.started));
    if (!started.every(Boolean)) throw Errors.WorkerStartFailed('A worker process exited while starting.', 'Run with KENNEL_DEBUG=1 and check the worker output above.');
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.state && !this.state.finished) this.finish(this.state, new CancelledError());
    await Promise.all(this.procs.map((p) => this.stop(p)));
    this.presence.stop();
  }

  /** Starts processes until there is one per remaining task, up to the pool size. */
  private fill(): void {
    const state = this.state;
    if (!state || state.finished || this.closing) return;
    while (this.procs.length < Math.min(this.concurrency, state.remaining)) this.spawn();
  }

  private spawn(): void {
    const id = `local-${process.pid}-${++this.seq}`;
    const config: ChildConfig = { home: this.opts.home, threads: this.threads, taskModules: this.opts.taskModules };
    const child = new Child<ToChild, FromChild>({
      entry: new URL('./child.js', import.meta.url),
      kind: 'process',
      args: [JSON.stringify(config)],
      // stdout goes to our stderr, so a worker can never corrupt `--json` output
      stdio: ['ignore', 2, 2, 'ipc'],
      // a stopped worker aborts its task; one that does not exit in time is killed
      stop: { type: 'stop' },
      graceMs: STOP_GRACE_MS,
    });
    // a worker's first message is 'ready', or 'fatal' when it cannot start
    const started = child.start().then((m) => m.type === 'ready', () => false);
    const proc: Proc = { id, child, ready: false, started, info: { ...thisWorker('local', { id, threads: this.threads, device: this.opts.device }), pid: child.pid ?? 0 } };
    this.procs.push(proc);
    child.on('message', (m) => this.onMessage(proc, m));
    child.on('exit', ({ code, signal }) => this.onExit(proc, signal ?? `exit code ${code}`));
  }

  private onMessage(proc: Proc, m: FromChild): void {
    const state = this.state;
    switch (m.type) {
      case 'ready':
        proc.ready = true;
        this.startFailures = 0;
        this.assign();
        return;
      case 'fatal':
        if (state) this.finish(state, Errors.WorkerStartFailed(`A worker process could not start: ${m.message}`, 'Check that the workspace and Kennel installation are readable by the worker.'));
        return;
      case 'progress':
        if (proc.job && state) state.opts.onEvent?.({ type: 'progress', task: proc.job.pending.task, worker: proc.id, units: m.units });
        return;
      case 'done': {
        const job = proc.job;
        proc.job = undefined;
        if (!job || !state || state.finished || job.pending.task.id !== m.id) return;
        state.remaining--;
        state.out.push({ task: job.pending.task, output: m.output, worker: proc.id, seconds: m.seconds, attempts: job.pending.attempts });
        if (state.remaining === 0) this.finish(state);
        else this.assign();
        return;
      }
      case 'failed': {
        const job = proc.job;
        proc.job = undefined;
        if (!job || !state || state.finished) return;
        this.retryOrGiveUp(state, job.pending, proc.id, describeFailure(m.error));
        this.assign();
        return;
      }
    }
  }

  private onExit(proc: Proc, how: string): void {
    this.procs.splice(this.procs.indexOf(proc), 1);
    const state = this.state;
    if (this.closing || !state || state.finished) return;
    if (proc.job) this.retryOrGiveUp(state, proc.job.pending, proc.id, `its worker process (pid ${proc.info.pid}) died (${how})`);
    if (!proc.ready && ++this.startFailures >= MAX_START_FAILURES) {
      this.finish(state, Errors.WorkerStartFailed(`Worker processes exit while starting (${how}).`, 'Run with KENNEL_DEBUG=1 and check the worker output above.'));
      return;
    }
    this.fill();
    this.assign();
  }

  private retryOrGiveUp(state: RunState, p: Pending, worker: string, reason: string): void {
    p.failedOn.add(worker);
    if (p.attempts >= (this.opts.attempts ?? DEFAULT_ATTEMPTS)) {
      this.finish(state, new PoisonedTaskError(p.task, p.attempts, reason));
      return;
    }
    state.pending.unshift(p);
    state.opts.onEvent?.({ type: 'retrying', task: p.task, attempt: p.attempts + 1, reason });
  }

  /** Gives waiting tasks to idle workers, in task order; a retry prefers a worker it has not failed on. */
  private assign(): void {
    const state = this.state;
    if (!state || state.finished) return;
    let assigned = false;
    while (state.pending.length) {
      const idle = this.procs.filter((p) => p.ready && !p.job && p.child.connected);
      if (!idle.length) break;
      assigned = true;
      const next = state.pending.shift()!;
      const proc = idle.find((p) => !next.failedOn.has(p.id)) ?? idle[0]!;
      next.attempts++;
      proc.job = { pending: next, startedAt: new Date().toISOString() };
      proc.child.send({ type: 'run', task: next.task });
      state.opts.onEvent?.({ type: 'started', task: next.task, worker: proc.id, pid: proc.info.pid });
    }
    if (assigned) this.presence.write();
  }

  /** Ends a run; on failure or cancellation the busy workers are stopped (new ones start on the next run). */
  private finish(state: RunState, error?: unknown): void {
    if (state.finished) return;
    state.finished = true;
    this.presence.write();
    if (error === undefined) {
      state.out.end();
      return;
    }
    state.out.fail(error);
    for (const p of this.procs.filter((x) => x.job)) void this.stop(p);
  }

  /** Asks a worker to stop (it aborts its task), and kills it if it has not exited in time. */
  private async stop(p: Proc): Promise<void> {
    await p.child.close();
  }
}

function describeFailure(e: TaskFailure): string {
  return e.hint ? `${e.message} (${e.hint})` : e.message;
}

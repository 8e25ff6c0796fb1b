import { CancelledError, errorMessage } from '../core/index.js';
import type { ArtifactStore } from '../store/index.js';
import { DEFAULT_ATTEMPTS, PoisonedTaskError, type Engine, type RunOptions, type TaskDone } from './engine.js';
import { TaskHost } from './host.js';
import type { Task } from './task.js';

/**
 * Runs tasks in this process: the default for one instance, with no extra process to start, so
 * single-machine training costs nothing extra. One task at a time by default; `concurrency` runs
 * more at once, for a GPU whose pipeline would otherwise drain and refill between two tasks.
 */
export class InlineEngine implements Engine {
  readonly backend = 'inline' as const;
  readonly concurrency: number;
  private host?: TaskHost;
  private readonly id = `inline-${process.pid}`;

  constructor(private readonly opts: { home: string; artifacts: ArtifactStore; threads: number; taskModules: string[]; attempts?: number; concurrency?: number }) {
    this.concurrency = Math.max(1, opts.concurrency ?? 1);
  }

  async start(): Promise<void> {
    this.host ??= await TaskHost.open(this.opts);
  }

  async *run(tasks: Task[], opts: RunOptions = {}): AsyncIterable<TaskDone> {
    await this.start();
    type Settled = { ok: true; done: TaskDone } | { ok: false; error: unknown };
    const running = new Map<number, Promise<[number, Settled]>>();
    let next = 0;
    const launch = () => {
      const i = next++;
      running.set(
        i,
        this.attempt(tasks[i]!, opts).then(
          (done): [number, Settled] => [i, { ok: true, done }],
          (error: unknown): [number, Settled] => [i, { ok: false, error }],
        ),
      );
    };
    try {
      while (next < tasks.length && running.size < this.concurrency) launch();
      while (running.size > 0) {
        const [i, settled] = await Promise.race(running.values());
        running.delete(i);
        if (!settled.ok) throw settled.error;
        if (next < tasks.length) launch();
        yield settled.done;
      }
    } finally {
      // a failed task or a caller that stopped reading: the others end before the engine may close
      await Promise.allSettled(running.values());
    }
  }

  /** One task, retried up to the engine's attempts; PoisonedTaskError after the last. */
  private async attempt(task: Task, opts: RunOptions): Promise<TaskDone> {
    const attempts = this.opts.attempts ?? DEFAULT_ATTEMPTS;
    for (let attempt = 1; ; attempt++) {
      if (opts.signal?.aborted) throw new CancelledError();
      opts.onEvent?.({ type: 'started', task, worker: this.id, pid: process.pid });
      const started = performance.now();
      try {
        const output = await this.host!.run(task, { signal: opts.signal, progress: (units) => opts.onEvent?.({ type: 'progress', task, worker: this.id, units }) });
        return { task, output, worker: this.id, seconds: (performance.now() - started) / 1000, attempts: attempt };
      } catch (e) {
        if (e instanceof CancelledError || opts.signal?.aborted) throw e;
        if (attempt >= attempts) throw new PoisonedTaskError(task, attempt, errorMessage(e));
        opts.onEvent?.({ type: 'retrying', task, attempt: attempt + 1, reason: errorMessage(e) });
      }
    }
  }

  async close(): Promise<void> {
    await this.host?.close();
    this.host = undefined;
  }
}

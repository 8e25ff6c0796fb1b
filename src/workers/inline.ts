import { CancelledError, errorMessage } from '../core/index.js';
import type { ArtifactStore } from '../store/index.js';
import { DEFAULT_ATTEMPTS, PoisonedTaskError, type Engine, type RunOptions, type TaskDone } from './engine.js';
import { TaskHost } from './host.js';
import type { Task } from './task.js';

/**
 * Runs tasks one after another in this process: the default for one instance, with no extra
 * process to start, so single-machine training costs nothing extra.
 */
export class InlineEngine implements Engine {
  readonly backend = 'inline' as const;
  readonly concurrency = 1;
  private host?: TaskHost;
  private readonly id = `inline-${process.pid}`;

  constructor(private readonly opts: { home: string; artifacts: ArtifactStore; threads: number; taskModules: string[]; attempts?: number }) {}

  async start(): Promise<void> {
    this.host ??= await TaskHost.open(this.opts);
  }

  async *run(tasks: Task[], opts: RunOptions = {}): AsyncIterable<TaskDone> {
    await this.start();
    const attempts = this.opts.attempts ?? DEFAULT_ATTEMPTS;
    for (const task of tasks) {
      for (let attempt = 1; ; attempt++) {
        if (opts.signal?.aborted) throw new CancelledError();
        opts.onEvent?.({ type: 'started', task, worker: this.id, pid: process.pid });
        const started = performance.now();
        let output: unknown;
        try {
          output = await this.host!.run(task, { signal: opts.signal, progress: (units) => opts.onEvent?.({ type: 'progress', task, worker: this.id, units }) });
        } catch (e) {
          if (e instanceof CancelledError || opts.signal?.aborted) throw e;
          if (attempt >= attempts) throw new PoisonedTaskError(task, attempt, errorMessage(e));
          opts.onEvent?.({ type: 'retrying', task, attempt: attempt + 1, reason: errorMessage(e) });
          continue;
        }
        yield { task, output, worker: this.id, seconds: (performance.now() - started) / 1000, attempts: attempt };
        break;
      }
    }
  }

  async close(): Promise<void> {
    await this.host?.close();
    this.host = undefined;
  }
}

import { availableParallelism, hostname } from 'node:os';
import { Errors, KennelError, kennelVersion } from '../core/index.js';
import type { Task } from './task.js';

export type Backend = 'inline' | 'local' | 'redis';

/** A worker as `kennel workers list` shows it. */
export interface WorkerInfo {
  id: string;
  backend: Backend;
  host: string;
  pid: number;
  cores: number;
  threads: number;
  /** the execution provider it runs tasks on: cpu or webgpu */
  device: string;
  version: string;
  startedAt: string;
  heartbeatAt: string;
  /** the task it is running, if any */
  task?: { id: string; label: string; startedAt: string };
}


/** The identity of a worker in this process. */
export function thisWorker(backend: Backend, opts: { id: string; threads: number; device: string }): WorkerInfo {
  const t = new Date().toISOString();
  return { id: opts.id, backend, host: hostname(), pid: process.pid, cores: availableParallelism(), threads: opts.threads, device: opts.device, version: kennelVersion(), startedAt: t, heartbeatAt: t };
}

/** A finished task as the coordinator receives it. */
export interface TaskDone<O = unknown> {
  task: Task;
  output: O;
  /** id of the worker that ran it */
  worker: string;
  /** seconds the worker spent on it */
  seconds: number;
  /** how many times it was started (1 = no retry) */
  attempts: number;
}

export type TaskEvent =
  | { type: 'started'; task: Task; worker: string; pid: number }
  | { type: 'progress'; task: Task; worker: string; units: number }
  | { type: 'retrying'; task: Task; attempt: number; reason: string }
  /** something the user should know while waiting, e.g. "no workers connected" */
  | { type: 'notice'; message: string };

export interface RunOptions {
  signal?: AbortSignal;
  onEvent?: (e: TaskEvent) => void;
}

/**
 * Runs tasks on workers. `start` acquires what the backend needs (processes, a Redis
 * connection) and fails with a clear error when it cannot; `run` yields each task's result as
 * it finishes, in any order, and throws PoisonedTaskError when a task failed on every attempt
 * or CancelledError when the signal aborts; `close` releases everything. One run at a time.
 */
export interface Engine {
  readonly backend: Backend;
  /** tasks that may run at the same time */
  readonly concurrency: number;
  start(): Promise<void>;
  run(tasks: Task[], opts?: RunOptions): AsyncIterable<TaskDone>;
  close(): Promise<void>;
}

/** Attempts per task before it is reported as poisoned (a crash counts as an attempt). */
export const DEFAULT_ATTEMPTS = 3;

/** A task that failed on every attempt: reported instead of retried forever. */
export class PoisonedTaskError extends KennelError {
  constructor(
    readonly task: Task,
    readonly attempts: number,
    readonly reason: string,
  ) {
    super(
      `Task ${task.label} failed on ${attempts} attempt${attempts === 1 ? '' : 's'} and was given up: ${reason.replace(/\.$/, '')}.`,
      'A corrupt or oversized input can crash a worker; fix or remove it and run the same command again (finished work is kept).',
      Errors.TaskPoisoned.status,
      Errors.TaskPoisoned.code,
    );
    this.name = 'PoisonedTaskError';
  }
}

/** An async queue of results: producers push or fail, the run's iterator pulls. */
export class Channel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter?: { resolve: () => void };
  private error?: unknown;
  private ended = false;

  push(item: T): void {
    this.items.push(item);
    this.wake();
  }

  fail(error: unknown): void {
    if (this.ended) return;
    this.error ??= error;
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      // results that arrived before a failure are still delivered, so their work is recorded
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.error !== undefined) throw this.error;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.waiter = { resolve }));
    }
  }
}

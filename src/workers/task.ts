import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { Errors, KennelError, runnableEntry } from '../core/index.js';
import type { ArtifactStore } from '../store/index.js';

/**
 * A unit of work for a worker: plain JSON, so the same task runs in this process, in a local
 * worker process or on another machine through Redis.
 */
export interface Task<I = unknown> {
  /** unique within one run; the coordinator matches results by it */
  id: string;
  /** registered task type, e.g. 'extract-chunk' */
  type: string;
  input: I;
  /** human description for progress and error messages */
  label: string;
}

/** What a task may use on the worker: the shared artifact store, its CPU share and cached resources. */
export interface TaskContext {
  artifacts: ArtifactStore;
  /** the workspace the artifacts come from, for messages */
  home: string;
  /** ORT intra-op threads this worker may use */
  threads: number;
  signal?: AbortSignal;
  /** reports `units` (e.g. images) done since the last call */
  progress(units: number): void;
  resources: Resources;
}

/**
 * Fails a task at once, with what to do, when an artifact it needs is not in the worker's store
 * (a worker started on another store than the coordinator's).
 */
export async function requireArtifacts(ctx: TaskContext, shas: readonly string[]): Promise<void> {
  for (const sha of shas) {
    if (!(await ctx.artifacts.has(sha))) {
      throw Errors.ArtifactMissing(`Artifact ${sha.slice(0, 12)} is not in the artifact store ${ctx.home}.`, "Every worker must use the coordinator's artifact store: start it with the same --artifacts s3://BUCKET/PREFIX (or --home with the shared KENNEL_HOME).");
    }
  }
}

/**
 * A task type: validated input, a run function, a JSON output. Areas define their own (training
 * defines 'extract-chunk') in a module that exports `tasks`; workers load such modules by URL.
 */
export interface TaskType<I = any, O = any> {
  type: string;
  input: z.ZodType<I>;
  run(ctx: TaskContext, input: I): Promise<O>;
}

export const defineTask = <I, O>(t: TaskType<I, O>): TaskType<I, O> => t;

const registry = new Map<string, TaskType>();

export function registerTaskTypes(types: TaskType[]): void {
  for (const t of types) registry.set(t.type, t);
}

/** Imports task modules (each exports `tasks: TaskType[]`) and registers their types. */
export async function loadTaskModules(modules: string[]): Promise<void> {
  for (const m of modules) {
    const mod = (await import(m)) as { tasks?: TaskType[] };
    if (!Array.isArray(mod.tasks)) throw new Error(`task module ${m} does not export a \`tasks\` array`);
    registerTaskTypes(mod.tasks);
  }
}

/** The one function every backend calls to execute a task. */
export async function runTask(ctx: TaskContext, task: Task): Promise<unknown> {
  const type = registry.get(task.type);
  if (!type) throw Errors.UnknownTaskType(`This worker does not know the task type "${task.type}".`, 'Run the same Kennel version on the coordinator and on every worker.');
  const input = type.input.safeParse(task.input);
  if (!input.success) throw Errors.InvalidTask(`Task ${task.label} has invalid input: ${input.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}.`, 'Run the same Kennel version on the coordinator and on every worker.');
  return type.run(ctx, input.data);
}

/**
 * Expensive per-process resources (ORT sessions) kept between tasks. The least recently used
 * is closed when more than `capacity` are open, so a long-lived worker does not grow.
 */
export class Resources {
  private readonly entries = new Map<string, { value: Promise<unknown>; close: (v: any) => Promise<void> }>();

  constructor(private readonly capacity = 2) {}

  async get<T>(key: string, create: () => Promise<T>, close: (v: T) => Promise<void>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.value as Promise<T>;
    }
    const value = create();
    this.entries.set(key, { value, close });
    value.catch(() => this.entries.delete(key));
    while (this.entries.size > this.capacity) {
      const [oldest, entry] = this.entries.entries().next().value!;
      this.entries.delete(oldest);
      await entry.value.then(entry.close, () => {});
    }
    return value;
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const e of all) await e.value.then(e.close, () => {});
  }
}

/**
 * A task module's URL as a worker loads it: the compiled `.js` next to built code, or the `.ts`
 * source when running under tsx (tests, development); see core's runnableEntry.
 */
export function runnableModule(url: URL): string {
  const entry = runnableEntry(url);
  if (!existsSync(fileURLToPath(entry))) throw new Error(`module ${fileURLToPath(entry)} not found`);
  return entry.href;
}

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Errors, KennelError } from '../core/index.js';
import { openArtifactStore, type ArtifactStore } from '../store/index.js';
import { Resources, loadTaskModules, runTask, type Task } from './task.js';

/**
 * Runs tasks in this process: what the inline engine, a local worker process and a Redis
 * worker share. It needs only the artifact store of the workspace, never its SQLite file, so
 * workers on other machines can use a shared KENNEL_HOME (NFS does not support SQLite's WAL).
 */
export class TaskHost {
  private readonly resources = new Resources();

  private constructor(
    readonly home: string,
    readonly artifacts: ArtifactStore,
    readonly threads: number,
  ) {}

  static async open(opts: { home: string; threads: number; taskModules: string[]; artifacts?: ArtifactStore }): Promise<TaskHost> {
    await loadTaskModules(opts.taskModules);
    return new TaskHost(resolve(opts.home), opts.artifacts ?? openArtifacts(opts.home), opts.threads);
  }

  run(task: Task, opts: { signal?: AbortSignal; progress?: (units: number) => void } = {}): Promise<unknown> {
    return runTask({ artifacts: this.artifacts, home: this.home, threads: this.threads, signal: opts.signal, progress: opts.progress ?? (() => {}), resources: this.resources }, task);
  }

  close(): Promise<void> {
    return this.resources.closeAll();
  }
}

/** The artifact store of an existing workspace (the layout of src/store/workspace.ts). */
export function openArtifacts(home: string): ArtifactStore {
  if (!existsSync(join(resolve(home), 'artifacts'))) throw Errors.NotAWorkspace(`${resolve(home)} is not a Kennel workspace (it has no artifacts folder).`, 'Give the KENNEL_HOME the coordinator uses, e.g. kennel worker --home /mnt/shared/kennel.');
  return openArtifactStore(home);
}

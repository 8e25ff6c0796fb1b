import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Errors } from '../core/index.js';
import { artifactsConfig, openArtifacts as openConfigured, type ArtifactStore } from '../store/index.js';
import { Resources, loadTaskModules, runTask, type Task } from './task.js';

/**
 * Runs tasks in this process: what the inline engine, a local worker process and a Redis
 * worker share. It needs only the artifact store, never the workspace's SQLite file: a task
 * carries the keys of every artifact it reads, and returns the keys of those it writes for the
 * coordinator to record. With an S3 store (KENNEL_ARTIFACTS) a worker needs no workspace at all,
 * only its local cache; with the workspace folder, workers elsewhere share KENNEL_HOME.
 */
export class TaskHost {
  private readonly resources = new Resources();

  private constructor(
    /** where the artifacts come from, for messages: the store's URL or the workspace folder */
    readonly home: string,
    readonly artifacts: ArtifactStore,
    readonly threads: number,
  ) {}

  /** `home` may be left out when the artifacts are in S3 (KENNEL_ARTIFACTS). */
  static async open(opts: { home?: string; threads: number; taskModules: string[]; artifacts?: ArtifactStore }): Promise<TaskHost> {
    await loadTaskModules(opts.taskModules);
    const artifacts = opts.artifacts ?? openArtifacts(opts.home);
    await artifacts.ready?.();
    return new TaskHost(artifactsConfig().url ?? join(resolve(opts.home!), 'artifacts'), artifacts, opts.threads);
  }

  run(task: Task, opts: { signal?: AbortSignal; progress?: (units: number) => void } = {}): Promise<unknown> {
    return runTask({ artifacts: this.artifacts, home: this.home, threads: this.threads, signal: opts.signal, progress: opts.progress ?? (() => {}), resources: this.resources }, task);
  }

  async close(): Promise<void> {
    await this.resources.closeAll();
    this.artifacts.close?.();
  }
}

/** The configured S3 store, or the artifact folder of an existing workspace (the layout of src/store/workspace.ts). */
export function openArtifacts(home: string | undefined): ArtifactStore {
  if (!artifactsConfig().url && home && !existsSync(join(resolve(home), 'artifacts'))) {
    throw Errors.NotAWorkspace(`${resolve(home)} is not a Kennel workspace (it has no artifacts folder).`, 'Give the artifact store the coordinator uses (kennel worker --artifacts s3://BUCKET/PREFIX), or its shared KENNEL_HOME (--home /mnt/shared/kennel).');
  }
  return openConfigured(home);
}

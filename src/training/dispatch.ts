import { availableParallelism } from 'node:os';
import type { Backbone } from '../backbones/index.js';
import { type ProgressEvent, type ProgressSink, Errors } from '../core/index.js';
import type { DatasetVersion, Split } from '../data/index.js';
import { assertDevice, executionProviders, type Device, type Precision } from '../inference/index.js';
import type { Workspace } from '../store/index.js';
import { createEngine, parseQueueUrl, type Backend, type Task, type TaskDone, type TaskEvent } from '../workers/index.js';
import { CHUNK_ROWS, chunkItems, featureKey, missingChunks, readFeatures, recordChunk, splitItems, type FeatureMatrix, type FeatureRequest } from './features.js';
import { TRAINING_TASKS, type ExtractChunkInput, type ExtractChunkOutput } from './tasks.js';

export interface WorkerThroughput {
  worker: string;
  tasks: number;
  images: number;
  /** seconds the worker spent on its tasks */
  seconds: number;
  imagesPerSecond: number;
}

export interface DatasetFeatures {
  train: FeatureMatrix[];
  valid: FeatureMatrix;
  test: FeatureMatrix;
  /** images run through the backbone by this call */
  extractedImages: number;
  backend: Backend;
  /** per-worker throughput of this call (empty when everything was cached) */
  workers: WorkerThroughput[];
}

export interface FeatureOptions {
  augment: number;
  seed: number;
  device: Device;
  precision?: Precision;
  /** workers to shard extraction over; 1 = this process; default: one per core (see defaultInstances) */
  instances?: number;
  /** redis:// URL: shard over `kennel worker` processes instead of local ones */
  queue?: string;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

interface Group {
  request: FeatureRequest;
  key: string;
  missing: number[];
  /** progress phase when groups run one after another */
  phase: string;
}

interface ChunkTask {
  group: Group;
  chunk: number;
  rows: number;
}

/**
 * Features for the training views and the valid/test centre crops. Chunks not cached yet become
 * 'extract-chunk' tasks on an engine: this process for one instance, else local worker
 * processes or Redis workers. Each chunk's bytes depend only on its images (fixed batch size),
 * and readFeatures places chunks by index, so the result is bit-identical however many workers
 * ran it and in whatever order they finished.
 */
export async function datasetFeatures(ws: Workspace, ds: DatasetVersion, backbone: Backbone, opts: FeatureOptions): Promise<DatasetFeatures> {
  if (opts.queue) parseQueueUrl(opts.queue); // a bad URL is an error even when everything is cached
  const group = async (split: Split, view: number): Promise<Group> => {
    const request: FeatureRequest = { dataset: ds, backbone, split, view, seed: opts.seed };
    const key = featureKey(request);
    return { request, key, missing: await missingChunks(ws, key, splitItems(ds, split).length), phase: view ? `features ${split} view ${view}` : `features ${split}` };
  };
  const groups = await Promise.all([...Array.from({ length: opts.augment + 1 }, (_, v) => group('train', v)), group('valid', 0), group('test', 0)]);
  const chunkTasks = new Map<string, ChunkTask>();
  const tasks: Task<ExtractChunkInput>[] = [];
  for (const g of groups) {
    for (const chunk of g.missing) {
      const items = chunkItems(g.request, chunk);
      const id = `${g.key.slice(0, 16)}-${chunk}`;
      chunkTasks.set(id, { group: g, chunk, rows: items.length });
      tasks.push({
        id,
        type: 'extract-chunk',
        label: `${g.phase} chunk ${chunk} (${items.length} images from ${items[0]!.path})`,
        input: {
          extractor: { sha: backbone.extractorSha, inputName: backbone.spec.inputName, outputName: backbone.spec.outputName, dim: backbone.spec.featureDim, preprocess: backbone.spec.preprocess },
          images: items.map((i) => i.sha256),
          seed: opts.seed,
          view: g.request.view,
          device: opts.device,
          precision: opts.precision ?? 'auto',
        },
      });
    }
  }
  const { backend, workers } = tasks.length ? await runTasks(ws, tasks, chunkTasks, opts) : { backend: 'inline' as const, workers: [] };
  const load = async (g: Group) => {
    const items = splitItems(ds, g.request.split);
    return readFeatures(ws, g.request, items, Math.ceil(items.length / CHUNK_ROWS) - g.missing.length);
  };
  const matrices = await Promise.all(groups.map(load));
  const extractedImages = [...chunkTasks.values()].reduce((n, t) => n + t.rows, 0);
  return { train: matrices.slice(0, -2), valid: matrices.at(-2)!, test: matrices.at(-1)!, extractedImages, backend, workers };
}

async function runTasks(ws: Workspace, tasks: Task<ExtractChunkInput>[], chunkTasks: Map<string, ChunkTask>, opts: FeatureOptions): Promise<{ backend: Backend; workers: WorkerThroughput[] }> {
  // what the device resolves to here: --device auto without a GPU runs on the CPU, and so gets the CPU's pool
  await assertDevice(opts.device); // a missing GPU: one sentence now, not a native error from every worker
  const provider = executionProviders(opts.device)[0]!;
  // on a GPU two chunks run at once through the one extractor, so that its session has the next
  // chunk's batches queued when one chunk's last batch runs (one at a time, its pipeline drains)
  const engine = await createEngine({ instances: opts.instances ?? defaultInstances(tasks.length, provider), queue: opts.queue, home: ws.home, artifacts: ws.artifacts, taskModules: [TRAINING_TASKS()], device: provider, inlineConcurrency: provider === 'cpu' ? 1 : 2 });
  // one bar a phase while tasks run one at a time, else one bar for all; an inline engine is one worker
  const progress = new ExtractionProgress(chunkTasks, { tasksAtOnce: engine.concurrency, workers: engine.backend === 'inline' ? 1 : engine.concurrency }, opts.progress);
  const stats = new Map<string, WorkerThroughput>();
  try {
    await engine.start();
    for await (const done of engine.run(tasks, { signal: opts.signal, onEvent: (e) => progress.on(e) })) {
      const t = chunkTasks.get(done.task.id)!;
      const out = done.output as ExtractChunkOutput;
      if (out.rows !== t.rows || !(await ws.artifacts.has(out.artifactSha))) {
        throw Errors.WorkspaceMismatch(`Worker ${done.worker} stored its features where this workspace (${ws.home}) cannot see them.`, 'Start every kennel worker with the same --artifacts s3://BUCKET/PREFIX as the coordinator (or --home with the shared KENNEL_HOME).');
      }
      recordChunk(ws, t.group.key, t.chunk, out.artifactSha, out.rows);
      progress.finished(done);
      const s = stats.get(done.worker) ?? { worker: done.worker, tasks: 0, images: 0, seconds: 0, imagesPerSecond: 0 };
      s.tasks++;
      s.images += out.rows;
      s.seconds += done.seconds;
      s.imagesPerSecond = s.seconds > 0 ? s.images / s.seconds : 0;
      stats.set(done.worker, s);
    }
  } finally {
    await engine.close();
  }
  return { backend: engine.backend, workers: [...stats.values()].sort((a, b) => a.worker.localeCompare(b.worker)) };
}

/**
 * The embedded default: a local pool of one worker process per core (1.3x the images/s of one
 * in-process session on 2 cores), but never more workers than chunks to extract, and a single
 * process when a GPU does the work.
 */
function defaultInstances(tasks: number, provider: string): number {
  if (provider !== 'cpu') return 1;
  return Math.max(1, Math.min(availableParallelism(), tasks));
}

/**
 * One progress bar for all shards. With one task at a time, each (split, view) keeps its own
 * phase as before; with several workers every shard feeds a single "features" bar.
 */
class ExtractionProgress {
  /** images done per task, and their sums per group and overall */
  private readonly byTask = new Map<string, number>();
  private readonly byGroup = new Map<Group, number>();
  private readonly groupTotal = new Map<Group, number>();
  private done = 0;
  private readonly total: number;
  private readonly started = performance.now();
  private last?: Group;
  private notice?: string;
  private lastReport = '';

  constructor(
    private readonly chunkTasks: Map<string, ChunkTask>,
    private readonly engine: { tasksAtOnce: number; workers: number },
    private readonly sink?: ProgressSink,
  ) {
    for (const t of chunkTasks.values()) this.groupTotal.set(t.group, (this.groupTotal.get(t.group) ?? 0) + t.rows);
    this.total = [...this.groupTotal.values()].reduce((n, x) => n + x, 0);
  }

  on(e: TaskEvent): void {
    if (e.type === 'notice') this.notice = e.message;
    else if (e.type === 'progress') this.set(e.task.id, (this.byTask.get(e.task.id) ?? 0) + e.units);
    else {
      // started (again): a retried task starts from zero
      if (e.type === 'started') this.notice = undefined;
      this.set(e.task.id, 0);
    }
    this.report();
  }

  finished(d: TaskDone): void {
    this.set(d.task.id, this.chunkTasks.get(d.task.id)!.rows);
    this.report();
  }

  private set(taskId: string, images: number): void {
    const t = this.chunkTasks.get(taskId)!;
    const now = Math.min(t.rows, images);
    const delta = now - (this.byTask.get(taskId) ?? 0);
    this.byTask.set(taskId, now);
    this.byGroup.set(t.group, (this.byGroup.get(t.group) ?? 0) + delta);
    this.done += delta;
    this.last = t.group;
  }

  private report(): void {
    if (!this.sink) return;
    let e: ProgressEvent;
    if (this.engine.tasksAtOnce === 1) {
      if (!this.last) return;
      e = { phase: this.last.phase, done: this.byGroup.get(this.last) ?? 0, total: this.groupTotal.get(this.last)!, detail: this.notice };
    } else {
      const seconds = (performance.now() - this.started) / 1000;
      const rate = `${seconds > 0 ? Math.round(this.done / seconds) : 0} images/s`;
      e = { phase: 'features', done: this.done, total: this.total, detail: this.notice ?? (this.engine.workers > 1 ? `${this.engine.workers} workers, ${rate}` : rate) };
    }
    // the same count twice (a task's last batch, then its result) would end a phase twice
    const id = `${e.phase} ${e.done} ${this.notice ?? ''}`;
    if (id === this.lastReport) return;
    this.lastReport = id;
    this.sink(e);
  }
}

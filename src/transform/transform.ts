import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { CancelledError, Errors, errorMessage, isAlive, type ProgressSink } from '../core/index.js';
import { assertDevice, executionProviders, type Device, type ModelSource } from '../inference/index.js';
import { createJob, findJobs, finishJob, type Job, type Workspace } from '../store/index.js';
import { createEngine, parseQueueUrl, type Backend, type Task, type TaskEvent } from '../workers/index.js';
import { resultWriter, type FilePrediction } from './results.js';
import { itemName, TRANSFORM_TASKS, type ShardInput, type ShardOutput, type TransformItem } from './tasks.js';

/** Images per shard: the unit of work on a worker and of resuming (a killed run redoes at most one shard per worker). */
export const DEFAULT_SHARD_SIZE = 256;
const DEFAULT_MAX_IMAGE_BYTES = 8 * 1024 * 1024;

export interface TransformRequest {
  /** "NAME@VERSION", for the job record and messages */
  model: string;
  graph: ModelSource;
  /** what the items came from, for the job record: "folder ./photos", "dataset dogs@2", "urls list.txt" */
  source: string;
  items: TransformItem[];
  /** .jsonl or .csv (absolute) */
  out: string;
  topK: number;
}

export interface TransformOptions {
  device: Device;
  /** workers: 1 (the default) runs in this process; more are local worker processes (or shards in flight with a queue) */
  instances?: number;
  /** redis:// URL: shards run on `kennel worker` processes */
  queue?: string;
  shardSize?: number;
  maxImageBytes?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
  /** told the job id once it is recorded (before any work) */
  onJob?: (id: string, resumed: boolean) => void;
}

export interface TransformResult {
  job: string;
  model: string;
  out: string;
  images: number;
  /** images without an answer (their reasons are in `failures` and in the output) */
  failed: number;
  failures: Array<{ file: string; error: string }>;
  /** wall seconds of this run (a resumed run counts only its own work) */
  seconds: number;
  /** images classified by this run per second (0 when every shard was done before) */
  imagesPerSecond: number;
  /** images whose shard an earlier, interrupted run of the same job had finished */
  resumedImages: number;
  shards: number;
  backend: Backend;
  workers: number;
}

/** What the job row holds while it runs and after: each finished shard's results artifact. */
interface TransformProgress {
  shards: Array<string | null>;
  images: number;
  failed: number;
}

interface TransformParams {
  /** the job's identity: the model graph, top-k, shard size and the exact inputs */
  key: string;
  model: string;
  source: string;
  out: string;
  images: number;
  topK: number;
  shardSize: number;
}

/**
 * A batch transform (SageMaker's CreateTransformJob): every input through a model, sharded over
 * the worker engine (this process, a local pool, or Redis workers), results to one .jsonl or .csv.
 * It is a job (kind "transform", `kennel jobs list`); each finished shard's results are an
 * artifact recorded in the job row, so running the same transform again after Ctrl-C, kill -9 or
 * a crash resumes: finished shards are not run again. The output file is assembled from the
 * shards in input order once all are done, written beside it and renamed into place.
 */
export async function runTransform(ws: Workspace, req: TransformRequest, opts: TransformOptions): Promise<TransformResult> {
  if (req.items.length === 0) throw Errors.InvalidRequest('There are no images to transform.', 'Pass a folder of images, a dataset or a file listing image URLs.');
  if (opts.queue) parseQueueUrl(opts.queue);
  await assertDevice(opts.device);
  const shardSize = opts.shardSize ?? DEFAULT_SHARD_SIZE;
  const key = createHash('sha256').update(JSON.stringify([req.graph.onnxSha, req.topK, shardSize, req.items])).digest('hex').slice(0, 32);
  const { job, state, resumed } = jobFor(ws, req, key, shardSize);
  opts.onJob?.(job.id, resumed);
  const started = performance.now();
  const shardCount = state.shards.length;
  const resumedImages = state.shards.reduce((n, s, i) => n + (s ? shardItems(req.items, i, shardSize).length : 0), 0);
  let backend: Backend = 'inline';
  let workers = 1;
  try {
    const todo = state.shards.flatMap((s, i) => (s ? [] : [i]));
    if (todo.length) ({ backend, workers } = await runShards(ws, req, job.id, state, todo, shardSize, opts, resumedImages));
    const failures = await assemble(ws, state, req.out);
    const seconds = (performance.now() - started) / 1000;
    const ran = req.items.length - resumedImages;
    const result: TransformResult = { job: job.id, model: req.model, out: req.out, images: req.items.length, failed: failures.length, failures, seconds, imagesPerSecond: ran > 0 ? ran / seconds : 0, resumedImages, shards: shardCount, backend, workers };
    // the shards stay referenced by the job row (until kennel jobs delete), so the output can be rebuilt
    finishJob(ws, job.id, 'completed', { result: { ...state, ...result, failures: failures.slice(0, 100) } });
    return result;
  } catch (e) {
    finishJob(ws, job.id, e instanceof CancelledError ? 'cancelled' : 'failed', { result: state, error: errorMessage(e) });
    throw e;
  }
}

/** The unfinished job with this key (to resume), or a new one; the same transform running elsewhere is a 409. */
function jobFor(ws: Workspace, req: TransformRequest, key: string, shardSize: number): { job: Job; state: TransformProgress; resumed: boolean } {
  const previous = findJobs(ws, { kind: 'transform', newestFirst: true }).find((j) => (j.params as TransformParams).key === key && j.status !== 'completed');
  if (previous) {
    if (previous.status === 'running' && previous.pid !== process.pid && (previous.host !== hostname() || (previous.pid !== undefined && isAlive(previous.pid)))) {
      throw Errors.Conflict(`This transform is already running as job ${previous.id} (pid ${previous.pid} on ${previous.host}).`, `Wait for it, or stop it with kennel jobs cancel ${previous.id}.`);
    }
    const state = (previous.result as TransformProgress | undefined) ?? emptyProgress(req.items.length, shardSize);
    finishJob(ws, previous.id, 'running', { result: state });
    return { job: previous, state, resumed: true };
  }
  const params: TransformParams = { key, model: req.model, source: req.source, out: req.out, images: req.items.length, topK: req.topK, shardSize };
  const state = emptyProgress(req.items.length, shardSize);
  const job = createJob(ws, 'transform', params);
  finishJob(ws, job.id, 'running', { result: state });
  return { job, state, resumed: false };
}

const emptyProgress = (images: number, shardSize: number): TransformProgress => ({ shards: Array.from({ length: Math.ceil(images / shardSize) }, () => null), images: 0, failed: 0 });

const shardItems = (items: TransformItem[], shard: number, shardSize: number): TransformItem[] => items.slice(shard * shardSize, (shard + 1) * shardSize);

async function runShards(ws: Workspace, req: TransformRequest, jobId: string, state: TransformProgress, todo: number[], shardSize: number, opts: TransformOptions, resumedImages: number): Promise<{ backend: Backend; workers: number }> {
  const provider = executionProviders(opts.device)[0]!;
  const card = req.graph.card;
  const model: ShardInput['model'] = { sha: req.graph.onnxSha, inputName: card.inputName, outputName: card.outputName, labels: card.labels, preprocess: card.preprocess };
  const tasks: Task<ShardInput>[] = todo.map((i) => {
    const items = shardItems(req.items, i, shardSize);
    return { id: `${jobId}-${i}`, type: 'transform-shard', label: `shard ${i + 1} of ${state.shards.length} (${items.length} images from ${itemName(items[0]!)})`, input: { model, items, topK: req.topK, device: opts.device, maxImageBytes: opts.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES } };
  });
  const shardOf = new Map(tasks.map((t, k) => [t.id, todo[k]!]));
  // default one worker, this process: one session on every core with decoding overlapping runs, no
  // processes to start (bench:transform: ahead of a pool of two in 4 of 7 measured pairs on 2 cores)
  const instances = opts.instances ?? 1;
  const engine = await createEngine({ instances: Math.min(instances, tasks.length), queue: opts.queue, home: ws.home, artifacts: ws.artifacts, taskModules: [TRANSFORM_TASKS()], device: provider });
  const bar = new TransformProgressBar(req.items.length, resumedImages, engine.concurrency, opts.progress);
  try {
    await engine.start();
    for await (const done of engine.run(tasks, { signal: opts.signal, onEvent: (e) => bar.on(e) })) {
      const out = done.output as ShardOutput;
      if (!(await ws.artifacts.has(out.artifactSha))) {
        throw Errors.WorkspaceMismatch(`Worker ${done.worker} stored its results where this workspace (${ws.home}) cannot see them.`, 'Start every kennel worker with --home set to the same shared KENNEL_HOME as the coordinator.');
      }
      const shard = shardOf.get(done.task.id)!;
      state.shards[shard] = out.artifactSha;
      state.images += out.images;
      state.failed += out.failed;
      finishJob(ws, jobId, 'running', { result: state });
      bar.finished(done.task.id, out.images, out.failed);
    }
  } finally {
    await engine.close();
  }
  return { backend: engine.backend, workers: engine.concurrency };
}

/** Writes the output from the shards' results, in input order; returns the images without an answer. */
async function assemble(ws: Workspace, state: TransformProgress, out: string): Promise<Array<{ file: string; error: string }>> {
  const failures: Array<{ file: string; error: string }> = [];
  const writer = resultWriter(out, { atomic: true });
  try {
    for (const sha of state.shards) {
      const text = Buffer.from(await ws.artifacts.get(sha!)).toString('utf8');
      for (const line of text.split('\n')) {
        if (!line) continue;
        const r = JSON.parse(line) as FilePrediction;
        if ('error' in r) failures.push(r);
        writer.write(r);
      }
    }
  } finally {
    writer.close();
  }
  return failures;
}

/** One progress bar over all shards and workers: images done (finished shards of earlier runs included), images/s, failures. */
class TransformProgressBar {
  private readonly byTask = new Map<string, number>();
  private done: number;
  private failed = 0;
  private readonly started = performance.now();
  private notice?: string;
  private lastReport = '';

  constructor(
    private readonly total: number,
    private readonly resumed: number,
    private readonly workers: number,
    private readonly sink?: ProgressSink,
  ) {
    this.done = resumed;
  }

  on(e: TaskEvent): void {
    if (e.type === 'notice') this.notice = e.message;
    else if (e.type === 'progress') this.add(e.task.id, e.units);
    else {
      // started (again): a retried shard starts from zero
      if (e.type === 'started') this.notice = undefined;
      this.add(e.task.id, -(this.byTask.get(e.task.id) ?? 0));
    }
    this.report();
  }

  finished(taskId: string, images: number, failed: number): void {
    this.add(taskId, images - (this.byTask.get(taskId) ?? 0));
    this.failed += failed;
    this.report();
  }

  private add(taskId: string, delta: number): void {
    this.byTask.set(taskId, (this.byTask.get(taskId) ?? 0) + delta);
    this.done += delta;
  }

  private report(): void {
    if (!this.sink) return;
    const seconds = (performance.now() - this.started) / 1000;
    const rate = seconds > 0 ? Math.round((this.done - this.resumed) / seconds) : 0;
    const detail = this.notice ?? [`${this.workers} worker${this.workers === 1 ? '' : 's'}`, `${rate} images/s`, this.failed ? `${this.failed} failed` : '', this.resumed ? `${this.resumed} done before` : ''].filter(Boolean).join(', ');
    // the same count twice (a shard's last image, then its result) would end the bar twice
    const id = `${this.done} ${this.notice ?? ''}`;
    if (id === this.lastReport) return;
    this.lastReport = id;
    this.sink({ phase: 'transform', done: this.done, total: this.total, detail });
  }
}

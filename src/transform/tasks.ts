import { statSync } from 'node:fs';
import { z } from 'zod';
import { CancelledError, Errors } from '../core/index.js';
import { BatchedClassifier, Classifier, classifyBatched, DEVICES, decodeWorkersFor, tuneSharp, type PreprocessSpec } from '../inference/index.js';
import { fetchImage } from '../net/index.js';
import { defineTask, requireArtifacts, runnableModule, type TaskType } from '../workers/index.js';
import { filePrediction } from './results.js';

const sha = z.string().regex(/^[0-9a-f]{64}$/);
const triple = z.tuple([z.number(), z.number(), z.number()]);
const preprocess: z.ZodType<PreprocessSpec> = z.object({ size: z.number().int().positive(), cropFraction: z.number().positive(), layout: z.enum(['NCHW', 'NHWC']), scale: z.number(), mean: triple, std: triple });

/** One input of a batch transform: a file, an image artifact (a dataset's), or an https URL fetched through the safe fetcher. */
const Item = z.union([z.object({ path: z.string() }), z.object({ sha, name: z.string() }), z.object({ url: z.string() })]);
export type TransformItem = z.infer<typeof Item>;

/** The name an item has in the results: the path, the dataset path, or the URL. */
export const itemName = (it: TransformItem): string => ('path' in it ? it.path : 'url' in it ? it.url : it.name);

/** Images per model run and in flight per worker, as kennel predict runs them. */
export const SHARD_BATCH = 16;
const WINDOW = SHARD_BATCH * 3;

const ShardInput = z.object({
  model: z.object({ sha, inputName: z.string(), outputName: z.string(), labels: z.array(z.string()).min(1), preprocess }),
  items: z.array(Item).min(1),
  topK: z.number().int().min(1).max(1000),
  device: z.enum(DEVICES),
  /** largest image fetched from a URL */
  maxImageBytes: z.number().int().positive(),
});
export type ShardInput = z.infer<typeof ShardInput>;

export interface ShardOutput {
  /** the shard's results: one FilePrediction JSON line per item, in item order */
  artifactSha: string;
  images: number;
  failed: number;
  seconds: number;
}

/**
 * A shard of a batch transform: its images through the model, batched as `kennel predict` and the
 * endpoints batch them (a BatchedClassifier the worker keeps between shards), each answer or
 * the reason an image has none as one JSON line, stored as one artifact. The coordinator records
 * it, so SQLite keeps one writer and a finished shard is never run again.
 */
export const transformShardTask: TaskType<ShardInput, ShardOutput> = defineTask({
  type: 'transform-shard',
  input: ShardInput,
  async run(ctx, input) {
    const started = performance.now();
    await requireArtifacts(ctx, [input.model.sha]);
    tuneSharp();
    const m = input.model;
    const batched = await ctx.resources.get(
      `classifier ${m.sha} ${input.device} ${ctx.threads}`,
      async () => {
        const card = { labels: m.labels, preprocess: m.preprocess, inputName: m.inputName, outputName: m.outputName };
        // on a GPU, decode worker processes (as many as this worker's share of the cores), as a GPU replica has
        const decodeWorkers = decodeWorkersFor(input.device, { cores: ctx.threads });
        const clf = await Classifier.load(await ctx.artifacts.localPath(m.sha), card, { device: input.device, threads: ctx.threads, thread: { maxBatch: SHARD_BATCH }, decodeWorkers });
        return new BatchedClassifier(clf, { maxBatch: SHARD_BATCH, maxDelayMs: 2 });
      },
      (b) => b.classifier.close(),
    );
    const image = async (i: number) => {
      const it = input.items[i]!;
      if ('path' in it) {
        if (!statSync(it.path).isFile()) throw Errors.InvalidRequest(`${it.path} is not a file.`);
        return it.path;
      }
      if ('url' in it) return Buffer.from((await fetchImage(it.url, { maxBytes: input.maxImageBytes, signal: ctx.signal })).bytes);
      return ctx.artifacts.localPath(it.sha);
    };
    const lines: string[] = [];
    let failed = 0;
    await classifyBatched(batched, input.items.length, image, {
      topK: input.topK,
      window: WINDOW,
      signal: ctx.signal,
      onResult: (answer, i) => {
        const r = filePrediction(itemName(input.items[i]!), answer);
        if ('error' in r) failed++;
        lines.push(JSON.stringify(r));
        ctx.progress(1);
      },
    });
    // stopped before every image was answered: nothing is kept (a shard finished as the stop came is)
    if (lines.length < input.items.length) throw new CancelledError();
    const artifactSha = await ctx.artifacts.put(Buffer.from(lines.join('\n') + '\n'));
    return { artifactSha, images: input.items.length, failed, seconds: (performance.now() - started) / 1000 };
  },
});

/** The task types of this area; workers load this module by URL. */
export const tasks: TaskType[] = [transformShardTask];

/** URL of this module, for engines that start workers (the .ts source under tsx, else the built .js). */
export const TRANSFORM_TASKS = (): string => runnableModule(new URL('./tasks.js', import.meta.url));

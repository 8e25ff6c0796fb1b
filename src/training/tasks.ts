import { z } from 'zod';
import { DEVICES, FeatureExtractor, PRECISIONS, tuneSharp, type PreprocessSpec } from '../inference/index.js';
import { defineTask, requireArtifacts, runnableModule, type TaskType } from '../workers/index.js';
import { extractChunk } from './features.js';

const sha = z.string().regex(/^[0-9a-f]{64}$/);
const triple = z.tuple([z.number(), z.number(), z.number()]);
const preprocess: z.ZodType<PreprocessSpec> = z.object({ size: z.number().int().positive(), cropFraction: z.number().positive(), layout: z.enum(['NCHW', 'NHWC']), scale: z.number(), mean: triple, std: triple });

const ExtractChunkInput = z.object({
  /** the backbone's extractor graph and how to feed it */
  extractor: z.object({ sha, inputName: z.string(), outputName: z.string(), dim: z.number().int().positive(), preprocess }),
  /** image artifacts of the chunk, in row order */
  images: z.array(sha).min(1),
  seed: z.number().int().min(0),
  view: z.number().int().min(0),
  device: z.enum(DEVICES),
  precision: z.enum(PRECISIONS).default('auto'),
});
export type ExtractChunkInput = z.infer<typeof ExtractChunkInput>;

export interface ExtractChunkOutput {
  /** raw float32 features, images x dim */
  artifactSha: string;
  rows: number;
  seconds: number;
}

/**
 * The backbone pass over one chunk of images. It reads and writes only the artifact store; the
 * coordinator records the returned sha, so SQLite keeps one writer.
 */
export const extractChunkTask: TaskType<ExtractChunkInput, ExtractChunkOutput> = defineTask({
  type: 'extract-chunk',
  input: ExtractChunkInput,
  async run(ctx, input) {
    const started = performance.now();
    await requireArtifacts(ctx, [input.extractor.sha, input.images[0]!]);
    tuneSharp();
    const e = input.extractor;
    const extractor = await ctx.resources.get(
      `extractor ${e.sha} ${input.device} ${input.precision} ${ctx.threads}`,
      async () => FeatureExtractor.create(await ctx.artifacts.localPath(e.sha), { spec: e.preprocess, inputName: e.inputName, outputName: e.outputName, dim: e.dim, device: input.device, precision: input.precision, threads: ctx.threads, digest: e.sha }),
      (x) => x.close(),
    );
    const artifactSha = await extractChunk(ctx.artifacts, extractor, input.images.map((sha256) => ({ sha256 })), { seed: input.seed, view: input.view }, { signal: ctx.signal, onImages: ctx.progress });
    return { artifactSha, rows: input.images.length, seconds: (performance.now() - started) / 1000 };
  },
});

/** The task types of this area; workers load this module by URL. */
export const tasks: TaskType[] = [extractChunkTask];

/** URL of this module, for engines that start workers (the .ts source under tsx, else the built .js). */
export const TRAINING_TASKS = (): string => runnableModule(new URL('./tasks.js', import.meta.url));

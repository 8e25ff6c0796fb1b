import { statSync } from 'node:fs';
import { KennelError, type ProgressSink, Errors } from '../core/index.js';
import type { Workspace } from '../store/index.js';
import { BatchedClassifier } from './batched.js';
import { Classifier, type ModelSpec, type Prediction } from './classifier.js';
import { decodeWorkersFor } from './decode-pool.js';
import type { ImageInput } from './preprocess.js';
import type { SessionSettings } from './session.js';

/**
 * A model to run: a registered model version (the registry's getModel(ws, 'NAME:TAG') returns
 * one), or anything else with its graph's artifact and spec. References are resolved by the
 * caller: the registry imports inference (for the input spec), so inference cannot import it.
 */
export interface ModelSource {
  onnxSha: string;
  card: ModelSpec;
}

export interface ClassifyOptions extends SessionSettings {
  /** predictions per image, best first (default 5) */
  topK?: number;
  /** images per model run at most (default 16): batches grow up to it with the images ready */
  batchSize?: number;
  /** images decoding, waiting or running at once (default 3 batches), so decoding overlaps runs */
  window?: number;
  /** stops taking new images; the answer then holds the images classified so far, in order */
  signal?: AbortSignal;
  /** { phase: 'classify', done, total } after each answer */
  progress?: ProgressSink;
}

/** classify() streaming: each answer goes to onResult as soon as it and those before it are done. */
export interface ClassifyStreamOptions extends ClassifyOptions {
  onResult: (answer: Classification, index: number) => void;
}

/**
 * One image's answer: its top-k predictions, or why it has none: a KennelError for a path that
 * is not a file or an image that does not decode, else the error that reading it gave.
 */
export type Classification = { predictions: Prediction[] } | { error: unknown };

/**
 * The one call from a model to predictions: loads the model (its session in its own thread),
 * decodes and preprocesses the images as in training while earlier batches run, batches them
 * through a BatchedClassifier (the endpoints' replicas run the same one) and answers each image
 * with its top-k, in input order. A bad image is answered with its error; the others still run.
 * With `onResult`, answers are streamed to it in order instead of collected.
 */
export async function classify(ws: Pick<Workspace, 'artifacts'>, model: ModelSource, images: readonly ImageInput[], opts: ClassifyStreamOptions): Promise<void>;
export async function classify(ws: Pick<Workspace, 'artifacts'>, model: ModelSource, images: readonly ImageInput[], opts?: ClassifyOptions): Promise<Classification[]>;
export async function classify(ws: Pick<Workspace, 'artifacts'>, model: ModelSource, images: readonly ImageInput[], opts: ClassifyOptions & { onResult?: ClassifyStreamOptions['onResult'] } = {}): Promise<Classification[] | void> {
  const { topK = 5, batchSize = 16, window, signal, progress, onResult, ...settings } = opts;
  // a GPU takes images faster than this process decodes them: many images decode in worker processes
  const decodeWorkers = decodeWorkersFor(settings.device ?? 'cpu', { images: images.length });
  const clf = await Classifier.load(await ws.artifacts.localPath(model.onnxSha), model.card, { ...settings, thread: { maxBatch: batchSize }, decodeWorkers });
  const answers: Classification[] = [];
  try {
    const batched = new BatchedClassifier(clf, { maxBatch: batchSize, maxDelayMs: 2 });
    let done = 0;
    await classifyBatched(batched, images.length, (i) => {
      const image = images[i]!;
      if (typeof image === 'string' && !statSync(image).isFile()) throw Errors.InvalidRequest(`${image} is not a file.`);
      return image;
    }, { topK, window: window ?? batchSize * 3, signal, onResult: (answer, i) => {
      if (onResult) onResult(answer, i);
      else answers.push(answer);
      progress?.({ phase: 'classify', done: ++done, total: images.length });
    } });
  } finally {
    await clf.close();
  }
  return onResult ? undefined : answers;
}

/**
 * classify()'s loop on a classifier the caller keeps (a batch transform worker keeps one between
 * shards): `count` images, image i from `image(i)` (bytes or a path; fetched or read as needed),
 * up to `window` decoding, waiting or running at once, each answer (or the error that getting,
 * decoding or running the image gave) to `onResult` in input order. Stops taking images on `signal`.
 */
export async function classifyBatched(
  batched: BatchedClassifier,
  count: number,
  image: (index: number) => ImageInput | Promise<ImageInput>,
  opts: { topK: number; window: number; signal?: AbortSignal; onResult: (answer: Classification, index: number) => void },
): Promise<void> {
  await inOrder(count, opts.window, opts.signal, async (i) => ({ predictions: await batched.classify(await image(i), opts.topK) }), opts.onResult);
}

/**
 * Runs `work` on items 0..count-1 and hands each answer (or the error it threw) to `emit` in input
 * order. At most `window` items are taken and not yet emitted, so a slow item bounds how far the
 * others run ahead of it (and how much an abort still answers). Stops taking items on `signal`.
 */
async function inOrder(count: number, window: number, signal: AbortSignal | undefined, work: (index: number) => Promise<Classification>, emit: (answer: Classification, index: number) => void): Promise<void> {
  const limit = Math.max(1, window);
  let next = 0;
  let emitted = 0;
  const done = new Map<number, Classification>();
  // workers waiting for an emission to free a place in the window
  let wake: Array<() => void> = [];
  const worker = async (): Promise<void> => {
    for (;;) {
      while (next - emitted >= limit && next < count && !signal?.aborted) await new Promise<void>((resolve) => wake.push(resolve));
      if (next >= count || signal?.aborted) return;
      const i = next++;
      let answer: Classification;
      try {
        answer = await work(i);
      } catch (error) {
        answer = { error };
      }
      done.set(i, answer);
      for (let d = done.get(emitted); d; d = done.get(emitted)) {
        done.delete(emitted);
        emit(d, emitted++);
      }
      const waiting = wake;
      wake = [];
      for (const resolve of waiting) resolve();
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

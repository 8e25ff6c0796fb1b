import { statSync } from 'node:fs';
import { KennelError, type ProgressSink, Errors } from '../core/index.js';
import type { Workspace } from '../store/index.js';
import { Classifier, type ModelSpec, type Prediction } from './classifier.js';
import { inputSize, type ImageInput } from './preprocess.js';
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
  /** images per model run (default 16) */
  batchSize?: number;
  /** stops between batches; the answer then holds the images classified so far, in order */
  signal?: AbortSignal;
  /** { phase: 'classify', done, total } after each batch */
  progress?: ProgressSink;
}

/**
 * One image's answer: its top-k predictions, or why it has none: a KennelError for a path that
 * is not a file or an image that does not decode, else the error that reading it gave.
 */
export type Classification = { predictions: Prediction[] } | { error: unknown };

/**
 * The one call from a model to predictions: loads the model, decodes and preprocesses the
 * images as in training, runs them in batches and returns each image's top-k, in order. A bad
 * image is answered with its error; the others of its batch are still classified.
 */
export async function classify(ws: Pick<Workspace, 'artifacts'>, model: ModelSource, images: readonly ImageInput[], opts: ClassifyOptions = {}): Promise<Classification[]> {
  const { topK, batchSize, signal, progress, ...settings } = opts;
  const clf = await Classifier.load(await ws.artifacts.localPath(model.onnxSha), model.card, settings);
  try {
    return await classifyBatches(clf, images, { topK, batchSize, signal, progress });
  } finally {
    await clf.close();
  }
}

/** classify() with a loaded classifier (for callers that keep one for many calls). */
export async function classifyBatches(clf: Classifier, images: readonly ImageInput[], opts: Omit<ClassifyOptions, keyof SessionSettings> = {}): Promise<Classification[]> {
  const k = opts.topK ?? 5;
  const batch = opts.batchSize ?? 16;
  const size = inputSize(clf.card.preprocess);
  const input = clf.inputBuffer(batch);
  const answers: Classification[] = [];
  for (let i = 0; i < images.length && !opts.signal?.aborted; i += batch) {
    const failed = await Promise.all(
      images.slice(i, i + batch).map(async (image, j): Promise<Classification | undefined> => {
        try {
          if (typeof image === 'string' && !statSync(image).isFile()) throw Errors.InvalidRequest(`${image} is not a file.`);
          await clf.preprocess(image, input, j);
          return undefined;
        } catch (error) {
          return { error };
        }
      }),
    );
    // the images that decoded run as one batch: rows after a failed image move up
    let n = 0;
    failed.forEach((f, j) => {
      if (f) return;
      if (n !== j) input.copyWithin(n * size, j * size, (j + 1) * size);
      n++;
    });
    const probs = n ? await clf.run(input, n) : undefined;
    let row = 0;
    for (const f of failed) answers.push(f ?? { predictions: clf.topK(probs!, row++, k) });
    opts.progress?.({ phase: 'classify', done: Math.min(images.length, i + batch), total: images.length });
  }
  return answers;
}

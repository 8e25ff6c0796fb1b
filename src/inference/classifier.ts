import { clientImageError, decodeClientImage, inputSize, normalizeInto, type ImageInput, type PreprocessSpec } from './preprocess.js';
import { ChildGoneError, ChildJobError, KennelError } from '../core/index.js';
import { DecodePool } from './decode-pool.js';
import { assertDevice } from './device-probe.js';
import type { ModelSession, SessionSettings } from './session.js';
import { openSession, ThreadedSession } from './threaded.js';
import { ModelFeed } from './uint8-input.js';

/** A batch of model input: normalised floats, or RGB bytes for a classifier that takes bytes. */
export type ModelInput = Float32Array | Uint8Array;

/**
 * What inference needs to know of a classifier graph (a registry model card has it): how its
 * input is made, the names of its input and probabilities output, and its labels.
 */
export interface ModelSpec {
  labels: string[];
  preprocess: PreprocessSpec;
  inputName: string;
  /** output holding class probabilities [N, classes] */
  outputName: string;
}

export interface Prediction {
  label: string;
  index: number;
  score: number;
}

/** Where a classifier's session runs: on the calling thread, or in its own (see ThreadedSession). */
export interface ClassifierOptions extends SessionSettings {
  /** run inference in a worker thread, with a shared input buffer for batches of up to maxBatch images */
  thread?: { maxBatch: number };
  /**
   * feed the graph decoded RGB bytes and normalise inside it (withUint8Input); default on a GPU,
   * where it uploads a quarter of the bytes and leaves the host no per-pixel work
   */
  bytesIn?: boolean;
  /**
   * decode images in this many worker processes (DecodePool) rather than on this process's libuv
   * pool: for a GPU, which classifies more images than one process decodes; default 0
   */
  decodeWorkers?: number;
}

/**
 * A loaded model version: decode + preprocess exactly as in training, run the exported graph,
 * return the top-k labels. `classify` takes several images and runs them as one batch.
 */
export class Classifier {
  private constructor(
    private readonly session: ModelSession,
    readonly card: ModelSpec,
    private readonly feed: ModelFeed,
    private readonly decoders: DecodePool | undefined,
  ) {}

  static async load(onnx: string | Uint8Array, card: ModelSpec, opts: ClassifierOptions = {}): Promise<Classifier> {
    const { thread, bytesIn, decodeWorkers, ...settings } = opts;
    await assertDevice(settings.device ?? 'cpu');
    const feed = ModelFeed.for(card.preprocess, settings.device, bytesIn);
    const { graph, inputName } = await feed.graph(onnx, card.inputName);
    const maxInputBytes = thread && feed.allocate(thread.maxBatch).byteLength;
    const session = await openSession(graph, { ...settings, maxBatch: thread?.maxBatch }, { inputName, outputName: card.outputName }, maxInputBytes === undefined ? undefined : { maxInputBytes });
    try {
      return new Classifier(session, card, feed, decodeWorkers ? await DecodePool.start(decodeWorkers) : undefined);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /** Whether the model input is RGB bytes (normalised in the graph) rather than normalised floats. */
  get bytesIn(): boolean {
    return this.feed.bytes;
  }

  /** A new input for one image (floats or bytes, as this classifier takes), for preprocess(). */
  imageInput(): ModelInput {
    return this.feed.allocate(1);
  }

  /**
   * A buffer for the inputs of up to `n` images that run() takes as it is (for a threaded
   * classifier, the memory it shares with its thread, which the thread copies from: fill it
   * only between runs).
   */
  inputBuffer(n: number): ModelInput {
    const size = n * inputSize(this.card.preprocess);
    if (this.session instanceof ThreadedSession) {
      const shared = this.bytesIn ? this.session.inputBuffer(true) : this.session.inputBuffer();
      if (shared.length < size) throw new Error(`the classifier's thread takes batches of at most ${shared.length} values`);
      return shared;
    }
    return this.feed.allocate(n);
  }

  /** For a threaded classifier: resolves with the reason if its thread ends. */
  get threadExited(): Promise<string> | undefined {
    return this.session instanceof ThreadedSession ? this.session.exited : undefined;
  }

  /** Decodes one image into slot `index` of the model's input (normalised, or its RGB bytes); throws a KennelError for bad images. */
  async preprocess(image: ImageInput, into: ModelInput, index: number): Promise<void> {
    const rgb = this.decoders ? await this.decodeInWorker(image) : await decodeClientImage(image, this.card.preprocess);
    if (into instanceof Uint8Array) into.set(rgb, index * rgb.length);
    else normalizeInto(rgb, this.card.preprocess, into, index);
  }

  private async decodeInWorker(image: ImageInput): Promise<Uint8Array> {
    try {
      return await this.decoders!.decode([{ image }], this.card.preprocess);
    } catch (e) {
      // the worker's sharp refused the image, or the image killed its worker (which is replaced):
      // either is the client's 422; a closed pool (a replica stopping) is not
      throw e instanceof ChildJobError || e instanceof ChildGoneError ? clientImageError(e) : e;
    }
  }

  /** Probabilities for n preprocessed images. */
  async run(input: ModelInput, n: number): Promise<Float32Array> {
    this.feed.check(input, 'classifier');
    return this.session.run(input, this.feed.shape(n));
  }

  /**
   * The k best classes of one row, best first (ties: lower index first), without sorting every
   * class; k = 0: every class in label order (a whole probability row).
   */
  topK(probs: Float32Array, row: number, k: number): Prediction[] {
    const classes = this.card.labels.length;
    const scores = probs.subarray(row * classes, (row + 1) * classes);
    if (k === 0) return this.card.labels.map((label, index) => ({ label, index, score: scores[index]! }));
    const best = topIndices(scores, Math.max(1, Math.min(k, classes)));
    return best.map((index) => ({ label: this.card.labels[index]!, index, score: scores[index]! }));
  }

  async classify(images: ImageInput[], k = 5): Promise<Prediction[][]> {
    const input = this.inputBuffer(images.length);
    await Promise.all(images.map((img, i) => this.preprocess(img, input, i)));
    const probs = await this.run(input, images.length);
    return images.map((_, i) => this.topK(probs, i, k));
  }

  async close(): Promise<void> {
    await this.decoders?.close();
    await this.session.release();
  }
}

/**
 * Indices of the k largest scores, best first, ties broken by the lower index: one pass keeping
 * a sorted list of k (k is small; a request would otherwise sort all classes, 1,000 for ImageNet).
 */
export function topIndices(scores: Float32Array, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (top.length === k && !(s > scores[top[k - 1]!]!)) continue;
    let j = top.length === k ? k - 1 : top.length;
    while (j > 0 && s > scores[top[j - 1]!]!) j--;
    top.splice(j, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}

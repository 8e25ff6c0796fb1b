import { clientImageError, decodeClientImage, inputSize, normalizeInto, type ImageInput, type PreprocessSpec } from './preprocess.js';
import { ChildGoneError, ChildJobError, KennelError, topIndices } from '../core/index.js';
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
  /**
   * What becomes of an fp16 answer whose two best classes are within NEAR_TIE_GAP: 'fp32' runs
   * the image again in an fp32 session of the same graph and answers with that (the default
   * where precision is auto, which promises fp32's answers at fp16's speed), 'keep' answers
   * with fp16's (the default where fp16 was asked for). Nothing changes for a session in fp32.
   */
  nearTies?: 'fp32' | 'keep';
}

/**
 * The probability gap between the two best classes under which an fp16 answer is run again in
 * fp32 (ClassifierOptions.nearTies). fp16 moved a Kennel classifier's probabilities by at most
 * 1.6 points on the shared photos, and every top-1 it changed was a tie within 0.9 points
 * (bench:gpu's agreement check); 5 points leaves room for GPU kernels that round more.
 */
export const NEAR_TIE_GAP = 0.05;

/**
 * Near ties the fp32 session for a few runs at once, padded (one shape: batchShapes says why CUDA
 * needs it). A trained classifier's near ties are a few in a hundred images, so most batches hold
 * none or one.
 */
const REFEREE_BATCH = 4;

/**
 * The share of recent batches with more near ties than REFEREE_BATCH above which a batch runs in
 * fp32 alone: such a batch costs fp16's run and then fp32's, more than fp32's alone. A model
 * unsure of most images (an untrained head, a thousand near-equal classes) gets there.
 */
const FP32_FIRST_SHARE = 0.5;
/** weight of the latest batch in that share (a moving average over some ten batches) */
const SHARE_WEIGHT = 0.1;

/** The fp32 sessions that settle an fp16 session's near ties. */
interface Referee {
  /** runs up to REFEREE_BATCH near ties, copied into `input` */
  few: ModelSession;
  input: ModelInput;
  /** runs a whole batch, at the classifier's own shapes: one with many near ties, or every batch while most have many */
  whole: ModelSession;
  /** moving average of the share of batches with more near ties than `few` takes */
  manyTies: number;
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
    /** settles an fp16 session's near ties (ClassifierOptions.nearTies), in its own thread where the classifier's is */
    private readonly referee: Referee | undefined,
  ) {}

  /** images whose fp16 answer was a near tie and was run again in fp32 */
  nearTiesRerun = 0;
  /** images run in fp32 alone, while most recent batches had many near ties */
  fp32Alone = 0;

  static async load(onnx: string | Uint8Array, card: ModelSpec, opts: ClassifierOptions = {}): Promise<Classifier> {
    const { thread, bytesIn, decodeWorkers, nearTies, ...settings } = opts;
    await assertDevice(settings.device ?? 'cpu');
    const feed = ModelFeed.for(card.preprocess, settings.device, bytesIn);
    const { graph, inputName } = await feed.graph(onnx, card.inputName);
    const maxInputBytes = thread && feed.allocate(thread.maxBatch).byteLength;
    const io = { inputName, outputName: card.outputName };
    const session = await openSession(graph, { ...settings, maxBatch: thread?.maxBatch }, io, maxInputBytes === undefined ? undefined : { maxInputBytes });
    let referee: Referee | undefined;
    try {
      if (session.precision === 'fp16' && (nearTies ?? (settings.precision === 'fp16' ? 'keep' : 'fp32')) === 'fp32') {
        const input = feed.allocate(REFEREE_BATCH);
        const few = await openSession(graph, { ...settings, precision: 'fp32', maxBatch: REFEREE_BATCH }, io, thread && { maxInputBytes: input.byteLength });
        try {
          referee = { few, input, whole: await openSession(graph, { ...settings, precision: 'fp32', maxBatch: thread?.maxBatch }, io, maxInputBytes === undefined ? undefined : { maxInputBytes }), manyTies: 0 };
        } catch (e) {
          await few.release();
          throw e;
        }
      }
      return new Classifier(session, card, feed, decodeWorkers ? await DecodePool.start(decodeWorkers) : undefined, referee);
    } catch (e) {
      await releaseReferee(referee);
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

  /** Class probabilities of the first `n` inputs, of which the first `images` are images (the rest pad a GPU's batch). */
  async run(input: ModelInput, n: number, images = n): Promise<Float32Array> {
    this.feed.check(input, 'classifier');
    const referee = this.referee;
    if (referee && referee.manyTies > FP32_FIRST_SHARE) {
      const probs = await referee.whole.run(input, this.feed.shape(n));
      // fp32's own near ties stand for fp16's: when they become few, fp16 runs first again
      this.noteTies(referee, this.nearTies(probs, images).length);
      this.fp32Alone += images;
      return probs;
    }
    const probs = await this.session.run(input, this.feed.shape(n));
    if (referee) await this.settleNearTies(referee, input, probs, n, images);
    return probs;
  }

  /** Runs every session this classifier holds once at each of `shapes` (a GPU session prepares its kernels per shape on first use), on `input`. */
  async warm(input: ModelInput, shapes: number[]): Promise<void> {
    for (const n of shapes) {
      await this.session.run(input, this.feed.shape(n));
      await this.referee?.whole.run(input, this.feed.shape(n));
    }
    await this.referee?.few.run(this.referee.input, this.feed.shape(REFEREE_BATCH));
  }

  /** Rows among the first `images` whose two best probabilities are within NEAR_TIE_GAP. */
  private nearTies(probs: Float32Array, images: number): number[] {
    const classes = this.card.labels.length;
    const ties: number[] = [];
    for (let i = 0; i < images; i++) {
      const row = probs.subarray(i * classes, (i + 1) * classes);
      const [first, second] = topIndices(row, 2);
      if (second !== undefined && row[first!]! - row[second]! < NEAR_TIE_GAP) ties.push(i);
    }
    return ties;
  }

  private noteTies(referee: Referee, ties: number): void {
    referee.manyTies += SHARE_WEIGHT * ((ties > REFEREE_BATCH ? 1 : 0) - referee.manyTies);
  }

  /**
   * Runs again in fp32 the images whose two best fp16 probabilities are within NEAR_TIE_GAP, and
   * takes fp32's answers: a few in the small session, more as the whole batch (all its answers fp32's).
   */
  private async settleNearTies(referee: Referee, input: ModelInput, probs: Float32Array, n: number, images: number): Promise<void> {
    const classes = this.card.labels.length;
    const per = inputSize(this.card.preprocess);
    const ties = this.nearTies(probs, images);
    this.noteTies(referee, ties.length);
    if (ties.length > REFEREE_BATCH) {
      probs.set((await referee.whole.run(input, this.feed.shape(n))).subarray(0, images * classes));
      this.nearTiesRerun += images;
    } else if (ties.length) {
      // rows past the ties pad the batch with whatever they held: their answers are not read
      ties.forEach((r, k) => referee.input.set(input.subarray(r * per, (r + 1) * per), k * per));
      const settled = await referee.few.run(referee.input, this.feed.shape(REFEREE_BATCH));
      ties.forEach((r, k) => probs.set(settled.subarray(k * classes, (k + 1) * classes), r * classes));
      this.nearTiesRerun += ties.length;
    }
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
    await releaseReferee(this.referee);
    await this.session.release();
  }
}

async function releaseReferee(referee: Referee | undefined): Promise<void> {
  await referee?.few.release();
  await referee?.whole.release();
}

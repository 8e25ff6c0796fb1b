import { Errors } from '../core/index.js';
import type { Classifier, ModelInput, Prediction } from './classifier.js';
import { DynamicBatcher, type BatchingConfig } from './batcher.js';
import { inputSize, type ImageInput } from './preprocess.js';

/**
 * A batch a classifier ran: its images, the ms its run took, how many of its images were near
 * ties in fp16 and ran again in fp32, and how many ran in fp32 alone (most recent batches had many near ties).
 */
export interface BatchRun {
  size: number;
  ms: number;
  fp32Reruns: number;
  fp32Alone: number;
}

export interface BatchedClassifierOptions {
  /** rows a batch of n images runs as (a GPU pads to a few warmed-up sizes); default n */
  runSize?: (n: number) => number;
  /** told of every batch run, e.g. for metrics */
  onBatch?: (run: BatchRun) => void;
}

/**
 * A (threaded) classifier behind a DynamicBatcher, as endpoints' replicas serve it and classify()
 * runs it: images decode concurrently (sharp's threads) while the previous batch runs on the
 * classifier's inference thread, and batches grow with load.
 */
export class BatchedClassifier {
  private readonly imageSize: number;
  // per-image input buffers are reused (600 KB each at 224x224 in floats): less garbage, fewer GC pauses
  private readonly spare: ModelInput[] = [];
  private readonly batcher: DynamicBatcher<{ input: ModelInput; topK: number }, Prediction[]>;

  constructor(
    readonly classifier: Classifier,
    batching: BatchingConfig,
    opts: BatchedClassifierOptions = {},
  ) {
    this.imageSize = inputSize(classifier.card.preprocess);
    const batchInput = classifier.inputBuffer(batching.maxBatch);
    this.batcher = new DynamicBatcher(batching, async (items) => {
      items.forEach((it, i) => {
        batchInput.set(it.input, i * this.imageSize);
        this.spare.push(it.input);
      });
      const started = performance.now();
      // one batch runs at a time: the count's growth is this batch's
      const [rerunBefore, aloneBefore] = [classifier.nearTiesRerun, classifier.fp32Alone];
      const probs = await classifier.run(batchInput, opts.runSize?.(items.length) ?? items.length, items.length);
      opts.onBatch?.({ size: items.length, ms: performance.now() - started, fp32Reruns: classifier.nearTiesRerun - rerunBefore, fp32Alone: classifier.fp32Alone - aloneBefore });
      return items.map((it, i) => classifier.topK(probs, i, it.topK));
    });
  }

  /** Resolves once nothing is decoding, waiting or running. */
  idle(): Promise<void> {
    return this.batcher.idle();
  }

  /**
   * The k best classes of one image given as its preprocessed model input (float32 values,
   * little-endian bytes, the model's layout), as the Open Inference Protocol's tensors arrive; a
   * KennelError (400) when it is not exactly one image's input.
   */
  classifyInput(values: Uint8Array, topK: number): Promise<Prediction[]> {
    if (this.classifier.bytesIn) return Promise.reject(new Error('a classifier fed RGB bytes takes no float tensors'));
    return this.batcher.submit(async () => {
      if (values.byteLength !== this.imageSize * 4) {
        throw Errors.InvalidRequest(`The input tensor has ${values.byteLength / 4} values, and the model takes ${this.imageSize} per image.`, 'Send one image as the model input shape says (GET /v2/models/NAME).');
      }
      const input = this.spare.pop() ?? this.classifier.imageInput();
      new Uint8Array(input.buffer, input.byteOffset, input.byteLength).set(values);
      return { input, topK };
    });
  }

  /** The k best classes of one image (topK 0: every class, in label order); a KennelError (422) for an image that does not decode. */
  classify(image: ImageInput, topK: number): Promise<Prediction[]> {
    return this.batcher.submit(async () => {
      const input = this.spare.pop() ?? this.classifier.imageInput();
      try {
        await this.classifier.preprocess(image, input, 0);
      } catch (e) {
        this.spare.push(input);
        throw e;
      }
      return { input, topK };
    });
  }
}

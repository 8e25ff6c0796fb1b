import * as ort from 'onnxruntime-node';
import { decodeRgb, inputShape, normalizeInto } from '../backbones/index.js';
import { KennelError } from '../core/errors.js';
import type { ModelCard } from '../registry/index.js';
import { sessionOptions, type SessionSettings } from '../onnx/session.js';

export type { SessionSettings } from '../onnx/session.js';

export interface Prediction {
  label: string;
  index: number;
  score: number;
}

/**
 * A loaded model version: decode + preprocess exactly as in training, run the exported graph,
 * return the top-k labels. `classify` takes several images and runs them as one batch.
 */
export class Classifier {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly card: ModelCard,
  ) {}

  static async load(onnx: string | Uint8Array, card: ModelCard, opts: SessionSettings = {}): Promise<Classifier> {
    const session = await (typeof onnx === 'string'
      ? ort.InferenceSession.create(onnx, sessionOptions(opts))
      : ort.InferenceSession.create(onnx, sessionOptions(opts)));
    return new Classifier(session, card);
  }

  /** Decodes one image to the model's normalised input; throws a KennelError for bad images. */
  async preprocess(image: Buffer | string, into: Float32Array, index: number): Promise<void> {
    let rgb: Buffer;
    try {
      rgb = await decodeRgb(image, this.card.preprocess);
    } catch (e) {
      throw new KennelError(`The image could not be decoded: ${(e as Error).message.split('\n')[0]}.`, 'Send a JPEG, PNG, WebP, GIF, TIFF or AVIF image.', 422, 'bad_image');
    }
    normalizeInto(rgb, this.card.preprocess, into, index);
  }

  /** Probabilities for n preprocessed images. */
  async run(input: Float32Array, n: number): Promise<Float32Array> {
    const s = inputShape(this.card.preprocess, n);
    const size = s.reduce((a, b) => a * b, 1);
    const out = await this.session.run({ [this.card.inputName]: new ort.Tensor('float32', input.subarray(0, size), s) }, [this.card.outputName]);
    const t = out[this.card.outputName]!;
    const data = new Float32Array(t.data as Float32Array);
    t.dispose();
    return data;
  }

  topK(probs: Float32Array, row: number, k: number): Prediction[] {
    const classes = this.card.labels.length;
    const scores = probs.subarray(row * classes, (row + 1) * classes);
    return Array.from(scores, (score, index) => ({ label: this.card.labels[index]!, index, score }))
      .sort((a, b) => b.score - a.score || a.index - b.index)
      .slice(0, Math.max(1, Math.min(k, classes)));
  }

  async classify(images: Array<Buffer | string>, k = 5): Promise<Prediction[][]> {
    const input = new Float32Array(images.length * 3 * this.card.preprocess.size ** 2);
    await Promise.all(images.map((img, i) => this.preprocess(img, input, i)));
    const probs = await this.run(input, images.length);
    return images.map((_, i) => this.topK(probs, i, k));
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}



import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { topIndices } from '../core/index.js';
import { OnnxModel } from '../onnx/index.js';
import type { ModelSpec, Prediction } from './classifier.js';
import { decodeClientImage, inputShape, inputSize, normalizeInto, type ImageInput } from './preprocess.js';
import { sessionOptions, type SessionSettings } from './session.js';

/**
 * A classifier graph with one of its inner tensors (the backbone's features) made an extra
 * output: one forward pass gives an image's predictions and its features. A second session of
 * the model, run one image at a time, for the few requests whose features are captured.
 */
export class FeatureTap {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly card: ModelSpec,
    readonly tensor: string,
  ) {}

  /** Fails when the graph has no tensor named `tensor` (a model not made from a Kennel backbone). */
  static async load(onnx: string | Uint8Array, card: ModelSpec, tensor: string, settings: SessionSettings = {}): Promise<FeatureTap> {
    const model = OnnxModel.parse(typeof onnx === 'string' ? readFileSync(onnx) : onnx);
    if (!model.producerOf(tensor)) throw new Error(`the model has no tensor ${tensor}`);
    if (!model.outputs.some((o) => o.name === tensor)) model.outputs.push({ name: tensor, elemType: 1 });
    const session = await ort.InferenceSession.create(model.serialize(), sessionOptions(settings));
    return new FeatureTap(session, card, tensor);
  }

  /**
   * The top-k predictions of one image and its features (the first row of the tapped tensor:
   * with test-time augmentation, the unflipped view's).
   */
  async run(image: ImageInput, topK: number): Promise<{ predictions: Prediction[]; features: Float32Array }> {
    const spec = this.card.preprocess;
    const rgb = await decodeClientImage(image, spec);
    const input = new Float32Array(inputSize(spec));
    normalizeInto(rgb, spec, input, 0);
    const out = await this.session.run({ [this.card.inputName]: new ort.Tensor('float32', input, inputShape(spec, 1)) }, [this.card.outputName, this.tensor]);
    const probs = new Float32Array(out[this.card.outputName]!.data as Float32Array);
    const f = out[this.tensor]!;
    const rows = f.dims[0] ?? 1;
    const all = f.data as Float32Array;
    const features = Float32Array.from(all.subarray(0, all.length / rows));
    for (const t of Object.values(out)) t.dispose();
    const k = Math.max(1, Math.min(topK, this.card.labels.length));
    return { predictions: topIndices(probs, k).map((index) => ({ label: this.card.labels[index]!, index, score: probs[index]! })), features };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

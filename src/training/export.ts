import { FEATURES_OUTPUT } from '../backbones/index.js';
import { GraphBuilder, OnnxModel } from '../onnx/index.js';
import type { HeadWeights } from './head.js';

export const PROBABILITIES_OUTPUT = 'probabilities';

/** Per-feature standardisation learnt on train: x' = (x - mean) / std. */
export interface Standardizer {
  mean: Float32Array;
  std: Float32Array;
}

/**
 * Folds standardisation into the first layer: ((x - mu) / s) W + b = x (W / s) + (b - (mu / s) W),
 * so the exported graph needs no extra ops.
 */
export function foldStandardizer(w: Float32Array, b: Float32Array, st: Standardizer, outDim: number): { w: Float32Array; b: Float32Array } {
  const dim = st.mean.length;
  const w2 = new Float32Array(w.length);
  const b2 = Float32Array.from(b);
  for (let d = 0; d < dim; d++) {
    const inv = 1 / st.std[d]!;
    const shift = st.mean[d]! * inv;
    for (let o = 0; o < outDim; o++) {
      const v = w[d * outDim + o]!;
      w2[d * outDim + o] = v * inv;
      b2[o]! -= shift * v;
    }
  }
  return { w: w2, b: b2 };
}

/** Test-time augmentation baked into the exported graph: none, or the mean over the image and its mirror. */
export type Tta = 'none' | 'flip';

/** What the exported graph applies to backbone features: optional CL2N, standardisation, the head. */
export interface ServingHead {
  weights: HeadWeights;
  standardizer: Standardizer;
  /** CL2N (the linear probe): scale each feature row to unit L2 norm, subtract this centre, normalise again; then standardise */
  centredL2?: Float32Array;
}

/**
 * One self-contained graph: backbone extractor + head + temperature + softmax. Input: the
 * backbone's image tensor; output: `probabilities` [N, classes]. With `tta: 'flip'` the
 * extractor runs on the batch and its horizontal mirror, and the two views' probabilities are
 * averaged, so clients get TTA with no change.
 */
export function buildServingModel(extractorOnnx: Uint8Array, head: ServingHead, temperature: number, opts: { tta?: Tta; layout?: 'NCHW' | 'NHWC' } = {}): Uint8Array {
  const g = new GraphBuilder(OnnxModel.parse(extractorOnnx));
  const { weights } = head;
  const image = g.model.dataInputs[0]!.name;
  if (opts.tta === 'flip') {
    const views = g.model.freshName('tta_views');
    for (const n of g.model.nodes) n.inputs = n.inputs.map((t) => (t === image ? views : t));
    const widthAxis = opts.layout === 'NHWC' ? 2 : 3;
    const mirrored = g.op('Slice', [image, g.ints([-1]), g.ints([Number.MIN_SAFE_INTEGER]), g.ints([widthAxis]), g.ints([-1])]);
    g.op('Concat', [image, mirrored], [{ name: 'axis', int: 0 }], views);
  }
  let features = FEATURES_OUTPUT;
  if (head.centredL2) {
    // x / ||x|| as MatMul with ones (valid in every opset, unlike ReduceL2's axes)
    const ones = g.weight(g.model.freshName('head_ones'), new Float32Array(weights.dim).fill(1), [weights.dim, 1]);
    const unit = (t: string) => g.div(t, g.op('Sqrt', [g.op('Max', [g.op('MatMul', [g.mul(t, t), ones]), g.scalar(1e-24)])]));
    features = unit(g.sub(unit(features), g.weight(g.model.freshName('head_centre'), head.centredL2, [weights.dim])));
  }
  const outDim = weights.kind === 'linear' ? weights.classes : weights.hidden;
  const first = foldStandardizer(weights.tensors[0]!, weights.tensors[1]!, head.standardizer, outDim);
  const w0 = g.weight(g.model.freshName('head_w0'), first.w, [weights.dim, outDim]);
  const b0 = g.weight(g.model.freshName('head_b0'), first.b, [outDim]);
  let logits = g.op('Gemm', [features, w0, b0]);
  if (weights.kind === 'mlp') {
    const w1 = g.weight(g.model.freshName('head_w1'), weights.tensors[2]!, [weights.hidden, weights.classes]);
    const b1 = g.weight(g.model.freshName('head_b1'), weights.tensors[3]!, [weights.classes]);
    logits = g.op('Gemm', [g.op('Relu', [logits]), w1, b1]);
  }
  const scaled = g.mul(logits, g.scalar(1 / temperature));
  let probs: string;
  if (opts.tta === 'flip') {
    // rows [0, N) are the images, [N, 2N) their mirrors: mean of the two halves
    const both = g.op('Reshape', [g.op('Softmax', [scaled], [{ name: 'axis', int: 1 }]), g.ints([2, -1, weights.classes])]);
    const half = (i: number) => g.op('Gather', [both, g.ints([i])], [{ name: 'axis', int: 0 }]);
    const mean = g.mul(g.add(half(0), half(1)), g.scalar(0.5));
    probs = g.op('Reshape', [mean, g.ints([-1, weights.classes])], [], PROBABILITIES_OUTPUT);
  } else probs = g.op('Softmax', [scaled], [{ name: 'axis', int: 1 }], PROBABILITIES_OUTPUT);
  g.model.outputs = [{ name: probs, elemType: 1, shape: ['batch', weights.classes] }];
  g.model.toposort();
  return g.model.serialize();
}

export function standardizer(x: { data: Float32Array; rows: number; cols: number }): Standardizer {
  const mean = new Float64Array(x.cols);
  const sq = new Float64Array(x.cols);
  for (let r = 0; r < x.rows; r++)
    for (let d = 0; d < x.cols; d++) {
      const v = x.data[r * x.cols + d]!;
      mean[d]! += v;
      sq[d]! += v * v;
    }
  const m = new Float32Array(x.cols);
  const s = new Float32Array(x.cols);
  for (let d = 0; d < x.cols; d++) {
    m[d] = mean[d]! / x.rows;
    const variance = sq[d]! / x.rows - m[d]! * m[d]!;
    // constant features (dead units) keep scale 1 instead of blowing up
    s[d] = variance > 1e-10 ? Math.sqrt(variance) : 1;
  }
  return { mean: m, std: s };
}

export function applyStandardizer(x: { data: Float32Array; rows: number; cols: number }, st: Standardizer): Float32Array {
  const out = new Float32Array(x.data.length);
  for (let r = 0; r < x.rows; r++)
    for (let d = 0; d < x.cols; d++) out[r * x.cols + d] = (x.data[r * x.cols + d]! - st.mean[d]!) / st.std[d]!;
  return out;
}

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

/**
 * One self-contained graph: backbone extractor + head + temperature + softmax. Input: the
 * backbone's image tensor; output: `probabilities` [N, classes].
 */
export function buildServingModel(extractorOnnx: Uint8Array, head: HeadWeights, st: Standardizer, temperature: number): Uint8Array {
  const g = new GraphBuilder(OnnxModel.parse(extractorOnnx));
  const outDim = head.kind === 'linear' ? head.classes : head.hidden;
  const first = foldStandardizer(head.tensors[0]!, head.tensors[1]!, st, outDim);
  const w0 = g.weight(g.model.freshName('head_w0'), first.w, [head.dim, outDim]);
  const b0 = g.weight(g.model.freshName('head_b0'), first.b, [outDim]);
  let logits = g.op('Gemm', [FEATURES_OUTPUT, w0, b0]);
  if (head.kind === 'mlp') {
    const w1 = g.weight(g.model.freshName('head_w1'), head.tensors[2]!, [head.hidden, head.classes]);
    const b1 = g.weight(g.model.freshName('head_b1'), head.tensors[3]!, [head.classes]);
    logits = g.op('Gemm', [g.op('Relu', [logits]), w1, b1]);
  }
  const scaled = g.mul(logits, g.scalar(1 / temperature));
  const probs = g.op('Softmax', [scaled], [{ name: 'axis', int: 1 }], PROBABILITIES_OUTPUT);
  g.model.outputs = [{ name: probs, elemType: 1, shape: ['batch', head.classes] }];
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

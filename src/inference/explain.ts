import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { topIndices } from '../core/index.js';
import { decodeTensor, OnnxModel } from '../onnx/index.js';
import type { ModelSpec, Prediction } from './classifier.js';
import { decodeClientImage, inputShape, inputSize, normalizeInto, type ImageInput } from './preprocess.js';
import { sessionOptions, type SessionSettings } from './session.js';

/**
 * Where a class activation map can be read from a classifier graph: the feature map that its
 * global average pool averages, and the linear layer (a Gemm with constant weights) after it.
 * Between them only reshapes and one per-image scale (the linear probe's L2 normalisation) are
 * allowed; after it only a temperature and the softmax.
 */
export interface CamPlan {
  /** the GlobalAveragePool's input, [N, D, H, W] */
  featureMap: string;
  /** the pool's output, [N, D, 1, 1] */
  pooled: string;
  /** the Gemm's input: the pooled features times a per-image scale */
  headInput: string;
  /** the Gemm's output: the logits (before temperature and softmax) */
  logits: string;
  /** [D, C] */
  weights: Float32Array;
  bias: Float32Array;
  /** a constant subtracted between pooling and the head (CL2N's centre), if any: [D] */
  centre?: Float32Array;
  dim: number;
  classes: number;
}

const PASS_THROUGH = new Set(['Identity', 'Flatten', 'Reshape', 'Squeeze']);

/** Finds the CAM plan of a graph, or why a CAM would not be exact for it. */
export function camPlan(model: OnnxModel, outputName: string, classes: number): CamPlan | { reason: string } {
  const constant = (t: string) => model.initializers.find((i) => i.name === t);
  let t = outputName;
  let gemm;
  for (let depth = 0; depth < 16 && !gemm; depth++) {
    const n = model.producerOf(t);
    if (!n) return { reason: 'no linear layer before the output' };
    if (n.opType === 'Gemm') gemm = n;
    else if (n.opType === 'Softmax' || PASS_THROUGH.has(n.opType)) t = n.inputs[0]!;
    else if ((n.opType === 'Mul' || n.opType === 'Div') && constant(n.inputs[1]!)) t = n.inputs[0]!;
    else if (n.opType === 'Add' && n.inputs.some((i) => model.producerOf(i)?.opType === 'Gather')) return { reason: 'test-time augmentation averages two views' };
    else return { reason: `the output comes from a ${n.opType} node, not a linear layer` };
  }
  if (!gemm) return { reason: 'no linear layer before the output' };
  if (gemm.attributes.length) return { reason: 'the last layer is a Gemm with transposition or scaling attributes' };
  const w = constant(gemm.inputs[1]!);
  const b = gemm.inputs[2] ? constant(gemm.inputs[2]) : undefined;
  if (!w || (gemm.inputs[2] && !b)) return { reason: 'the last layer has no constant weights' };
  const wt = decodeTensor(w.bytes);
  if (!(wt.data instanceof Float32Array) || wt.dims.length !== 2 || wt.dims[1] !== classes) return { reason: 'the last layer is not a float [features, classes] matrix' };
  const bias = b ? decodeTensor(b.bytes).data : new Float32Array(classes);
  if (!(bias instanceof Float32Array) || bias.length !== classes) return { reason: 'the last layer\'s bias is not a float vector of one value per class' };
  const headInput = gemm.inputs[0]!;
  t = headInput;
  let centre: Float32Array | undefined;
  for (let depth = 0; depth < 16; depth++) {
    const n = model.producerOf(t);
    if (!n) return { reason: 'the features do not come from a global average pool' };
    if (n.opType === 'GlobalAveragePool') return { featureMap: n.inputs[0]!, pooled: n.outputs[0]!, headInput, logits: gemm.outputs[0]!, weights: wt.data, bias, dim: wt.dims[0]!, classes, ...(centre ? { centre } : {}) };
    // x / g(x): a per-image scale (the L2 normalisation), checked on every run
    if (PASS_THROUGH.has(n.opType) || n.opType === 'Div') t = n.inputs[0]!;
    else if (n.opType === 'Sub' && constant(n.inputs[1]!) && !centre) {
      // x - c with a constant c (CL2N's centre): an offset per class, folded into the bias per image
      const c = decodeTensor(constant(n.inputs[1]!)!.bytes).data;
      if (!(c instanceof Float32Array) || c.length !== wt.dims[0]) return { reason: 'the features are centred on something other than one vector' };
      centre = c;
      t = n.inputs[0]!;
    } else if (n.opType === 'Relu') return { reason: 'the head is not linear (a ReLU before its last layer)' };
    else return { reason: `the features pass through a ${n.opType} node before the last layer` };
  }
  return { reason: 'the features do not come from a global average pool' };
}

/** A heat map of where the image speaks for a class, at the model's input resolution. */
export interface Explanation {
  format: 'png';
  /** base64 PNG: the heat map over the image as the model saw it (the centre crop, size x size) */
  data: string;
  class: string;
  index: number;
  score: number;
  /** cam: class activation map (exact for this head); occlusion: score drop when a patch is hidden */
  method: 'cam' | 'occlusion';
  /** the map decomposes the class's logit exactly (its mean plus the bias is the logit) */
  exact: boolean;
  /** the map at its own resolution, rows of columns: logit contributions (cam) or score drops (occlusion) */
  grid: number[][];
  /** what it cost beyond the prediction */
  cost: string;
  /** why a CAM is not exact for this model, when occlusion was used */
  reason?: string;
  width: number;
  height: number;
}

/** The CAM of one image for some classes, with what checks it. */
export interface CamResult {
  probabilities: Float32Array;
  logits: Float32Array;
  /** per class asked for: H x W values whose mean plus the class's bias is its logit */
  maps: Map<number, Float32Array>;
  height: number;
  width: number;
  /** the bias this image sees: the head's, less its centre's share (CL2N) */
  bias: Float32Array;
}

/** Occlusion grid: 7 x 7 patches, each hidden in its own forward pass. */
export const OCCLUSION_GRID = 7;

/**
 * Explanations of a classifier's answers. For a graph ending in global average pooling and a
 * linear head (every head Kennel trains except --head mlp) the class activation map is exact:
 * head weights times the last feature map, from the one forward pass that also gives the
 * prediction. Other graphs fall back to occlusion sensitivity: OCCLUSION_GRID^2 extra forward
 * passes, each with one patch set to the mean pixel.
 */
export class Explainer {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly card: ModelSpec,
    private readonly plan: CamPlan | undefined,
    /** why there is no exact CAM */
    readonly reason: string | undefined,
  ) {}

  static async load(onnx: string | Uint8Array, card: ModelSpec, settings: SessionSettings = {}): Promise<Explainer> {
    const model = OnnxModel.parse(typeof onnx === 'string' ? readFileSync(onnx) : onnx);
    const found = camPlan(model, card.outputName, card.labels.length);
    const plan = 'reason' in found ? undefined : found;
    if (plan) for (const name of [plan.featureMap, plan.pooled, plan.headInput, plan.logits]) if (!model.outputs.some((o) => o.name === name)) model.outputs.push({ name, elemType: 1 });
    const session = await ort.InferenceSession.create(model.serialize(), sessionOptions(settings));
    return new Explainer(session, card, plan, 'reason' in found ? found.reason : undefined);
  }

  get method(): 'cam' | 'occlusion' {
    return this.plan ? 'cam' : 'occlusion';
  }

  /** The top-k predictions of one image and the heat map of the best class. */
  async explain(image: ImageInput, topK: number): Promise<{ predictions: Prediction[]; explanation: Explanation }> {
    const spec = this.card.preprocess;
    const rgb = await decodeClientImage(image, spec);
    const input = new Float32Array(inputSize(spec));
    normalizeInto(rgb, spec, input, 0);
    let probs: Float32Array;
    let grid: Float32Array;
    let gh: number;
    let gw: number;
    let best: number;
    let cost: string;
    let exact = false;
    if (this.plan) {
      // one forward pass gives the probabilities and the feature map
      const cam = await this.cam(input, (p) => [topIndices(p, 1)[0]!]);
      probs = cam.probabilities;
      best = [...cam.maps.keys()][0]!;
      grid = cam.maps.get(best)!;
      [gh, gw] = [cam.height, cam.width];
      exact = true;
      cost = 'none: the class activation map is read from the prediction\'s own forward pass';
    } else {
      ({ probs, grid, best } = await this.occlusion(input));
      gh = gw = OCCLUSION_GRID;
      cost = `${OCCLUSION_GRID * OCCLUSION_GRID} extra forward passes (occlusion sensitivity)`;
    }
    const k = Math.max(1, Math.min(topK, this.card.labels.length));
    const predictions = topIndices(probs, k).map((index) => ({ label: this.card.labels[index]!, index, score: probs[index]! }));
    const png = await renderOverlay(rgb, spec.size, grid, gh, gw);
    const rows: number[][] = [];
    for (let y = 0; y < gh; y++) rows.push(Array.from(grid.subarray(y * gw, (y + 1) * gw), (v) => Math.round(v * 1e4) / 1e4));
    return {
      predictions,
      explanation: { format: 'png', data: png.toString('base64'), class: this.card.labels[best]!, index: best, score: probs[best]!, method: this.method, exact, grid: rows, cost, ...(this.reason ? { reason: this.reason } : {}), width: spec.size, height: spec.size },
    };
  }

  /**
   * Class activation maps of one preprocessed image for `classes`: cam_c(h, w) = alpha * sum_d
   * W[d, c] F[d, h, w], where the head's input is alpha * f - gamma * centre for the pooled
   * features f (alpha = 1/||f|| for an L2-normalised probe; CL2N: normalise, subtract the centre,
   * normalise again), so mean_hw cam_c + b_c - gamma * (W^T centre)_c is the logit.
   */
  async cam(input: Float32Array, pick: number[] | ((probabilities: Float32Array) => number[])): Promise<CamResult> {
    const plan = this.plan;
    if (!plan) throw new Error(`no exact class activation map for this model: ${this.reason}`);
    const out = await this.run(input, 1, [this.card.outputName, plan.featureMap, plan.pooled, plan.headInput, plan.logits]);
    const fmap = out.get(plan.featureMap)!;
    const pooled = out.get(plan.pooled)!;
    const head = out.get(plan.headInput)!;
    const hw = fmap.length / plan.dim;
    const side = Math.round(Math.sqrt(hw));
    if (!Number.isInteger(hw) || pooled.length !== plan.dim || head.length !== plan.dim) throw new Error('the feature map does not match the head');
    // the head's input is alpha * pooled - gamma * centre (gamma = 0 without a centre): solve the
    // two per-image numbers by least squares and check that they explain it (not a per-feature change)
    const c = plan.centre;
    let ff = 0;
    let fc = 0;
    let cc = 0;
    let fx = 0;
    let cx = 0;
    for (let d = 0; d < plan.dim; d++) {
      const f = pooled[d]!;
      const x = head[d]!;
      ff += f * f;
      fx += f * x;
      if (c) {
        fc += f * c[d]!;
        cc += c[d]! * c[d]!;
        cx += c[d]! * x;
      }
    }
    let alpha: number;
    let gamma = 0;
    if (c) {
      const det = ff * cc - fc * fc;
      alpha = det !== 0 ? (fx * cc - cx * fc) / det : 0;
      gamma = det !== 0 ? (fx * fc - cx * ff) / det : 0;
    } else alpha = ff > 0 ? fx / ff : 1;
    let worst = 0;
    let norm = 0;
    for (let d = 0; d < plan.dim; d++) {
      worst = Math.max(worst, Math.abs(head[d]! - alpha * pooled[d]! + (c ? gamma * c[d]! : 0)));
      norm = Math.max(norm, Math.abs(head[d]!));
    }
    if (worst > 1e-3 * Math.max(norm, 1e-12)) throw new Error('the head input is not a scaled (and shifted) copy of the pooled features');
    const s = alpha;
    // the bias this image sees: b_c - gamma * (W^T centre)_c
    const bias = Float32Array.from(plan.bias);
    if (c && gamma !== 0) {
      for (let d = 0; d < plan.dim; d++) {
        const g = gamma * c[d]!;
        if (g === 0) continue;
        for (let k = 0; k < plan.classes; k++) bias[k]! -= g * plan.weights[d * plan.classes + k]!;
      }
    }
    const probabilities = out.get(this.card.outputName)!;
    const maps = new Map<number, Float32Array>();
    for (const c of typeof pick === 'function' ? pick(probabilities) : pick) {
      const m = new Float32Array(hw);
      for (let d = 0; d < plan.dim; d++) {
        const wdc = s * plan.weights[d * plan.classes + c]!;
        if (wdc === 0) continue;
        const base = d * hw;
        for (let p = 0; p < hw; p++) m[p]! += wdc * fmap[base + p]!;
      }
      maps.set(c, m);
    }
    return { probabilities, logits: out.get(plan.logits)!, maps, height: side, width: hw / side, bias };
  }

  /** Score drops of the best class when each patch of a 7 x 7 grid is set to the mean pixel (0 after normalisation). */
  private async occlusion(input: Float32Array): Promise<{ probs: Float32Array; grid: Float32Array; best: number }> {
    const spec = this.card.preprocess;
    const probs = (await this.run(input, 1, [this.card.outputName])).get(this.card.outputName)!;
    const best = topIndices(probs, 1)[0]!;
    const g = OCCLUSION_GRID;
    const size = inputSize(spec);
    const grid = new Float32Array(g * g);
    const batch = 8;
    const buf = new Float32Array(batch * size);
    const s = spec.size;
    for (let start = 0; start < g * g; start += batch) {
      const n = Math.min(batch, g * g - start);
      for (let i = 0; i < n; i++) {
        const cell = start + i;
        const [y0, y1] = [Math.floor((Math.floor(cell / g) * s) / g), Math.floor(((Math.floor(cell / g) + 1) * s) / g)];
        const [x0, x1] = [Math.floor(((cell % g) * s) / g), Math.floor((((cell % g) + 1) * s) / g)];
        const view = buf.subarray(i * size, (i + 1) * size);
        view.set(input);
        for (let y = y0; y < y1; y++)
          for (let x = x0; x < x1; x++)
            for (let c = 0; c < 3; c++) view[spec.layout === 'NCHW' ? c * s * s + y * s + x : (y * s + x) * 3 + c] = 0;
      }
      const out = (await this.run(buf, n, [this.card.outputName])).get(this.card.outputName)!;
      const classes = this.card.labels.length;
      for (let i = 0; i < n; i++) grid[start + i] = probs[best]! - out[i * classes + best]!;
    }
    return { probs, grid, best };
  }

  private async run(input: Float32Array, n: number, fetches: string[]): Promise<Map<string, Float32Array>> {
    const shape = inputShape(this.card.preprocess, n);
    const size = shape.reduce((a, b) => a * b, 1);
    const out = await this.session.run({ [this.card.inputName]: new ort.Tensor('float32', input.subarray(0, size), shape) }, fetches);
    const result = new Map<string, Float32Array>();
    for (const name of fetches) {
      const t = out[name]!;
      result.set(name, new Float32Array(t.data as Float32Array));
      t.dispose();
    }
    return result;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** The jet colour map, 256 RGB entries. */
const JET = (() => {
  const c = (x: number) => Math.round(255 * Math.min(1, Math.max(0, x)));
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    lut.set([c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))], 3 * i);
  }
  return lut;
})();

/** The positive part of a gh x gw grid, scaled to 0..255 by its largest cell, bilinearly upsampled to size x size. */
function upsample(grid: Float32Array, gh: number, gw: number, size: number): Uint8Array {
  let max = 0;
  for (const v of grid) max = Math.max(max, v);
  const scale = max > 0 ? 255 / max : 0;
  const out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    const fy = Math.min(gh - 1, Math.max(0, ((y + 0.5) * gh) / size - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(gh - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < size; x++) {
      const fx = Math.min(gw - 1, Math.max(0, ((x + 0.5) * gw) / size - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(gw - 1, x0 + 1);
      const wx = fx - x0;
      const top = Math.max(0, grid[y0 * gw + x0]!) * (1 - wx) + Math.max(0, grid[y0 * gw + x1]!) * wx;
      const bottom = Math.max(0, grid[y1 * gw + x0]!) * (1 - wx) + Math.max(0, grid[y1 * gw + x1]!) * wx;
      out[y * size + x] = Math.round((top * (1 - wy) + bottom * wy) * scale);
    }
  }
  return out;
}

/**
 * The heat map (positive values, scaled to the largest) upsampled (bilinear) to the image and blended over
 * it: hot where the image speaks for the class, the photo itself where it does not. A fast PNG
 * (compression level 1): an overlay is for looking at, and encoding was most of its cost.
 */
export async function renderOverlay(rgb: Uint8Array, size: number, grid: Float32Array, gh: number, gw: number): Promise<Buffer> {
  const heat = upsample(grid, gh, gw, size);
  const out = Buffer.alloc(size * size * 3);
  for (let p = 0; p < size * size; p++) {
    const h = heat[p]!;
    const a = (0.6 * h) / 255;
    const o = 3 * p;
    const l = 3 * h;
    out[o] = rgb[o]! + (JET[l]! - rgb[o]!) * a;
    out[o + 1] = rgb[o + 1]! + (JET[l + 1]! - rgb[o + 1]!) * a;
    out[o + 2] = rgb[o + 2]! + (JET[l + 2]! - rgb[o + 2]!) * a;
  }
  return sharp(out, { raw: { width: size, height: size, channels: 3 } }).png({ compressionLevel: 1, adaptiveFiltering: false }).toBuffer();
}

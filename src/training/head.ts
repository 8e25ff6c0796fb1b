import * as ort from 'onnxruntime-node';
import { CancelledError, Rng } from '../core/index.js';
import type { EpochRecord, HeadStep } from '../insights/index.js';
import { GraphBuilder } from '../onnx/index.js';
import { sessionOptions } from '../inference/index.js';

export type HeadKind = 'linear' | 'mlp';
export type Optimizer = 'adamw' | 'sgd';

export interface HeadConfig {
  kind: HeadKind;
  hidden: number;
  dropout: number;
  optimizer: Optimizer;
  lr: number;
  batchSize: number;
  epochs: number;
  weightDecay: number;
  labelSmoothing: number;
  /** epochs without valid-loss improvement before stopping */
  patience: number;
  seed: number;
}

/** Head parameters, in the order the graphs take them. */
export interface HeadWeights {
  kind: HeadKind;
  dim: number;
  classes: number;
  hidden: number;
  tensors: Float32Array[];
}

/** One epoch of head training: what insights records for it (its EpochRecord). */
export type EpochStats = EpochRecord;

/** Per-step samples for profiling (wall time of the update, the head gradient norm): the shape insights records. */
export type StepSample = HeadStep;

export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;
const MOMENTUM = 0.9;

function paramShapes(w: Pick<HeadWeights, 'kind' | 'dim' | 'classes' | 'hidden'>): number[][] {
  return w.kind === 'linear'
    ? [
        [w.dim, w.classes],
        [w.classes],
      ]
    : [[w.dim, w.hidden], [w.hidden], [w.hidden, w.classes], [w.classes]];
}

/** Writes the forward pass; returns logits (and the pre-dropout hidden activation for MLPs). */
function forward(g: GraphBuilder, kind: HeadKind, x: string, params: string[], mask?: string): { logits: string; hidden?: string; hiddenDropped?: string } {
  if (kind === 'linear') return { logits: g.op('Gemm', [x, params[0]!, params[1]!]) };
  const hidden = g.op('Relu', [g.op('Gemm', [x, params[0]!, params[1]!])]);
  const hiddenDropped = mask ? g.mul(hidden, mask) : hidden;
  return { logits: g.op('Gemm', [hiddenDropped, params[2]!, params[3]!]), hidden, hiddenDropped };
}

/**
 * One training step as an ONNX graph: forward, softmax cross-entropy with soft targets,
 * backward, and the optimizer update. ORT's MLAS kernels do the matrix work; JS only moves
 * minibatches and parameters between steps.
 */
export function buildTrainStep(w: Pick<HeadWeights, 'kind' | 'dim' | 'classes' | 'hidden'>, optimizer: Optimizer): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', ['batch', w.dim]);
  const y = g.input('y', ['batch', w.classes]);
  const invB = g.input('inv_batch', []);
  const alpha = g.input('alpha', []);
  const keep = g.input('keep', []);
  const shapes = paramShapes(w);
  const params = shapes.map((s, i) => g.input(`p${i}`, s));
  const m1 = shapes.map((s, i) => g.input(`m${i}`, s));
  const m2 = optimizer === 'adamw' ? shapes.map((s, i) => g.input(`v${i}`, s)) : [];
  const mask = w.kind === 'mlp' ? g.input('mask', ['batch', w.hidden]) : undefined;

  const f = forward(g, w.kind, x, params, mask);
  const logp = g.op('LogSoftmax', [f.logits], [{ name: 'axis', int: 1 }]);
  const loss = g.mul(g.op('Neg', [g.op('ReduceSum', [g.mul(y, logp)], [{ name: 'keepdims', int: 0 }])]), invB);
  const dz = g.mul(g.sub(g.op('Exp', [logp]), y), invB);
  const correct = g.op('ReduceSum', [g.op('Cast', [g.op('Equal', [g.op('ArgMax', [f.logits], [{ name: 'axis', int: 1 }]), g.op('ArgMax', [y], [{ name: 'axis', int: 1 }])])], [{ name: 'to', int: 1 }])], [{ name: 'keepdims', int: 0 }]);
  const axis0 = g.ints([0]);
  const colSum = (t: string) => g.op('ReduceSum', [t, axis0], [{ name: 'keepdims', int: 0 }]);
  const transA = [{ name: 'transA', int: 1 }];

  let grads: string[];
  if (w.kind === 'linear') grads = [g.op('Gemm', [x, dz], transA), colSum(dz)];
  else {
    const dHidden = g.mul(g.mul(g.op('Gemm', [dz, params[2]!], [{ name: 'transB', int: 1 }]), mask!), g.op('Sign', [f.hidden!]));
    grads = [g.op('Gemm', [x, dHidden], transA), colSum(dHidden), g.op('Gemm', [f.hiddenDropped!, dz], transA), colSum(dz)];
  }
  const sq = grads.map((t) => g.op('ReduceSumSquare', [t], [{ name: 'keepdims', int: 0 }]));
  const gradNorm = g.op('Sqrt', [sq.reduce((a, b) => g.add(a, b))]);

  params.forEach((p, i) => {
    const grad = grads[i]!;
    // weight decay on matrices only (decoupled, AdamW-style), never on biases
    const decayed = shapes[i]!.length === 2 ? g.mul(p, keep) : p;
    let m: string;
    let step: string;
    if (optimizer === 'adamw') {
      m = g.add(g.mul(m1[i]!, g.scalar(BETA1)), g.mul(grad, g.scalar(1 - BETA1)));
      const v = g.add(g.mul(m2[i]!, g.scalar(BETA2)), g.mul(g.mul(grad, grad), g.scalar(1 - BETA2)));
      g.output(v, `new_v${i}`);
      step = g.div(m, g.add(g.op('Sqrt', [v]), g.scalar(EPS)));
    } else {
      m = g.add(g.mul(m1[i]!, g.scalar(MOMENTUM)), grad);
      step = m;
    }
    g.output(m, `new_m${i}`);
    g.output(g.sub(decayed, g.mul(step, alpha)), `new_p${i}`);
  });
  g.output(loss, 'loss');
  g.output(correct, 'correct');
  g.output(gradNorm, 'grad_norm');
  return g.model.serialize();
}

/** Logits for a whole matrix (evaluation; no dropout). */
export function buildLogits(w: Pick<HeadWeights, 'kind' | 'dim' | 'classes' | 'hidden'>): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', ['batch', w.dim]);
  const params = paramShapes(w).map((s, i) => g.input(`p${i}`, s));
  g.output(forward(g, w.kind, x, params).logits, 'logits');
  return g.model.serialize();
}

export function initWeights(kind: HeadKind, dim: number, classes: number, hidden: number, rng: Rng): HeadWeights {
  const shapes = paramShapes({ kind, dim, classes, hidden });
  const tensors = shapes.map((s) => {
    const t = new Float32Array(s.reduce((a, b) => a * b, 1));
    // He init for the hidden layer; the output layer starts at zero (uniform predictions)
    if (kind === 'mlp' && s.length === 2 && s[1] === hidden) for (let i = 0; i < t.length; i++) t[i] = rng.normal() * Math.sqrt(2 / dim);
    return t;
  });
  return { kind, dim, classes, hidden, tensors };
}

const tensor = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);

export class HeadRunner {
  private constructor(
    private readonly logitsSession: ort.InferenceSession,
    readonly shapes: number[][],
  ) {}

  static async create(w: HeadWeights, threads?: number): Promise<HeadRunner> {
    return new HeadRunner(await ort.InferenceSession.create(buildLogits(w), sessionOptions({ threads })), paramShapes(w));
  }

  async logits(w: HeadWeights, x: Matrix): Promise<Float32Array> {
    const feeds: Record<string, ort.Tensor> = { x: tensor(x.data, [x.rows, x.cols]) };
    w.tensors.forEach((t, i) => (feeds[`p${i}`] = tensor(t, this.shapes[i]!)));
    const out = await this.logitsSession.run(feeds);
    return new Float32Array(out.logits!.data as Float32Array);
  }

  async close(): Promise<void> {
    await this.logitsSession.release();
  }
}

/** Softmax cross-entropy and top-1 of logits against integer labels. */
export function lossAndTop1(logits: Float32Array, labels: Int32Array, classes: number): { loss: number; top1: number } {
  let loss = 0;
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    let max = -Infinity;
    let arg = 0;
    for (let c = 0; c < classes; c++) if (row[c]! > max) [max, arg] = [row[c]!, c];
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(row[c]! - max);
    loss += Math.log(sum) + max - row[labels[r]!]!;
    if (arg === labels[r]) correct++;
  }
  return { loss: loss / labels.length, top1: correct / labels.length };
}

export interface FitResult {
  weights: HeadWeights;
  history: EpochStats[];
  steps: StepSample[];
  bestEpoch: number;
  stoppedEarly: boolean;
}

/** The rows a head is fitted on (train) and early-stopped on (valid), and the class count. */
export interface HeadData {
  train: Matrix;
  trainLabels: Int32Array;
  valid: Matrix;
  validLabels: Int32Array;
  classes: number;
}

/**
 * Minibatch training with early stopping on valid loss; returns the best epoch's weights.
 * Deterministic for a seed: shuffles, init and dropout masks come from one seeded RNG.
 */
export async function fitHead(
  data: HeadData,
  cfg: HeadConfig,
  hooks: {
    /** after each epoch, with the epoch whose weights are kept so far (0: none yet); 'stop' ends training there */
    onEpoch?: (s: EpochStats, bestEpoch: number) => void | 'stop';
    signal?: AbortSignal;
    threads?: number;
  } = {},
): Promise<FitResult> {
  const { train, trainLabels, valid, validLabels, classes } = data;
  const rng = new Rng(cfg.seed);
  const dim = train.cols;
  let w = initWeights(cfg.kind, dim, classes, cfg.hidden, rng);
  const shapes = paramShapes(w);
  const stepSession = await ort.InferenceSession.create(buildTrainStep(w, cfg.optimizer), sessionOptions({ threads: hooks.threads }));
  const runner = await HeadRunner.create(w, hooks.threads);
  const m1: Float32Array[] = w.tensors.map((t) => new Float32Array(t.length));
  const m2: Float32Array[] = w.tensors.map((t) => new Float32Array(t.length));
  const bs = Math.min(cfg.batchSize, train.rows);
  const xBatch = new Float32Array(bs * dim);
  const yBatch = new Float32Array(bs * classes);
  const mask = cfg.kind === 'mlp' ? new Float32Array(bs * cfg.hidden) : undefined;
  const order = Array.from({ length: train.rows }, (_, i) => i);
  const off = cfg.labelSmoothing / classes;
  const on = 1 - cfg.labelSmoothing + off;
  const history: EpochStats[] = [];
  const steps: StepSample[] = [];
  let best = { loss: Infinity, epoch: 0, tensors: w.tensors.map((t) => t.slice()) };
  let t = 0;
  try {
    for (let epoch = 1; epoch <= cfg.epochs; epoch++) {
      const started = performance.now();
      // cosine decay from lr to lr/100 over the planned epochs
      const lr = cfg.lr * (0.01 + 0.99 * 0.5 * (1 + Math.cos((Math.PI * (epoch - 1)) / cfg.epochs)));
      rng.shuffle(order);
      let lossSum = 0;
      let correct = 0;
      let gradSum = 0;
      let nSteps = 0;
      for (let start = 0; start < train.rows; start += bs) {
        if (hooks.signal?.aborted) throw new CancelledError();
        const stepStart = performance.now();
        const n = Math.min(bs, train.rows - start);
        yBatch.fill(off);
        for (let r = 0; r < n; r++) {
          const src = order[start + r]!;
          xBatch.set(train.data.subarray(src * dim, (src + 1) * dim), r * dim);
          yBatch[r * classes + trainLabels[src]!] = on;
        }
        t++;
        const feeds: Record<string, ort.Tensor> = {
          x: tensor(xBatch.subarray(0, n * dim), [n, dim]),
          y: tensor(yBatch.subarray(0, n * classes), [n, classes]),
          inv_batch: tensor(Float32Array.of(1 / n), []),
          keep: tensor(Float32Array.of(1 - lr * cfg.weightDecay), []),
          alpha: tensor(Float32Array.of(cfg.optimizer === 'adamw' ? (lr * Math.sqrt(1 - BETA2 ** t)) / (1 - BETA1 ** t) : lr), []),
        };
        if (mask) {
          const scale = 1 / (1 - cfg.dropout);
          for (let i = 0; i < n * cfg.hidden; i++) mask[i] = rng.next() < cfg.dropout ? 0 : scale;
          feeds.mask = tensor(mask.subarray(0, n * cfg.hidden), [n, cfg.hidden]);
        }
        w.tensors.forEach((p, i) => {
          feeds[`p${i}`] = tensor(p, shapes[i]!);
          feeds[`m${i}`] = tensor(m1[i]!, shapes[i]!);
          if (cfg.optimizer === 'adamw') feeds[`v${i}`] = tensor(m2[i]!, shapes[i]!);
        });
        const inputDone = performance.now();
        const out = await stepSession.run(feeds);
        w = { ...w, tensors: w.tensors.map((_, i) => out[`new_p${i}`]!.data as Float32Array) };
        w.tensors.forEach((_, i) => {
          m1[i] = out[`new_m${i}`]!.data as Float32Array;
          if (cfg.optimizer === 'adamw') m2[i] = out[`new_v${i}`]!.data as Float32Array;
        });
        const loss = (out.loss!.data as Float32Array)[0]!;
        const gradNorm = (out.grad_norm!.data as Float32Array)[0]!;
        lossSum += loss * n;
        correct += (out.correct!.data as Float32Array)[0]!;
        gradSum += gradNorm;
        nSteps++;
        const stepEnd = performance.now();
        steps.push({ epoch, step: t, ms: stepEnd - stepStart, gradNorm, loss, start: stepStart, inputMs: inputDone - stepStart, updateMs: stepEnd - inputDone, rows: n, lr });
      }
      const v = lossAndTop1(await runner.logits(w, valid), validLabels, classes);
      const stats: EpochStats = {
        epoch,
        lr,
        trainLoss: lossSum / train.rows,
        trainTop1: correct / train.rows,
        validLoss: v.loss,
        validTop1: v.top1,
        gradNorm: gradSum / nSteps,
        seconds: (performance.now() - started) / 1000,
      };
      history.push(stats);
      if (v.loss < best.loss - 1e-6) best = { loss: v.loss, epoch, tensors: w.tensors.map((x) => x.slice()) };
      if (hooks.onEpoch?.(stats, best.epoch) === 'stop' || epoch - best.epoch >= cfg.patience) break;
    }
  } finally {
    await stepSession.release();
    await runner.close();
  }
  return { weights: { ...w, tensors: best.tensors }, history, steps, bestEpoch: best.epoch, stoppedEarly: history.length < cfg.epochs };
}

/**
 * The linear probe: multinomial logistic regression fitted to convergence (full batch,
 * L-BFGS, loss and gradient in one ORT graph), against the cosine nearest-centroid head:
 *
 *   mean NLL(W, b) + lambda/2 ||[W, b] - prior||^2
 *
 * Every head works on CL2N features (SimpleShot, Wang et al. 2019): each row L2-normalised,
 * centred on the training rows' mean, normalised again, then scaled by one global factor. On the
 * real photos of bench:quality this beat raw standardised features for both the prototype and
 * the logistic head at every k (docs/QUALITY.md). The default logistic family is penalised toward
 * zero; the shrunk family toward the prototype head, so that lambda -> infinity is exactly
 * nearest centroid. The prototype head itself is a candidate.
 * lambda and prototype-or-logistic are chosen by stratified k-fold cross-validation over
 * train + valid when the data are small, by the valid split when they are large, along a
 * warm-started path from strong to weak penalties, by the one-standard-error rule: the simplest
 * head whose held-out top-1 is within one standard error of the best's.
 */
import * as ort from 'onnxruntime-node';
import { CancelledError, Rng } from '../core/index.js';
import { GraphBuilder } from '../onnx/index.js';
import { sessionOptions } from '../inference/index.js';
import { HeadRunner, type HeadWeights, type StepSample } from './head.js';
import { lbfgs } from './lbfgs.js';
import { fitTemperature, nll } from './metrics.js';

export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** A linear head on CL2N features: logits = ((l2(l2(x) - centre) - mean) / scale) W + b. */
export interface LinearProbe {
  dim: number;
  classes: number;
  /** [dim x classes], row-major */
  w: Float32Array;
  b: Float32Array;
  mean: Float32Array;
  scale: Float32Array;
  /** the mean of the L2-normalised training rows, subtracted before normalising again */
  centre: Float32Array;
}

export type ProbePrior = 'zero' | 'prototype';

export interface ProbeChoice {
  kind: 'logistic' | 'prototype';
  /** the penalty strength toward the prototype solution; null for the prototype head */
  l2: number | null;
  /** "cv-K" (K-fold over train + valid), "valid" (the valid split), or "forced" */
  selectedBy: string;
  /** what the logistic penalty pulls toward: zero (plain, on standardised features) or the prototype head (on L2-normalised features) */
  prior: ProbePrior;
  /** what the head sees: CL2N rows (L2-normalised, centred, normalised again), one global scale */
  features: 'centred-l2';
  /** the softmax scale of the cosine prototype logits */
  prototypeScale: number;
  /** held-out top-1 and NLL of every candidate tried, in path order */
  scores: Array<{ kind: 'logistic' | 'prototype'; l2: number | null; top1: number; nll: number }>;
  /** L-BFGS iterations and loss/gradient evaluations over the whole search and final fit */
  iterations: number;
  evaluations: number;
  /** optimiser trace of the final fit: loss and gradient norm per iteration */
  trace: Array<{ loss: number; gradNorm: number }>;
}

export interface ProbeResult {
  probe: LinearProbe;
  choice: ProbeChoice;
  /** every loss/gradient evaluation of the search and the final fit */
  steps: StepSample[];
  /**
   * Held-out logits for the valid rows (out-of-fold under cross-validation, where the final head
   * has seen valid), for honest valid metrics and temperature fitting.
   */
  validLogits: Float32Array;
  /** the final head's logits for the train rows (from the rows it was fitted on, not transformed again) */
  trainLogits: Float32Array;
}

export interface ProbeOptions {
  /** 'auto': prototype or logistic by validation; 'logistic' or 'prototype' force one */
  kind?: 'auto' | 'logistic' | 'prototype';
  /** fixed penalty instead of a search */
  l2?: number;
  /** the logistic family: plain L2 toward zero on standardised features (default), or shrunk toward the prototype head */
  prior?: ProbePrior;
  seed?: number;
  /** cross-validate when train + valid have at most this many rows; else use the valid split */
  cvMaxRows?: number;
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, detail: string) => void;
}

/** Penalties tried, strongest first; each fit starts from the previous one's solution. */
const L2_PATH = [10, 3, 1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001, 0.00003, 0.00001];
const CV_MAX_ROWS = 3000;
/** the prototype softmax scale when no held-out row can score it (every class has one row) */
const DEFAULT_PROTOTYPE_SCALE = 10;
/** nats of held-out NLL a weaker penalty must gain, at equal top-1, to be preferred */
const NLL_MARGIN = 0.01;
/**
 * log T precision of a candidate's score: 1% of T (14 golden-section steps, not 23). Near its
 * minimum NLL is flat in log T, so the score moves by ~1e-5 nats, far below NLL_MARGIN.
 */
const SCORING_LOG_T_TOLERANCE = 1e-2;
const MAX_FOLDS = 5;
const GRAD_TOL = 1e-4;
/** per penalty: weakly penalised fits of separable few-shot data creep on for long, warm starts carry the rest */
const MAX_ITERATIONS = 100;

/** Loss and gradient of the penalised multinomial NLL as one ORT graph (full batch). */
function buildLossGradient(dim: number, classes: number): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', ['n', dim]);
  const y = g.input('y', ['n', classes]);
  const w = g.input('w', [dim, classes]);
  const b = g.input('b', [classes]);
  const w0 = g.input('w0', [dim, classes]);
  const b0 = g.input('b0', [classes]);
  const lam = g.input('lambda', []);
  const invN = g.input('inv_n', []);
  const logp = g.op('LogSoftmax', [g.op('Gemm', [x, w, b])], [{ name: 'axis', int: 1 }]);
  const dataLoss = g.mul(g.op('Neg', [g.op('ReduceSum', [g.mul(y, logp)], [{ name: 'keepdims', int: 0 }])]), invN);
  const dw = g.sub(w, w0);
  const db = g.sub(b, b0);
  const sq = (t: string) => g.op('ReduceSumSquare', [t], [{ name: 'keepdims', int: 0 }]);
  g.output(g.add(dataLoss, g.mul(g.mul(g.add(sq(dw), sq(db)), lam), g.scalar(0.5))), 'loss');
  const dz = g.mul(g.sub(g.op('Exp', [logp]), y), invN);
  g.output(g.add(g.op('Gemm', [x, dz], [{ name: 'transA', int: 1 }]), g.mul(dw, lam)), 'grad_w');
  g.output(g.add(g.op('ReduceSum', [dz, g.ints([0])], [{ name: 'keepdims', int: 0 }]), g.mul(db, lam)), 'grad_b');
  return g.model.serialize();
}

/** Rows scaled to unit L2 norm (a zero row stays zero), as a new array. */
export function l2Rows(m: Matrix): Float32Array {
  const out = new Float32Array(m.data.length);
  for (let r = 0; r < m.rows; r++) {
    let s = 0;
    for (let d = 0; d < m.cols; d++) s += m.data[r * m.cols + d]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let d = 0; d < m.cols; d++) out[r * m.cols + d] = m.data[r * m.cols + d]! * inv;
  }
  return out;
}

/**
 * Rows of one or more matrices, stacked (a split's, then another's), read as unit (L2-normalised)
 * rows without storing them: each row's norm is kept and a unit row formed where it is read. The
 * stored unit rows of a training set were tens of MB of fresh pages, which cost more than the
 * arithmetic. Values are those of l2Rows (each unit value rounded to float32).
 */
class UnitRows {
  /** 1 / each row's L2 norm (0 for a zero row) */
  private readonly inv: Float64Array;
  readonly cols: number;

  constructor(private readonly parts: readonly Matrix[]) {
    this.cols = parts[0]!.cols;
    this.inv = new Float64Array(parts.reduce((n, m) => n + m.rows, 0));
    let r = 0;
    for (const { data, rows, cols } of parts)
      for (let i = 0; i < rows; i++, r++) {
        let s = 0;
        for (let d = i * cols; d < (i + 1) * cols; d++) s += data[d]! * data[d]!;
        this.inv[r] = s > 0 ? 1 / Math.sqrt(s) : 0;
      }
  }

  /** row r's matrix and the offset of its first value there */
  private locate(r: number): { data: Float32Array; at: number } {
    let i = r;
    for (const m of this.parts) {
      if (i < m.rows) return { data: m.data, at: i * this.cols };
      i -= m.rows;
    }
    throw new RangeError(`row ${r} of ${this.inv.length}`);
  }

  /** the mean unit row of `rows` */
  mean(rows: readonly number[]): Float32Array {
    const cols = this.cols;
    const sum = new Float64Array(cols);
    for (const r of rows) {
      const { data, at } = this.locate(r);
      const inv = this.inv[r]!;
      for (let d = 0; d < cols; d++) sum[d]! += Math.fround(data[at + d]! * inv);
    }
    return Float32Array.from(sum, (v) => v / Math.max(1, rows.length));
  }

  /** CL2N rows (a new array): each unit row centred on `centre`, then normalised again */
  centred(rows: readonly number[], centre: Float32Array): Float32Array {
    const cols = this.cols;
    const out = new Float32Array(rows.length * cols);
    rows.forEach((r, i) => {
      const { data, at } = this.locate(r);
      const inv = this.inv[r]!;
      const o = i * cols;
      let s = 0;
      for (let d = 0; d < cols; d++) {
        const v = Math.fround(data[at + d]! * inv) - centre[d]!;
        out[o + d] = v;
        s += v * v;
      }
      const again = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let d = o; d < o + cols; d++) out[d]! *= again;
    });
    return out;
  }
}

const allRows = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Mean of unit rows, and one global scale (the RMS of the features' standard deviations) for every feature. */
function fitTransform(z: Float32Array, rows: number, cols: number): { mean: Float32Array; scale: Float32Array } {
  const mean = new Float64Array(cols);
  const sq = new Float64Array(cols);
  for (let r = 0; r < rows; r++)
    for (let d = 0; d < cols; d++) {
      const v = z[r * cols + d]!;
      mean[d]! += v;
      sq[d]! += v * v;
    }
  const variance = Array.from(mean, (m, d) => Math.max(0, sq[d]! / rows - (m / rows) ** 2));
  const rms = Math.sqrt(variance.reduce((a, b) => a + b, 0) / cols) || 1;
  const scale = new Float32Array(cols).fill(rms);
  return { mean: Float32Array.from(mean, (m) => m / rows), scale };
}

/** Standardises rows in place (each caller owns a fresh CL2N copy): a head's features are tens of MB. */
function transform(z: Float32Array, rows: number, cols: number, t: { mean: Float32Array; scale: Float32Array }): Float32Array {
  for (let r = 0; r < rows; r++) for (let d = 0; d < cols; d++) z[r * cols + d] = (z[r * cols + d]! - t.mean[d]!) / t.scale[d]!;
  return z;
}

/** A head times a positive factor (prototype heads are linear in their softmax scale). */
const scaledHead = (h: { w: Float32Array; b: Float32Array }, k: number) => ({ w: h.w.map((v) => v * k), b: h.b.map((v) => v * k) });

/**
 * The cosine nearest-centroid head written as a linear head on the transformed features, at
 * softmax scale 1 (scaledHead gives others): cos(x, m_c) ∝ l2(x) . unit(m_c) =
 * phi . (scale * unit(m_c)) + mean . unit(m_c). A class with no rows gets a zero column (and a
 * bias that never wins).
 */
function prototypeHead(z: Float32Array, labels: Int32Array, cols: number, classes: number, t: { mean: Float32Array; scale: Float32Array }): { w: Float32Array; b: Float32Array } {
  const sums = new Float64Array(classes * cols);
  for (let r = 0; r < labels.length; r++) for (let d = 0; d < cols; d++) sums[labels[r]! * cols + d]! += z[r * cols + d]!;
  const w = new Float32Array(cols * classes);
  const b = new Float32Array(classes).fill(-1);
  for (let c = 0; c < classes; c++) {
    let norm = 0;
    for (let d = 0; d < cols; d++) norm += sums[c * cols + d]! ** 2;
    if (norm === 0) continue;
    const inv = 1 / Math.sqrt(norm);
    let bias = 0;
    for (let d = 0; d < cols; d++) {
      const u = sums[c * cols + d]! * inv;
      w[d * classes + c] = t.scale[d]! * u;
      bias += t.mean[d]! * u;
    }
    b[c] = bias;
  }
  return { w, b };
}

/** One fitting problem (a fold, or the final data) with its ORT session and feeds. */
class LogisticProblem {
  private readonly feeds: Record<string, ort.Tensor>;
  evaluations = 0;
  iterations = 0;
  /** one sample per loss/gradient evaluation, in the minibatch trainer's shape (for telemetry) */
  readonly steps: StepSample[] = [];
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly x: Float32Array,
    readonly rows: number,
    readonly cols: number,
    readonly classes: number,
    readonly prior: { w: Float32Array; b: Float32Array },
  ) {
    const y = new Float32Array(rows * classes);
    this.feeds = {
      x: new ort.Tensor('float32', x, [rows, cols]),
      y: new ort.Tensor('float32', y, [rows, classes]),
      w0: new ort.Tensor('float32', prior.w, [cols, classes]),
      b0: new ort.Tensor('float32', prior.b, [classes]),
      inv_n: new ort.Tensor('float32', Float32Array.of(1 / rows), []),
    };
  }

  static create(session: ort.InferenceSession, x: Float32Array, labels: Int32Array, cols: number, classes: number, prior: { w: Float32Array; b: Float32Array }): LogisticProblem {
    const p = new LogisticProblem(session, x, labels.length, cols, classes, prior);
    const y = p.feeds.y!.data as Float32Array;
    labels.forEach((l, r) => (y[r * classes + l] = 1));
    return p;
  }

  /** Minimises the penalised loss for one lambda from a starting point ([W, b] flattened). */
  async fit(lambda: number, start: Float64Array, signal?: AbortSignal, gradTol = GRAD_TOL): Promise<{ theta: Float64Array; trace: Array<{ loss: number; gradNorm: number }>; gradNorm: number; loss: number }> {
    const wLen = this.cols * this.classes;
    const lam = new ort.Tensor('float32', Float32Array.of(lambda), []);
    // one pair of input tensors for every evaluation: each run has ended before the next fills them
    const w = new ort.Tensor('float32', new Float32Array(wLen), [this.cols, this.classes]);
    const b = new ort.Tensor('float32', new Float32Array(this.classes), [this.classes]);
    const r = await lbfgs(
      async (theta) => {
        if (signal?.aborted) throw new CancelledError();
        const start = performance.now();
        (w.data as Float32Array).set(theta.subarray(0, wLen));
        (b.data as Float32Array).set(theta.subarray(wLen));
        const inputDone = performance.now();
        const out = await this.session.run({ ...this.feeds, lambda: lam, w, b });
        const grad = new Float64Array(wLen + this.classes);
        grad.set(out.grad_w!.data as Float32Array);
        grad.set(out.grad_b!.data as Float32Array, wLen);
        const loss = (out.loss!.data as Float32Array)[0]!;
        const end = performance.now();
        let sq = 0;
        for (let i = 0; i < grad.length; i++) sq += grad[i]! ** 2;
        this.steps.push({ epoch: 1, step: this.steps.length + 1, ms: end - start, gradNorm: Math.sqrt(sq), loss, start, inputMs: inputDone - start, updateMs: end - inputDone, rows: this.rows, lr: 0 });
        return { loss, grad };
      },
      start,
      { gradTol, maxIterations: MAX_ITERATIONS },
    );
    this.evaluations += r.evaluations;
    this.iterations += r.iterations;
    return { theta: r.x, trace: r.trace, gradNorm: r.gradNorm, loss: r.loss };
  }

  priorTheta(): Float64Array {
    const t = new Float64Array(this.cols * this.classes + this.classes);
    t.set(this.prior.w);
    t.set(this.prior.b, this.cols * this.classes);
    return t;
  }
}

const split = (theta: Float64Array, cols: number, classes: number) => ({ w: Float32Array.from(theta.subarray(0, cols * classes)), b: Float32Array.from(theta.subarray(cols * classes)) });

/** Softmax scale of cosine-prototype logits that minimises held-out NLL (golden section on log s). */
function fitPrototypeScale(cosLogits: Float32Array, labels: Int32Array, classes: number): number {
  // fitTemperature works on T in [0.05, 20]; cosine logits need scales up to ~1000, so search 1/T of logits/50
  const t = fitTemperature(cosLogits.map((v) => v * 50), labels, classes);
  return 50 / t;
}

/** Stratified fold of each row: each class's rows, shuffled, dealt round-robin from a random offset. */
function folds(labels: Int32Array, classes: number, k: number, rng: Rng): Int32Array {
  const fold = new Int32Array(labels.length);
  let offset = rng.int(k);
  for (let c = 0; c < classes; c++) {
    const rows = rng.shuffle([...labels.keys()].filter((r) => labels[r] === c));
    rows.forEach((r, i) => (fold[r] = (offset + i) % k));
    offset = (offset + rows.length) % k;
  }
  return fold;
}

/** Per row: 1 where the row's highest logit is its label's. */
function hits(logits: Float32Array, labels: Int32Array, classes: number): Uint8Array {
  return Uint8Array.from(labels, (label, r) => {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    let arg = 0;
    for (let c = 1; c < classes; c++) if (row[c]! > row[arg]!) arg = c;
    return arg === label ? 1 : 0;
  });
}

/**
 * The one-standard-error rule (Breiman et al. 1984; glmnet's lambda.1se): the first candidate, in
 * order of flexibility, whose held-out top-1 is within one standard error of the best's. On a few
 * dozen held-out rows the best score is partly luck, and luck favours the most flexible heads:
 * bench:quality measured the cross-validated winner below the prototype head it beat. The error
 * is that of the paired per-row difference with the best, so heads that agree on most rows are
 * told apart by the rows where they differ.
 */
export function simplestWithinOneSe(rowHits: Uint8Array[], bestIndex: number, first: number): number {
  const best = rowHits[bestIndex]!;
  const n = best.length;
  if (!n) return bestIndex;
  for (let i = first; i < bestIndex; i++) {
    // d is -1, 0 or 1, so the sum of d^2 counts the rows where the two differ; the sample variance
    // makes one row's difference exactly one standard error (roughly: the net wins must exceed the
    // square root of the rows where the heads differ, McNemar's z > 1)
    let sum = 0;
    let discordant = 0;
    for (let r = 0; r < n; r++) {
      const d = best[r]! - rowHits[i]![r]!;
      sum += d;
      discordant += d * d;
    }
    const mean = sum / n;
    const se = n > 1 ? Math.sqrt(Math.max(0, (discordant - n * mean * mean) / (n - 1)) / n) : 0;
    if (mean <= se + 1e-12) return i;
  }
  return bestIndex;
}

interface Fold {
  problem: LogisticProblem;
  heldX: Float32Array;
  heldLabels: Int32Array;
  /** indices of the held-out rows in the pooled data */
  heldRows: number[];
  theta: Float64Array;
}

/** One fold's solution at one penalty, with its optimiser trace. */
interface FoldFit {
  theta: Float64Array;
  trace: Array<{ loss: number; gradNorm: number }>;
}

/**
 * Fits the probe. `train` and `valid` are raw backbone features; labels index classes.
 * Returns the head (as a linear map on raw features, with its transform), the choice and its
 * validation scores, and held-out valid logits.
 */
export async function fitProbe(train: Matrix, trainLabels: Int32Array, valid: Matrix, validLabels: Int32Array, classes: number, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const cols = train.cols;
  const kind = opts.kind ?? 'auto';
  const prior = opts.prior ?? 'zero';
  const rng = new Rng(opts.seed ?? 0);
  const session = await ort.InferenceSession.create(buildLossGradient(cols, classes), sessionOptions({ threads: opts.threads }));
  const runner = await LinearRunner.create(cols, classes, opts.threads);
  try {
    const pooledRows = train.rows + valid.rows;
    const useCv = pooledRows <= (opts.cvMaxRows ?? CV_MAX_ROWS);
    // the data that select: K folds of train + valid, or (train -> valid)
    const unit = new UnitRows([train, valid]);
    const allLabels = Int32Array.from([...trainLabels, ...validLabels]);
    const counts = new Array<number>(classes).fill(0);
    allLabels.forEach((l) => counts[l]!++);
    // stratified folds: a class with fewer rows than folds is held out in fewer folds (rows of a class with one row can't be predicted when held out: the same error for every candidate)
    const k = Math.min(MAX_FOLDS, Math.max(2, ...counts));
    const foldOf = useCv ? folds(allLabels, classes, k, rng) : Int32Array.from({ length: pooledRows }, (_, r) => (r < train.rows ? 1 : 0));
    const nFolds = useCv ? k : 1;
    let selectedBy = opts.l2 !== undefined || kind === 'prototype' ? 'forced' : useCv ? `cv-${k}` : 'valid';

    /** The CL2N centre, transform and prototype head of a set of labelled rows (a fold's, or the final ones), and features of any rows under them. */
    const design = (rows: number[]) => {
      const labels = Int32Array.from(rows, (r) => allLabels[r]!);
      const centre = unit.mean(rows);
      const cl2n = (r: number[]) => unit.centred(r, centre);
      const z = cl2n(rows);
      const tp = fitTransform(z, rows.length, cols);
      // the prototype head at scale 1, from z before it is transformed in place into xFit
      const cosine = prototypeHead(z, labels, cols, classes, tp);
      const prototype = (scale: number) => scaledHead(cosine, scale);
      const priorHead = (scale: number) => (prior === 'zero' ? { w: new Float32Array(cols * classes), b: new Float32Array(classes) } : prototype(scale));
      const x = (r: number[]) => transform(cl2n(r), r.length, cols, tp);
      return { labels, centre, tp, cosine, prototype, priorHead, x, xFit: transform(z, rows.length, cols, tp) };
    };
    // per fold: transforms and prototypes fitted on the fold's training rows only
    const specs = Array.from({ length: nFolds }, (_, f) => {
      const fitRows = [...allLabels.keys()].filter((r) => foldOf[r] !== f);
      const heldRows = [...allLabels.keys()].filter((r) => foldOf[r] === f);
      const d = design(fitRows);
      const heldLabels = Int32Array.from(heldRows, (r) => allLabels[r]!);
      const heldP = d.x(heldRows);
      return { fitRows, heldRows, d, heldLabels, heldP };
    });
    // one prototype scale from the pooled held-out cosine logits
    const cosParts: Float32Array[] = [];
    for (const s of specs) cosParts.push(await runner.logits(s.d.cosine, { data: s.heldP, rows: s.heldRows.length, cols }));
    const heldCos = concat(cosParts);
    const heldLabelsAll = Int32Array.from(specs.flatMap((s) => [...s.heldLabels]));
    const heldOrder = specs.flatMap((s) => s.heldRows);
    // scores count only held-out rows whose class the fold trained on: the others are wrong for every candidate and would swamp the NLL
    const scored = specs.flatMap((s) => {
      const seen = new Set(s.d.labels);
      return [...s.heldLabels].map((l) => seen.has(l));
    });
    const scoredRows = [...scored.keys()].filter((i) => scored[i]);
    const scoredLabels = Int32Array.from(scoredRows, (i) => heldLabelsAll[i]!);
    const scoredLogits = (logits: Float32Array) => {
      const out = new Float32Array(scoredRows.length * classes);
      scoredRows.forEach((i, j) => out.set(logits.subarray(i * classes, (i + 1) * classes), j * classes));
      return out;
    };
    const scale = scoredRows.length ? fitPrototypeScale(scoredLogits(heldCos), scoredLabels, classes) : DEFAULT_PROTOTYPE_SCALE;
    // per candidate, in path order: its score, held-out logits and per-row hits
    const heldLogits: Float32Array[] = [];
    const rowHits: Uint8Array[] = [];
    // records a candidate's held-out logits and hits, and scores it: top-1, then NLL after a fitted
    // temperature (how well candidates rank classes, not how confident they are)
    const candidate = (all: Float32Array) => {
      const logits = scoredLogits(all);
      const right = hits(logits, scoredLabels, classes);
      heldLogits.push(all);
      rowHits.push(right);
      if (!scoredRows.length) return { top1: 0, nll: 0 };
      return { top1: right.reduce((n, h) => n + h, 0) / right.length, nll: nll(logits, scoredLabels, classes, fitTemperature(logits, scoredLabels, classes, { tolerance: SCORING_LOG_T_TOLERANCE })) };
    };
    const scores: ProbeChoice['scores'] = [{ kind: 'prototype', l2: null, ...candidate(heldCos.map((v) => v * scale)) }];
    // with a valid split, the one fold's fit at each candidate: the final head is that fit
    const validSplitFits: Array<FoldFit | undefined> = [undefined];
    let bestIndex = 0;

    // nothing held out can be scored (every class has one labelled row): validation says nothing, so
    // the simplest head, nearest centroid, which bench:quality measured at or above logistic regression at k = 1
    const unscoreable = !scoredRows.length && kind === 'auto' && opts.l2 === undefined;
    if (unscoreable) selectedBy = 'default (one row per class)';
    // large data: decades only (each fit costs a full pass over the data per evaluation)
    const path = opts.l2 !== undefined ? [opts.l2] : kind === 'prototype' || unscoreable ? [] : useCv ? L2_PATH : L2_PATH.filter((_, i) => i % 2 === 0);
    let iterations = 0;
    let evaluations = 0;
    const steps: StepSample[] = [];
    if (path.length) {
      const fs: Fold[] = specs.map((s) => {
        const problem = LogisticProblem.create(session, s.d.xFit, s.d.labels, cols, classes, s.d.priorHead(scale));
        return { problem, heldX: s.heldP, heldLabels: s.heldLabels, heldRows: s.heldRows, theta: problem.priorTheta() };
      });
      let worse = 0;
      for (const [i, lambda] of path.entries()) {
        opts.onProgress?.(i, path.length, `l2 ${lambda}`);
        const logits: Float32Array[] = [];
        const traces: Array<ProbeChoice['trace']> = [];
        for (const f of fs) {
          const fit = await f.problem.fit(lambda, f.theta, opts.signal);
          f.theta = fit.theta;
          traces.push(fit.trace);
          logits.push(await runner.logits(split(f.theta, cols, classes), { data: f.heldX, rows: f.heldRows.length, cols }));
        }
        const held = concat(logits);
        const s = { kind: 'logistic' as const, l2: lambda, ...candidate(held) };
        scores.push(s);
        validSplitFits.push(useCv ? undefined : { theta: fs[0]!.theta, trace: traces[0]! });
        const b = scores[bestIndex]!;
        // the best: higher held-out top-1, or equal top-1 and clearly better NLL (a forced logistic head never keeps the prototype)
        if ((kind !== 'auto' && bestIndex === 0) || s.top1 > b.top1 || (s.top1 === b.top1 && s.nll < b.nll - NLL_MARGIN)) {
          bestIndex = scores.length - 1;
          worse = 0;
          // large data, past the best (worse top-1 and NLL, or worse top-1 twice): weaker penalties only overfit more, and cost the most
        } else if (!useCv && s.top1 < b.top1 && (s.nll > b.nll || ++worse >= 2)) break;
      }
      steps.push(...fs.flatMap((f) => f.problem.steps));
      iterations = fs.reduce((n, f) => n + f.problem.iterations, 0);
      evaluations = fs.reduce((n, f) => n + f.problem.evaluations, 0);
      opts.onProgress?.(path.length, path.length, 'chosen');
    }
    const chosenIndex = simplestWithinOneSe(rowHits, bestIndex, kind === 'auto' ? 0 : 1);
    const chosen = scores[chosenIndex]!;

    // the final head: under CV refitted on all of train + valid; with a valid split, trained on train
    const finalRows = useCv ? [...allLabels.keys()] : [...trainLabels.keys()];
    // with a valid split the final rows are the one fold's training rows: its design is already built
    const d = useCv ? design(finalRows) : specs[0]!.d;
    const transformOf = { mean: d.tp.mean, scale: d.tp.scale, centre: d.centre };
    let probe: LinearProbe = { dim: cols, classes, ...d.prototype(scale), ...transformOf };
    let trace: ProbeChoice['trace'] = [];
    if (chosen.kind === 'logistic') {
      let head = validSplitFits[chosenIndex]?.theta;
      trace = validSplitFits[chosenIndex]?.trace ?? [];
      if (!head) {
        const problem = LogisticProblem.create(session, d.xFit, d.labels, cols, classes, d.priorHead(scale));
        const fit = await problem.fit(chosen.l2!, problem.priorTheta(), opts.signal);
        head = fit.theta;
        trace = fit.trace;
        iterations += problem.iterations;
        evaluations += problem.evaluations;
        steps.push(...problem.steps);
      }
      probe = { dim: cols, classes, ...split(head, cols, classes), ...transformOf };
    }
    // valid logits: out-of-fold under CV (the final head has seen valid), else the final head's own
    let validLogits: Float32Array;
    if (useCv) {
      validLogits = new Float32Array(valid.rows * classes);
      heldOrder.forEach((r, i) => {
        if (r >= train.rows) validLogits.set(heldLogits[chosenIndex]!.subarray(i * classes, (i + 1) * classes), (r - train.rows) * classes);
      });
    } else validLogits = await runner.logits(probe, probeFeatures(probe, valid));
    // the final design's rows start with train's, already under the head's transform
    const trainLogits = await runner.logits(probe, { data: d.xFit.subarray(0, train.rows * cols), rows: train.rows, cols });
    return {
      probe,
      choice: { kind: chosen.kind, l2: chosen.l2, selectedBy, prior, features: 'centred-l2', prototypeScale: scale, scores, iterations, evaluations, trace },
      validLogits,
      trainLogits,
      steps,
    };
  } finally {
    await session.release();
    await runner.close();
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Multinomial logistic regression on given features, penalised by l2/2 ||[W, b] - prior||^2
 * (prior zero: plain L2-regularised logistic regression), fitted to convergence. The probe's
 * inner solver, for baselines and checks.
 */
export async function fitLogistic(x: Matrix, labels: Int32Array, classes: number, opts: { l2: number; prior?: { w: Float32Array; b: Float32Array }; gradTol?: number; threads?: number }): Promise<{ w: Float32Array; b: Float32Array; loss: number; gradNorm: number; iterations: number }> {
  const session = await ort.InferenceSession.create(buildLossGradient(x.cols, classes), sessionOptions({ threads: opts.threads }));
  try {
    const prior = opts.prior ?? { w: new Float32Array(x.cols * classes), b: new Float32Array(classes) };
    const problem = LogisticProblem.create(session, x.data, labels, x.cols, classes, prior);
    const fit = await problem.fit(opts.l2, problem.priorTheta(), undefined, opts.gradTol);
    return { ...split(fit.theta, x.cols, classes), loss: fit.loss, gradNorm: fit.gradNorm, iterations: problem.iterations };
  } finally {
    await session.release();
  }
}

/** The features a probe's W and b apply to: CL2N rows, centred and scaled. */
export function probeFeatures(p: Pick<LinearProbe, 'mean' | 'scale' | 'centre'>, x: Matrix): Matrix {
  return { data: transform(new UnitRows([x]).centred(allRows(x.rows), p.centre), x.rows, x.cols, p), rows: x.rows, cols: x.cols };
}

/** Logits of linear heads through ORT's Gemm (the minibatch trainer's evaluation graph). */
export class LinearRunner {
  private constructor(
    private readonly runner: HeadRunner,
    private readonly cols: number,
    private readonly classes: number,
  ) {}

  static async create(cols: number, classes: number, threads?: number): Promise<LinearRunner> {
    return new LinearRunner(await HeadRunner.create(linearWeights(cols, classes, { w: new Float32Array(0), b: new Float32Array(0) }), threads), cols, classes);
  }

  logits(head: { w: Float32Array; b: Float32Array }, x: Matrix): Promise<Float32Array> {
    return this.runner.logits(linearWeights(this.cols, this.classes, head), x);
  }

  close(): Promise<void> {
    return this.runner.close();
  }
}

/** A linear head in the minibatch trainer's weight layout (for its evaluation graph and export). */
export const linearWeights = (dim: number, classes: number, head: { w: Float32Array; b: Float32Array }): HeadWeights => ({ kind: 'linear', dim, classes, hidden: 0, tensors: [head.w, head.b] });

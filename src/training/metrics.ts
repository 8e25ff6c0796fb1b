import { topIndices } from '../core/index.js';

/** Classification metrics computed from logits: accuracy, per-class results, calibration. */

export interface SplitMetrics {
  n: number;
  loss: number;
  top1: number;
  top5: number;
  /** expected calibration error (15 bins) after temperature scaling */
  ece: number;
  /** ECE of the raw softmax, before temperature scaling */
  eceUncalibrated: number;
  perClass: number[];
  /** confusion[true][predicted] counts */
  confusion: number[][];
}

export function softmaxRows(logits: Float32Array, classes: number, temperature = 1): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / classes; r++) {
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[r * classes + c]! / temperature);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += out[r * classes + c] = Math.exp(logits[r * classes + c]! / temperature - max);
    for (let c = 0; c < classes; c++) out[r * classes + c]! /= sum;
  }
  return out;
}

/** Each row's top-1 probability at `temperature`: how confident the model is in its answer. */
export function topConfidences(logits: Float32Array, classes: number, temperature = 1): Float32Array {
  const p = softmaxRows(logits, classes, temperature);
  const out = new Float32Array(p.length / classes);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let c = 0; c < classes; c++) best = Math.max(best, p[r * classes + c]!);
    out[r] = best;
  }
  return out;
}

/** A row's loss is at most this: its label's probability counts as at least 1e-12. */
const MAX_ROW_LOSS = -Math.log(1e-12);

/**
 * Mean negative log-likelihood of the labels at `temperature`. Each row's log-softmax comes from
 * its log-sum-exp in one pass, without a probability matrix: fitTemperature evaluates this some
 * 25 times per head it scores.
 */
export function nll(logits: Float32Array, labels: Int32Array, classes: number, temperature = 1): number {
  const inv = 1 / temperature;
  let s = 0;
  for (let r = 0; r < labels.length; r++) {
    const row = r * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[row + c]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp((logits[row + c]! - max) * inv);
    s += Math.min(MAX_ROW_LOSS, Math.log(sum) - (logits[row + labels[r]!]! - max) * inv);
  }
  return s / labels.length;
}

/** fitTemperature's precision on log T: 0.01% of T (23 steps), which no confidence shown or compared resolves. */
const LOG_T_TOLERANCE = 1e-4;

/** Spread of the prior on log T: without strong evidence, T stays within about [0.37, 2.7]. */
const LOG_T_PRIOR_SD = 0.5;

/**
 * Temperature fitted on valid: the MAP estimate of T under a log-normal prior centred on 1,
 * found by golden-section search on log T in [0.05, 20]. With a large valid set this is the
 * NLL minimiser; a small, perfectly classified one would otherwise push T towards 0 and make
 * every prediction ~100% confident. `tolerance` is the precision on log T (LOG_T_TOLERANCE by default).
 */
export function fitTemperature(logits: Float32Array, labels: Int32Array, classes: number, opts: { tolerance?: number } = {}): number {
  if (labels.length === 0) return 1;
  let a = Math.log(0.05);
  let b = Math.log(20);
  const phi = (Math.sqrt(5) - 1) / 2;
  const f = (x: number) => nll(logits, labels, classes, Math.exp(x)) + (x * x) / (2 * LOG_T_PRIOR_SD ** 2 * labels.length);
  let c = b - phi * (b - a);
  let d = a + phi * (b - a);
  let fc = f(c);
  let fd = f(d);
  while (b - a > (opts.tolerance ?? LOG_T_TOLERANCE)) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - phi * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + phi * (b - a);
      fd = f(d);
    }
  }
  return Math.exp((a + b) / 2);
}

export function ece(probs: Float32Array, labels: Int32Array, classes: number, bins = 15): number {
  const count = new Array<number>(bins).fill(0);
  const conf = new Array<number>(bins).fill(0);
  const acc = new Array<number>(bins).fill(0);
  for (let r = 0; r < labels.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (probs[r * classes + c]! > probs[r * classes + best]!) best = c;
    const p = probs[r * classes + best]!;
    const bin = Math.min(bins - 1, Math.floor(p * bins));
    count[bin]!++;
    conf[bin]! += p;
    acc[bin]! += best === labels[r] ? 1 : 0;
  }
  let e = 0;
  for (let i = 0; i < bins; i++) if (count[i]) e += Math.abs(acc[i]! - conf[i]!) / labels.length;
  return e;
}

export function evaluate(logits: Float32Array, labels: Int32Array, classes: number, temperature: number): SplitMetrics {
  const n = labels.length;
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let top1 = 0;
  let top5 = 0;
  for (let r = 0; r < n; r++) {
    const best = topIndices(logits.subarray(r * classes, (r + 1) * classes), Math.min(5, classes));
    confusion[labels[r]!]![best[0]!]!++;
    if (best[0] === labels[r]) top1++;
    if (best.includes(labels[r]!)) top5++;
  }
  const perClass = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total ? row[c]! / total : 0;
  });
  return {
    n,
    loss: nll(logits, labels, classes),
    top1: n ? top1 / n : 0,
    top5: n ? top5 / n : 0,
    ece: ece(softmaxRows(logits, classes, temperature), labels, classes),
    eceUncalibrated: ece(softmaxRows(logits, classes), labels, classes),
    perClass,
    confusion,
  };
}

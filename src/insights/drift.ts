import { Rng } from '../core/index.js';

/** Row-major feature rows: `rows` x `cols`. */
export interface Rows {
  data: Float32Array;
  rows: number;
  cols: number;
}

export interface DriftTest {
  /** the unbiased estimate of MMD^2 between the two samples */
  mmd2: number;
  /** the (1 - alpha) quantile of MMD^2 over permutations of the pooled samples: above it is drift */
  threshold: number;
  /** share of permutations at least as large as the observed value (with the observed one counted) */
  pValue: number;
  drift: boolean;
  alpha: number;
  /** the RBF kernel's bandwidth: the median distance between pooled rows (median heuristic) */
  bandwidth: number;
  permutations: number;
  reference: number;
  current: number;
}

const sqDist = (a: Float32Array, i: number, j: number, d: number): number => {
  let s = 0;
  for (let k = 0; k < d; k++) {
    const x = a[i * d + k]! - a[j * d + k]!;
    s += x * x;
  }
  return s;
};

/** Unbiased MMD^2 of the split `idx[0..n)` vs `idx[n..)` of a pooled kernel matrix. */
function mmd2Of(K: Float64Array, N: number, idx: Int32Array, n: number): number {
  const m = N - n;
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let a = 0; a < N; a++) {
    const row = idx[a]! * N;
    for (let b = a + 1; b < N; b++) {
      const k = K[row + idx[b]!]!;
      if (b < n) xx += k;
      else if (a >= n) yy += k;
      else xy += k;
    }
  }
  return (2 * xx) / (n * (n - 1)) + (2 * yy) / (m * (m - 1)) - (2 * xy) / (n * m);
}

/**
 * A kernel two-sample test on embeddings: maximum mean discrepancy with an RBF kernel whose
 * bandwidth is the median pairwise distance of the pooled samples, and a threshold taken from
 * a permutation baseline (the pooled rows shuffled between the two samples `permutations` times,
 * seeded): drift when the observed MMD^2 is above the (1 - alpha) quantile of the permuted ones.
 * Both samples need at least 2 rows. Cost: one (n + m)^2 kernel matrix, then (n + m)^2 / 2 sums
 * per permutation.
 */
export function mmdTest(reference: Rows, current: Rows, opts: { seed: number; permutations?: number; alpha?: number }): DriftTest {
  if (reference.cols !== current.cols) throw new Error(`feature widths differ: ${reference.cols} vs ${current.cols}`);
  if (reference.rows < 2 || current.rows < 2) throw new Error('each sample needs at least 2 rows');
  const permutations = opts.permutations ?? 500;
  const alpha = opts.alpha ?? 0.01;
  const d = reference.cols;
  const n = reference.rows;
  const N = n + current.rows;
  const pooled = new Float32Array(N * d);
  pooled.set(reference.data.subarray(0, n * d));
  pooled.set(current.data.subarray(0, current.rows * d), n * d);
  const D = new Float64Array(N * N);
  const off: number[] = [];
  for (let i = 0; i < N; i++)
    for (let j = i + 1; j < N; j++) {
      const s = sqDist(pooled, i, j, d);
      D[i * N + j] = D[j * N + i] = s;
      off.push(s);
    }
  off.sort((a, b) => a - b);
  const medianSq = off[off.length >> 1]! || 1;
  const K = new Float64Array(N * N);
  for (let p = 0; p < N * N; p++) K[p] = Math.exp(-D[p]! / medianSq);
  const idx = Int32Array.from({ length: N }, (_, i) => i);
  const observed = mmd2Of(K, N, idx, n);
  const rng = new Rng(opts.seed);
  const perm: number[] = [];
  let atLeast = 1;
  for (let p = 0; p < permutations; p++) {
    for (let i = N - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = idx[i]!;
      idx[i] = idx[j]!;
      idx[j] = t;
    }
    const v = mmd2Of(K, N, idx, n);
    perm.push(v);
    if (v >= observed) atLeast++;
  }
  perm.sort((a, b) => a - b);
  const threshold = perm[Math.min(perm.length - 1, Math.ceil((1 - alpha) * perm.length) - 1)]!;
  return { mmd2: observed, threshold, pValue: atLeast / (permutations + 1), drift: observed > threshold, alpha, bandwidth: Math.sqrt(medianSq), permutations, reference: n, current: current.rows };
}

/**
 * A fixed random projection (seeded Gaussian, scaled by 1/sqrt(out)): keeps distances between
 * feature rows approximately (Johnson-Lindenstrauss), so captures can store `out` numbers per
 * request instead of the backbone's whole feature vector and still be compared by MMD.
 */
export function randomProjection(dim: number, out: number, seed: number): Rows {
  const rng = new Rng(seed);
  const data = new Float32Array(dim * out);
  const s = 1 / Math.sqrt(out);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * s;
  return { data, rows: dim, cols: out };
}

/** rows x P: each row projected. */
export function project(x: Rows, p: Rows): Rows {
  if (x.cols !== p.rows) throw new Error(`cannot project ${x.cols} features with a ${p.rows}-row projection`);
  const out = new Float32Array(x.rows * p.cols);
  for (let r = 0; r < x.rows; r++)
    for (let k = 0; k < x.cols; k++) {
      const v = x.data[r * x.cols + k]!;
      if (v === 0) continue;
      const prow = k * p.cols;
      const orow = r * p.cols;
      for (let c = 0; c < p.cols; c++) out[orow + c]! += v * p.data[prow + c]!;
    }
  return { data: out, rows: x.rows, cols: p.cols };
}

/** Total variation distance between two class distributions given as counts: half the L1 distance of the shares. */
export function classShift(reference: Record<string, number>, current: Record<string, number>): number {
  const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0) || 1;
  const [tr, tc] = [total(reference), total(current)];
  let l1 = 0;
  for (const k of new Set([...Object.keys(reference), ...Object.keys(current)])) l1 += Math.abs((reference[k] ?? 0) / tr - (current[k] ?? 0) / tc);
  return l1 / 2;
}

/** Points of the held-out confidence distribution a model card keeps (quantiles 0, 1/100, ..., 1). */
export const CONFIDENCE_QUANTILES = 101;

/** A confidence drop smaller than this (one point) is no alarm, however significant: a model sure of nearly everything would otherwise alarm on rounding. */
export const MIN_CONFIDENCE_DROP = 0.01;

/** The quantiles of top-1 confidences (ascending), as a model card keeps them, to 6 decimals. */
export function confidenceQuantiles(confidences: Float32Array | number[], points = CONFIDENCE_QUANTILES): number[] {
  const sorted = Float64Array.from(confidences).sort();
  if (!sorted.length) return [];
  return Array.from({ length: points }, (_, i) => {
    const x = (i / (points - 1)) * (sorted.length - 1);
    const lo = Math.floor(x);
    const v = sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (x - lo);
    return Math.round(v * 1e6) / 1e6;
  });
}

export interface ConfidenceTest {
  /** mean top-1 confidence of the current requests */
  mean: number;
  /** mean of the reference distribution */
  referenceMean: number;
  /** the current mean is an alarm below this: the alpha quantile of means of as many draws from the reference, and at least MIN_CONFIDENCE_DROP below its mean */
  threshold: number;
  dropped: boolean;
}

/**
 * Whether the current requests are answered with less confidence than held-out images were:
 * their mean top-1 confidence against the means of `current.length` draws from the reference
 * distribution (given by its quantiles, sampled by inverse CDF), a one-sided permutation-style
 * baseline whose alpha quantile is the threshold (and never less than MIN_CONFIDENCE_DROP below
 * the reference mean). Confident mistakes raise no alarm here; the MMD and the class shift look
 * at those.
 */
export function confidenceDrop(current: number[], quantiles: number[], opts: { alpha: number; draws?: number; rng: { next(): number } }): ConfidenceTest {
  const q = quantiles;
  const draw = () => {
    const x = opts.rng.next() * (q.length - 1);
    const lo = Math.floor(x);
    return q[lo]! + (q[Math.min(lo + 1, q.length - 1)]! - q[lo]!) * (x - lo);
  };
  const n = current.length;
  const means = Float64Array.from({ length: opts.draws ?? 500 }, () => {
    let s = 0;
    for (let i = 0; i < n; i++) s += draw();
    return s / n;
  }).sort();
  const mean = current.reduce((a, b) => a + b, 0) / n;
  let referenceMean = 0;
  for (let i = 0; i < q.length - 1; i++) referenceMean += (q[i]! + q[i + 1]!) / 2 / (q.length - 1);
  const threshold = Math.min(means[Math.max(0, Math.floor(opts.alpha * means.length) - 1)]!, referenceMean - MIN_CONFIDENCE_DROP);
  return { mean, referenceMean, threshold, dropped: mean < threshold };
}

import { toInternal, type ParamSpec, type Params, type SearchSpace } from './space.js';
import type { Direction } from './strategy.js';

export interface ParamImportance {
  param: string;
  /**
   * Share of the objective's variance explained by this parameter alone (first-order, like a
   * one-way fANOVA term), on binned values, bias-corrected (epsilon squared) and clipped at 0.
   */
  importance: number;
  /** Spearman rank correlation with how good the objective was (numeric parameters only): positive means higher values did better */
  correlation?: number;
  bins: number;
}

/** Trials needed before importance is computed. */
export const MIN_TRIALS_FOR_IMPORTANCE = 4;

const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;

/** Bin labels: each choice is a bin; numbers go into up to `maxBins` quantile bins (log scale for log parameters), equal values together. */
function binOf(p: ParamSpec, values: Array<string | number>, maxBins: number): number[] {
  if (p.type === 'choice') return values.map((v) => p.values.findIndex((x) => x === v));
  const xs = values.map((v) => toInternal(p, v as number));
  const distinct = [...new Set(xs)].sort((a, b) => a - b);
  if (distinct.length <= maxBins) return xs.map((x) => distinct.indexOf(x));
  const sorted = [...xs].sort((a, b) => a - b);
  const cuts = Array.from({ length: maxBins - 1 }, (_, k) => sorted[Math.floor(((k + 1) * sorted.length) / maxBins)]!);
  return xs.map((x) => cuts.filter((c) => x >= c).length);
}

/** Average ranks (ties share their mean rank). */
function ranks(xs: number[]): number[] {
  const order = xs.map((x, i) => ({ x, i })).sort((a, b) => a.x - b.x);
  const out = new Array<number>(xs.length);
  for (let k = 0; k < order.length; ) {
    let j = k;
    while (j + 1 < order.length && order[j + 1]!.x === order[k]!.x) j++;
    for (let m = k; m <= j; m++) out[order[m]!.i] = (k + j) / 2;
    k = j + 1;
  }
  return out;
}

function pearson(a: number[], b: number[]): number {
  const ma = mean(a);
  const mb = mean(b);
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}

/**
 * Importance of each hyperparameter over finished trials with an objective. With n trials the
 * numeric parameters get min(5, max(2, floor(n / 4))) bins, so each bin holds a few trials.
 * Descriptive, not causal: a Bayesian search samples good regions more, and a parameter that
 * varies little gets little importance.
 */
export function paramImportance(space: SearchSpace, trials: Array<{ params: Params; objective: number }>, direction: Direction): ParamImportance[] {
  const n = trials.length;
  if (n < MIN_TRIALS_FOR_IMPORTANCE) return [];
  const y = trials.map((t) => t.objective);
  const my = mean(y);
  const total = y.reduce((s, v) => s + (v - my) ** 2, 0);
  const maxBins = Math.min(5, Math.max(2, Math.floor(n / 4)));
  return space.params
    .map((p) => {
      const values = trials.map((t) => t.params[p.name]!);
      const bins = binOf(p, values, maxBins);
      const groups = new Map<number, number[]>();
      bins.forEach((b, i) => groups.set(b, [...(groups.get(b) ?? []), y[i]!]));
      const k = groups.size;
      const between = [...groups.values()].reduce((s, g) => s + g.length * (mean(g) - my) ** 2, 0);
      const within = total - between;
      const epsilon2 = total > 0 && n > k ? (between - (k - 1) * (within / (n - k))) / total : 0;
      const out: ParamImportance = { param: p.name, importance: Math.max(0, epsilon2), bins: k };
      if (p.type !== 'choice') out.correlation = pearson(ranks(values.map((v) => toInternal(p, v as number))), ranks(direction === 'max' ? y : y.map((v) => -v)));
      return out;
    })
    .sort((a, b) => b.importance - a.importance || a.param.localeCompare(b.param));
}

import { median } from '../core/index.js';
import type { Direction } from './strategy.js';

export type EarlyStopping = 'none' | 'median' | 'asha';
export const EARLY_STOPPING: readonly EarlyStopping[] = ['none', 'median', 'asha'];

/** ASHA: rungs at epochs minEpochs * eta^k; at each rung a trial goes on only if it is in the top 1/eta. */
export const ASHA = { minEpochs: 1, eta: 3 };
/** Median stopping: after graceEpochs, stop when the best value so far is worse than the median of the finished trials' running averages (with at least minTrials of them). */
export const MEDIAN = { minTrials: 3, graceEpochs: 1 };

/**
 * Everything a trial needs to decide by itself, after each epoch, whether to stop: built by the
 * coordinator from trials that finished before this one was started. A trial therefore needs
 * no conversation with the coordinator while it runs (it can run on any worker), and its
 * decisions do not depend on which other trials happened to finish first.
 */
export type StoppingPlan =
  | { rule: 'none' }
  | { rule: 'asha'; eta: number; rungs: Array<{ epoch: number; values: Array<number | null> }> }
  | { rule: 'median'; graceEpochs: number; medians: Array<{ epoch: number; median: number }> };

/** A finished trial's objective after each epoch (the value it would report had it ended then). */
export interface FinishedCurve {
  /** null: no finite valid loss yet at that epoch */
  curve: Array<number | null>;
  /** only completed trials count for the median rule; ASHA ranks every trial that reached a rung */
  completed: boolean;
}

/** Higher is better; a missing value (a diverged epoch) is the worst. */
const goodness = (v: number | null, direction: Direction): number => (v !== null && Number.isFinite(v) ? (direction === 'max' ? v : -v) : -Infinity);

export function ashaRungs(maxEpochs: number, o = ASHA): number[] {
  const out: number[] = [];
  for (let e = o.minEpochs; e < maxEpochs; e *= o.eta) out.push(e);
  return out;
}

/** The plan for a trial that will run at most `maxEpochs`, given the earlier trials' curves. */
export function stoppingPlan(rule: EarlyStopping, finished: FinishedCurve[], maxEpochs: number, direction: Direction): StoppingPlan {
  if (rule === 'asha') {
    return { rule, eta: ASHA.eta, rungs: ashaRungs(maxEpochs).map((epoch) => ({ epoch, values: finished.filter((f) => f.curve.length >= epoch).map((f) => f.curve[epoch - 1]!) })) };
  }
  if (rule === 'median') {
    const medians: Array<{ epoch: number; median: number }> = [];
    for (let epoch = MEDIAN.graceEpochs + 1; epoch <= maxEpochs; epoch++) {
      // running averages in "higher is better" units, so the median is direction-free
      const averages = finished.filter((f) => f.completed && f.curve.length >= epoch).map((f) => f.curve.slice(0, epoch).reduce<number>((s, v) => s + goodness(v, direction), 0) / epoch);
      const m = averages.length >= MEDIAN.minTrials ? median(averages) : -Infinity;
      // a median of -Infinity (diverged references) would stop nothing
      if (Number.isFinite(m)) medians.push({ epoch, median: m });
    }
    return { rule, graceEpochs: MEDIAN.graceEpochs, medians };
  }
  return { rule: 'none' };
}

/** Whether a trial whose objective after each epoch so far is `curve` should stop now. */
export function shouldStop(plan: StoppingPlan, curve: Array<number | null>, direction: Direction): boolean {
  const epoch = curve.length;
  if (plan.rule === 'asha') {
    const rung = plan.rungs.find((r) => r.epoch === epoch);
    if (!rung) return false;
    const mine = goodness(curve[epoch - 1]!, direction);
    const all = [...rung.values.map((v) => goodness(v, direction)), mine].sort((a, b) => b - a);
    const keep = Math.max(1, Math.floor(all.length / plan.eta));
    return mine < all[keep - 1]!;
  }
  if (plan.rule === 'median') {
    if (epoch <= plan.graceEpochs) return false;
    const m = plan.medians.find((x) => x.epoch === epoch);
    if (!m) return false;
    return Math.max(...curve.map((v) => goodness(v, direction))) < m.median;
  }
  return false;
}

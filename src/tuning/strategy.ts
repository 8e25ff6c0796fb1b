import { Rng, seedFrom } from '../core/index.js';
import { gridValues, sampleSpace, type Params, type SearchSpace } from './space.js';
import { TpeSampler, type TpeOptions } from './tpe.js';

export type StrategyName = 'random' | 'grid' | 'bayesian';
export const STRATEGIES: readonly StrategyName[] = ['random', 'grid', 'bayesian'];
export type Direction = 'max' | 'min';

/** A finished trial as strategies see it; `value` null marks a failed trial. */
export interface Observation {
  params: Params;
  value: number | null;
}

export interface SuggestRequest {
  /** 1-based id of the trial to suggest for; each trial draws from its own seeded stream */
  trial: number;
  /** finished trials the suggestion may use */
  history: Observation[];
  /** trials suggested but not finished (running, or earlier in the same batch) */
  pending: Params[];
}

/**
 * Proposes trials. A suggestion is a pure function of (space, seed, trial id, history,
 * pending), so a resumed job proposes exactly what the uninterrupted one would have.
 */
export interface Strategy {
  readonly name: StrategyName;
  /** undefined when the strategy has nothing left to try (a finished grid) */
  suggest(req: SuggestRequest): Params | undefined;
}

export interface StrategyOptions {
  space: SearchSpace;
  direction: Direction;
  seed: number;
  /** grid: values per numeric parameter (default 3) */
  gridPoints?: number;
  tpe?: Partial<TpeOptions>;
}

const trialRng = (seed: number, strategy: string, trial: number) => new Rng(seedFrom(seed, strategy, trial));

class RandomSearch implements Strategy {
  readonly name = 'random';
  constructor(private readonly o: StrategyOptions) {}
  suggest(req: SuggestRequest): Params {
    return sampleSpace(this.o.space, trialRng(this.o.seed, this.name, req.trial));
  }
}

/**
 * The cartesian product of every parameter's grid values, visited in a seeded random order so
 * that a grid larger than the trial budget is still covered evenly, not one corner first.
 */
class GridSearch implements Strategy {
  readonly name = 'grid';
  private readonly order: number[];
  private readonly axes: Array<{ name: string; values: Array<string | number> }>;
  constructor(o: StrategyOptions) {
    this.axes = o.space.params.map((p) => ({ name: p.name, values: gridValues(p, o.gridPoints ?? 3) }));
    const size = this.axes.reduce((n, a) => n * a.values.length, 1);
    this.order = new Rng(seedFrom(o.seed, 'grid')).shuffle(Array.from({ length: size }, (_, i) => i));
  }
  get size(): number {
    return this.order.length;
  }
  suggest(req: SuggestRequest): Params | undefined {
    let index = this.order[req.trial - 1];
    if (index === undefined) return undefined;
    const out: Params = {};
    for (let a = this.axes.length - 1; a >= 0; a--) {
      const axis = this.axes[a]!;
      out[axis.name] = axis.values[index % axis.values.length]!;
      index = Math.floor(index / axis.values.length);
    }
    return Object.fromEntries(this.axes.map((a) => [a.name, out[a.name]!]));
  }
}

class Bayesian implements Strategy {
  readonly name = 'bayesian';
  private readonly tpe: TpeSampler;
  constructor(private readonly o: StrategyOptions) {
    this.tpe = new TpeSampler(o.space, o.direction, o.tpe);
  }
  suggest(req: SuggestRequest): Params {
    return this.tpe.suggest(req.history, req.pending, trialRng(this.o.seed, this.name, req.trial));
  }
}

export function createStrategy(name: StrategyName, o: StrategyOptions): Strategy {
  switch (name) {
    case 'random':
      return new RandomSearch(o);
    case 'grid':
      return new GridSearch(o);
    case 'bayesian':
      return new Bayesian(o);
  }
}

/** Number of distinct configurations a grid search visits. */
export const gridSize = (o: StrategyOptions): number => new GridSearch(o).size;

/**
 * Runs a search on a function in this process, `parallel` suggestions per round (each round
 * sees every earlier result, like a tuning job with that many workers). For checking
 * strategies on functions with known optima; tuning jobs use the same suggestion rule.
 */
export function minimize(fn: (p: Params) => number, name: StrategyName, o: Omit<StrategyOptions, 'direction'>, trials: number, parallel = 1): { best: number; values: number[] } {
  const strategy = createStrategy(name, { ...o, direction: 'min' });
  const history: Observation[] = [];
  while (history.length < trials) {
    const batch: Params[] = [];
    for (let k = 0; k < parallel && history.length + batch.length < trials; k++) {
      const p = strategy.suggest({ trial: history.length + batch.length + 1, history, pending: batch });
      if (!p) break;
      batch.push(p);
    }
    if (!batch.length) break;
    history.push(...batch.map((params) => ({ params, value: fn(params) })));
  }
  const values = history.map((h) => h.value!);
  return { best: Math.min(...values), values };
}

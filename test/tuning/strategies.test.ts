import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/core/index.ts';
import { branin, createStrategy, gridSize, makeSpace, minimize, parseParamFlag, TpeSampler, tuningBowl, type Observation, type Params, type TestObjective } from '../../src/tuning/index.ts';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
const SEEDS = Array.from({ length: 10 }, (_, i) => i + 1);
const medianBest = (f: TestObjective, strategy: 'random' | 'bayesian', trials: number, parallel = 1) => median(SEEDS.map((seed) => minimize(f.fn, strategy, { space: f.space, seed }, trials, parallel).best));

test('random search is deterministic for a seed and differs across seeds', () => {
  const a = minimize(branin.fn, 'random', { space: branin.space, seed: 3 }, 10).values;
  assert.deepEqual(minimize(branin.fn, 'random', { space: branin.space, seed: 3 }, 10).values, a);
  assert.notDeepEqual(minimize(branin.fn, 'random', { space: branin.space, seed: 4 }, 10).values, a);
});

test('grid search visits every point of the product once, then stops', () => {
  const space = makeSpace(['lr=loguniform:1e-4:1e-2', 'batch_size=choice:32,64', 'head=choice:linear,mlp'].map(parseParamFlag));
  const o = { space, direction: 'min' as const, seed: 1 };
  assert.equal(gridSize(o), 12);
  const grid = createStrategy('grid', o);
  const seen = new Set<string>();
  for (let t = 1; t <= 12; t++) seen.add(JSON.stringify(grid.suggest({ trial: t, history: [], pending: [] })));
  assert.equal(seen.size, 12);
  assert.equal(grid.suggest({ trial: 13, history: [], pending: [] }), undefined);
  // a budget smaller than the grid still spreads over it (seeded order, not one corner first)
  const first4 = Array.from({ length: 4 }, (_, i) => grid.suggest({ trial: i + 1, history: [], pending: [] })!);
  assert.ok(new Set(first4.map((p) => p.lr)).size > 1);
});

// The acceptance check for the Bayesian strategy: on functions with known minima, TPE's median
// best value after 20 trials over 10 seeds is clearly below random search's.
for (const f of [branin, tuningBowl]) {
  test(`bayesian (TPE) beats random search on ${f.name} (minimum ${f.minimum})`, () => {
    const random = medianBest(f, 'random', 20);
    const bayesian = medianBest(f, 'bayesian', 20);
    const gapRandom = random - f.minimum;
    const gapBayesian = bayesian - f.minimum;
    assert.ok(gapBayesian < 0.75 * gapRandom, `median best: bayesian ${bayesian.toFixed(4)} vs random ${random.toFixed(4)}`);
  });
}

test('TPE with parallel workers (constant liar) still beats random search', () => {
  const random = medianBest(branin, 'random', 20);
  const parallel = medianBest(branin, 'bayesian', 20, 4);
  assert.ok(parallel - branin.minimum < 0.75 * (random - branin.minimum), `bayesian x4 ${parallel.toFixed(4)} vs random ${random.toFixed(4)}`);
});

test('TPE concentrates on the optimum of the tuning bowl: lr near 3e-3, batch 128, mlp head', () => {
  const r = minimize(tuningBowl.fn, 'bayesian', { space: tuningBowl.space, seed: 7 }, 60);
  const strategy = createStrategy('bayesian', { space: tuningBowl.space, direction: 'min', seed: 7 });
  const history: Observation[] = [];
  for (let t = 1; t <= 60; t++) {
    const params = strategy.suggest({ trial: t, history, pending: [] })!;
    history.push({ params, value: tuningBowl.fn(params) });
  }
  assert.deepEqual(
    history.map((h) => h.value),
    r.values,
  );
  const late = history.slice(40).map((h) => h.params);
  const near = late.filter((p) => Math.abs(Math.log10(p.lr as number) - Math.log10(3e-3)) < 0.5).length;
  assert.ok(near >= 12, `${near} of the last 20 suggestions within half a decade of lr 3e-3`);
  assert.ok(late.filter((p) => p.batch_size === 128).length >= 8);
  assert.ok(late.filter((p) => p.head === 'mlp').length >= 14);
  assert.ok(r.best < 0.1, `best ${r.best}`);
});

test('TPE maximises when asked to, and treats failed trials as the worst', () => {
  const space = makeSpace([parseParamFlag('x=uniform:0:1')]);
  const tpe = new TpeSampler(space, 'max', { startup: 4 });
  const history: Observation[] = [];
  for (let i = 0; i < 30; i++) {
    const p = tpe.suggest(history, [], new Rng(i + 1));
    const x = p.x as number;
    // the top half fails: a model that ignored failures would be drawn there by the slope
    history.push({ params: p, value: x > 0.5 ? null : x });
  }
  const late = history.slice(15).map((h) => h.params.x as number);
  assert.ok(late.filter((x) => x > 0.3 && x <= 0.5).length >= 8, late.map((x) => x.toFixed(2)).join(' '));
});

test('TPE suggestions are a pure function of the history, pending trials and the stream; pending trials push suggestions apart', () => {
  const f = tuningBowl;
  const tpe = new TpeSampler(f.space, 'min');
  const random = createStrategy('random', { space: f.space, direction: 'min', seed: 100 });
  const history: Observation[] = Array.from({ length: 12 }, (_, i) => {
    const params = random.suggest({ trial: i + 1, history: [], pending: [] })!;
    return { params, value: f.fn(params) };
  });
  const a = tpe.suggest(history, [], new Rng(5));
  assert.deepEqual(tpe.suggest(history, [], new Rng(5)), a);
  const batch: Params[] = [];
  for (let k = 0; k < 4; k++) batch.push(tpe.suggest(history, batch, new Rng(50 + k)));
  assert.equal(new Set(batch.map((p) => JSON.stringify(p))).size, 4);
});

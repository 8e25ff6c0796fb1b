import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/core/index.ts';
import { makeSpace, paramImportance, parseParamFlag } from '../../src/tuning/index.ts';
import { sampleSpace } from '../../src/tuning/space.ts';

const space = makeSpace(['lr=loguniform:1e-4:1e-1', 'batch_size=choice:32,64,128', 'dropout=uniform:0:0.5'].map(parseParamFlag));

function trials(n: number, fn: (p: Record<string, number | string>, rng: Rng) => number) {
  const rng = new Rng(11);
  return Array.from({ length: n }, () => {
    const params = sampleSpace(space, rng);
    return { params, objective: fn(params, rng) };
  });
}

test('the parameter that drives the objective gets the importance; noise parameters get little', () => {
  // valid top-1 falls with distance of log10(lr) from -2.5; batch size and dropout do nothing
  const t = trials(40, (p, rng) => 0.9 - 0.1 * (Math.log10(p.lr as number) + 2.5) ** 2 + 0.005 * rng.normal());
  const imp = paramImportance(space, t, 'max');
  assert.equal(imp[0]!.param, 'lr');
  assert.ok(imp[0]!.importance > 0.6, JSON.stringify(imp));
  for (const other of imp.slice(1)) assert.ok(other.importance < 0.15, JSON.stringify(imp));
});

test('a categorical effect is found, and the rank correlation says which way is better', () => {
  const t = trials(30, (p) => (p.batch_size === 128 ? 0.5 : 1) + 0.1 * (p.dropout as number));
  const asLoss = paramImportance(space, t, 'min');
  assert.equal(asLoss[0]!.param, 'batch_size');
  assert.equal(asLoss[0]!.correlation, undefined);
  const dropout = asLoss.find((i) => i.param === 'dropout')!;
  // a larger dropout raises the loss: worse when minimising, better when maximising
  assert.ok(dropout.correlation! < 0);
  assert.ok(paramImportance(space, t, 'max').find((i) => i.param === 'dropout')!.correlation! > 0);
});

test('too few trials, or no variation, give no importance', () => {
  assert.deepEqual(paramImportance(space, trials(3, () => 1), 'max'), []);
  assert.ok(paramImportance(space, trials(10, () => 1), 'max').every((i) => i.importance === 0));
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lbfgs } from '../../src/training/lbfgs.ts';

/** sum c_i (x_i - 1)^2 + offset, its loss rounded to float32 as an ORT graph's is; the gradient exact */
function bowl(n: number, offset: number) {
  const c = Float64Array.from({ length: n }, (_, i) => 1 + (9 * i) / (n - 1));
  let evaluations = 0;
  const f = async (x: Float64Array) => {
    evaluations++;
    let loss = offset;
    const grad = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      loss += c[i]! * (x[i]! - 1) ** 2;
      grad[i] = 2 * c[i]! * (x[i]! - 1);
    }
    return { loss: Math.fround(loss), grad };
  };
  return { f, evaluations: () => evaluations };
}

test('L-BFGS reaches the minimum of a badly scaled quadratic to the gradient tolerance', async () => {
  const { f } = bowl(50, 0);
  const r = await lbfgs(f, new Float64Array(50), { gradTol: 1e-3, maxIterations: 200 });
  assert.ok(r.gradNorm <= 1e-3, `gradient norm ${r.gradNorm}`);
  for (const v of r.x) assert.ok(Math.abs(v - 1) < 1e-3);
});

test('where the float32 loss can no longer show a decrease, L-BFGS stops without halving its step again and again', async () => {
  // an offset of 100: float32 resolves steps of about 1e-5 of loss, far above the gradient tolerance
  const { f, evaluations } = bowl(50, 100);
  const r = await lbfgs(f, new Float64Array(50), { gradTol: 1e-12, maxIterations: 200 });
  assert.ok(r.iterations < 200, 'it stopped by itself');
  // each iteration evaluates about once; a line search stuck in the noise would spend up to 30
  assert.ok(evaluations() <= r.iterations + 5, `${evaluations()} evaluations for ${r.iterations} iterations`);
  assert.ok(r.loss - 100 < 1e-3, `loss ${r.loss}`);
  for (const v of r.x) assert.ok(Math.abs(v - 1) < 0.02, `x ${v}`);
});

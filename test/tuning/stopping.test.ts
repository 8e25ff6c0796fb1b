import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/core/index.ts';
import { ashaRungs, runTrial, shouldStop, stoppingPlan, type FinishedCurve, type TrialData } from '../../src/tuning/index.ts';

/** Follows a scripted curve epoch by epoch, as a trial does, and returns the epoch it stopped at (or its length). */
function run(plan: ReturnType<typeof stoppingPlan>, curve: number[], direction: 'max' | 'min' = 'max'): number {
  for (let e = 1; e <= curve.length; e++) if (shouldStop(plan, curve.slice(0, e), direction)) return e;
  return curve.length;
}

const done = (curve: number[], completed = true): FinishedCurve => ({ curve, completed });
/** A learning curve that rises from `start` towards `end`. */
const rising = (start: number, end: number, epochs: number) => Array.from({ length: epochs }, (_, i) => end - (end - start) * Math.exp(-i / 3));

test('ASHA rungs sit at epochs 1, 3, 9, 27 below the trial budget', () => {
  assert.deepEqual(ashaRungs(30), [1, 3, 9, 27]);
  assert.deepEqual(ashaRungs(9), [1, 3]);
  assert.deepEqual(ashaRungs(1), []);
});

test('ASHA: at each rung a trial goes on only when it is in the top third of the trials that reached it', () => {
  // three earlier trials reached rung 1 (epoch 1) with 0.5, 0.6, 0.7; one of them reached rung 3
  const earlier = [done(rising(0.5, 0.8, 30)), done([0.6]), done([0.7, 0.75, 0.78], false)];
  const plan = stoppingPlan('asha', earlier, 30, 'max');
  assert.equal(plan.rule, 'asha');
  // four values at rung 1 (3 earlier + this one): keep the best floor(4/3) = 1
  assert.equal(run(plan, [0.65, 0.7, 0.8, 0.9]), 1);
  assert.equal(run(plan, [0.69, 0.7, 0.8, 0.9]), 1);
  // best at rung 1; at rung 3 it meets the rising curve (0.65 there) and 0.78: 3 values, keep 1
  assert.equal(run(plan, [0.71, 0.72, 0.77, 0.8, 0.81]), 3);
  assert.equal(run(plan, [0.71, 0.74, 0.79, 0.8, 0.81]), 5);
  // a tie with the cut-off value goes on
  assert.equal(run(plan, [0.7, 0.8, 0.8]), 3);
});

test('ASHA: the first trials (nothing to compare with) always go on; minimising flips the order', () => {
  assert.equal(run(stoppingPlan('asha', [], 30, 'max'), rising(0.1, 0.2, 30)), 30);
  const losses = [done([2.0, 1.5, 1.2]), done([2.2, 1.9, 1.7]), done([1.8, 1.4, 1.0])];
  const plan = stoppingPlan('asha', losses, 10, 'min');
  assert.equal(run(plan, [1.9, 1.0, 0.5], 'min'), 1);
  assert.equal(run(plan, [1.7, 1.3, 0.9, 0.8], 'min'), 4);
  // a trial with no finite value yet ranks last
  const nan = stoppingPlan('asha', [done([0.5]), done([0.4]), done([0.3])], 10, 'max');
  assert.equal(shouldStop(nan, [null], 'max'), true);
});

test('median stopping: after the grace epoch, stop when the best so far is below the median of the running averages', () => {
  const earlier = [done([0.2, 0.4, 0.6, 0.7]), done([0.3, 0.5, 0.6, 0.65]), done([0.1, 0.2, 0.3, 0.35]), done([0.9, 0.9, 0.9, 0.9], false)];
  const plan = stoppingPlan('median', earlier, 4, 'max');
  assert.equal(plan.rule, 'median');
  // running averages at epoch 2: 0.3, 0.4, 0.15 (the stopped trial does not count): median 0.3
  assert.equal(run(plan, [0.0, 0.25, 0.9, 0.9]), 2);
  assert.equal(run(plan, [0.0, 0.35, 0.36, 0.37]), 3); // epoch 3 median 0.4
  assert.equal(run(plan, [0.0, 0.35, 0.5, 0.6]), 4);
  // fewer than 3 completed references: never stops
  assert.equal(run(stoppingPlan('median', earlier.slice(0, 2), 4, 'max'), [0, 0, 0, 0]), 4);
  assert.equal(run(stoppingPlan('none', earlier, 4, 'max'), [0, 0, 0, 0]), 4);
});

/** Two Gaussian blobs per class: a learnable problem for a real head. */
function blobs(rows: number, cols: number, classes: number, seed: number): { x: Float32Array; y: Int32Array } {
  const centres = new Rng(99);
  const c = Array.from({ length: classes * cols }, () => centres.normal());
  const rng = new Rng(seed);
  const x = new Float32Array(rows * cols);
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    y[r] = r % classes;
    for (let d = 0; d < cols; d++) x[r * cols + d] = c[y[r]! * cols + d]! + 1.5 * rng.normal();
  }
  return { x, y };
}

test('a trial follows its plan: stopped at a rung, recorded as stopped with the objective so far', async () => {
  const tr = blobs(400, 16, 4, 1);
  const va = blobs(100, 16, 4, 2);
  const data: TrialData = { cols: 16, trainX: tr.x, trainY: tr.y, validX: va.x, validY: va.y };
  const head = { kind: 'linear' as const, hidden: 8, dropout: 0, optimizer: 'adamw' as const, lr: 1e-2, batchSize: 32, epochs: 12, weightDecay: 0, labelSmoothing: 0, patience: 100, seed: 1 };
  const free = await runTrial(data, { head, classes: 4, objective: 'valid.loss', direction: 'min', stopping: { rule: 'none' } });
  assert.equal(free.status, 'completed');
  assert.equal(free.epochs, 12);
  assert.equal(free.curve.length, 12);
  assert.equal(free.objective, free.history[free.bestEpoch - 1]!.validLoss);
  // earlier trials that were far better at epoch 3: this one stops there
  const better = Array.from({ length: 3 }, () => done([0.01, 0.005, 0.001]));
  const stopped = await runTrial(data, { head, classes: 4, objective: 'valid.loss', direction: 'min', stopping: stoppingPlan('asha', better, 12, 'min') });
  assert.equal(stopped.status, 'stopped');
  assert.equal(stopped.epochs, 1);
  assert.deepEqual(stopped.curve, free.curve.slice(0, 1));
  assert.equal(stopped.objective, free.curve[0]);
  // a configuration whose loss is never finite is a failed trial, not a crash
  const diverged = await runTrial(data, { head: { ...head, optimizer: 'sgd', lr: 1e38, epochs: 2 }, classes: 4, objective: 'valid.loss', direction: 'min', stopping: { rule: 'none' } });
  assert.equal(diverged.status, 'failed');
  assert.equal(diverged.objective, null);
  assert.deepEqual(diverged.curve, [null, null]);
  assert.match(diverged.error ?? '', /diverged/);
});

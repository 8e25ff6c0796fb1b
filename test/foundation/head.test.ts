import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { Rng } from '../../src/core/rng.ts';
import { applyStandardizer, foldStandardizer, standardizer } from '../../src/training/export.ts';
import { buildTrainStep, fitHead, lossAndTop1, type HeadConfig } from '../../src/training/head.ts';
import { ece, evaluate, fitTemperature, softmaxRows } from '../../src/training/metrics.ts';

function clusters(n: number, dim: number, classes: number, seed: number, spread = 1) {
  const rng = new Rng(seed);
  const centers = Array.from({ length: classes }, () => Float32Array.from({ length: dim }, () => rng.normal()));
  const data = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % classes;
    for (let d = 0; d < dim; d++) data[i * dim + d] = centers[i % classes]![d]! * 1.5 + rng.normal() * spread;
  }
  return { m: { data, rows: n, cols: dim }, labels };
}

const base: HeadConfig = { kind: 'linear', hidden: 32, dropout: 0.1, optimizer: 'adamw', lr: 3e-3, batchSize: 32, epochs: 15, weightDecay: 1e-4, labelSmoothing: 0.05, patience: 100, seed: 3 };

test('the ONNX train step computes the true cross-entropy gradient (finite differences)', async () => {
  const dim = 6;
  const classes = 4;
  const { m, labels } = clusters(5, dim, classes, 1);
  const step = await ort.InferenceSession.create(buildTrainStep({ kind: 'linear', dim, classes, hidden: 0 }, 'sgd'));
  const rng = new Rng(9);
  const w = Float32Array.from({ length: dim * classes }, () => rng.normal() * 0.3);
  const b = Float32Array.from({ length: classes }, () => rng.normal() * 0.1);
  const y = new Float32Array(5 * classes);
  labels.forEach((l, r) => (y[r * classes + l] = 1));
  const t = (d: Float32Array, dims: number[]) => new ort.Tensor('float32', d, dims);
  // with SGD, zero momentum, keep = 1 and alpha = 1: new_p = p - grad
  const out = await step.run({ x: t(m.data, [5, dim]), y: t(y, [5, classes]), inv_batch: t(Float32Array.of(1 / 5), []), alpha: t(Float32Array.of(1), []), keep: t(Float32Array.of(1), []), p0: t(w, [dim, classes]), p1: t(b, [classes]), m0: t(new Float32Array(dim * classes), [dim, classes]), m1: t(new Float32Array(classes), [classes]) });
  const gradW = Float32Array.from(w, (v, i) => v - (out.new_p0!.data as Float32Array)[i]!);
  const loss = (wv: Float32Array) => {
    const logits = new Float32Array(5 * classes);
    for (let r = 0; r < 5; r++) for (let c = 0; c < classes; c++) {
      let s = b[c]!;
      for (let d = 0; d < dim; d++) s += m.data[r * dim + d]! * wv[d * classes + c]!;
      logits[r * classes + c] = s;
    }
    return lossAndTop1(logits, labels, classes).loss;
  };
  assert.ok(Math.abs((out.loss!.data as Float32Array)[0]! - loss(w)) < 1e-4, 'graph loss equals the JS loss');
  for (const i of [0, 5, 11, 23]) {
    const h = 1e-3;
    const plus = Float32Array.from(w);
    const minus = Float32Array.from(w);
    plus[i]! += h;
    minus[i]! -= h;
    const numeric = (loss(plus) - loss(minus)) / (2 * h);
    assert.ok(Math.abs(numeric - gradW[i]!) < 2e-3, `grad[${i}] ${gradW[i]} vs numeric ${numeric}`);
  }
  await step.release();
});

test('linear and MLP heads learn separable classes with AdamW and SGD', async () => {
  const train = clusters(600, 24, 6, 1);
  const valid = clusters(120, 24, 6, 1);
  for (const cfg of [base, { ...base, kind: 'mlp' as const }, { ...base, optimizer: 'sgd' as const, lr: 0.05 }]) {
    const r = await fitHead({ train: train.m, trainLabels: train.labels, valid: valid.m, validLabels: valid.labels, classes: 6 }, cfg);
    const last = r.history.at(-1)!;
    assert.ok(last.validTop1 > 0.95, `${cfg.kind}/${cfg.optimizer} valid top-1 ${last.validTop1}`);
    assert.ok(r.history[0]!.trainLoss > last.trainLoss, 'loss decreases');
  }
});

test('training is deterministic for a seed and differs for another seed', async () => {
  const train = clusters(200, 8, 4, 2, 3);
  const valid = clusters(40, 8, 4, 2, 3);
  const cfg = { ...base, kind: 'mlp' as const, epochs: 3 };
  const a = await fitHead({ train: train.m, trainLabels: train.labels, valid: valid.m, validLabels: valid.labels, classes: 4 }, cfg);
  const b = await fitHead({ train: train.m, trainLabels: train.labels, valid: valid.m, validLabels: valid.labels, classes: 4 }, cfg);
  const c = await fitHead({ train: train.m, trainLabels: train.labels, valid: valid.m, validLabels: valid.labels, classes: 4 }, { ...cfg, seed: 4 });
  assert.deepEqual(a.weights.tensors, b.weights.tensors);
  assert.notDeepEqual(a.weights.tensors, c.weights.tensors);
});

test('early stopping keeps the best epoch when valid loss stops improving', async () => {
  // noisy data overfits quickly: valid loss rises and training stops before the epoch budget
  const train = clusters(60, 64, 3, 5, 6);
  const valid = clusters(60, 64, 3, 6, 6);
  const r = await fitHead({ train: train.m, trainLabels: train.labels, valid: valid.m, validLabels: valid.labels, classes: 3 }, { ...base, lr: 0.05, epochs: 200, patience: 3, labelSmoothing: 0 });
  assert.ok(r.stoppedEarly);
  assert.equal(r.history.length, r.bestEpoch + 3);
  const best = Math.min(...r.history.map((h) => h.validLoss));
  assert.equal(r.history[r.bestEpoch - 1]!.validLoss, best);
});

test('metrics: top-k, per-class accuracy, confusion and hand-computed ECE', () => {
  const logits = Float32Array.of(3, 1, 0, /**/ 0, 2, 1, /**/ 0, 1, 2, /**/ 2, 0, 1);
  const labels = Int32Array.of(0, 2, 2, 1);
  const m = evaluate(logits, labels, 3, 1);
  assert.equal(m.top1, 0.5);
  assert.equal(m.top5, 1);
  assert.deepEqual(m.confusion, [[1, 0, 0], [1, 0, 0], [0, 1, 1]]);
  assert.deepEqual(m.perClass, [1, 0, 0.5]);
  // two predictions at confidence 0.9 (one right), two at 0.6 (both right): |0.5-0.9|/2 + |1-0.6|/2 = 0.4
  const probs = Float32Array.of(0.9, 0.1, 0.1, 0.9, 0.6, 0.4, 0.4, 0.6);
  assert.ok(Math.abs(ece(probs, Int32Array.of(0, 0, 0, 1), 2) - 0.4) < 1e-6);
});

test('temperature scaling recovers the temperature of over-confident logits', () => {
  const rng = new Rng(1);
  const n = 4000;
  const classes = 5;
  const logits = new Float32Array(n * classes);
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < classes; c++) logits[r * classes + c] = rng.normal();
    const p = softmaxRows(logits.subarray(r * classes, (r + 1) * classes), classes);
    let u = rng.next();
    let l = 0;
    while (l < classes - 1 && (u -= p[l]!) > 0) l++;
    labels[r] = l;
  }
  const sharpened = logits.map((v) => v * 3);
  const t = fitTemperature(sharpened, labels, classes);
  assert.ok(Math.abs(t - 3) < 0.3, `temperature ${t}`);
  const m = evaluate(sharpened, labels, classes, t);
  assert.ok(m.ece < m.eceUncalibrated);
});

test('standardisation folded into the first layer gives the same logits', () => {
  const { m } = clusters(10, 5, 2, 7);
  const st = standardizer(m);
  const rng = new Rng(2);
  const w = Float32Array.from({ length: 15 }, () => rng.normal());
  const b = Float32Array.of(0.1, -0.2, 0.3);
  const folded = foldStandardizer(w, b, st, 3);
  const xs = applyStandardizer(m, st);
  for (let r = 0; r < 10; r++) for (let o = 0; o < 3; o++) {
    let direct = b[o]!;
    let viaFold = folded.b[o]!;
    for (let d = 0; d < 5; d++) {
      direct += xs[r * 5 + d]! * w[d * 3 + o]!;
      viaFold += m.data[r * 5 + d]! * folded.w[d * 3 + o]!;
    }
    assert.ok(Math.abs(direct - viaFold) < 1e-4);
  }
});

test('a small, perfectly classified valid set does not drive the temperature towards zero', () => {
  // 25 rows, every one right with a clear margin: plain NLL keeps falling as T -> 0
  const classes = 5;
  const logits = new Float32Array(25 * classes);
  const labels = Int32Array.from({ length: 25 }, (_, r) => r % classes);
  labels.forEach((l, r) => (logits[r * classes + l] = 4));
  const t = fitTemperature(logits, labels, classes);
  assert.ok(t > 0.3 && t < 1, `temperature ${t}`);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { Rng } from '../../src/core/rng.ts';
import { buildServingModel } from '../../src/training/export.ts';
import { fitLogistic, fitProbe, linearWeights, probeFeatures, simplestWithinOneSe } from '../../src/training/probe.ts';

const matrix = (rows: number, cols: number, f: (r: number, d: number) => number) => ({ data: Float32Array.from({ length: rows * cols }, (_, i) => f(Math.floor(i / cols), i % cols)), rows, cols });

/** Penalised multinomial NLL in float64, for checks. */
function objective(x: { data: Float32Array; rows: number; cols: number }, labels: Int32Array, classes: number, w: ArrayLike<number>, b: ArrayLike<number>, l2: number): number {
  let loss = 0;
  for (let r = 0; r < x.rows; r++) {
    const z = Array.from({ length: classes }, (_, c) => {
      let s = b[c]!;
      for (let d = 0; d < x.cols; d++) s += x.data[r * x.cols + d]! * w[d * classes + c]!;
      return s;
    });
    const max = Math.max(...z);
    loss += Math.log(z.reduce((a, v) => a + Math.exp(v - max), 0)) + max - z[labels[r]!]!;
  }
  let sq = 0;
  for (let i = 0; i < w.length; i++) sq += w[i]! ** 2;
  for (let i = 0; i < b.length; i++) sq += b[i]! ** 2;
  return loss / x.rows + (l2 / 2) * sq;
}

test('the fitted logistic regression reaches the optimum: gradient norm below tolerance, and a brute-force grid finds nothing better', async () => {
  const rng = new Rng(5);
  const x = matrix(40, 6, () => rng.normal());
  const labels = Int32Array.from({ length: 40 }, (_, r) => (x.data[r * 6]! + 0.5 * x.data[r * 6 + 1]! > 0 ? 1 : r % 3 === 0 ? 2 : 0));
  // float32 loss and gradient (ORT): the line search runs out of resolution near 1e-4
  const fit = await fitLogistic(x, labels, 3, { l2: 0.05, gradTol: 1e-5 });
  assert.ok(fit.gradNorm < 1e-3, `gradient norm ${fit.gradNorm}`);

  // a one-feature, two-class problem small enough to search exhaustively: by symmetry of the
  // penalty the optimum has w1 = -w0 and b1 = -b0, so a 2-D grid over (w0, b0) covers it
  const tiny = { data: Float32Array.of(-2, -1, -0.5, 0.3, 1, 2.5), rows: 6, cols: 1 };
  const tinyLabels = Int32Array.of(0, 0, 1, 0, 1, 1);
  const l2 = 0.1;
  const t = await fitLogistic(tiny, tinyLabels, 2, { l2, gradTol: 1e-5 });
  let bestGrid = Infinity;
  for (let w = -3; w <= 3; w += 0.005) for (let b = -1; b <= 1; b += 0.005) bestGrid = Math.min(bestGrid, objective(tiny, tinyLabels, 2, [w, -w], [b, -b], l2));
  const fitted = objective(tiny, tinyLabels, 2, t.w, t.b, l2);
  assert.ok(fitted <= bestGrid + 1e-6, `fit ${fitted} vs brute force ${bestGrid}`);
  assert.ok(Math.abs(t.w[0]! + t.w[1]!) < 1e-4, 'the symmetric optimum');
});

test('on few-shot sets where nearest centroid is strong, the default head scores at least as well as nearest centroid', async () => {
  // 12 classes on a sphere-like cone (as ReLU features are), 2 shots each, 10 test rows per class,
  // noisy; five seeded sets, since one set of 120 test rows differs by a row or two either way
  const classes = 12;
  const dim = 64;
  const argmax = (row: number[]) => row.indexOf(Math.max(...row));
  const unit = (v: ArrayLike<number>) => {
    const n = Math.hypot(...Array.from(v));
    return Array.from(v, (x) => x / n);
  };
  let head = 0;
  let centroid = 0;
  let total = 0;
  const chosen: string[] = [];
  for (let seed = 1; seed <= 5; seed++) {
    const rng = new Rng(seed);
    const centres = Array.from({ length: classes }, () => Float32Array.from({ length: dim }, () => Math.abs(rng.normal())));
    const sample = (perClass: number) => {
      const rows = perClass * classes;
      const labels = Int32Array.from({ length: rows }, (_, r) => r % classes);
      return { m: matrix(rows, dim, (r, d) => Math.max(0, centres[r % classes]![d]! + 0.9 * rng.normal())), labels };
    };
    const shots = sample(2);
    const test_ = sample(10);
    const empty = { data: new Float32Array(0), rows: 0, cols: dim };
    const r = await fitProbe(shots.m, shots.labels, empty, new Int32Array(0), classes, { seed: 3 });
    assert.match(r.choice.selectedBy, /^cv-\d$/);
    chosen.push(`${r.choice.kind} ${r.choice.l2 ?? ''}`);
    const feats = probeFeatures(r.probe, test_.m);
    const means = Array.from({ length: classes }, (_, c) => {
      const m = new Array<number>(dim).fill(0);
      for (let i = 0; i < shots.m.rows; i++) if (shots.labels[i] === c) unit(shots.m.data.subarray(i * dim, (i + 1) * dim)).forEach((v, d) => (m[d]! += v));
      return unit(m);
    });
    for (let i = 0; i < test_.m.rows; i++) {
      const logits = Array.from({ length: classes }, (_, c) => {
        let s = r.probe.b[c]!;
        for (let d = 0; d < dim; d++) s += feats.data[i * dim + d]! * r.probe.w[d * classes + c]!;
        return s;
      });
      if (argmax(logits) === test_.labels[i]) head++;
      const u = unit(test_.m.data.subarray(i * dim, (i + 1) * dim));
      if (argmax(means.map((m) => m.reduce((a, v, d) => a + v * u[d]!, 0))) === test_.labels[i]) centroid++;
      total++;
    }
  }
  assert.ok(centroid / total > 0.6, `nearest centroid is strong here (${centroid}/${total})`);
  assert.ok(head >= centroid, `default head ${head} vs nearest centroid ${centroid} of ${total} (chose ${chosen.join(', ')})`);
});

test('where classes differ along directions that larger shared variation hides, the logistic head is chosen and beats nearest centroid', async () => {
  // 6 classes, 30 rows each: 26 nuisance dimensions of unit variance shared by all, and one
  // quiet dimension per class carrying its signal; a centroid sees mostly nuisance, a fitted head weighs it out
  const classes = 6;
  const dim = 32;
  const rng = new Rng(7);
  const sample = (perClass: number) => {
    const rows = perClass * classes;
    const labels = Int32Array.from({ length: rows }, (_, r) => r % classes);
    const m = matrix(rows, dim, (r, d) => (d < 26 ? 3 + rng.normal() : 1 + 0.1 * rng.normal() + (d - 26 === r % classes ? 0.6 : 0)));
    return { m, labels };
  };
  const shots = sample(30);
  const held = sample(50);
  const empty = { data: new Float32Array(0), rows: 0, cols: dim };
  const r = await fitProbe(shots.m, shots.labels, empty, new Int32Array(0), classes, { seed: 2 });
  assert.equal(r.choice.kind, 'logistic', `chose ${r.choice.kind}: ${JSON.stringify(r.choice.scores.map((s) => [s.l2, s.top1.toFixed(3)]))}`);
  const top1 = (w: Float32Array, b: Float32Array) => {
    const feats = probeFeatures(r.probe, held.m);
    let right = 0;
    for (let i = 0; i < held.m.rows; i++) {
      const logits = Array.from({ length: classes }, (_, c) => b[c]! + Array.from({ length: dim }, (_, d) => feats.data[i * dim + d]! * w[d * classes + c]!).reduce((a, v) => a + v, 0));
      if (logits.indexOf(Math.max(...logits)) === held.labels[i]) right++;
    }
    return right / held.m.rows;
  };
  const prototype = r.choice.scores[0]!;
  const logistic = top1(r.probe.w, r.probe.b);
  assert.ok(logistic > 0.9, `logistic head ${logistic} on new rows`);
  assert.ok(logistic > prototype.top1 + 0.1, `logistic ${logistic} vs prototype's held-out ${prototype.top1}`);
});

test('the one-standard-error rule keeps a simpler head unless a more flexible one wins by more than luck would', () => {
  const rows = (n: number, ones: number[]) => Uint8Array.from({ length: n }, (_, r) => (ones.includes(r) ? 1 : 0));
  const all = Array.from({ length: 30 }, (_, r) => r);
  // candidates in order of flexibility; the last is the best by held-out top-1
  const simple = rows(30, all.slice(0, 20));
  const luckier = rows(30, all.slice(0, 21)); // one more row right: within one standard error
  assert.equal(simplestWithinOneSe([simple, luckier], 1, 0), 0);
  const better = rows(30, all.slice(0, 28)); // eight more rows right, none worse: a real difference
  assert.equal(simplestWithinOneSe([simple, better], 1, 0), 1);
  // the first within reach wins, however many candidates come before the best
  assert.equal(simplestWithinOneSe([simple, rows(30, all.slice(0, 27)), better], 2, 0), 1);
  // `first` excludes heads that may not be chosen (a forced logistic head never falls back to the prototype)
  assert.equal(simplestWithinOneSe([simple, luckier], 1, 1), 1);
  // heads that agree on every row: the simpler
  assert.equal(simplestWithinOneSe([better, better], 1, 0), 0);
});

test('with one labelled row per class nothing can be held out, and the head is nearest centroid without a logistic search', async () => {
  const classes = 5;
  const dim = 16;
  const rng = new Rng(4);
  const shots = matrix(classes, dim, () => Math.abs(rng.normal()));
  const labels = Int32Array.from({ length: classes }, (_, r) => r);
  const empty = { data: new Float32Array(0), rows: 0, cols: dim };
  const r = await fitProbe(shots, labels, empty, new Int32Array(0), classes, { seed: 1 });
  assert.equal(r.choice.kind, 'prototype');
  assert.equal(r.choice.selectedBy, 'default (one row per class)');
  assert.deepEqual(r.choice.scores.map((s) => s.kind), ['prototype']);
  assert.equal(r.choice.iterations, 0);
  // each training row is nearest its own centroid
  const feats = probeFeatures(r.probe, shots);
  for (let i = 0; i < classes; i++) {
    const logits = Array.from({ length: classes }, (_, c) => r.probe.b[c]! + Array.from({ length: dim }, (_, d) => feats.data[i * dim + d]! * r.probe.w[d * classes + c]!).reduce((a, v) => a + v, 0));
    assert.equal(logits.indexOf(Math.max(...logits)), i);
  }
});

test('the exported graph with flip TTA gives the mean of the two views’ probabilities', async () => {
  // a tiny "backbone": global average pool over an NCHW image that keeps a left-right asymmetry
  const { GraphBuilder } = await import('../../src/onnx/builder.ts');
  const { FEATURES_OUTPUT } = await import('../../src/backbones/index.ts');
  const g = new GraphBuilder();
  const image = g.input('image', ['batch', 3, 4, 4]);
  const ramp = g.weight('ramp', Float32Array.from({ length: 4 }, (_, i) => i + 1), [4]);
  // weighting columns by 1..4 makes a mirrored image give other features
  g.op('Flatten', [g.op('GlobalAveragePool', [g.mul(image, ramp)])], [], FEATURES_OUTPUT);
  g.model.outputs = [{ name: FEATURES_OUTPUT, elemType: 1, shape: ['batch', 3] }];
  const extractor = g.model.serialize();
  const rng = new Rng(2);
  const head = { weights: linearWeights(3, 4, { w: Float32Array.from({ length: 12 }, () => rng.normal()), b: Float32Array.from({ length: 4 }, () => rng.normal()) }), standardizer: { mean: new Float32Array(3), std: new Float32Array(3).fill(1) }, centredL2: Float32Array.from({ length: 3 }, () => rng.normal() * 0.1) };
  const plain = await ort.InferenceSession.create(buildServingModel(extractor, head, 1.5));
  const flip = await ort.InferenceSession.create(buildServingModel(extractor, head, 1.5, { tta: 'flip', layout: 'NCHW' }));
  const n = 3;
  const img = Float32Array.from({ length: n * 48 }, () => rng.normal());
  const mirrored = new Float32Array(img.length);
  for (let i = 0; i < img.length / 4; i++) for (let x = 0; x < 4; x++) mirrored[i * 4 + x] = img[i * 4 + 3 - x]!;
  const run = async (s: ort.InferenceSession, data: Float32Array) => (await s.run({ image: new ort.Tensor('float32', data, [n, 3, 4, 4]) })).probabilities!.data as Float32Array;
  const a = await run(plain, img);
  const b = await run(plain, mirrored);
  const both = await run(flip, img);
  assert.equal(both.length, n * 4);
  assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-3), 'the two views differ');
  for (let i = 0; i < both.length; i++) assert.ok(Math.abs(both[i]! - (a[i]! + b[i]!) / 2) < 1e-5, `probability ${i}: ${both[i]} vs ${(a[i]! + b[i]!) / 2}`);
  await plain.release();
  await flip.release();
});

test('the exported graph applies CL2N, standardisation and the head exactly as the probe does in training', async () => {
  const { GraphBuilder } = await import('../../src/onnx/builder.ts');
  const { FEATURES_OUTPUT } = await import('../../src/backbones/index.ts');
  const dim = 5;
  const classes = 3;
  // an identity "backbone": the image is its own feature row (ReLU'd, as pooled features are)
  const g = new GraphBuilder();
  g.op('Relu', [g.input('image', ['batch', dim])], [], FEATURES_OUTPUT);
  g.model.outputs = [{ name: FEATURES_OUTPUT, elemType: 1, shape: ['batch', dim] }];
  const rng = new Rng(8);
  const shots = matrix(30, dim, () => Math.abs(rng.normal()));
  const labels = Int32Array.from({ length: 30 }, (_, r) => r % classes);
  const empty = { data: new Float32Array(0), rows: 0, cols: dim };
  const { probe } = await fitProbe(shots, labels, empty, new Int32Array(0), classes, { kind: 'logistic', l2: 0.1 });
  const head = { weights: linearWeights(dim, classes, probe), standardizer: { mean: probe.mean, std: probe.scale }, centredL2: probe.centre };
  const session = await ort.InferenceSession.create(buildServingModel(g.model.serialize(), head, 2));
  const x = matrix(7, dim, () => Math.abs(rng.normal()) * 3);
  const served = (await session.run({ image: new ort.Tensor('float32', x.data, [7, dim]) })).probabilities!.data as Float32Array;
  const f = probeFeatures(probe, x);
  for (let r = 0; r < 7; r++) {
    const z = Array.from({ length: classes }, (_, c) => {
      let s = probe.b[c]!;
      for (let d = 0; d < dim; d++) s += f.data[r * dim + d]! * probe.w[d * classes + c]!;
      return s / 2;
    });
    const max = Math.max(...z);
    const sum = z.reduce((a, v) => a + Math.exp(v - max), 0);
    z.forEach((v, c) => assert.ok(Math.abs(Math.exp(v - max) / sum - served[r * classes + c]!) < 1e-5, `row ${r} class ${c}`));
  }
  await session.release();
});

test('the train logits fitProbe returns are the final head applied to the train rows afresh, under cross-validation and under a valid split', async () => {
  const dim = 6;
  const classes = 3;
  const rng = new Rng(11);
  const rows = (n: number) => matrix(n, dim, (r, d) => Math.abs(rng.normal() + (d === r % classes ? 2 : 0)));
  const train = rows(24);
  const valid = rows(9);
  const labelsOf = (n: number) => Int32Array.from({ length: n }, (_, r) => r % classes);
  for (const cvMaxRows of [1000, 0]) {
    const fit = await fitProbe(train, labelsOf(24), valid, labelsOf(9), classes, { kind: 'logistic', cvMaxRows });
    const f = probeFeatures(fit.probe, train);
    assert.equal(fit.trainLogits.length, 24 * classes);
    for (let r = 0; r < 24; r++)
      for (let c = 0; c < classes; c++) {
        let s = fit.probe.b[c]!;
        for (let d = 0; d < dim; d++) s += f.data[r * dim + d]! * fit.probe.w[d * classes + c]!;
        assert.ok(Math.abs(s - fit.trainLogits[r * classes + c]!) < 1e-4, `${fit.choice.selectedBy}: row ${r} class ${c}: ${s} against ${fit.trainLogits[r * classes + c]}`);
      }
  }
});

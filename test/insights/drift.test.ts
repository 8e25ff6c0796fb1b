import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { addBackbone, getBackbone } from '../../src/backbones/index.js';
import { Rng } from '../../src/core/index.js';
import { FeatureExtractor } from '../../src/inference/index.js';
import { CONFIDENCE_QUANTILES, confidenceDrop, confidenceQuantiles, mmdTest, project, randomProjection, type Rows } from '../../src/insights/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { sharedDir, tmpDir, tmpHome } from '../helpers/paths.js';

/**
 * Drift on backbone features (the shared MobileNetV2's 1280 pooled features of real photos):
 * the MMD permutation test against the training split flags inputs from a shifted domain (heavy
 * blur and a colour cast) and leaves inputs from the same distribution (the held-out splits)
 * alone, over 20 seeded trials, on the full features and on a 64-number random projection.
 */
const root = path.join(sharedDir(), 'data/breeds-mini');
const filesOf = (split: string) => readdirSync(path.join(root, split)).sort().flatMap((d) => readdirSync(path.join(root, split, d)).sort().map((f) => path.join(root, split, d, f)));
let reference: Rows;
let same: Rows;
let shifted: Rows;

before(async () => {
  const ws = openWorkspace(tmpHome());
  await addBackbone(ws, path.join(sharedDir(), 'models/mobilenetv2-12-int8.onnx'), { name: 'mnv2' });
  const b = getBackbone(ws, 'mnv2');
  const fx = await FeatureExtractor.create(await ws.artifacts.localPath(b.extractorSha), { spec: b.spec.preprocess, inputName: b.spec.inputName, outputName: b.spec.outputName, dim: b.spec.featureDim });
  const held = [...filesOf('valid'), ...filesOf('test')];
  // another photo domain: the same held-out photos, heavily blurred with a warm colour cast
  const dir = tmpDir('kennel-shifted-');
  const shiftedFiles = await Promise.all(
    held.map(async (f, i) => {
      const out = path.join(dir, `${i}.jpg`);
      await sharp(f).rotate().blur(6).linear([1.3, 1.0, 0.6], [20, 0, -10]).jpeg().toFile(out);
      return out;
    }),
  );
  const features = async (files: string[]): Promise<Rows> => ({ data: await fx.extract(files.map((p) => ({ path: p }))), rows: files.length, cols: b.spec.featureDim });
  reference = await features(filesOf('train'));
  same = await features(held);
  shifted = await features(shiftedFiles);
  await fx.close();
  ws.close();
});

/** `k` rows of `x` picked without replacement by `rng`. */
function sample(x: Rows, k: number, rng: Rng): Rows {
  const pick = rng.shuffle(Array.from({ length: x.rows }, (_, i) => i)).slice(0, k);
  const data = new Float32Array(k * x.cols);
  pick.forEach((r, i) => data.set(x.data.subarray(r * x.cols, (r + 1) * x.cols), i * x.cols));
  return { data, rows: k, cols: x.cols };
}

for (const variant of ['full features', '64-number random projection'] as const) {
  test(`MMD drift separates shifted from unshifted captures in at least 19 of 20 seeded trials, with at most 1 false alarm (${variant})`, (t) => {
    const p = randomProjection(reference.cols, 64, 7);
    const view = (x: Rows) => (variant === 'full features' ? x : project(x, p));
    const ref = view(reference);
    let detected = 0;
    let falseAlarms = 0;
    const pValues: string[] = [];
    for (let trial = 0; trial < 20; trial++) {
      const rng = new Rng(1000 + trial);
      // 30 captured requests against the 100 training images
      const a = mmdTest(ref, sample(view(shifted), 30, rng), { seed: trial, permutations: 300, alpha: 0.01 });
      const b = mmdTest(ref, sample(view(same), 30, rng), { seed: trial, permutations: 300, alpha: 0.01 });
      if (a.drift) detected++;
      if (b.drift) falseAlarms++;
      pValues.push(`${a.pValue.toFixed(3)}/${b.pValue.toFixed(3)}`);
    }
    t.diagnostic(`detected ${detected}/20, false alarms ${falseAlarms}/20`);
    assert.ok(detected >= 19, `detected ${detected}/20 (p shifted/same: ${pValues.join(' ')})`);
    assert.ok(falseAlarms <= 1, `${falseAlarms} false alarms in 20 (p shifted/same: ${pValues.join(' ')})`);
  });
}

test('the permutation threshold holds its false-alarm rate on two samples of one distribution', (t) => {
  // 40 trials of two disjoint random halves of the training features: at alpha 0.05, about 2 alarms expected
  let alarms = 0;
  for (let trial = 0; trial < 40; trial++) {
    const rng = new Rng(trial);
    const both = sample(reference, 60, rng);
    const half = (from: number): Rows => ({ data: both.data.subarray(from * both.cols, (from + 30) * both.cols), rows: 30, cols: both.cols });
    if (mmdTest(half(0), half(30), { seed: trial, permutations: 200, alpha: 0.05 }).drift) alarms++;
  }
  t.diagnostic(`${alarms} alarms in 40 trials at alpha 0.05`);
  assert.ok(alarms <= 6, `${alarms} alarms in 40 trials at alpha 0.05`);
});

test('the confidence test: means of draws from held-out confidences set the threshold; the same distribution rarely alarms, a drop of a fifth always does', () => {
  const rng = new Rng(5);
  // held-out confidences: mostly confident, a tail of unsure answers
  const heldOut = Array.from({ length: 400 }, () => Math.min(1, Math.max(0.05, 1 - Math.abs(rng.normal()) * 0.25)));
  const q = confidenceQuantiles(heldOut);
  assert.equal(q.length, CONFIDENCE_QUANTILES);
  assert.equal(q[0], Math.round(Math.min(...heldOut) * 1e6) / 1e6);
  assert.equal(q.at(-1), Math.round(Math.max(...heldOut) * 1e6) / 1e6);
  assert.ok(q.every((x, i) => i === 0 || x >= q[i - 1]!), 'ascending');
  let falseAlarms = 0;
  let detected = 0;
  for (let trial = 0; trial < 20; trial++) {
    const r = new Rng(100 + trial);
    const same = Array.from({ length: 30 }, () => heldOut[r.int(heldOut.length)]!);
    const t = confidenceDrop(same, q, { alpha: 0.01, rng: r });
    assert.ok(Math.abs(t.referenceMean - heldOut.reduce((a, b) => a + b, 0) / heldOut.length) < 0.01, `reference mean ${t.referenceMean}`);
    if (t.dropped) falseAlarms++;
    if (confidenceDrop(same.map((x) => x * 0.8), q, { alpha: 0.01, rng: r }).dropped) detected++;
  }
  assert.ok(falseAlarms <= 1, `${falseAlarms} false alarms in 20`);
  assert.equal(detected, 20);
  // a model sure of everything: tiny differences are no alarm
  const sure = confidenceQuantiles(Array.from({ length: 100 }, () => 1));
  assert.equal(confidenceDrop(Array.from({ length: 30 }, () => 0.99995), sure, { alpha: 0.01, rng }).dropped, false);
  assert.equal(confidenceDrop(Array.from({ length: 30 }, () => 0.9), sure, { alpha: 0.01, rng }).dropped, true);
});

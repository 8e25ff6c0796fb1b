import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { KennelError } from '../../src/core/errors.js';
import { OnnxModel } from '../../src/onnx/model.js';
import { exportModel, getModel, importModel } from '../../src/registry/index.js';
import { Classifier } from '../../src/inference/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { repoRoot, tmpDir, tmpHome } from '../helpers/paths.js';
import { labels, labelsFile, mobilenetPath, photo } from './fixtures.js';

const BEAGLE = 162; // ImageNet class index of "beagle"

async function classify(ws: ReturnType<typeof openWorkspace>, ref: string, images: Buffer[]) {
  const mv = getModel(ws, ref);
  const clf = await Classifier.load(await ws.artifacts.localPath(mv.onnxSha), mv.card, { threads: 1 });
  try {
    return await clf.classify(images, 1000);
  } finally {
    await clf.close();
  }
}

test('a classifier that outputs logits gets a Softmax and serves probabilities', async () => {
  const ws = openWorkspace(tmpHome());
  try {
    const r = await importModel(ws, mobilenetPath(), { name: 'mnet', labels: labels('c') });
    assert.equal(r.output, 'logits');
    assert.equal(r.softmaxAppended, true);
    assert.equal(r.model.card.source, 'imported');
    assert.equal(r.model.card.preprocess.size, 224);
    assert.equal(r.model.card.preprocess.layout, 'NCHW');
    const [preds] = await classify(ws, 'mnet@1', [photo()]);
    const sum = preds!.reduce((s, p) => s + p.score, 0);
    assert.ok(Math.abs(sum - 1) < 1e-3, `scores sum to ${sum}`);
    assert.equal(preds![0]!.index, BEAGLE);
    assert.equal(preds![0]!.label, `c-${BEAGLE}`);
  } finally {
    ws.close();
  }
});

test('a classifier that already outputs probabilities is registered as it is', async () => {
  const ws = openWorkspace(tmpHome());
  try {
    await importModel(ws, mobilenetPath(), { name: 'mnet', labels: labels('c') });
    const dir = tmpDir();
    await exportModel(ws, 'mnet@1', dir); // one graph with probabilities out
    const r = await importModel(ws, path.join(dir, 'model.onnx'), { name: 'again', labels: labels('c') });
    assert.equal(r.output, 'probabilities');
    assert.equal(r.softmaxAppended, false);
    const softmaxes = OnnxModel.parse(await ws.artifacts.get(r.model.onnxSha)).nodes.filter((n) => n.opType === 'Softmax');
    assert.equal(softmaxes.length, 1);
    const [a, b] = [await classify(ws, 'mnet@1', [photo()]), await classify(ws, 'again@1', [photo()])];
    assert.ok(Math.abs(a[0]![0]!.score - b[0]![0]!.score) < 1e-5);
  } finally {
    ws.close();
  }
});

test('a model exported with batch size 1 becomes batchable', async () => {
  const ws = openWorkspace(tmpHome());
  try {
    const m = OnnxModel.parse(readFileSync(mobilenetPath()));
    m.inputs = m.inputs.map((i) => ({ ...i, shape: [1, 3, 224, 224] }));
    m.outputs = m.outputs.map((o) => ({ ...o, shape: [1, 1000] }));
    const file = path.join(tmpDir(), 'fixed-batch.onnx');
    writeFileSync(file, m.serialize());
    await importModel(ws, file, { labels: labels('c') });
    const preds = await classify(ws, 'fixed-batch', [photo(), photo('aipnd-dogs/Dalmatian_04017.jpg'), photo()]);
    assert.equal(preds.length, 3);
    assert.equal(preds[0]![0]!.index, BEAGLE);
    assert.equal(preds[1]![0]!.label, 'c-251'); // dalmatian
  } finally {
    ws.close();
  }
});

test('imports that cannot work are refused with a clear error', async () => {
  const ws = openWorkspace(tmpHome());
  try {
    await assert.rejects(importModel(ws, mobilenetPath(), { name: 'short', labels: labels('c').slice(0, 10) }), (e: KennelError) => e instanceof KennelError && /one score per label \(10 labels; outputs: output \[2, 1000\]\)/.test(e.message));
    const notOnnx = path.join(tmpDir(), 'notes.onnx');
    writeFileSync(notOnnx, 'not a model');
    await assert.rejects(importModel(ws, notOnnx, { labels: ['a'] }), /is not an ONNX model/);
    await assert.rejects(importModel(ws, path.join(tmpDir(), 'missing.onnx'), { labels: ['a'] }), /does not exist/);
    await assert.rejects(importModel(ws, mobilenetPath(), { name: 'bad name!', labels: labels('c') }), /not a valid model name/);
    await assert.rejects(importModel(ws, mobilenetPath(), { name: 'small', labels: labels('c'), inputSize: 7 }), /did not run on a batch of two NCHW 7x7 images/);
  } finally {
    ws.close();
  }
});

test('kennel models import registers a model from a labels file', () => {
  const home = tmpHome();
  const blank = path.join(tmpDir(), 'blank.txt');
  writeFileSync(blank, 'a\n\nb\n');
  const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], { env: { ...process.env, KENNEL_HOME: home }, encoding: 'utf8' });
  const r = run(['models', 'import', mobilenetPath(), '--labels', labelsFile('dog'), '--name', 'resnet-ish', '--mean', '0.485,0.456,0.406', '--std', '0.229,0.224,0.225', '--input-size', '224', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { model: string; output: string; classes: number; preprocess: { mean: number[] } };
  assert.deepEqual([out.model, out.output, out.classes], ['resnet-ish@1', 'logits', 1000]);
  assert.deepEqual(out.preprocess.mean, [0.485, 0.456, 0.406]);
  const bad = run(['models', 'import', mobilenetPath(), '--labels', blank]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^error: Line 2 of .*blank\.txt is blank\./);
  assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/);
});

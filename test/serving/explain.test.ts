import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import sharp from 'sharp';
import { addBackbone, FEATURES_OUTPUT, getBackbone } from '../../src/backbones/index.js';
import { Rng } from '../../src/core/index.js';
import { GraphBuilder, OnnxModel } from '../../src/onnx/index.js';
import { importDataset } from '../../src/data/index.js';
import { decodeRgb, Explainer, inputSize, normalizeInto, OCCLUSION_GRID } from '../../src/inference/index.js';
import { getModel, importModel } from '../../src/registry/index.js';
import { startDaemon, type Daemon } from '../../src/server/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { train } from '../../src/training/index.js';
import { repoRoot, sharedDir, tmpDir, tmpHome } from '../helpers/paths.js';
import { bearer, invokeKey, labels, mobilenetPath } from './fixtures.js';

/**
 * Explanations: for a Kennel-trained model (the shared MobileNetV2's last feature map, global
 * average pooling, a linear head) the class activation map is exact: its mean plus the class's
 * bias is the class's logit. An imported graph whose head is int8 falls back to occlusion. The
 * endpoint answers ?explain=1 and SageMaker's X-Amzn-SageMaker-Enable-Explanations header;
 * kennel predict --explain writes overlays.
 */
let home: string;
let daemon: Daemon;
let base: string;
let key: string;
let onnxPath: string;
let card: Parameters<typeof Explainer.load>[1];
let extractorPath: string;
let importedPath: string;
let importedCard: Parameters<typeof Explainer.load>[1];
const testDir = path.join(sharedDir(), 'data/breeds-mini/test');
const testImages = readdirSync(testDir).sort().flatMap((d) => readdirSync(path.join(testDir, d)).sort().slice(0, 1).map((f) => path.join(testDir, d, f)));

before(async () => {
  home = tmpHome();
  const ws = openWorkspace(home);
  await importDataset(ws, path.join(sharedDir(), 'data/breeds-mini'), { name: 'breeds' });
  await addBackbone(ws, mobilenetPath(), { name: 'mobilenetv2-12-int8' });
  await train(ws, { dataset: 'breeds', backbone: 'mobilenetv2-12-int8' });
  await importModel(ws, mobilenetPath(), { name: 'imported', labels: labels('in') });
  const mv = getModel(ws, 'breeds');
  onnxPath = await ws.artifacts.localPath(mv.onnxSha);
  card = mv.card;
  extractorPath = await ws.artifacts.localPath(getBackbone(ws, 'mobilenetv2-12-int8').extractorSha);
  const imported = getModel(ws, 'imported');
  importedPath = await ws.artifacts.localPath(imported.onnxSha);
  importedCard = imported.card;
  key = invokeKey(ws);
  ws.close();
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
  base = `http://127.0.0.1:${daemon.state.port}`;
  await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'breeds' }], instances: 1 });
});

after(async () => {
  await daemon?.close();
});

/** Checks, for every class of a few photos, that the map's mean plus the bias the image sees is the logit. */
async function assertExact(explainer: Explainer, files: string[]): Promise<void> {
  const spec = card.preprocess;
  const classes = Array.from({ length: card.labels.length }, (_, i) => i);
  for (const file of files) {
    const input = new Float32Array(inputSize(spec));
    normalizeInto(await decodeRgb(file, spec), spec, input, 0);
    const r = await explainer.cam(input, classes);
    assert.ok(r.height >= 7 && r.width === r.height, `a ${r.height}x${r.width} map`);
    for (const c of classes) {
      const map = r.maps.get(c)!;
      const mean = map.reduce((s, v) => s + v, 0) / map.length;
      const logit = r.logits[c]!;
      assert.ok(Math.abs(mean + r.bias[c]! - logit) <= 1e-4 * Math.max(1, Math.abs(logit)), `${path.basename(file)} class ${c}: mean ${mean} + bias ${r.bias[c]} vs logit ${logit}`);
    }
    const best = r.maps.get(r.probabilities.indexOf(Math.max(...r.probabilities)))!;
    assert.ok(Math.max(...best) - Math.min(...best) > 1e-3, 'the map is not flat: where the dog is matters');
  }
}

test('a centred L2 head (CL2N: normalise, subtract a centre, normalise again) is exact too, its centre folded into the bias', async () => {
  // the backbone's extractor with CL2N and a random linear head, built as the export builds it
  const g = new GraphBuilder(OnnxModel.parse(readFileSync(extractorPath)));
  const dim = 1280;
  const classes = card.labels.length;
  const rng = new Rng(5);
  const ones = g.weight('ones', new Float32Array(dim).fill(1), [dim, 1]);
  const unit = (t: string) => g.div(t, g.op('Sqrt', [g.op('Max', [g.op('MatMul', [g.mul(t, t), ones]), g.scalar(1e-24)])]));
  const centre = Float32Array.from({ length: dim }, () => Math.abs(rng.normal()) * 0.02);
  const features = unit(g.sub(unit(FEATURES_OUTPUT), g.weight('centre', centre, [dim])));
  const w = g.weight('w', Float32Array.from({ length: dim * classes }, () => rng.normal()), [dim, classes]);
  const b = g.weight('b', Float32Array.from({ length: classes }, () => rng.normal()), [classes]);
  const probs = g.op('Softmax', [g.op('Gemm', [features, w, b])], [{ name: 'axis', int: 1 }], 'probabilities');
  g.model.outputs = [{ name: probs, elemType: 1, shape: ['batch', classes] }];
  g.model.toposort();
  const explainer = await Explainer.load(g.model.serialize(), { ...card, outputName: 'probabilities' });
  try {
    assert.equal(explainer.method, 'cam', explainer.reason);
    await assertExact(explainer, testImages.slice(0, 3));
  } finally {
    await explainer.close();
  }
});

test('the class activation map of a trained linear head is exact: its mean plus the bias is the logit, for every class', async () => {
  const explainer = await Explainer.load(onnxPath, card);
  try {
    await assertExact(explainer, testImages.slice(0, 6));
  } finally {
    await explainer.close();
  }
});

test('an explanation: the predictions of the served graph and a PNG heat map of the best class; an int8 head falls back to occlusion', async () => {
  const explainer = await Explainer.load(onnxPath, card);
  const imported = await Explainer.load(importedPath, importedCard);
  try {
    const file = testImages[1]!;
    const { predictions, explanation } = await explainer.explain(file, 3);
    assert.equal(predictions.length, 3);
    assert.equal(explanation.class, predictions[0]!.label);
    assert.equal(explanation.score, predictions[0]!.score);
    assert.equal(explanation.method, 'cam');
    assert.equal(explanation.exact, true);
    const meta = await sharp(Buffer.from(explanation.data, 'base64')).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', card.preprocess.size, card.preprocess.size]);

    assert.equal(imported.method, 'occlusion');
    assert.match(imported.reason!, /output comes from|not linear|no constant weights|global average pool/);
    const o = await imported.explain(file, 1);
    assert.equal(o.explanation.method, 'occlusion');
    assert.equal(o.explanation.exact, false);
    assert.equal(o.explanation.grid.length, OCCLUSION_GRID);
    assert.match(o.explanation.cost, /49 extra forward passes/);
  } finally {
    await explainer.close();
    await imported.close();
  }
});

test('POST /endpoints/E/invocations?explain=1 and the SageMaker header answer with predictions and an explanation; without, none', async () => {
  const image = readFileSync(testImages[2]!);
  const post = async (query: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}/endpoints/dogs/invocations${query}`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...bearer(key), ...headers }, body: image });
    return { status: res.status, body: (await res.json()) as { predictions?: Array<{ label: string; score: number }>; explanation?: { format: string; data: string; class: string; method: string }; error?: { code: string } } };
  };
  const plain = await post('?topK=2');
  assert.equal(plain.status, 200);
  assert.equal(plain.body.explanation, undefined);
  for (const [query, headers] of [['?explain=1&topK=2', {}], ['?topK=2', { 'X-Amzn-SageMaker-Enable-Explanations': '`true`' }]] as const) {
    const a = await post(query, headers);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.predictions!.length, 2);
    assert.equal(a.body.predictions![0]!.label, plain.body.predictions![0]!.label, 'the same answer as without an explanation');
    assert.ok(Math.abs(a.body.predictions![0]!.score - plain.body.predictions![0]!.score) < 1e-4);
    assert.equal(a.body.explanation!.format, 'png');
    assert.equal(a.body.explanation!.class, a.body.predictions![0]!.label);
    assert.equal((await sharp(Buffer.from(a.body.explanation!.data, 'base64')).metadata()).format, 'png');
  }
  assert.equal((await post('?topK=2', { 'X-Amzn-SageMaker-Enable-Explanations': '`false`' })).body.explanation, undefined);
  const bad = await post('?explain=maybe');
  assert.equal(bad.status, 400);
});

test('kennel predict --explain DIR writes a heat-map overlay per image', async () => {
  const out = tmpDir('kennel-explain-');
  const files = testImages.slice(0, 2);
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'predict', ...files, '--model', 'breeds', '--explain', out, '--top-k', '1', '--json'], { env: { ...process.env, KENNEL_HOME: home }, encoding: 'utf8', timeout: 180_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })),
  );
  assert.equal(r.code, 0, r.stderr);
  const results = JSON.parse(r.stdout) as Array<{ file: string; predictions: Array<{ label: string }>; explanation: { file: string; class: string; method: string } }>;
  assert.equal(results.length, 2);
  for (const x of results) {
    assert.equal(x.explanation.method, 'cam');
    assert.equal(x.explanation.class, x.predictions[0]!.label);
    assert.equal((await sharp(x.explanation.file).metadata()).format, 'png');
  }
  assert.deepEqual(readdirSync(out).sort(), files.map((f) => `${path.basename(f, path.extname(f))}.explain.png`).sort());
});

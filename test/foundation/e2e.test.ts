import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { getBackbone } from '../../src/backbones/index.ts';
import { getDatasetVersion, imagePath } from '../../src/data/index.ts';
import { getModel } from '../../src/registry/index.ts';
import { Classifier } from '../../src/inference/index.ts';
import { getJob, openWorkspace } from '../../src/store/index.ts';
import { datasetFeatures } from '../../src/training/index.ts';
import { sharedDir, tmpHome } from '../helpers/paths.ts';
import { kennel, kennelJson, spawn } from './cli.ts';

const shared = sharedDir();
const breeds = path.join(shared, 'data/breeds-mini');
const mobilenet = path.join(shared, 'models/mobilenetv2-12-int8.onnx');
const realPhotos = () => ['imagenet-dogs', 'aipnd-dogs', 'udacity-samples'].flatMap((d) => readdirSync(path.join(shared, 'data/real-photos', d)).map((f) => path.join(shared, 'data/real-photos', d, f)));

interface TrainJson {
  job: string;
  model: string;
  metrics: { valid: { top1: number }; test: { top1: number; top5: number; ece: number } };
  seconds: number;
  features: { extractedImages: number };
}

test('README path: import, add backbone, train, predict (acceptance: test top-1 >= 0.90)', async (t) => {
  const home = tmpHome();
  const imported = kennelJson(home, ['data', 'import', breeds, '--name', 'breeds']);
  assert.deepEqual(Object.keys(imported).slice(0, 5), ['dataset', 'version', 'classes', 'images', 'skipped']);
  assert.equal(imported.classes, 25);

  kennelJson(home, ['backbones', 'add', mobilenet, '--name', 'mobilenetv2-12-int8']);
  const trained = kennelJson<TrainJson>(home, ['train', '--dataset', 'breeds', '--backbone', 'mobilenetv2-12-int8']);
  assert.equal(trained.model, 'breeds@1');
  assert.ok(trained.metrics.test.top1 >= 0.9, `test top-1 ${trained.metrics.test.top1}`);
  for (const k of ['top1', 'top5', 'ece'] as const) assert.equal(typeof trained.metrics.test[k], 'number');
  assert.equal(typeof trained.metrics.valid.top1, 'number');
  assert.equal(typeof trained.seconds, 'number');
  assert.match(trained.job, /^train-/);

  await t.test('predict classifies every real photo without error', () => {
    const files = realPhotos();
    const r = kennel(home, ['predict', '--model', 'breeds', '--json', ...files]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Array<{ file: string; predictions: Array<{ label: string; score: number }> }>;
    assert.equal(out.length, files.length);
    for (const p of out) {
      assert.equal(p.predictions.length, 5);
      assert.ok(p.predictions[0]!.score >= p.predictions[1]!.score);
    }
  });

  await t.test('a retrain with other head hyperparameters reuses every cached feature', () => {
    const again = kennelJson<TrainJson>(home, ['train', '--dataset', 'breeds', '--backbone', 'mobilenetv2-12-int8', '--lr', '0.003', '--head', 'mlp', '--name', 'breeds-mlp']);
    assert.equal(again.features.extractedImages, 0);
    assert.equal(again.model, 'breeds-mlp@1');
  });

  await t.test('offline predictions equal what training evaluated on the same test images', async () => {
    const ws = openWorkspace(home);
    const mv = getModel(ws, 'breeds@1');
    const ds = await getDatasetVersion(ws, 'breeds');
    const feats = await datasetFeatures(ws, ds, getBackbone(ws, 'mobilenetv2-12-int8'), { augment: 0, seed: 0, device: 'cpu' });
    assert.equal(feats.extractedImages, 0);
    const metrics = mv.card.metrics as { test: { confusion: number[][] } };
    const clf = await Classifier.load(await ws.artifacts.localPath(mv.onnxSha), mv.card);
    const testItems = ds.items.filter((i) => i.split === 'test');
    const preds = await clf.classify(await Promise.all(testItems.map((i) => imagePath(ws, i))), 1);
    const confusion = metrics.test.confusion.map((row) => row.map(() => 0));
    preds.forEach((p, i) => confusion[testItems[i]!.label]![p[0]!.index]!++);
    assert.deepEqual(confusion, metrics.test.confusion);
    await clf.close();
    ws.close();
  });

  await t.test('models list, show, tag and export work from the CLI', () => {
    const tagged = kennelJson<{ model: string; tags: string[] }>(home, ['models', 'tag', 'breeds@1', 'production']);
    assert.ok(tagged.tags.includes('production'));
    const shown = kennelJson<{ model: string; labels: string[] }>(home, ['models', 'show', 'breeds:production']);
    assert.equal(shown.model, 'breeds@1');
    assert.equal(shown.labels.length, 25);
    const listed = kennelJson<{ models: unknown[] }>(home, ['models', 'list']);
    assert.equal(listed.models.length, 2);
  });
});

test('errors are one sentence with what to do, never a stack trace', () => {
  const home = tmpHome();
  for (const args of [
    ['train', '--dataset', 'nope', '--backbone', 'x'],
    ['predict', '--model', 'nope', 'a.jpg'],
    ['backbones', 'add', '/no/such/file.onnx', '--name', 'x'],
    ['train', '--dataset', 'x', '--backbone', 'y', '--lr', 'fast'],
  ]) {
    const r = kennel(home, args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, /^error: /m);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('Ctrl-C during feature extraction keeps finished chunks, and a rerun resumes', async () => {
  const home = tmpHome();
  kennelJson(home, ['data', 'import', breeds, '--name', 'breeds']);
  kennelJson(home, ['backbones', 'add', mobilenet, '--name', 'mnv2']);
  // 6 augmentation views = 7 x 100 training images on the default worker pool; interrupt as soon
  // as the first chunk is recorded, long before all 900 images are done
  const args = ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--augment', '6'];
  const child = spawn(process.execPath, [path.join(import.meta.dirname, '../../bin/kennel.js'), ...args], { env: { ...process.env, KENNEL_HOME: home } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const ws = openWorkspace(home);
  const chunks = () => (ws.db.prepare('SELECT COUNT(*) AS n FROM feature_chunks').get() as { n: number }).n;
  while (chunks() === 0 && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /cancelled: completed work is saved/);
  const job = ws.db.prepare("SELECT id FROM jobs WHERE kind = 'train'").get() as { id: string };
  assert.equal(getJob(ws, job.id)!.status, 'cancelled');
  ws.close();
  const rerun = kennelJson<TrainJson>(home, [...args]);
  assert.ok(rerun.features.extractedImages > 0 && rerun.features.extractedImages < 900, `re-extracted ${rerun.features.extractedImages} of 900`);
});

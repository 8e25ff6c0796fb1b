import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { addBackbone } from '../../src/backbones/index.js';
import { FeatureExtractor } from '../../src/inference/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { sharedDir, tmpHome } from '../helpers/paths.js';
import { mobilenetPath } from '../serving/fixtures.js';

test('an extractor fed RGB bytes (the GPU path: normalisation inside the graph) gives the features of the float path', async () => {
  const ws = openWorkspace(tmpHome());
  const backbone = await addBackbone(ws, mobilenetPath(), { name: 'mnet' });
  const model = await ws.artifacts.localPath(backbone.extractorSha);
  const { spec } = backbone;
  const make = (bytesIn: boolean) => FeatureExtractor.create(model, { spec: spec.preprocess, inputName: spec.inputName, outputName: spec.outputName, dim: spec.featureDim, bytesIn });
  const [floats, bytes] = [await make(false), await make(true)];
  const dir = path.join(sharedDir(), 'data/real-photos/udacity-samples');
  const items = readdirSync(dir).slice(0, 4).map((f) => ({ path: path.join(dir, f) }));
  try {
    const a = await floats.extract(items);
    const b = await bytes.extract(items);
    assert.equal(b.length, a.length);
    assert.ok(b.length > 0 && a.some((v) => v !== 0));
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    const scale = Math.max(...Array.from(a, Math.abs));
    // the same multiply-add per pixel, in the graph instead of in JavaScript (equal here; float rounding at most)
    assert.ok(worst <= 1e-4 * scale, `max difference ${worst} of ${scale}`);
    await assert.rejects(floats.infer(new Uint8Array(3 * spec.preprocess.size ** 2), 1), /takes normalised floats/);
  } finally {
    await floats.close();
    await bytes.close();
    ws.close();
  }
});

test("the GPU extraction pipeline (session in a thread, decode worker processes, two extractions at once) run on the CPU gives the in-process extractor's features", async () => {
  const home = tmpHome();
  process.env.KENNEL_DEVICE_PROFILES = path.join(home, 'device-profiles.json');
  const ws = openWorkspace(home);
  const backbone = await addBackbone(ws, mobilenetPath(), { name: 'mnet' });
  const model = await ws.artifacts.localPath(backbone.extractorSha);
  const { spec } = backbone;
  const options = { spec: spec.preprocess, inputName: spec.inputName, outputName: spec.outputName, dim: spec.featureDim, bytesIn: true };
  const plain = await FeatureExtractor.create(model, options);
  const piped = await FeatureExtractor.create(model, { ...options, threaded: true, decodeWorkers: 2 });
  const dir = path.join(sharedDir(), 'data/real-photos/udacity-samples');
  const items = readdirSync(dir).slice(0, 6).map((f, i) => ({ path: path.join(dir, f), view: i === 1 ? { left: 0.1, top: 0, width: 0.8, height: 0.9, flip: true } : undefined }));
  try {
    assert.ok([16, 32, 64].includes(piped.batchSize!), `measured batch size ${piped.batchSize}`);
    const a = await plain.extract(items);
    const [first, second] = await Promise.all([piped.extract(items.slice(0, 3)), piped.extract(items.slice(3))]);
    const b = new Float32Array([...first, ...second]);
    assert.equal(b.length, a.length);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    assert.ok(worst <= 1e-4 * Math.max(...Array.from(a, Math.abs)), `max difference ${worst}`);
    // batch inputs are decoded into again once their runs end: what they held before leaves no trace
    assert.deepEqual(await piped.extract(items.slice(3)), second);
    assert.deepEqual(await piped.extract(items.slice(0, 3)), first);
    const small = await plain.extract(items, { batchSize: 2 });
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - small[i]!) <= 1e-4 * Math.max(1, Math.abs(a[i]!)), `feature ${i}: ${small[i]} against ${a[i]}`);
  } finally {
    delete process.env.KENNEL_DEVICE_PROFILES;
    await plain.close();
    await piped.close();
    ws.close();
  }
});

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

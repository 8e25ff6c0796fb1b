import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { addBackbone, catalog, getBackbone, listBackbones, pullBackbone } from '../../src/backbones/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { serveBytes } from '../helpers/http.ts';
import { sharedDir, tmpDir, tmpHome } from '../helpers/paths.ts';

const mobilenetPath = () => path.join(sharedDir(), 'models/mobilenetv2-12-int8.onnx');

test('the catalog lists ResNet50 first with size, sha256 and preprocessing', () => {
  const c = catalog();
  assert.equal(c[0]!.id, 'resnet50-v1-12');
  assert.equal(c[0]!.bytes, 102576593);
  assert.match(c[0]!.url, /resnet50-v1-12\.onnx$/);
  const mobile = c.find((e) => e.id === 'mobilenetv2-12-int8')!;
  assert.equal(mobile.sha256, 'cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f');
});

test('add registers a local ONNX file and finds its 1280-d feature tensor', async () => {
  const ws = openWorkspace(tmpHome());
  const b = await addBackbone(ws, mobilenetPath(), { name: 'mnv2' });
  assert.equal(b.spec.featureTensor, '627');
  assert.equal(b.spec.featureDim, 1280);
  assert.equal(getBackbone(ws, 'mnv2').extractorSha, b.extractorSha);
  assert.ok(listBackbones(ws).some((r) => r.id === 'mnv2' && r.installed));
  await assert.rejects(addBackbone(ws, mobilenetPath(), { name: 'x', featureTensor: 'no_such_tensor' }), /no tensor named "no_such_tensor"/);
  const notOnnx = path.join(tmpDir(), 'fake.onnx');
  writeFileSync(notOnnx, 'not a model');
  await assert.rejects(addBackbone(ws, notOnnx, { name: 'y' }), /not an ONNX model/);
  ws.close();
});

test('a named feature tensor is pooled to a vector', async () => {
  const ws = openWorkspace(tmpHome());
  // an earlier feature map of MobileNetV2: 4-D, so Kennel adds a global average pool
  const b = await addBackbone(ws, mobilenetPath(), { name: 'early', featureTensor: '627' });
  assert.equal(b.spec.featureDim, 1280);
  ws.close();
});

test('pull downloads from the catalog URL (a local mirror here), verifies sha256 and installs', async () => {
  const bytes = readFileSync(mobilenetPath());
  const server = await serveBytes(bytes);
  const prev = process.env.KENNEL_MODEL_MIRROR;
  process.env.KENNEL_MODEL_MIRROR = `${server.url}/zoo/`;
  try {
    const ws = openWorkspace(tmpHome());
    const b = await pullBackbone(ws, 'mobilenetv2-12-int8');
    assert.equal(b.modelSha, 'cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f');
    assert.equal(b.spec.featureDim, 1280);
    // a catalog entry whose bytes do not match is refused
    await assert.rejects(pullBackbone(ws, 'squeezenet1.1-7'), /bytes but \d+ were expected|sha256/i);
    await assert.rejects(pullBackbone(ws, 'no-such-model'), /not found/);
    ws.close();
  } finally {
    if (prev === undefined) delete process.env.KENNEL_MODEL_MIRROR;
    else process.env.KENNEL_MODEL_MIRROR = prev;
    await server.close();
  }
});

test('pull --from takes a local copy for offline machines', async () => {
  const ws = openWorkspace(tmpHome());
  const copy = path.join(tmpDir(), 'm.onnx');
  copyFileSync(mobilenetPath(), copy);
  const b = await pullBackbone(ws, 'mobilenetv2-12-int8', { from: copy });
  assert.equal(b.source, 'catalog');
  ws.close();
});

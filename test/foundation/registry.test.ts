import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { exportModel, getModel, listModels, parseModelRef, registerModel, tagModel, type ModelCard } from '../../src/registry/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { tmpDir, tmpHome } from '../helpers/paths.ts';

const card: ModelCard = { labels: ['a', 'b'], preprocess: { size: 8, cropFraction: 1, layout: 'NCHW', scale: 1, mean: [0, 0, 0], std: [1, 1, 1] }, inputName: 'x', outputName: 'p', temperature: 1, source: 'kennel' };

test('model versions are numbered per name and resolved by version, tag or latest', async () => {
  const ws = openWorkspace(tmpHome());
  const v1 = await registerModel(ws, 'dogs', Uint8Array.of(1, 2, 3), card);
  const v2 = await registerModel(ws, 'dogs', Uint8Array.of(4, 5, 6), card);
  await registerModel(ws, 'cats', Uint8Array.of(7), card);
  assert.deepEqual([v1.version, v2.version], [1, 2]);
  assert.equal(getModel(ws, 'dogs').version, 2);
  assert.equal(getModel(ws, 'dogs@1').onnxSha, v1.onnxSha);
  assert.deepEqual(getModel(ws, 'dogs:latest').version, 2);
  tagModel(ws, 'dogs@1', 'production');
  assert.equal(getModel(ws, 'dogs:production').version, 1);
  tagModel(ws, 'dogs@2', 'production');
  assert.equal(getModel(ws, 'dogs:production').version, 2, 'a tag moves to the new version');
  assert.deepEqual(getModel(ws, 'dogs@1').tags, []);
  assert.equal(listModels(ws).length, 3);
  ws.close();
});

test('bad references and tags get clear errors', async () => {
  const ws = openWorkspace(tmpHome());
  await registerModel(ws, 'dogs', Uint8Array.of(1), card);
  assert.throws(() => getModel(ws, 'dogs@9'), /dogs@9 was not found/);
  assert.throws(() => getModel(ws, 'nope'), (e: Error & { hint?: string }) => /Known models: dogs/.test(e.hint ?? ''));
  assert.throws(() => parseModelRef('a@b@c'), /not a model reference/);
  assert.throws(() => tagModel(ws, 'dogs', 'latest'), /not a tag you can set/);
  await assert.rejects(registerModel(ws, '../evil', Uint8Array.of(1), card), /not a valid model name/);
  ws.close();
});

test('export writes the ONNX graph, labels and a card with lineage', async () => {
  const ws = openWorkspace(tmpHome());
  await registerModel(ws, 'dogs', Uint8Array.of(9, 9), { ...card, lineage: { job: 'train-1' } });
  const dir = path.join(tmpDir(), 'out');
  const r = await exportModel(ws, 'dogs@1', dir);
  assert.deepEqual(readFileSync(path.join(dir, 'model.onnx')), Buffer.from([9, 9]));
  assert.equal(readFileSync(path.join(dir, 'labels.txt'), 'utf8'), 'a\nb\n');
  const exported = JSON.parse(readFileSync(path.join(dir, 'card.json'), 'utf8'));
  assert.equal(exported.model, 'dogs@1');
  assert.equal(exported.lineage.job, 'train-1');
  assert.ok(r.files.every((f) => existsSync(path.join(dir, f))));
  ws.close();
});

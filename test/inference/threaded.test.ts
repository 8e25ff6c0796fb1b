import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getModel } from '../../src/registry/index.js';
import { BatchedClassifier, Classifier } from '../../src/inference/index.js';
import { tmpHome } from '../helpers/paths.js';
import { photo, workspaceWithModel } from '../serving/fixtures.js';

test('a classifier with its session in a worker thread gives the same probabilities as one on the calling thread', async () => {
  const ws = await workspaceWithModel(tmpHome());
  try {
    const mv = getModel(ws, 'mnet');
    const onnx = await ws.artifacts.localPath(mv.onnxSha);
    const images = ['aipnd-dogs/Beagle_01125.jpg', 'udacity-samples/Brittany_02625.jpg', 'aipnd-dogs/Basenji_00963.jpg'].map((name) => photo(name));
    const direct = await Classifier.load(onnx, mv.card, { threads: 1 });
    const threaded = await Classifier.load(onnx, mv.card, { threads: 1, thread: { maxBatch: 4 } });
    try {
      const inputs = [direct.inputBuffer(3), threaded.inputBuffer(3)];
      for (const [clf, input] of [[direct, inputs[0]!], [threaded, inputs[1]!]] as const) await Promise.all(images.map((img, i) => clf.preprocess(img, input, i)));
      const [a, b] = [await direct.run(inputs[0]!, 3), await threaded.run(inputs[1]!, 3)];
      assert.equal(b.length, 3 * 1000);
      assert.deepEqual(b, a);
      // an input outside the shared buffer is copied in; one larger than it is refused
      assert.deepEqual(await threaded.run(inputs[0]!, 3), a);
      await assert.rejects(threaded.run(new Float32Array(5 * 3 * 224 * 224), 5), /larger than the session's buffer/);
      assert.throws(() => threaded.inputBuffer(5), /at most/);
    } finally {
      await direct.close();
      await threaded.close();
    }
    // a closed threaded classifier refuses runs instead of hanging
    await assert.rejects(threaded.run(threaded.inputBuffer(1), 1), /inference thread ended/);

    // fed RGB bytes (a GPU's default: normalised inside the graph), threaded or not: the same probabilities
    const floats = await Classifier.load(onnx, mv.card, { threads: 1 });
    const bytes = await Classifier.load(onnx, mv.card, { threads: 1, bytesIn: true, thread: { maxBatch: 4 } });
    try {
      assert.equal(bytes.bytesIn, true);
      const [fIn, bIn] = [floats.inputBuffer(3), bytes.inputBuffer(3)];
      assert.ok(bIn instanceof Uint8Array && fIn instanceof Float32Array);
      await Promise.all(images.map(async (img, i) => Promise.all([floats.preprocess(img, fIn, i), bytes.preprocess(img, bIn, i)])));
      const [a, b] = [await floats.run(fIn, 3), await bytes.run(bIn, 3)];
      for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-4, `probability ${i}: ${a[i]} vs ${b[i]}`);
      assert.deepEqual([0, 1, 2].map((r) => bytes.topK(b, r, 1)[0]!.label), [0, 1, 2].map((r) => floats.topK(a, r, 1)[0]!.label));
      await assert.rejects(bytes.run(fIn, 3), /takes RGB bytes/);
      await assert.rejects(new BatchedClassifier(bytes, { maxBatch: 4, maxDelayMs: 1 }).classifyInput(new Uint8Array(4 * 3 * 224 * 224), 1), /takes no float tensors/);
    } finally {
      await floats.close();
      await bytes.close();
    }
  } finally {
    ws.close();
  }
});

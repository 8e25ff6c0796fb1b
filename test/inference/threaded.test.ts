import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getModel } from '../../src/registry/index.js';
import { Classifier } from '../../src/inference/index.js';
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
  } finally {
    ws.close();
  }
});

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { KennelError } from '../../src/core/index.js';
import { Classifier, classify, type Classification } from '../../src/inference/index.js';
import { getModel } from '../../src/registry/index.js';
import { sharedDir, tmpHome } from '../helpers/paths.js';
import { photo, workspaceWithModel } from '../serving/fixtures.js';

test('classify() answers each image in order, batched as endpoints batch: top-k for the good ones, as one batch would, and a reason for the bad ones', async () => {
  const home = tmpHome();
  const ws = await workspaceWithModel(home);
  try {
    const mv = getModel(ws, 'mnet');
    const names = ['aipnd-dogs/Beagle_01125.jpg', 'udacity-samples/Brittany_02625.jpg', 'aipnd-dogs/Basenji_00963.jpg'];
    const files = names.map((n) => path.join(sharedDir(), 'data/real-photos', n));
    const garbage = path.join(home, 'not-an-image.jpg');
    writeFileSync(garbage, 'no pixels here');
    const images = [files[0]!, garbage, home, files[1]!, path.join(home, 'missing.jpg'), photo(names[2])];
    const progress: number[] = [];
    const answers = await classify(ws, mv, images, { topK: 3, batchSize: 4, threads: 1, progress: (e) => progress.push(e.done) });
    assert.equal(answers.length, images.length);
    assert.deepEqual(progress, [1, 2, 3, 4, 5, 6]);
    const error = (a: Classification): unknown => ('error' in a ? a.error : undefined);
    assert.match((error(answers[1]!) as KennelError).message, /could not be decoded/);
    assert.equal((error(answers[2]!) as KennelError).message, `${home} is not a file.`);
    assert.ok(!(error(answers[4]!) instanceof KennelError) && (error(answers[4]!) as NodeJS.ErrnoException).code === 'ENOENT');
    // the good images get what a plain batch of them gets
    const clf = await Classifier.load(await ws.artifacts.localPath(mv.onnxSha), mv.card, { threads: 1 });
    try {
      const [first, second] = await clf.classify([files[0]!, files[1]!], 3);
      const [third] = await clf.classify([photo(names[2])], 3);
      assert.deepEqual(answers[0], { predictions: first });
      assert.deepEqual(answers[3], { predictions: second });
      assert.deepEqual(answers[5], { predictions: third });
    } finally {
      await clf.close();
    }
    // streamed: the same answers, one at a time and in order
    const streamed: Array<[Classification, number]> = [];
    await classify(ws, mv, images, { topK: 3, batchSize: 4, threads: 1, onResult: (a, i) => streamed.push([a, i]) });
    assert.deepEqual(streamed.map(([, i]) => i), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(streamed[0]![0], answers[0]);
    assert.deepEqual(streamed[5]![0], answers[5]);
    // an aborted call takes no more images and answers those already under way, in order
    const stop = new AbortController();
    const some = await classify(ws, mv, images, { topK: 1, batchSize: 2, window: 2, threads: 1, signal: stop.signal, progress: () => stop.abort() });
    assert.ok(some.length >= 1 && some.length < images.length, `${some.length} answers`);
  } finally {
    ws.close();
  }
});

test('a classifier with decode workers answers as one decoding in its own process, and a bad image is still the client error', async () => {
  const home = tmpHome();
  const ws = await workspaceWithModel(home);
  try {
    const mv = getModel(ws, 'mnet');
    const onnx = await ws.artifacts.localPath(mv.onnxSha);
    const images = [photo('aipnd-dogs/Beagle_01125.jpg'), path.join(sharedDir(), 'data/real-photos/udacity-samples/Brittany_02625.jpg')];
    const here = await Classifier.load(onnx, mv.card, { threads: 1 });
    const pooled = await Classifier.load(onnx, mv.card, { threads: 1, decodeWorkers: 2 });
    try {
      assert.deepEqual(await pooled.classify(images, 3), await here.classify(images, 3));
      const refused = await pooled.classify([photo('aipnd-dogs/Beagle_01125.jpg').subarray(0, 3000)], 3).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(refused instanceof KennelError && refused.status === 422, String(refused));
      assert.match(refused.message, /^The image could not be decoded: it is corrupt or truncated\.$/);
    } finally {
      await Promise.all([here.close(), pooled.close()]);
    }
  } finally {
    ws.close();
  }
});

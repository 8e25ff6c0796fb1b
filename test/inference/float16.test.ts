import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { addBackbone } from '../../src/backbones/index.js';
import { BatchedClassifier, Classifier, FeatureExtractor, NEAR_TIE_GAP, NORMALIZATIONS, type BatchRun } from '../../src/inference/index.js';
import { float16Graph, graphDigest, intraOpThreads, measurePrecision, openAtPrecision } from '../../src/inference/precision.js';
import { ThreadedSession } from '../../src/inference/threaded.js';
import { GraphBuilder, OnnxModel, decodeTensor, float16Bits, float16Values, isFloatGraph, toFloat16 } from '../../src/onnx/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { sharedDir, tmpHome } from '../helpers/paths.js';
import { mobilenetPath } from '../serving/fixtures.js';

test('float16 rounding: nearest even, subnormals, and values beyond the range clamped', () => {
  const bits = float16Bits(Float32Array.of(1, -2, 0.1, 65504, 1e6, -Infinity, 2 ** -24, 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0));
  assert.deepEqual(Array.from(bits, (b) => b.toString(16)), ['3c00', 'c000', '2e66', '7bff', '7bff', 'fbff', '1', '0', '3c00', '3c02', '0']);
  const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
  const back = float16Values(float16Bits(values));
  for (let i = 0; i < values.length; i++) {
    const tolerance = Math.max(Math.abs(values[i]!) * 2 ** -11, 2 ** -25);
    assert.ok(Math.abs(back[i]! - values[i]!) <= tolerance, `${values[i]} came back as ${back[i]}`);
  }
});

/** conv -> relu -> Resize (float32 scales) -> Cast to float -> + a scalar -> pool: what a converter must respect */
function edgeCaseGraph(): Uint8Array {
  const g = new GraphBuilder(OnnxModel.create(13));
  const x = g.input('image', ['N', 3, 8, 8]);
  const w = g.weight('w', Float32Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => Math.cos(i) / 4), [4, 3, 3, 3]);
  const relu = g.op('Relu', [g.op('Conv', [x, w], [{ name: 'pads', ints: [1, 1, 1, 1] }])]);
  const scales = g.weight('scales', Float32Array.of(1, 1, 2, 2), [4]);
  const big = g.op('Resize', [relu, '', scales], [{ name: 'mode', string: 'nearest' }]);
  const shifted = g.add(g.op('Cast', [big], [{ name: 'to', int: 1 }]), g.scalar(0.5));
  g.output(g.op('GlobalAveragePool', [shifted]), 'pooled', ['N', 4, 1, 1]);
  return g.model.serialize();
}

test('toFloat16 keeps the graph\'s inputs and outputs float32, rounds its weights, and computes the same to float16 precision', async () => {
  const graph = edgeCaseGraph();
  const half = toFloat16(graph);
  const m = OnnxModel.parse(half);
  assert.deepEqual(m.inputs.map((i) => [i.name, i.elemType]), [['image', 1]]);
  assert.deepEqual(m.outputs.map((o) => [o.name, o.elemType]), [['pooled', 1]]);
  const types = Object.fromEntries(m.initializers.map((i) => [i.name, decodeTensorType(i.bytes)]));
  assert.equal(types.w_fp16, 10);
  assert.equal(types.w, undefined, 'the float32 weights no node reads are dropped');
  assert.equal(types.scales, 1, 'Resize scales stay float32');
  assert.ok(m.nodes.some((n) => n.opType === 'Cast' && n.inputs[0] === 'image'), 'the input is cast at the edge');
  assert.ok(half.byteLength < graph.byteLength);
  const x = new ort.Tensor('float32', Float32Array.from({ length: 2 * 3 * 64 }, (_, i) => Math.sin(i)), [2, 3, 8, 8]);
  const a = (await (await ort.InferenceSession.create(graph)).run({ image: x })).pooled!.data as Float32Array;
  const b = (await (await ort.InferenceSession.create(half)).run({ image: x })).pooled!.data as Float32Array;
  assert.equal(b.length, a.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= Math.abs(a[i]!) * 2e-3, `${a[i]} vs ${b[i]}`);
  assert.ok(a.some((v, i) => v !== b[i]), 'float16 rounding shows');
  assert.ok(m.nodes.some((n) => n.opType === 'Cast' && n.inputs[0]!.startsWith('resize')), 'the graph\'s own Cast is kept');
});

test('a classifier head after the last global pooling stays float32, fed by one Cast', async () => {
  const g = new GraphBuilder(OnnxModel.create(13));
  const x = g.input('image', ['N', 3, 8, 8]);
  const w = g.weight('w', Float32Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => Math.cos(i) / 4), [4, 3, 3, 3]);
  const pooled = g.op('GlobalAveragePool', [g.op('Relu', [g.op('Conv', [x, w], [{ name: 'pads', ints: [1, 1, 1, 1] }])])]);
  const flat = g.op('Flatten', [pooled]);
  const fc = g.weight('fc', Float32Array.from({ length: 4 * 5 }, (_, i) => Math.sin(i)), [4, 5]);
  g.output(g.op('Softmax', [g.add(g.op('MatMul', [flat, fc]), g.weight('bias', Float32Array.of(0.1, 0.2, 0.3, 0.4, 0.5), [5]))]), 'probs', ['N', 5]);
  const graph = g.model.serialize();
  const m = OnnxModel.parse(toFloat16(graph));
  const types = Object.fromEntries(m.initializers.map((i) => [i.name, decodeTensorType(i.bytes)]));
  assert.deepEqual([types.w_fp16, types.fc, types.bias], [10, 1, 1]);
  const toFloat = m.nodes.filter((n) => n.opType === 'Cast' && n.inputs[0] === pooled);
  assert.equal(toFloat.length, 1, 'the pooled features are cast back to float32 once');
  assert.deepEqual(m.outputs.map((o) => [o.name, o.elemType]), [['probs', 1]]);
  assert.ok(!m.nodes.some((n) => n.opType === 'Cast' && n.outputs[0] === 'probs'), 'the head computes float32 itself');
  const all = OnnxModel.parse(toFloat16(graph, { float32Head: false }));
  assert.ok(all.initializers.some((i) => i.name === 'fc_fp16'), 'without float32Head the head is converted too');
  const x1 = new ort.Tensor('float32', Float32Array.from({ length: 3 * 64 }, (_, i) => Math.cos(i)), [1, 3, 8, 8]);
  const [a, b] = [await (await ort.InferenceSession.create(graph)).run({ image: x1 }), await (await ort.InferenceSession.create(toFloat16(graph))).run({ image: x1 })];
  const [pa, pb] = [a.probs!.data as Float32Array, b.probs!.data as Float32Array];
  for (let i = 0; i < 5; i++) assert.ok(Math.abs(pa[i]! - pb[i]!) < 1e-3, `${pa[i]} vs ${pb[i]}`);
});

function decodeTensorType(bytes: Uint8Array): number {
  try {
    return decodeTensor(bytes).dataType;
  } catch {
    return 10; // decodeTensor reads float32 and int64 only
  }
}

test('a quantized graph is not a float graph: the CPU keeps fp32 under auto, and fp16 leaves it as it was made', async () => {
  const int8 = readFileSync(mobilenetPath());
  assert.equal(isFloatGraph(int8), false);
  assert.equal(isFloatGraph(edgeCaseGraph()), true);
  const opened = await openAtPrecision(edgeCaseGraph(), 'auto', { executionProviders: ['cpu'] });
  assert.equal(opened.precision, 'fp32');
  await opened.session.release();
  // fp16 asked of a quantized graph: it runs as it was made (its QuantizeLinear takes float32 only)
  const quantized = await openAtPrecision(int8, 'fp16', { executionProviders: ['cpu'] });
  assert.equal(quantized.precision, 'fp32');
  await quantized.session.release();
  const half = await openAtPrecision(edgeCaseGraph(), 'fp16', { executionProviders: ['cpu'] });
  assert.equal(half.precision, 'fp16');
  await half.session.release();
});

test('measuring fp16 against fp32 records both speeds and their difference, and keeps a profile', async () => {
  process.env.KENNEL_DEVICE_PROFILES = path.join(tmpHome(), 'profiles.json');
  const graph = edgeCaseGraph();
  const { session, precision, profile } = await measurePrecision(graph, { executionProviders: ['cpu'] }, { key: 'edge cpu', digest: graphDigest(graph) });
  try {
    // the fp16 conversion it timed is kept for the sessions opened after it
    const kept = path.join(path.dirname(process.env.KENNEL_DEVICE_PROFILES), 'fp16');
    assert.deepEqual(readFileSync(path.join(kept, readdirSync(kept)[0]!)), Buffer.from(toFloat16(graph)));
    assert.ok(profile.imagesPerSecond.fp32! > 0 && profile.imagesPerSecond.fp16! > 0);
    assert.ok(profile.fp16Error! > 0 && profile.fp16Error! < 0.02, `fp16 error ${profile.fp16Error}`);
    const faster = profile.imagesPerSecond.fp16! >= 1.1 * profile.imagesPerSecond.fp32!;
    assert.equal(precision, faster ? 'fp16' : 'fp32');
    const stored = JSON.parse(readFileSync(process.env.KENNEL_DEVICE_PROFILES, 'utf8'));
    assert.deepEqual(stored['edge cpu'], profile);
  } finally {
    await session.release();
    delete process.env.KENNEL_DEVICE_PROFILES;
  }
});

test('the GPU pipeline (session in its own thread, batches queued, batch size measured) gives the features of the plain loop', async () => {
  process.env.KENNEL_DEVICE_PROFILES = path.join(tmpHome(), 'profiles.json');
  const ws = openWorkspace(tmpHome());
  const backbone = await addBackbone(ws, mobilenetPath(), { name: 'mnet' });
  const model = await ws.artifacts.localPath(backbone.extractorSha);
  const { spec } = backbone;
  const make = (threaded: boolean) => FeatureExtractor.create(model, { spec: spec.preprocess, inputName: spec.inputName, outputName: spec.outputName, dim: spec.featureDim, bytesIn: true, threaded, threads: 1 });
  const [plain, piped] = [await make(false), await make(true)];
  const dirs = ['udacity-samples', 'aipnd-dogs'].map((d) => path.join(sharedDir(), 'data/real-photos', d));
  const items = dirs.flatMap((dir) => readdirSync(dir).map((f) => ({ path: path.join(dir, f) }))).slice(0, 40);
  try {
    assert.equal(plain.batchSize, undefined);
    assert.ok([16, 32, 64].includes(piped.batchSize!), `batch size ${piped.batchSize}`);
    assert.ok(existsSync(process.env.KENNEL_DEVICE_PROFILES));
    const progress: number[] = [];
    const a = await plain.extract(items, { batchSize: piped.batchSize });
    // every run has the batch size, the last (smaller) batch padded: a GPU session slows at new shapes
    const shapes: number[] = [];
    const runOwn = ThreadedSession.prototype.runOwn;
    ThreadedSession.prototype.runOwn = function (this: ThreadedSession, input, shape) {
      shapes.push(shape[0]!);
      return runOwn.call(this, input, shape);
    } as typeof runOwn;
    const b = await piped.extract(items, { onBatch: (done) => progress.push(done) }).finally(() => (ThreadedSession.prototype.runOwn = runOwn));
    assert.ok(items.length % piped.batchSize! !== 0, 'the last batch is smaller');
    assert.deepEqual(shapes, new Array<number>(Math.ceil(items.length / piped.batchSize!)).fill(piped.batchSize!));
    assert.deepEqual(b, a);
    assert.equal(progress.at(-1), items.length);
    assert.deepEqual([...progress].sort((x, y) => x - y), progress);
    // a stopped extraction ends with CancelledError once what is under way has settled
    const stop = new AbortController();
    stop.abort();
    await assert.rejects(piped.extract(items, { signal: stop.signal }), /cancel/i);
    // calls share the pipeline: one that fails (an image gone) or is stopped midway (of at least
    // three batches, whatever size was measured) ends alone,
    // and the call beside it gets every feature right
    const gone = items.map((it, i) => (i === items.length - 2 ? { path: path.join(tmpHome(), 'gone.jpg') } : it));
    const midway = new AbortController();
    const [failed, stopped, beside] = await Promise.allSettled([piped.extract(gone), piped.extract([...items, ...items, ...items, ...items], { signal: midway.signal, onBatch: () => midway.abort() }), piped.extract(items)]);
    assert.equal(failed.status, 'rejected');
    assert.match(String((stopped as PromiseRejectedResult).reason), /cancel/i);
    assert.deepEqual((beside as PromiseFulfilledResult<Float32Array>).value, a);
    assert.deepEqual(await piped.extract(items), a);
    // measured once: a second extractor reads the profile
    const again = await make(true);
    assert.equal(again.batchSize, piped.batchSize);
    await again.close();
  } finally {
    await plain.close();
    await piped.close();
    ws.close();
    delete process.env.KENNEL_DEVICE_PROFILES;
  }
});

test('a float graph on a GPU gets one intra-op thread; a quantized graph there, and anything on the CPU, keeps its threads', () => {
  assert.equal(intraOpThreads('webgpu', true, 16), 1);
  assert.equal(intraOpThreads('cuda', true, undefined), 1);
  assert.equal(intraOpThreads('webgpu', false, 16), 16, 'quantized ops fall back to the CPU');
  assert.equal(intraOpThreads('cpu', true, 16), 16);
});

test('an fp16 answer whose two best classes are a near tie is run again in fp32 (what auto does); fp16 asked for keeps its own', async () => {
  // a 1x1 convolution whose weight 1.0003 fp16 rounds to 1, pooled, through a float32 head that
  // magnifies the first two channels' difference: fp32 splits an image of equal channels 50.4 / 49.6, fp16 50 / 50
  const g = new GraphBuilder(OnnxModel.create(13));
  const conv = g.weight('conv', Float32Array.of(1.0003, 0, 0, 0, 1, 0, 0, 0, 1), [3, 3, 1, 1]);
  const pooled = g.op('Flatten', [g.op('GlobalAveragePool', [g.op('Conv', [g.input('image', ['N', 3, 8, 8]), conv])])]);
  const head = g.weight('head', Float32Array.of(100, 0, 0, 100, 0, 0), [3, 2]);
  g.output(g.op('Softmax', [g.op('MatMul', [pooled, head])], [{ name: 'axis', int: 1 }]), 'probs', ['N', 2]);
  const graph = g.model.serialize();
  const card = { labels: ['a', 'b'], inputName: 'image', outputName: 'probs', preprocess: { size: 8, cropFraction: 1, layout: 'NCHW' as const, scale: 1, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] } };
  const image = (c0: number, c1: number) => Float32Array.from({ length: 3 * 64 }, (_, i) => (i < 64 ? c0 : i < 128 ? c1 : 0));
  // a clear answer, a near tie, then two rows that only pad the batch (one of them a near tie too)
  const input = new Float32Array(4 * 3 * 64);
  [image(1, 0), image(0.5, 0.5), image(0.5, 0.5), image(0, 1)].forEach((x, i) => input.set(x, i * 3 * 64));
  const reference = async (bytes: Uint8Array) => (await (await ort.InferenceSession.create(bytes)).run({ image: new ort.Tensor('float32', input, [4, 3, 8, 8]) })).probs!.data as Float32Array;
  const [full, half] = [await reference(graph), await reference(toFloat16(graph))];
  assert.ok(Math.abs(full[2]! - half[2]!) > 1e-3, `fp16 moves the near tie (${full[2]} vs ${half[2]})`);
  assert.ok(Math.abs(full[2]! - full[3]!) < NEAR_TIE_GAP && Math.abs(full[0]! - full[1]!) > NEAR_TIE_GAP);
  const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => Array.from(a).forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-6, `${what}: ${Array.from(a)} vs ${Array.from(b)}`));

  // on this thread, and with the sessions in threads of their own (as replicas run them)
  for (const thread of [undefined, { maxBatch: 4 }]) {
    const settled = await Classifier.load(graph, card, { precision: 'fp16', nearTies: 'fp32', threads: 1, thread });
    try {
      const batch = settled.inputBuffer(4);
      batch.set(input);
      const probs = await settled.run(batch, 4, 2);
      close(probs.subarray(0, 2), half.subarray(0, 2), 'a clear answer keeps fp16');
      close(probs.subarray(2, 4), full.subarray(2, 4), 'the near tie takes fp32');
      close(probs.subarray(4, 8), half.subarray(4, 8), 'rows that pad the batch are left as they are');
      assert.equal(settled.nearTiesRerun, 1);
      // a batcher tells of each batch's reruns (an endpoint's kennel_fp32_reruns_total)
      const runs: BatchRun[] = [];
      const batched = new BatchedClassifier(settled, { maxBatch: 4, maxDelayMs: 20 }, { onBatch: (run) => runs.push(run) });
      const bytes = (x: Float32Array) => new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
      const [clear, tie] = await Promise.all([batched.classifyInput(bytes(image(1, 0)), 1), batched.classifyInput(bytes(image(0.5, 0.5)), 1)]);
      assert.equal(clear[0]!.label, 'a');
      assert.equal(tie[0]!.label, full[2]! >= full[3]! ? 'a' : 'b');
      assert.deepEqual([runs.reduce((n, r) => n + r.size, 0), runs.reduce((n, r) => n + r.fp32Reruns, 0), runs.reduce((n, r) => n + r.fp32Alone, 0)], [2, 1, 0]);
    } finally {
      await settled.close();
    }
  }
  const kept = await Classifier.load(graph, card, { precision: 'fp16', threads: 1 });
  try {
    close(await kept.run(input, 4, 2), half, 'fp16 asked for');
    assert.equal(kept.nearTiesRerun, 0);
  } finally {
    await kept.close();
  }

  // more near ties than the small fp32 session takes: the whole batch runs again in fp32; once most
  // batches have that many, batches run in fp32 alone; once they are clear again, in fp16 first
  const batchOf = (images: Float32Array[]) => {
    const b = new Float32Array(8 * 3 * 64);
    images.forEach((x, i) => b.set(x, i * 3 * 64));
    return b;
  };
  const tied = batchOf([image(1, 0), ...Array.from({ length: 6 }, () => image(0.5, 0.5)), image(0, 1)]);
  // clear answers (88 / 12) that fp16 moves by some 0.2 points: they tell which precision answered
  const clear = batchOf(Array.from({ length: 8 }, (_, i) => (i % 2 ? image(0.51, 0.49) : image(0.49, 0.51))));
  const answers = async (bytes: Uint8Array, x: Float32Array) => (await (await ort.InferenceSession.create(bytes)).run({ image: new ort.Tensor('float32', x, [8, 3, 8, 8]) })).probs!.data as Float32Array;
  const [tiedFull, clearFull, clearHalf] = [await answers(graph, tied), await answers(graph, clear), await answers(toFloat16(graph), clear)];
  assert.ok(Math.abs(clearFull[0]! - clearHalf[0]!) > 1e-3 && Math.abs(clearHalf[0]! - clearHalf[1]!) > NEAR_TIE_GAP, `${clearFull[0]} / ${clearHalf[0]}`);
  const auto = await Classifier.load(graph, card, { precision: 'fp16', nearTies: 'fp32', threads: 1, thread: { maxBatch: 8 } });
  try {
    const batch = auto.inputBuffer(8);
    await auto.warm(batch, [8]);
    const runBatch = (x: Float32Array) => {
      batch.set(x);
      return auto.run(batch, 8);
    };
    close(await runBatch(tied), tiedFull, 'six near ties: every answer fp32\'s');
    assert.equal(auto.nearTiesRerun, 8, 'the whole batch ran again');
    let fp32First = 0;
    for (let i = 0; i < 12; i++) {
      const before: number = auto.nearTiesRerun;
      close(await runBatch(tied), tiedFull, 'still fp32\'s answers');
      if (auto.nearTiesRerun === before) fp32First++;
    }
    assert.ok(fp32First >= 4, `most batches had many near ties, so later ones ran in fp32 alone (${fp32First} of 12)`);
    assert.equal(auto.fp32Alone, 8 * fp32First, 'the images run in fp32 alone are counted (an endpoint\'s kennel_fp32_alone_total)');
    const byPrecision = { fp32: 0, fp16: 0 };
    for (let i = 0; i < 20; i++) {
      const probs = await runBatch(clear);
      const near = (ref: Float32Array) => Array.from(probs).every((v, j) => Math.abs(v - ref[j]!) < 1e-5);
      assert.ok(near(clearFull) || near(clearHalf));
      byPrecision[near(clearHalf) ? 'fp16' : 'fp32']++;
    }
    assert.ok(byPrecision.fp32 >= 1 && byPrecision.fp16 >= 5, `clear batches go back to fp16 first (${JSON.stringify(byPrecision)})`);
  } finally {
    await auto.close();
  }
});

test('an extractor given its model\'s digest opens, after a first opening, the kept fp16 byte-input graph without reading the model', async () => {
  process.env.KENNEL_DEVICE_PROFILES = path.join(tmpHome(), 'profiles.json');
  const dir = tmpHome();
  const model = path.join(dir, 'edge.onnx');
  const graph = edgeCaseGraph();
  writeFileSync(model, graph);
  const spec = { size: 8, cropFraction: 1, layout: 'NCHW' as const, ...NORMALIZATIONS.imagenet, mean: [...NORMALIZATIONS.imagenet.mean] as [number, number, number], std: [...NORMALIZATIONS.imagenet.std] as [number, number, number] };
  const photos = path.join(sharedDir(), 'data/real-photos/udacity-samples');
  const items = readdirSync(photos).slice(0, 3).map((f) => ({ path: path.join(photos, f) }));
  const open = (precision: 'fp16' | 'fp32') => FeatureExtractor.create(model, { spec, inputName: 'image', outputName: 'pooled', dim: 4, bytesIn: true, threaded: false, threads: 1, precision, digest: graphDigest(graph) });
  const features = async (x: FeatureExtractor) => {
    try {
      return { precision: x.precision, values: await x.extract(items) };
    } finally {
      await x.close();
    }
  };
  try {
    const first = await features(await open('fp16'));
    assert.equal(first.precision, 'fp16');
    rmSync(model);
    // the byte-input graph's digest was remembered and its fp16 conversion kept: the model is not needed
    const again = await features(await open('fp16'));
    assert.deepEqual(again, first);
    // fp32 runs the byte-input graph itself, made from the model
    await assert.rejects(open('fp32'));
    // a kept conversion that changed is not used: the model is read and converted again
    const kept = path.join(path.dirname(process.env.KENNEL_DEVICE_PROFILES), 'fp16');
    for (const name of readdirSync(kept)) writeFileSync(path.join(kept, name), 'not a graph');
    await assert.rejects(open('fp16'));
    writeFileSync(model, graph);
    assert.deepEqual(await features(await open('fp16')), first);
  } finally {
    delete process.env.KENNEL_DEVICE_PROFILES;
  }
});

test('an fp16 graph is kept beside the device profiles: used again while its bytes are what was kept, the four most recently used at most', () => {
  process.env.KENNEL_DEVICE_PROFILES = path.join(tmpHome(), 'profiles.json');
  const kept = path.join(path.dirname(process.env.KENNEL_DEVICE_PROFILES), 'fp16');
  const graph = (k: number) => {
    const g = new GraphBuilder(OnnxModel.create(13));
    g.output(g.op('Conv', [g.input('image', ['N', 3, 8, 8]), g.weight('w', Float32Array.from({ length: 27 }, (_, i) => Math.cos(i + k)), [1, 3, 3, 3])]), 'y', ['N', 1, 6, 6]);
    return g.model.serialize();
  };
  try {
    const [g0, g1] = [graph(0), graph(1)];
    const d0 = graphDigest(g0);
    assert.deepEqual(float16Graph(g0, d0), toFloat16(g0));
    assert.equal(readdirSync(kept).length, 1);
    // looked up by the digest: the kept conversion of g0 comes back whatever graph is passed
    assert.deepEqual(float16Graph(g1, d0), toFloat16(g0));
    // a kept file whose bytes changed is not used: converted again, and kept right
    const [name] = readdirSync(kept);
    writeFileSync(path.join(kept, name!), 'not a graph');
    assert.deepEqual(float16Graph(g0, d0), toFloat16(g0));
    assert.deepEqual(readFileSync(path.join(kept, readdirSync(kept)[0]!)), Buffer.from(toFloat16(g0)));
    // the least recently used goes once there are more than four
    for (let k = 1; k <= 4; k++) {
      float16Graph(graph(k), graphDigest(graph(k)));
      for (const [i, n] of readdirSync(kept).entries()) if (!n.startsWith(d0)) utimesSync(path.join(kept, n), new Date(), new Date(Date.now() + 1000 * (k + i)));
    }
    const left = readdirSync(kept);
    assert.equal(left.length, 4);
    assert.ok(!left.some((n) => n.startsWith(d0)), `the oldest is gone: ${left.join(', ')}`);
  } finally {
    delete process.env.KENNEL_DEVICE_PROFILES;
  }
});

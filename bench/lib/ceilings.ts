import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { Classifier, batchShapes, decodeRgb, decodeWorkersFor, DynamicBatcher, executionProviders, inputShape, inputSize, normalizeInto, sessionOptions, type Device, type ModelInput, type PreprocessSpec } from '../../src/inference/index.js';
import type { ModelCard } from '../../src/registry/index.js';
import { GraphBuilder } from '../../src/onnx/index.js';
import { repeatFor, timed } from './timing.js';

/**
 * Reference measurements: what the hardware does with the plainest possible use of the same
 * libraries, so a pipeline's speed can be read as a fraction of what is attainable.
 */

export interface CeilingRun {
  batch: number;
  imagesPerSecond: number;
  /** wall time spent decoding+normalising vs in session.run, per image */
  decodeMsPerImage: number;
  inferMsPerImage: number;
  coresUsed: number;
}

/**
 * Extraction ceiling: decode a batch with sharp (all images at once), normalise, one
 * session.run, repeat; the ORT session uses every core. One run per batch size; the best counts.
 */
export async function extractionCeiling(modelPath: string, spec: PreprocessSpec, inputName: string, files: string[], batchSizes: number[], device: Device = 'cpu'): Promise<{ best: CeilingRun; runs: CeilingRun[] }> {
  const session = await ort.InferenceSession.create(modelPath, sessionOptions({ device, spinning: true }));
  const per = inputSize(spec);
  // CUDA runs one shape, the last batch padded (batchShapes says why)
  const cuda = executionProviders(device)[0] === 'cuda';
  try {
    const runs: CeilingRun[] = [];
    for (const bs of batchSizes) {
      const input = new Float32Array(bs * per);
      const rows = (n: number) => (cuda ? bs : n);
      const run = (batch: string[]) => session.run({ [inputName]: new ort.Tensor('float32', input.subarray(0, rows(batch.length) * per), inputShape(spec, rows(batch.length))) });
      let decode = 0;
      let infer = 0;
      const pass = async (list: string[]) => {
        for (let i = 0; i < list.length; i += bs) {
          const batch = list.slice(i, i + bs);
          const t0 = performance.now();
          await Promise.all(batch.map(async (f, k) => normalizeInto(await decodeRgb(f, spec), spec, input, k)));
          const t1 = performance.now();
          await run(batch);
          decode += t1 - t0;
          infer += performance.now() - t1;
        }
      };
      await pass(files.slice(0, bs)); // warm-up: first-run allocations, file cache
      decode = infer = 0;
      const t = await timed(() => pass(files));
      runs.push({
        batch: bs,
        imagesPerSecond: files.length / t.seconds,
        decodeMsPerImage: decode / files.length,
        inferMsPerImage: infer / files.length,
        coresUsed: t.cpuSeconds / t.seconds,
      });
    }
    const best = runs.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a));
    return { best, runs };
  } finally {
    await session.release();
  }
}

/**
 * The pipelined ceiling: the in-process pipeline a replica runs, without processes or HTTP: the
 * same Classifier settings (all cores, ORT threads that do not spin, inference in its own
 * thread), decoding as images come (on the libuv pool, or on a GPU in decode worker processes as
 * a replica's share of the cores), batches formed by the dynamic batcher as in
 * an endpoint and padded to a few sizes on a GPU, `concurrency` images in flight, for `seconds`
 * after a warm-up.
 */
export async function pipelineCeiling(onnxPath: string, card: ModelCard, files: string[], o: { seconds: number; concurrency: number; maxBatch: number; device: Device }): Promise<{ imagesPerSecond: number; meanBatch: number; meanRunMs: number }> {
  const clf = await Classifier.load(onnxPath, card, { device: o.device, spinning: false, thread: { maxBatch: o.maxBatch }, decodeWorkers: decodeWorkersFor(o.device) });
  const images = files.map((f) => readFileSync(f));
  const size = inputSize(card.preprocess);
  const batchInput = clf.inputBuffer(o.maxBatch);
  // padded to a few batch sizes on a GPU, each run once first, as a replica does
  const shapes = o.device === 'cpu' ? undefined : batchShapes(o.maxBatch, o.device);
  const runSize = (n: number): number => shapes?.find((s) => s >= n) ?? n;
  if (shapes) await clf.warm(batchInput, shapes);
  // the batches' sizes and run times, as a replica reports them (kennel_batch_*)
  const batches = { count: 0, images: 0, ms: 0 };
  const batcher = new DynamicBatcher<ModelInput, number>({ maxBatch: o.maxBatch, maxDelayMs: 2 }, async (items) => {
    items.forEach((x, i) => batchInput.set(x, i * size));
    const started = performance.now();
    await clf.run(batchInput, runSize(items.length), items.length);
    batches.ms += performance.now() - started;
    batches.count++;
    batches.images += items.length;
    return items.map(() => 1);
  });
  const one = (k: number) =>
    batcher.submit(async () => {
      const x = clf.imageInput();
      await clf.preprocess(images[k % images.length]!, x, 0);
      return x;
    });
  try {
    await Promise.all(Array.from({ length: o.concurrency }, (_, k) => one(k))); // warm-up
    Object.assign(batches, { count: 0, images: 0, ms: 0 });
    let done = 0;
    let next = 0;
    const t0 = performance.now();
    const until = t0 + o.seconds * 1000;
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        while (performance.now() < until) {
          // not `done += await ...`: that reads `done` before awaiting, and concurrent loops would overwrite each other
          const n = await one(next++);
          done += n;
        }
      }),
    );
    const perBatch = (v: number) => +(v / Math.max(1, batches.count)).toFixed(2);
    return { imagesPerSecond: done / ((performance.now() - t0) / 1000), meanBatch: perBatch(batches.images), meanRunMs: perBatch(batches.ms) };
  } finally {
    await clf.close();
  }
}

/**
 * The raw ORT session: images/s of session.run alone on one fixed, already normalised batch, per
 * batch size (what the device does with no decoding, no server and no batching logic).
 */
export async function inferenceCeiling(modelPath: string, spec: PreprocessSpec, inputName: string, batchSizes: number[], seconds: number, device: Device = 'cpu'): Promise<Array<{ batch: number; imagesPerSecond: number; msPerRun: number }>> {
  const session = await ort.InferenceSession.create(modelPath, sessionOptions({ device, spinning: true }));
  try {
    const runs = [];
    for (const batch of batchSizes) {
      const shape = inputShape(spec, batch);
      const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => ((i * 2654435761) % 1000) / 500 - 1);
      const feeds = { [inputName]: new ort.Tensor('float32', data, shape) };
      const r = await repeatFor(seconds, async () => {
        const out = await session.run(feeds);
        for (const t of Object.values(out)) t.dispose();
        return batch;
      }, 3);
      runs.push({ batch, imagesPerSecond: r.units / r.seconds, msPerRun: (r.seconds * 1000) / r.calls });
    }
    return runs;
  } finally {
    await session.release();
  }
}

/**
 * GFLOP/s of a one-node ONNX MatMul [batch, k] x [k, n] run in a loop, both operands fed each
 * call as a training step feeds its weights: the attainable rate for a head's matrix work.
 */
export async function matmulGflops(batch: number, k: number, n: number, seconds: number): Promise<{ gflops: number; calls: number; msPerCall: number }> {
  const g = new GraphBuilder();
  const a = g.input('a', [batch, k]);
  const b = g.input('b', [k, n]);
  g.output(g.op('MatMul', [a, b], [], 'c'), 'c');
  const session = await ort.InferenceSession.create(g.model.serialize(), { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  try {
    const fill = (len: number) => Float32Array.from({ length: len }, (_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
    const feeds = { a: new ort.Tensor('float32', fill(batch * k), [batch, k]), b: new ort.Tensor('float32', fill(k * n), [k, n]) };
    const r = await repeatFor(seconds, async () => {
      await session.run(feeds);
      return 1;
    }, 20);
    return { gflops: (2 * batch * k * n * r.calls) / r.seconds / 1e9, calls: r.calls, msPerCall: (r.seconds * 1000) / r.calls };
  } finally {
    await session.release();
  }
}

import { readFile } from 'node:fs/promises';
import { decodeRgb, inputSize, normalizeInto, type CropView, type PreprocessSpec } from './preprocess.js';
import { CancelledError, decodeWorkerCount } from '../core/index.js';
import { DecodePool } from './decode-pool.js';
import { executionProviders, type Device } from './devices.js';
import { graphDigest, loadProfile, profileKey, saveProfile, type Precision, type ResolvedPrecision } from './precision.js';
import { Session } from './session.js';
import { ThreadedSession } from './threaded.js';
import { ModelFeed } from './uint8-input.js';

/** Batch sizes a GPU extractor times to pick its own (chooseBatchSize); CUDA takes the largest untimed, since timing several shapes in one CUDA session slows it at all of them (batchShapes). */
const GPU_BATCH_SIZES = [16, 32, 64];
/** Batches a GPU extractor has decoded or queued ahead of the one whose features it is reading. */
const GPU_PIPELINE_DEPTH = 3;

/** An extract() call in the GPU pipeline: its first failure (or CancelledError), once it has one. */
interface PipelineCall {
  failure?: unknown;
}

/** A batch in the GPU pipeline: decoding once started, then its input (or its decode error), then run. */
interface QueuedBatch {
  call: PipelineCall;
  items: ExtractInput[];
  /** images the batch's input buffer holds (the call's batch size) */
  size: number;
  decoding?: Promise<void>;
  input?: Float32Array | Uint8Array;
  error?: { e: unknown };
  settle: { resolve(features: Float32Array): void; reject(e: unknown): void };
}

export interface ExtractInput {
  /** image file path */
  path: string;
  /** augmentation crop; undefined = the deterministic centre crop */
  view?: CropView;
}

export interface FeatureExtractorOptions {
  spec: PreprocessSpec;
  inputName: string;
  outputName: string;
  dim: number;
  device?: Device;
  threads?: number;
  precision?: Precision;
  /** feed RGB bytes (default on a GPU) rather than normalised floats */
  bytesIn?: boolean;
  /** run the session in its own thread, batches queued to it and the batch size measured (default on a GPU) */
  threaded?: boolean;
  /** processes decoding for a threaded extractor fed bytes (default: decodeWorkerCount, one per core on 8 cores or more); 0 decodes in this process */
  decodeWorkers?: number;
  /** the sha256 of the model file (a stored artifact's): a GPU opening then finds what an earlier one prepared (ModelFeed.graph) */
  digest?: string;
}

/**
 * A feature extractor: one ORT session over the backbone's extractor graph, fed by sharp
 * decoding on the libuv pool.
 * - On the CPU the session runs on the calling thread and decoding of the next batch overlaps
 *   inference of the current one (the cores are shared between the two anyway).
 * - On a GPU the graph takes the decoded bytes and normalises them itself (withUint8Input: a
 *   quarter of the upload, no per-pixel work on the host); the session runs in its own thread,
 *   which always has the next batch queued while decode worker processes (DecodePool) prepare
 *   the ones after it, and the batch size is the fastest of a few, measured once per machine.
 */
export class FeatureExtractor {
  private measuredBatch: number | undefined;
  private decoders: DecodePool | undefined;
  /**
   * extract()'s batch inputs whose runs have ended, to decode into again: on a GPU host, touching
   * fresh pages for every batch (megabytes each) cost this thread more than all else it does
   */
  private readonly spareInputs: Array<Float32Array | Uint8Array> = [];
  /** the GPU pipeline's batches not yet run, in the order extract() calls queued them (pump) */
  private readonly queued: QueuedBatch[] = [];
  private runsInFlight = 0;
  /** a CUDA session's first run, on a blank batch, started when it opened */
  private warming: Promise<void> | undefined;

  private constructor(
    private readonly session: Session | ThreadedSession,
    readonly spec: PreprocessSpec,
    readonly inputName: string,
    readonly outputName: string,
    readonly dim: number,
    private readonly feed: ModelFeed,
  ) {}

  static async create(modelPath: string, opts: FeatureExtractorOptions): Promise<FeatureExtractor> {
    const provider = executionProviders(opts.device ?? 'cpu')[0]!;
    const feed = ModelFeed.for(opts.spec, opts.device, opts.bytesIn);
    const { graph, inputName } = await feed.graph(modelPath, opts.inputName, opts.digest === undefined ? undefined : { digest: opts.digest, provider, precision: opts.precision ?? 'auto' });
    const settings = { device: opts.device, threads: opts.threads, precision: opts.precision, maxBatch: GPU_BATCH_SIZES.at(-1) };
    const io = { inputName, outputName: opts.outputName };
    const remember = (digest: string | undefined): void => {
      if (opts.digest !== undefined && digest !== undefined) feed.remember(opts.digest, opts.inputName, digest);
    };
    if (!(opts.threaded ?? provider !== 'cpu')) {
      const session = await Session.create(graph, settings, io);
      remember(session.digest);
      return new FeatureExtractor(session, opts.spec, opts.inputName, opts.outputName, opts.dim, feed);
    }
    const bytes = typeof graph === 'string' ? await readFile(graph) : graph;
    const workers = feed.bytes ? (opts.decodeWorkers ?? decodeWorkerCount(Infinity)) : 0;
    // the decode workers start while the GPU provider loads (each takes a good part of a second)
    const [opened, pool] = await Promise.allSettled([ThreadedSession.create(bytes, settings, io, 0), workers > 0 ? DecodePool.start(workers) : undefined]);
    if (opened.status === 'rejected' || pool.status === 'rejected') {
      if (opened.status === 'fulfilled') await opened.value.release();
      if (pool.status === 'fulfilled') await pool.value?.close();
      throw opened.status === 'rejected' ? opened.reason : (pool as PromiseRejectedResult).reason;
    }
    const session = opened.value;
    remember(session.digest);
    const extractor = new FeatureExtractor(session, opts.spec, opts.inputName, opts.outputName, opts.dim, feed);
    extractor.decoders = pool.value;
    try {
      if (provider === 'cuda') {
        extractor.measuredBatch = GPU_BATCH_SIZES.at(-1)!;
        // a CUDA session's first run searches cuDNN's algorithms (0.25-0.67 s for a ResNet50 on an
        // H100): queued now, it runs while the first batches decode instead of after the first one
        extractor.warming = extractor.runSpare(feed.allocate(extractor.measuredBatch), extractor.measuredBatch).then(
          () => undefined,
          () => undefined, // a broken session fails the first real batch as well
        );
      } else extractor.measuredBatch = await extractor.chooseBatchSize(profileKey(session.digest ?? (bytes instanceof Uint8Array ? graphDigest(bytes) : bytes.digest), `${provider} ${session.precision}`));
      return extractor;
    } catch (e) {
      await extractor.close();
      throw e;
    }
  }

  /** Whether the session takes RGB bytes (a GPU) or normalised floats (the CPU). */
  get bytesIn(): boolean {
    return this.feed.bytes;
  }

  /** The batch size measured fastest on this device (a threaded extractor: a GPU), else undefined: the caller's. */
  get batchSize(): number | undefined {
    return this.measuredBatch;
  }

  /** The arithmetic the backbone runs in on this device. */
  get precision(): ResolvedPrecision {
    return this.session.precision;
  }

  /**
   * The batch size with the most images/s on this device (each timed on random input after a
   * warm-up run, the median of three), measured once per machine and graph; a larger batch must
   * beat a smaller one by 5% to be taken.
   */
  private async chooseBatchSize(key: string): Promise<number> {
    const profile = loadProfile(key);
    if (profile?.batchSize) return profile.batchSize;
    let best = { size: GPU_BATCH_SIZES[0]!, rate: 0 };
    for (const size of GPU_BATCH_SIZES) {
      const input = (): Float32Array | Uint8Array => this.feed.allocate(size).fill(this.feed.bytes ? 117 : 0.5);
      await this.infer(input(), size);
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        await this.infer(input(), size);
        times.push(performance.now() - started);
      }
      const rate = (size * 1000) / times.sort((a, b) => a - b)[1]!;
      if (rate > best.rate * 1.05) best = { size, rate };
    }
    saveProfile(key, { precision: this.precision, imagesPerSecond: { [this.precision]: best.rate }, batchSize: best.size });
    return best.size;
  }

  /** Runs the backbone on a batch from decodeBatch for `n` images (on a GPU, the batch's memory moves to the session's thread). */
  async infer(input: Float32Array | Uint8Array, n: number): Promise<Float32Array> {
    return (await this.run(input, n)).output;
  }

  /**
   * infer(), and the whole buffer of `input` once the run is done with it. On a GPU a smaller
   * batch (a chunk's last) runs padded to the extractor's batch size: a GPU session prepares its
   * kernels for every new shape, and an ONNX Runtime CUDA session that has run several batch
   * shapes is slow at all of them (batchShapes), so training's odd last batches of a split made
   * every batch after them slow. The padding rows are whatever the buffer held; rows do not mix.
   */
  private async run(input: Float32Array | Uint8Array, n: number): Promise<{ output: Float32Array; buffer: Float32Array | Uint8Array }> {
    this.feed.check(input, 'extractor');
    const rows = Math.max(n, this.measuredBatch ?? n);
    const per = inputSize(this.spec);
    if (input.length < rows * per) {
      const padded = this.feed.allocate(rows);
      padded.set(input.subarray(0, n * per));
      input = padded;
    }
    const shape = this.feed.shape(rows);
    const ran = this.session instanceof ThreadedSession ? await this.session.runOwn(input, shape) : { output: await this.session.run(input, shape), buffer: input instanceof Uint8Array ? new Uint8Array(input.buffer) : new Float32Array(input.buffer) };
    return rows === n ? ran : { output: ran.output.subarray(0, n * this.dim), buffer: ran.buffer };
  }

  /**
   * Decodes a batch of images into one input: RGB bytes (by the decode workers, where there are),
   * or normalised floats; into the start of `into` where given, else into a new buffer.
   */
  async decodeBatch(items: ExtractInput[], into?: Float32Array | Uint8Array): Promise<Float32Array | Uint8Array> {
    const per = inputSize(this.spec);
    const buf = into ? (this.feed.check(into, 'extractor'), into.subarray(0, items.length * per)) : this.feed.allocate(items.length);
    if (buf.length < items.length * per) throw new Error(`an input of ${buf.length} values cannot hold ${items.length} images`);
    if (this.decoders) return this.decoders.decode(items.map((it) => ({ image: it.path, view: it.view })), this.spec, buf as Uint8Array);
    if (buf instanceof Uint8Array) await Promise.all(items.map(async (it, i) => buf.set(await decodeRgb(it.path, this.spec, it.view), i * per)));
    else await Promise.all(items.map(async (it, i) => normalizeInto(await decodeRgb(it.path, this.spec, it.view), this.spec, buf, i)));
    return buf;
  }

  /** decodeBatch into a spare input of extract()'s (one of `batchSize` images, made when none is spare). */
  private decodeIntoSpare(items: ExtractInput[], batchSize: number): Promise<Float32Array | Uint8Array> {
    const images = Math.max(batchSize, items.length);
    const at = this.spareInputs.findIndex((b) => b.length >= images * inputSize(this.spec));
    return this.decodeBatch(items, at >= 0 ? this.spareInputs.splice(at, 1)[0]! : this.feed.allocate(images));
  }

  /** Runs a batch from decodeIntoSpare; its input becomes spare again. */
  private async runSpare(input: Float32Array | Uint8Array, n: number): Promise<Float32Array> {
    const { output, buffer } = await this.run(input, n);
    this.spareInputs.push(buffer);
    return output;
  }

  /**
   * Features for all items, in order, batch by batch. Batch composition depends only on
   * `batchSize`, so results are identical however the work is split across workers.
   */
  async extract(items: ExtractInput[], opts: { batchSize?: number; onBatch?: (done: number) => void; signal?: AbortSignal } = {}): Promise<Float32Array> {
    const bs = this.batchSize ?? opts.batchSize ?? 16;
    const out = new Float32Array(items.length * this.dim);
    const batches: ExtractInput[][] = [];
    for (let i = 0; i < items.length; i += bs) batches.push(items.slice(i, i + bs));
    if (this.session instanceof ThreadedSession) return this.extractPipelined(batches, bs, out, opts);
    let next = batches.length ? this.decodeIntoSpare(batches[0]!, bs) : undefined;
    for (let b = 0; b < batches.length; b++) {
      if (opts.signal?.aborted) {
        await next?.catch(() => {});
        throw new CancelledError();
      }
      const input = await next!;
      next = b + 1 < batches.length ? this.decodeIntoSpare(batches[b + 1]!, bs) : undefined;
      const feats = await this.runSpare(input, batches[b]!.length);
      out.set(feats, b * bs * this.dim);
      opts.onBatch?.(Math.min(items.length, (b + 1) * bs));
    }
    return out;
  }

  /**
   * The GPU loop, through the extractor's one pipeline (pump): every extract() call under way
   * queues its batches there, so a call that starts while another ends (training's chunks, two
   * at a time) finds the decoders and the session thread busy instead of drained. A failed batch
   * or an abort ends the call: its batches not yet decoding are dropped, the others settle first.
   */
  private async extractPipelined(batches: ExtractInput[][], bs: number, out: Float32Array, opts: { onBatch?: (done: number) => void; signal?: AbortSignal }): Promise<Float32Array> {
    const call: PipelineCall = {};
    const onAbort = () => this.fail(call, new CancelledError());
    if (opts.signal?.aborted) throw new CancelledError();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let done = 0;
    const results = batches.map(
      (items, b) =>
        new Promise<void>((resolve, reject) =>
          this.queued.push({
            call,
            items,
            size: bs,
            settle: {
              resolve: (feats) => {
                out.set(feats, b * bs * this.dim);
                done += items.length;
                opts.onBatch?.(done);
                resolve();
              },
              reject: (e) => {
                this.fail(call, e);
                reject(e);
              },
            },
          }),
        ),
    );
    this.pump();
    try {
      await Promise.allSettled(results);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    if (call.failure !== undefined) throw call.failure;
    return out;
  }

  /** Ends `call` with `e` (the first failure stands): its queued batches not yet decoding are dropped. */
  private fail(call: PipelineCall, e: unknown): void {
    if (call.failure !== undefined) return;
    call.failure = e;
    for (const b of this.queued.filter((q) => q.call === call && !q.decoding)) {
      this.queued.splice(this.queued.indexOf(b), 1);
      b.settle.reject(e);
    }
    this.pump();
  }

  /**
   * Moves the pipeline on: the first 2 x GPU_PIPELINE_DEPTH queued batches decode, and decoded
   * ones go to the session thread in queue order, GPU_PIPELINE_DEPTH at a time there.
   */
  private pump(): void {
    for (const b of this.queued.slice(0, 2 * GPU_PIPELINE_DEPTH)) {
      if (b.decoding) continue;
      b.decoding = this.decodeIntoSpare(b.items, b.size).then(
        (input) => void ((b.input = input), this.pump()),
        (e: unknown) => void ((b.error = { e }), this.pump()),
      );
    }
    while (this.runsInFlight < GPU_PIPELINE_DEPTH && this.queued[0] && (this.queued[0].input || this.queued[0].error)) {
      const b = this.queued.shift()!;
      if (b.error) b.settle.reject(b.error.e);
      else if (b.call.failure !== undefined) {
        this.spareInputs.push(b.input!);
        b.settle.reject(b.call.failure);
      } else {
        this.runsInFlight++;
        this.runSpare(b.input!, b.items.length).then(
          (feats) => {
            this.runsInFlight--;
            b.settle.resolve(feats);
            this.pump();
          },
          (e: unknown) => {
            this.runsInFlight--;
            b.settle.reject(e);
            this.pump();
          },
        );
      }
    }
  }

  async close(): Promise<void> {
    await this.warming;
    await this.decoders?.close();
    await this.session.release();
  }
}

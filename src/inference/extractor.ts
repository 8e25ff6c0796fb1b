import sharp from 'sharp';
import { decodeRgb, inputShape, inputSize, normalizeInto, type CropView, type PreprocessSpec } from './preprocess.js';
import { CancelledError } from '../core/index.js';
import type { Device } from './devices.js';
import { Session } from './session.js';

export interface ExtractInput {
  /** image file path */
  path: string;
  /** augmentation crop; undefined = the deterministic centre crop */
  view?: CropView;
}

/**
 * A feature extractor: one ORT session over the backbone's extractor graph, fed by sharp
 * decoding on the libuv pool. Decoding of the next batch overlaps inference of the current one.
 */
export class FeatureExtractor {
  private constructor(
    private readonly session: Session,
    readonly spec: PreprocessSpec,
    readonly inputName: string,
    readonly outputName: string,
    readonly dim: number,
  ) {}

  static async create(modelPath: string, opts: { spec: PreprocessSpec; inputName: string; outputName: string; dim: number; device?: Device; threads?: number }): Promise<FeatureExtractor> {
    const session = await Session.create(modelPath, { device: opts.device, threads: opts.threads }, opts);
    return new FeatureExtractor(session, opts.spec, opts.inputName, opts.outputName, opts.dim);
  }

  /** Runs the backbone on already-normalised input for `n` images. */
  async infer(input: Float32Array, n: number): Promise<Float32Array> {
    return this.session.run(input, inputShape(this.spec, n));
  }

  /** Decodes and normalises a batch of images into one input buffer. */
  async decodeBatch(items: ExtractInput[], into?: Float32Array): Promise<Float32Array> {
    const buf = into ?? new Float32Array(items.length * inputSize(this.spec));
    await Promise.all(items.map(async (it, i) => normalizeInto(await decodeRgb(it.path, this.spec, it.view), this.spec, buf, i)));
    return buf;
  }

  /**
   * Features for all items, in order, batch by batch. Batch composition depends only on
   * `batchSize`, so results are identical however the work is split across workers.
   */
  async extract(items: ExtractInput[], opts: { batchSize?: number; onBatch?: (done: number) => void; signal?: AbortSignal } = {}): Promise<Float32Array> {
    const bs = opts.batchSize ?? 16;
    const out = new Float32Array(items.length * this.dim);
    const batches: ExtractInput[][] = [];
    for (let i = 0; i < items.length; i += bs) batches.push(items.slice(i, i + bs));
    let next = batches.length ? this.decodeBatch(batches[0]!) : undefined;
    for (let b = 0; b < batches.length; b++) {
      if (opts.signal?.aborted) {
        await next?.catch(() => {});
        throw new CancelledError();
      }
      const input = await next!;
      next = b + 1 < batches.length ? this.decodeBatch(batches[b + 1]!) : undefined;
      const feats = await this.infer(input, batches[b]!.length);
      out.set(feats, b * bs * this.dim);
      opts.onBatch?.(Math.min(items.length, (b + 1) * bs));
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** One image at a time per libvips call: parallelism comes from decoding several images at once. */
export function tuneSharp(): void {
  sharp.concurrency(1);
  sharp.cache(false);
}

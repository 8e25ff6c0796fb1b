import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { decodeRgb, inputShape, inputSize, normalizeInto, type CropView, type PreprocessSpec } from './preprocess.js';
import { CancelledError } from '../core/index.js';
import { executionProviders, type Device } from './devices.js';
import { Session } from './session.js';
import { UINT8_INPUT, withUint8Input } from './uint8-input.js';

export interface ExtractInput {
  /** image file path */
  path: string;
  /** augmentation crop; undefined = the deterministic centre crop */
  view?: CropView;
}

/**
 * A feature extractor: one ORT session over the backbone's extractor graph, fed by sharp
 * decoding on the libuv pool. Decoding of the next batch overlaps inference of the current one.
 * On a GPU the graph takes the decoded bytes and normalises them itself (withUint8Input): a
 * quarter of the upload, and no per-pixel work on the host.
 */
export class FeatureExtractor {
  private constructor(
    private readonly session: Session,
    readonly spec: PreprocessSpec,
    readonly inputName: string,
    readonly outputName: string,
    readonly dim: number,
    /** whether the session takes RGB bytes (a GPU) or normalised floats (the CPU) */
    readonly bytesIn: boolean,
  ) {}

  static async create(modelPath: string, opts: { spec: PreprocessSpec; inputName: string; outputName: string; dim: number; device?: Device; threads?: number; bytesIn?: boolean }): Promise<FeatureExtractor> {
    const bytesIn = opts.bytesIn ?? executionProviders(opts.device ?? 'cpu')[0] !== 'cpu';
    const model = bytesIn ? withUint8Input(await readFile(modelPath), opts.spec, opts.inputName) : modelPath;
    const session = await Session.create(model, { device: opts.device, threads: opts.threads }, { inputName: bytesIn ? UINT8_INPUT : opts.inputName, outputName: opts.outputName });
    return new FeatureExtractor(session, opts.spec, opts.inputName, opts.outputName, opts.dim, bytesIn);
  }

  /** Runs the backbone on a batch from decodeBatch for `n` images. */
  async infer(input: Float32Array | Uint8Array, n: number): Promise<Float32Array> {
    if (input instanceof Uint8Array !== this.bytesIn) throw new Error(`this extractor takes ${this.bytesIn ? 'RGB bytes' : 'normalised floats'}`);
    return this.session.run(input, this.bytesIn ? [n, this.spec.size, this.spec.size, 3] : inputShape(this.spec, n));
  }

  /** Decodes a batch of images into one input buffer: RGB bytes, or normalised floats. */
  async decodeBatch(items: ExtractInput[]): Promise<Float32Array | Uint8Array> {
    const per = inputSize(this.spec);
    if (this.bytesIn) {
      const buf = new Uint8Array(items.length * per);
      await Promise.all(items.map(async (it, i) => buf.set(await decodeRgb(it.path, this.spec, it.view), i * per)));
      return buf;
    }
    const buf = new Float32Array(items.length * per);
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

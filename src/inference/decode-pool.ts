import { ChildPool, decodeWorkerCount } from '../core/index.js';
import { executionProviders, type Device } from './devices.js';
import { inputSize, type CropView, type ImageInput, type PreprocessSpec } from './preprocess.js';

/**
 * Decode worker processes for a classifier on `device`: none on the CPU (inference needs its
 * cores, and decoding overlaps it there already), else decodeWorkerCount for `images` (default:
 * many), at most `cores` (a replica's or a worker's share of the machine).
 */
export function decodeWorkersFor(device: Device, opts: { images?: number; cores?: number } = {}): number {
  if (executionProviders(device)[0] === 'cpu') return 0;
  return Math.min(decodeWorkerCount(opts.images ?? Infinity), opts.cores ?? Infinity);
}

/** An image to decode: its file or its bytes, and the augmentation crop (undefined: the centre crop). */
export interface DecodeItem {
  image: ImageInput;
  view?: CropView;
}

/** A job for one decode worker: images decoded into one answer, in order. */
export interface DecodeJob {
  items: DecodeItem[];
  spec: PreprocessSpec;
}

/**
 * Processes that decode images into a model's RGB input, as PyTorch's DataLoader workers do, for
 * a GPU that takes images faster than one process decodes them (ChildPool). A batch is split
 * between the workers, and the pool assembles their shares in order.
 */
export class DecodePool {
  private constructor(private readonly pool: ChildPool<DecodeJob>) {}

  /** Starts `size` worker processes, each decoding one image at a time (one libuv thread). */
  static async start(size: number): Promise<DecodePool> {
    return new DecodePool(await ChildPool.start<DecodeJob>({ entry: new URL('./decode-worker.js', import.meta.url), size, name: 'decode worker' }));
  }

  get size(): number {
    return this.pool.size;
  }

  /** The worker processes' ids (for tests and diagnostics). */
  get pids(): Array<number | undefined> {
    return this.pool.pids;
  }

  /**
   * RGB bytes of `items`, `size`x`size`x3 each, in order (the workers each decode a contiguous
   * share), written into `into` where given (its first items x size x size x 3 bytes; a buffer
   * used again costs no fresh pages, which cost more to touch than the bytes to copy).
   */
  async decode(items: DecodeItem[], spec: PreprocessSpec, into?: Uint8Array): Promise<Uint8Array> {
    const per = inputSize(spec);
    if (into && into.length < items.length * per) throw new Error(`a buffer of ${into.length} bytes cannot hold ${items.length} images of ${per}`);
    const out = into ? into.subarray(0, items.length * per) : new Uint8Array(items.length * per);
    const share = Math.ceil(items.length / this.pool.size);
    const parts: Array<Promise<unknown>> = [];
    // each share's bytes are written into its place in `out` as they arrive
    for (let start = 0; start < items.length; start += share) {
      const slice = items.slice(start, start + share);
      parts.push(this.pool.run({ items: slice, spec }, out.subarray(start * per, (start + slice.length) * per)));
    }
    await Promise.all(parts);
    return out;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

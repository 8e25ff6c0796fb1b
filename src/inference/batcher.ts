import { executionProviders, type Device } from './devices.js';
/** How a batcher groups items: up to maxBatch, the oldest waiting at most maxDelayMs for more. */
export interface BatchingConfig {
  maxBatch: number;
  maxDelayMs: number;
}

interface Waiting<I, O> {
  item: I;
  since: number;
  resolve(out: O): void;
  reject(e: unknown): void;
}

/**
 * Groups items into batches for one model runner, adapting to load: with nothing else on its
 * way an item runs at once (no added latency when idle); while a batch runs, or while more items
 * are still being prepared (decoded), items gather up to maxBatch, and the oldest waits at most
 * maxDelayMs. One batch runs at a time, so the batch size grows with load by itself.
 */
export class DynamicBatcher<I, O> {
  private readonly ready: Array<Waiting<I, O>> = [];
  private preparing = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly config: BatchingConfig,
    private readonly runBatch: (items: I[]) => Promise<O[]>,
  ) {}

  /** Items being prepared, waiting, or running. */
  get size(): number {
    return this.preparing + this.ready.length + (this.running ? 1 : 0);
  }

  /**
   * Prepares an item (e.g. decodes an image; that runs concurrently with batches) and then
   * runs it in a batch. A failed preparation rejects only this item.
   */
  async submit(prepare: () => Promise<I>): Promise<O> {
    this.preparing++;
    let item: I;
    try {
      item = await prepare();
    } catch (e) {
      this.preparing--;
      this.schedule();
      throw e;
    }
    this.preparing--;
    return new Promise<O>((resolve, reject) => {
      this.ready.push({ item, since: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once nothing is being prepared, waiting or running. */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    if (this.running || this.ready.length === 0) return;
    const waited = performance.now() - this.ready[0]!.since;
    if (this.ready.length >= this.config.maxBatch || this.preparing === 0 || waited >= this.config.maxDelayMs) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, this.config.maxDelayMs - waited);
    }
  }

  private async flush(): Promise<void> {
    this.running = true;
    const batch = this.ready.splice(0, this.config.maxBatch);
    try {
      const out = await this.runBatch(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(out[i]!));
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}

/**
 * The batch sizes a GPU runs: powers of two up to 8, then multiples of 8 (at most 7 padded rows),
 * and maxBatch. A GPU session prepares its kernels for each new input shape, so batches are
 * padded to these few, each run once before traffic. CUDA runs maxBatch alone: an ONNX Runtime
 * CUDA session that has run several batch shapes is slow at every one of them (an H100,
 * ResNet50 fp16, 2026-12-07: 13 ms a run at batch 1 and 90 at 24, against 1.6 and 4.3 ms in
 * sessions of one shape), while a padded batch of 32 takes 4.8 ms.
 */
export function batchShapes(maxBatch: number, device: Device): number[] {
  if (executionProviders(device)[0] === 'cuda') return [maxBatch];
  const shapes = new Set<number>();
  for (let n = 1; n < maxBatch; n = n < 8 ? n * 2 : n + 8) shapes.add(n);
  return [...shapes, maxBatch];
}

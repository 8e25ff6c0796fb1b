/**
 * Bytes arriving from a stream in chunks, taken back out in frames of known length: what a
 * framed-pipe reader needs. A frame that arrived within one chunk is not copied.
 */
export class ChunkQueue {
  private chunks: Buffer[] = [];
  /** bytes held */
  size = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** At least the first `n` bytes held, from their start (n <= size). */
  peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  /** Removes and returns the first `n` bytes (n <= size). */
  take(n: number): Buffer {
    this.size -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const whole = Buffer.concat(this.chunks);
    this.chunks = whole.length > n ? [whole.subarray(n)] : [];
    return whole.subarray(0, n);
  }
}

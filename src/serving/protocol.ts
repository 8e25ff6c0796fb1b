import type { ModelCard } from '../registry/index.js';
import type { BatchRun, BatchingConfig, Device, Explanation, Precision, Prediction } from '../inference/index.js';

export type { BatchingConfig };

/**
 * Everything a replica process needs to start: the first IPC message (not argv, where a card
 * with many labels would pass the kernel's per-argument limit of 128 KiB).
 */
export interface ReplicaConfig {
  /** "NAME@VERSION" */
  model: string;
  onnxPath: string;
  card: ModelCard;
  threads: number;
  device: Device;
  /** a float graph's arithmetic ('auto': measured per device, fp32 on the CPU) */
  precision: Precision;
  batching: BatchingConfig;
  /** the backbone's feature tensor in the graph, read for captured requests (kennel_features for Kennel-trained models) */
  featureTensor?: string;
  /** run in the background: every thread at the lowest CPU priority (SCHED_IDLE and nice 19), once loaded */
  background?: boolean;
}

/** Router -> replica control messages (IPC, JSON). Requests travel on the request stream. */
export type ToReplica = { type: 'start'; config: ReplicaConfig } | { type: 'ping'; id: number } | { type: 'stop' };

/** Replica -> router messages; sent in arrays, one IPC message per event-loop turn. */
export type FromReplica =
  | { type: 'ready'; model: string; threads: number }
  | { type: 'result'; id: number; predictions: Prediction[]; explanation?: Explanation; features?: number[] }
  | { type: 'failed'; id: number; status: number; code: string; message: string; hint?: string }
  | { type: 'pong'; id: number }
  | ({ type: 'batch' } & BatchRun)
  /** permanent: starting again cannot help (the device is missing), so the rollout fails at once */
  | { type: 'fatal'; message: string; permanent?: boolean };

/** The replica's file descriptor for the request stream (after stdin, stdout, stderr and IPC). */
export const REQUEST_FD = 4;

/** One inference request on the request stream. */
export interface InferRequest {
  id: number;
  /** the k best classes; 0: every class, in label order (the Open Inference Protocol's probabilities) */
  topK: number;
  requestId: string;
  /** false: `image` is an encoded image; true: the model's input for one image, already preprocessed (float32, little-endian) */
  tensor: boolean;
  /** answer with a heat map of the best class too (it runs outside the batcher) */
  explain: boolean;
  /** answer with the backbone's features too (a captured request; it runs outside the batcher) */
  features: boolean;
  image: Buffer;
}

// frame: u32 id, u32 image length, u16 topK, u8 request-id length, u8 flags (1: tensor, 2: explain, 4: features), request id (ASCII), image bytes
const HEAD = 12;

/**
 * Frames a request for the request stream. Image bytes go to the replica as they are, with no
 * serialisation copy: the header is a separate small buffer, written together (writev).
 */
export function encodeRequest(r: Omit<InferRequest, 'image' | 'explain' | 'features'> & { explain?: boolean; features?: boolean }, image: Uint8Array): [Buffer, Uint8Array] {
  const rid = Buffer.from(r.requestId, 'latin1').subarray(0, 255);
  const head = Buffer.allocUnsafe(HEAD + rid.length);
  head.writeUInt32LE(r.id, 0);
  head.writeUInt32LE(image.length, 4);
  head.writeUInt16LE(r.topK, 8);
  head.writeUInt8(rid.length, 10);
  head.writeUInt8((r.tensor ? 1 : 0) | (r.explain ? 2 : 0) | (r.features ? 4 : 0), 11);
  rid.copy(head, HEAD);
  return [head, image];
}

/**
 * Bytes arriving from a stream in chunks, taken back out in frames of known length (for
 * RequestReader). A frame that arrived within one chunk is not copied.
 */
class ChunkQueue {
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

/** Reassembles requests from stream chunks; an image that arrived in one chunk is not copied. */
export class RequestReader {
  private readonly queue = new ChunkQueue();

  push(chunk: Buffer): InferRequest[] {
    const q = this.queue;
    q.push(chunk);
    const out: InferRequest[] = [];
    while (q.size >= HEAD) {
      const head = q.peek(HEAD);
      const headLength = HEAD + head.readUInt8(10);
      const total = headLength + head.readUInt32LE(4);
      if (q.size < total) break;
      const frame = q.take(total);
      const flags = frame.readUInt8(11);
      out.push({ id: frame.readUInt32LE(0), topK: frame.readUInt16LE(8), requestId: frame.toString('latin1', HEAD, headLength), tensor: (flags & 1) === 1, explain: (flags & 2) === 2, features: (flags & 4) === 4, image: frame.subarray(headLength) });
    }
    return out;
  }
}

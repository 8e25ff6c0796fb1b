import type { ModelCard } from '../registry/index.js';
import type { Device } from '../training/index.js';
import type { Prediction } from './classifier.js';

/** How a replica batches: requests are grouped up to maxBatch, waiting at most maxDelayMs for more. */
export interface BatchingConfig {
  maxBatch: number;
  maxDelayMs: number;
}

/** Everything a replica process needs to start: passed as its one command-line argument (JSON). */
export interface ReplicaConfig {
  /** "NAME@VERSION" */
  model: string;
  onnxPath: string;
  card: ModelCard;
  threads: number;
  device: Device;
  batching: BatchingConfig;
}

/** Router -> replica messages (IPC, advanced serialization so image bytes travel as bytes). */
export type ToReplica =
  | { type: 'infer'; id: number; requestId: string; image: Uint8Array; topK: number }
  | { type: 'ping'; id: number }
  | { type: 'stop' };

/** Replica -> router messages. */
export type FromReplica =
  | { type: 'ready'; model: string; threads: number }
  | { type: 'result'; id: number; predictions: Prediction[] }
  | { type: 'failed'; id: number; status: number; code: string; message: string; hint?: string }
  | { type: 'pong'; id: number }
  | { type: 'batch'; size: number; ms: number }
  | { type: 'fatal'; message: string };

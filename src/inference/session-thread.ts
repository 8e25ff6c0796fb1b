/** Entry of a ThreadedSession's worker thread: one ORT session, runs one at a time as they come. */
import { parentPort, workerData } from 'node:worker_threads';
import type { ModelGraph, ResolvedPrecision } from './precision.js';
import { Session, type SessionSettings } from './session.js';

export interface SessionThreadConfig {
  /** a file, the graph itself, or a prepared graph (copied to the thread) */
  model: ModelGraph;
  settings: SessionSettings;
  inputName: string;
  outputName: string;
}

/** A run's input: the shared float buffer (copied out here), or a buffer of its own transferred with the message. */
export type ToSessionThread = { type: 'run'; id: number; shape: number[]; input: SharedArrayBuffer; bytes: boolean } | { type: 'run-own'; id: number; shape: number[]; input: Float32Array | Uint8Array } | { type: 'release' };

export type FromSessionThread =
  | { type: 'ready'; precision: ResolvedPrecision; digest?: string }
  | { type: 'fatal'; message: string }
  /** `input`: a run-own's input buffer, moved back to be used again */
  | { type: 'result'; id: number; data: Float32Array; input?: ArrayBuffer }
  | { type: 'failed'; id: number; message: string };

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

async function main(port: NonNullable<typeof parentPort>): Promise<void> {
  const config = workerData as SessionThreadConfig;
  const send = (m: FromSessionThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  let session: Session;
  try {
    session = await Session.create(config.model, config.settings, config);
  } catch (e) {
    send({ type: 'fatal', message: message(e) });
    return;
  }
  // ORT's binding refuses tensors on shared memory ("Invalid argument"), so each run copies its
  // input into this thread's own buffer (a memcpy, off the caller's thread)
  let local = new ArrayBuffer(0);
  port.on('message', (m: ToSessionThread) => {
    if (m.type === 'release') {
      void session.release().finally(() => port.close());
      return;
    }
    const length = m.shape.reduce((a, b) => a * b, 1);
    let input: Float32Array | Uint8Array;
    if (m.type === 'run-own') input = m.input.subarray(0, length);
    else {
      if (local.byteLength < m.input.byteLength) local = new ArrayBuffer(m.input.byteLength);
      input = m.bytes ? new Uint8Array(local, 0, length) : new Float32Array(local, 0, length);
      input.set(m.bytes ? new Uint8Array(m.input, 0, length) : new Float32Array(m.input, 0, length));
    }
    session.run(input, m.shape).then(
      (data) => {
        // a run-own's input buffer goes back with the output, to be used again
        const back = m.type === 'run-own' ? (m.input.buffer as ArrayBuffer) : undefined;
        send({ type: 'result', id: m.id, data, ...(back && { input: back }) }, back ? [data.buffer, back] : [data.buffer]);
      },
      (e: unknown) => send({ type: 'failed', id: m.id, message: message(e) }),
    );
  });
  send({ type: 'ready', precision: session.precision, ...(session.digest ? { digest: session.digest } : {}) });
}

if (parentPort) void main(parentPort);

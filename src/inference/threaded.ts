import { Child } from '../core/index.js';
import type { ModelGraph, ResolvedPrecision } from './precision.js';
import { Session, type ModelSession, type SessionIO, type SessionSettings } from './session.js';
import type { FromSessionThread, SessionThreadConfig, ToSessionThread } from './session-thread.js';

/**
 * An ORT session in its own worker thread. onnxruntime-node's run() is synchronous on the thread
 * that calls it (the promise only defers it with setImmediate), so a server running a batch on
 * its main thread can neither read requests, nor finish decodes, nor send answers until the
 * batch is done. Here the main thread stays free: inputs go through a SharedArrayBuffer (the
 * thread copies them out), probabilities come back transferred.
 */
export class ThreadedSession implements ModelSession {
  private readonly pending = new Map<number, { resolve(data: Float32Array, input?: ArrayBuffer): void; reject(e: Error): void }>();
  private nextId = 1;
  private failure: Error | undefined;
  private readonly shared: SharedArrayBuffer;
  /** the arithmetic the thread's session runs ('auto' resolved there) */
  precision: ResolvedPrecision = 'fp32';
  /** the graph's sha256, where the thread computed one opening it (graphDigest) */
  digest: string | undefined;
  /** resolves with the reason when the thread ends (after close(), or when it crashed) */
  readonly exited: Promise<string>;

  private constructor(
    private readonly worker: Child<ToSessionThread, FromSessionThread>,
    maxInputBytes: number,
  ) {
    this.shared = new SharedArrayBuffer(maxInputBytes);
    worker.on('message', (m) => {
      if (m.type !== 'result' && m.type !== 'failed') return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.type === 'result') p?.resolve(m.data, m.input);
      else p?.reject(new Error(m.message));
    });
    this.exited = new Promise((resolve) => {
      const end = (reason: string) => {
        this.failure ??= new Error(`the inference thread ended: ${reason}`);
        for (const p of this.pending.values()) p.reject(this.failure);
        this.pending.clear();
        resolve(reason);
      };
      worker.on('error', (e) => end(e.message));
      worker.on('exit', ({ code }) => end(`exit code ${code}`));
    });
  }

  /** Loads the model (a file, or the graph) in a new thread; `maxInputBytes` sizes the shared input buffer (the largest batch). */
  static async create(model: ModelGraph, settings: SessionSettings, io: { inputName: string; outputName: string }, maxInputBytes: number): Promise<ThreadedSession> {
    const config: SessionThreadConfig = { model, settings, ...io };
    // release() asks the thread to release its session and end; a thread stuck in a run is terminated
    const worker = new Child<ToSessionThread, FromSessionThread>({ entry: new URL('./session-thread.js', import.meta.url), kind: 'thread', data: config, stop: { type: 'release' }, graceMs: 10_000 });
    const session = new ThreadedSession(worker, maxInputBytes);
    const first = await worker.start().catch(async () => new Error(`the inference thread ended while loading the model: ${await session.exited}`));
    if (first instanceof Error) throw first;
    if (first.type !== 'ready') {
      await worker.close(true);
      throw new Error(first.type === 'fatal' ? first.message : `unexpected ${first.type}`);
    }
    session.precision = first.precision;
    session.digest = first.digest;
    return session;
  }

  /** The shared input buffer, as floats or bytes: filled here, run() sends it without a copy on this thread (the session's thread copies it out). */
  inputBuffer(bytes: true): Uint8Array;
  inputBuffer(bytes?: false): Float32Array;
  inputBuffer(bytes = false): Float32Array | Uint8Array {
    return bytes ? new Uint8Array(this.shared) : new Float32Array(this.shared);
  }

  /** Runs the model on `input` (best: a view of inputBuffer()) of `shape`; resolves with the output's data. */
  run(input: Float32Array | Uint8Array, shape: number[]): Promise<Float32Array> {
    if (this.failure) return Promise.reject(this.failure);
    const length = shape.reduce((a, b) => a * b, 1);
    const bytes = input instanceof Uint8Array;
    if (input.buffer !== this.shared) {
      if (length * input.BYTES_PER_ELEMENT > this.shared.byteLength) return Promise.reject(new Error(`an input of ${length} values is larger than the session's buffer`));
      (bytes ? new Uint8Array(this.shared, 0, length) : new Float32Array(this.shared, 0, length)).set(input.subarray(0, length));
    } else if (input.byteOffset !== 0) {
      return Promise.reject(new Error('inputs in the shared buffer start at its beginning'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ type: 'run', id, shape, input: this.shared, bytes });
    });
  }

  /**
   * Runs the model on an input of its own, which moves to the thread (`input` is unusable here
   * meanwhile): unlike run(), several may be under way at once, so the thread starts the next
   * batch as soon as one ends. The input (a view from the start of its buffer, else a copy) moves
   * with its whole buffer, which comes back with the output as `buffer`, to be used again.
   */
  runOwn<Input extends Float32Array | Uint8Array>(input: Input, shape: number[]): Promise<{ output: Float32Array; buffer: Input }> {
    if (this.failure) return Promise.reject(this.failure);
    const own = (input.byteOffset === 0 && !(input.buffer instanceof SharedArrayBuffer) ? input : input.slice()) as Input;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (output, back) => resolve({ output, buffer: (own instanceof Uint8Array ? new Uint8Array(back!) : new Float32Array(back!)) as Input }),
        reject,
      });
      this.worker.send({ type: 'run-own', id, shape, input: own }, [own.buffer as ArrayBuffer]);
    });
  }

  async release(): Promise<void> {
    await this.worker.close(this.failure !== undefined);
    await this.exited;
  }

  private post(m: ToSessionThread): void {
    this.worker.send(m);
  }
}

/**
 * Opens a model session: on this thread, or with `thread` in its own worker thread (see
 * ThreadedSession) with a shared input buffer of `maxInputBytes` (the largest batch).
 */
export async function openSession(model: ModelGraph, settings: SessionSettings, io: SessionIO, thread?: { maxInputBytes: number }): Promise<ModelSession> {
  if (!thread) return Session.create(model, settings, io);
  return ThreadedSession.create(model, settings, { inputName: io.inputName, outputName: io.outputName }, thread.maxInputBytes);
}

import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { executionProviders, type Device } from './devices.js';
import { openAtPrecision, type ModelGraph, type Precision, type ResolvedPrecision } from './precision.js';

export interface SessionSettings {
  device?: Device;
  /** intra-op threads, default: every core (a float graph on a GPU gets one: openAtPrecision) */
  threads?: number;
  /**
   * Whether ORT's worker threads spin-wait between runs. Off by default: Kennel decodes images
   * on the same cores while it infers, and spinning threads take that CPU (measured: +11%
   * extraction images/s on an idle 2-core machine, and 2-3x faster head training under load).
   */
  spinning?: boolean;
  /** float arithmetic of a float graph: 'auto' (default) measures fp16 against fp32 on a GPU (precision.ts) */
  precision?: Precision;
  /**
   * The largest batch the session will run (default 32): where precision is measured, it is
   * measured at this batch, so that a session which then runs only padded batches of it (CUDA:
   * batchShapes says why) never sees another shape.
   */
  maxBatch?: number;
}

/** The session options every Kennel ORT session uses (extraction, head training, serving). */
export function sessionOptions(s: SessionSettings = {}): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: executionProviders(s.device ?? 'cpu'),
    intraOpNumThreads: s.threads ?? availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: s.spinning ? '1' : '0' } } },
  };
}

/** The float input a model session feeds and the output it reads. */
export interface SessionIO {
  inputName: string;
  outputName: string;
}

/** A model session with one input (floats, or the RGB bytes of a withUint8Input graph) and one output, on this thread (Session) or its own (ThreadedSession). */
export interface ModelSession {
  /** the arithmetic the session runs ('auto' resolved) */
  readonly precision: ResolvedPrecision;
  /** Runs the model on the first values of `input` for `shape`; resolves with a copy of the output's data. */
  run(input: Float32Array | Uint8Array, shape: number[]): Promise<Float32Array>;
  release(): Promise<void>;
}

/** An ORT session on the calling thread: where every Kennel model runs a batch (classifier, extractor, a ThreadedSession's thread). */
export class Session implements ModelSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly io: SessionIO,
    /** the arithmetic the session runs ('auto' resolved) */
    readonly precision: ResolvedPrecision,
    /** the graph's sha256, where opening it computed one (graphDigest) */
    readonly digest: string | undefined,
  ) {}

  static async create(model: ModelGraph, settings: SessionSettings, io: SessionIO): Promise<Session> {
    const opened = await openAtPrecision(model, settings.precision ?? 'auto', sessionOptions(settings), settings.maxBatch);
    return new Session(opened.session, { inputName: io.inputName, outputName: io.outputName }, opened.precision, opened.digest);
  }

  /** The output comes back in memory of its own (a thread can transfer it). Bytes feed a graph made by withUint8Input. */
  async run(input: Float32Array | Uint8Array, shape: number[]): Promise<Float32Array<ArrayBuffer>> {
    const size = shape.reduce((a, b) => a * b, 1);
    const tensor = input instanceof Uint8Array ? new ort.Tensor('uint8', input.subarray(0, size), shape) : new ort.Tensor('float32', input.subarray(0, size), shape);
    const out = await this.session.run({ [this.io.inputName]: tensor }, [this.io.outputName]);
    const t = out[this.io.outputName]!;
    const data = new Float32Array(t.data as Float32Array);
    t.dispose();
    return data;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

import { CancelledError, errorMessage } from '../core/index.js';
import { fitHead, type EpochStats, type HeadConfig } from '../training/index.js';
import { shouldStop, type StoppingPlan } from './stopping.js';
import type { Direction } from './strategy.js';

export type Objective = 'valid.top1' | 'valid.loss';
export const OBJECTIVES: readonly Objective[] = ['valid.top1', 'valid.loss'];
export const naturalDirection = (o: Objective): Direction => (o === 'valid.top1' ? 'max' : 'min');

/**
 * What one trial trains on: standardised backbone features of the training views and of valid,
 * exactly what `train()` fits its head on for the same augmentation. Stored once per
 * augmentation value as an artifact, so workers anywhere read it from the shared store.
 */
export interface TrialData {
  cols: number;
  trainX: Float32Array;
  trainY: Int32Array;
  validX: Float32Array;
  validY: Int32Array;
}

const MAGIC = 0x4452544b; // "KTRD"
const HEADER_BYTES = 20;

export function encodeTrialData(d: TrialData): Uint8Array {
  const rows = d.trainY.length;
  const validRows = d.validY.length;
  const out = new Uint8Array(HEADER_BYTES + 4 * (rows * d.cols + rows + validRows * d.cols + validRows));
  const header = new Uint32Array(out.buffer, 0, 5);
  header.set([MAGIC, 1, rows, validRows, d.cols]);
  let at = HEADER_BYTES;
  for (const part of [d.trainX, d.trainY, d.validX, d.validY]) {
    out.set(new Uint8Array(part.buffer, part.byteOffset, part.byteLength), at);
    at += part.byteLength;
  }
  return out;
}

export function decodeTrialData(bytes: Uint8Array): TrialData {
  // typed-array views need 4-byte alignment; a Buffer from the pool may not have it
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const [magic, version, rows, validRows, cols] = new Uint32Array(b.buffer, b.byteOffset, 5);
  if (magic !== MAGIC || version !== 1) throw new Error('not a Kennel trial-data artifact');
  let at = b.byteOffset + HEADER_BYTES;
  const take = <T>(Kind: new (buf: ArrayBufferLike, offset: number, length: number) => T, n: number): T => {
    const v = new Kind(b.buffer, at, n);
    at += 4 * n;
    return v;
  };
  return { cols: cols!, trainX: take(Float32Array, rows! * cols!), trainY: take(Int32Array, rows!), validX: take(Float32Array, validRows! * cols!), validY: take(Int32Array, validRows!) };
}

export interface TrialSpec {
  head: HeadConfig;
  classes: number;
  objective: Objective;
  direction: Direction;
  stopping: StoppingPlan;
}

export type TrialEpoch = Pick<EpochStats, 'epoch' | 'trainLoss' | 'trainTop1' | 'validLoss' | 'validTop1' | 'seconds'>;

export interface TrialOutcome {
  status: 'completed' | 'stopped' | 'failed';
  /** the objective of the weights the trial keeps (best valid loss); null when it failed */
  objective: number | null;
  epochs: number;
  bestEpoch: number;
  /** the objective the trial would have reported had it ended after each epoch (null before any finite valid loss) */
  curve: Array<number | null>;
  history: TrialEpoch[];
  seconds: number;
  error?: string;
}

const metric = (o: Objective, s: EpochStats): number => (o === 'valid.top1' ? s.validTop1 : s.validLoss);

/**
 * Trains one head configuration with early stopping from the plan. A trial keeps the weights of
 * its best valid-loss epoch, like `train()`, so its objective is what the registered model
 * would score on valid. A configuration that cannot train (diverged, too large) is a failed
 * trial, not a failed job.
 */
export async function runTrial(data: TrialData, spec: TrialSpec, opts: { threads?: number; signal?: AbortSignal; onEpoch?: () => void } = {}): Promise<TrialOutcome> {
  const started = performance.now();
  const curve: Array<number | null> = [];
  const history: EpochStats[] = [];
  let stopped = false;
  const seconds = () => (performance.now() - started) / 1000;
  const brief = (s: EpochStats): TrialEpoch => ({ epoch: s.epoch, trainLoss: s.trainLoss, trainTop1: s.trainTop1, validLoss: s.validLoss, validTop1: s.validTop1, seconds: s.seconds });
  try {
    const rows = data.trainY.length;
    const fit = await fitHead({ train: { data: data.trainX, rows, cols: data.cols }, trainLabels: data.trainY, valid: { data: data.validX, rows: data.validY.length, cols: data.cols }, validLabels: data.validY, classes: spec.classes }, spec.head, {
      threads: opts.threads,
      signal: opts.signal,
      onEpoch: (s, bestEpoch) => {
        history.push(s);
        const v = bestEpoch ? metric(spec.objective, history[bestEpoch - 1]!) : NaN;
        curve.push(Number.isFinite(v) ? v : null);
        opts.onEpoch?.();
        if (!shouldStop(spec.stopping, curve, spec.direction)) return undefined;
        stopped = true;
        return 'stop';
      },
    });
    const objective = fit.bestEpoch ? metric(spec.objective, fit.history[fit.bestEpoch - 1]!) : NaN;
    if (!Number.isFinite(objective)) return { status: 'failed', objective: null, epochs: fit.history.length, bestEpoch: 0, curve, history: history.map(brief), seconds: seconds(), error: 'training diverged: the valid loss was never finite' };
    return { status: stopped ? 'stopped' : 'completed', objective, epochs: fit.history.length, bestEpoch: fit.bestEpoch, curve, history: history.map(brief), seconds: seconds() };
  } catch (e) {
    if (e instanceof CancelledError || opts.signal?.aborted) throw e;
    return { status: 'failed', objective: null, epochs: history.length, bestEpoch: 0, curve, history: history.map(brief), seconds: seconds(), error: errorMessage(e) };
  }
}

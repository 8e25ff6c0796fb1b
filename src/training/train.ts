import { z } from 'zod';
import { getBackbone, type Backbone } from '../backbones/index.js';
import { Errors, CancelledError, KennelError, errorMessage, type ProgressSink } from '../core/index.js';
import { getDatasetVersion, type DatasetVersion } from '../data/index.js';
import { DEVICES, PRECISIONS } from '../inference/index.js';
import { TelemetryRecorder, confidenceQuantiles, saveJobInsights, type RuleResult } from '../insights/index.js';
import { registerModel, checkModelName, identicalTraining, type ModelCard } from '../registry/index.js';
import { createJob, finishJob, type Workspace } from '../store/index.js';
import { datasetFeatures, type WorkerThroughput } from './dispatch.js';
import { PROBABILITIES_OUTPUT, applyStandardizer, buildServingModel, standardizer, type ServingHead } from './export.js';
import type { FeatureMatrix } from './features.js';
import { HeadRunner, fitHead, lossAndTop1, type EpochStats, type HeadConfig, type Matrix, type StepSample } from './head.js';
import { LinearRunner, fitProbe, linearWeights, probeFeatures, type ProbeChoice } from './probe.js';
import { evaluate, fitTemperature, topConfidences, type SplitMetrics } from './metrics.js';

export const TrainOptionsSchema = z.object({
  dataset: z.string().min(1),
  datasetVersion: z.number().int().positive().optional(),
  backbone: z.string().min(1),
  /** registered model name; default: the dataset name */
  name: z.string().optional(),
  lr: z.number().positive().max(10).default(1e-3),
  batchSize: z.number().int().min(1).max(65536).default(64),
  epochs: z.number().int().min(1).max(10000).default(30),
  weightDecay: z.number().min(0).max(1).default(1e-4),
  labelSmoothing: z.number().min(0).max(0.99).default(0.1),
  /** auto: logistic regression fitted to convergence or the nearest-centroid prototype head, chosen by validation; minibatch: the SGD-trained softmax regression (what lr/batch size tune) */
  head: z.enum(['auto', 'linear', 'mlp', 'prototype', 'minibatch']).default('auto'),
  /** fixed L2 penalty of the logistic regression (auto, linear) instead of a search */
  l2: z.number().positive().max(100).optional(),
  /** test-time augmentation baked into the exported graph */
  tta: z.enum(['none', 'flip']).default('none'),
  hidden: z.number().int().min(1).max(16384).default(512),
  dropout: z.number().min(0).max(0.95).default(0.2),
  optimizer: z.enum(['adamw', 'sgd']).default('adamw'),
  patience: z.number().int().min(1).default(5),
  /** augmentation views per training image, on top of the centre crop */
  augment: z.number().int().min(0).max(32).default(0),
  device: z.enum(DEVICES).default('cpu'),
  /** the backbone's arithmetic on a GPU: auto (fp16 where measured faster), fp32 or fp16 */
  precision: z.enum(PRECISIONS).default('auto'),
  seed: z.number().int().min(0).default(0),
  /** workers that share feature extraction; 1 = this process */
  instances: z.number().int().min(1).max(1024).optional(),
  /** redis:// URL of a BullMQ queue served by `kennel worker` processes */
  queue: z.string().min(1).optional(),
  /** extra lineage for the model card, e.g. the tuning job that chose these hyperparameters */
  lineage: z.record(z.string(), z.unknown()).optional(),
  /** train and register even when an identical training registered a version already */
  newVersion: z.boolean().optional(),
});
export type TrainOptions = z.input<typeof TrainOptionsSchema>;
type Resolved = z.output<typeof TrainOptionsSchema>;

export interface TrainResult {
  job: string;
  model: string;
  /** class names, index = label */
  labels: string[];
  metrics: { train: { top1: number; loss: number }; valid: SplitMetrics; test: SplitMetrics };
  temperature: number;
  /** the head that was fitted and how it was chosen (linear probe), or the minibatch head's kind */
  head: HeadSummary;
  history: EpochStats[];
  bestEpoch: number;
  seconds: number;
  timings: { features: number; head: number; evaluate: number; export: number };
  /** artifact sha256 of the job's telemetry (see src/insights) */
  telemetry?: string;
  /** insight rules, run at the end of the job */
  rules?: RuleResult[];
  /** set instead of rules when the workspace's rules.json is invalid */
  rulesError?: string;
  features: { chunks: number; cachedChunks: number; extractedImages: number; backend: string; workers: WorkerThroughput[] };
  /** set when an identical earlier training's version was returned instead of training again */
  reused?: boolean;
}

/** The chosen head for the JSON output and model card: e.g. {kind: 'logistic', l2: 0.01, selectedBy: 'cv-5'}. */
export type HeadSummary =
  | ({ kind: 'logistic' | 'prototype' } & Omit<ProbeChoice, 'kind' | 'trace'>)
  | { kind: 'mlp' | 'minibatch'; selectedBy: 'forced' };

/** Rows of several matrices (the training views) stacked into one. */
export function concatRows(ms: FeatureMatrix[]): { data: Float32Array; rows: number; cols: number; labels: Int32Array } {
  // one view (no augmentation): the heads only read their features, so no copy of tens of MB
  if (ms.length === 1) return ms[0]!;
  const rows = ms.reduce((n, m) => n + m.rows, 0);
  const cols = ms[0]!.cols;
  const data = new Float32Array(rows * cols);
  const labels = new Int32Array(rows);
  let r = 0;
  for (const m of ms) {
    data.set(m.data, r * cols);
    labels.set(m.labels, r);
    r += m.rows;
  }
  return { data, rows, cols, labels };
}

export interface TrainHooks {
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** record telemetry and run the insight rules (default true; off only to measure their overhead) */
  telemetry?: boolean;
  /** called with the job id once the job is recorded (before any work), e.g. to follow it from elsewhere */
  onJob?: (job: string) => void;
}

/**
 * A training job: cached backbone features, a new head fitted with early stopping, evaluation
 * with calibration, export to one ONNX graph, and registration as a model version.
 */
export async function train(ws: Workspace, options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const parsed = TrainOptionsSchema.safeParse(options);
  if (!parsed.success) throw Errors.InvalidRequest(`Invalid training option: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}.`, 'See kennel train --help for allowed values.');
  const o: Resolved = parsed.data;
  const name = o.name ?? o.dataset;
  checkModelName(name);
  const ds = await getDatasetVersion(ws, o.dataset, o.datasetVersion);
  const backbone = getBackbone(ws, o.backbone);
  for (const split of ['train', 'valid'] as const) {
    if (!ds.items.some((i) => i.split === split)) throw Errors.InvalidRequest(`Dataset ${ds.dataset}@${ds.version} has no ${split} images.`, 'Add images to its smallest classes (each needs at least 2), or re-import it with larger valid and test fractions (e.g. --split 0.6,0.2,0.2).');
  }
  if (!o.newVersion) {
    const same = identicalTraining(ws, { ...o, name, datasetVersion: ds.version }, { manifestSha: ds.manifestSha, backboneSha: backbone.modelSha });
    if (same) return { ...(same.job.result as TrainResult), reused: true };
  }
  const job = createJob(ws, 'train', { ...o, name, datasetVersion: ds.version });
  hooks.onJob?.(job.id);
  const started = performance.now();
  const recorder = hooks.telemetry === false ? undefined : new TelemetryRecorder({ job: job.id, kind: 'train', device: o.device });
  try {
    const result = await runTraining(ws, { jobId: job.id, options: o, name, dataset: ds, backbone, hooks, recorder, started });
    if (recorder) {
      const dataset = { name: ds.dataset, version: ds.version, classes: ds.classes, report: ds.report };
      Object.assign(result, await saveJobInsights(ws, recorder, { epochs: result.history, dataset, metrics: result.metrics, temperature: result.temperature, bestEpoch: result.bestEpoch }));
    }
    finishJob(ws, job.id, 'completed', { result });
    return result;
  } catch (e) {
    recorder?.finish();
    finishJob(ws, job.id, e instanceof CancelledError ? 'cancelled' : 'failed', { error: errorMessage(e) });
    throw e;
  }
}

/** One training run of a job: what runTraining needs besides the workspace. */
interface TrainingRun {
  jobId: string;
  options: Resolved;
  /** the model name to register */
  name: string;
  dataset: DatasetVersion;
  backbone: Backbone;
  hooks: TrainHooks;
  recorder?: TelemetryRecorder;
  /** performance.now() when the job started: the result's seconds count from it */
  started: number;
}

async function runTraining(ws: Workspace, run: TrainingRun): Promise<TrainResult> {
  const { jobId, options: o, name, dataset: ds, backbone, hooks, recorder } = run;
  // the recorder sees each extraction batch finish through the progress events
  const progress = recorder ? recorder.observeProgress(hooks.progress) : hooks.progress;
  let t = performance.now();
  const lap = (phase: string, images?: number) => {
    const now = performance.now();
    recorder?.phase(phase, t, now, images);
    const s = (now - t) / 1000;
    t = now;
    return s;
  };
  const feats = await datasetFeatures(ws, ds, backbone, { augment: o.augment, seed: o.seed, device: o.device, precision: o.precision, instances: o.instances, queue: o.queue, progress, signal: hooks.signal });
  const featureSeconds = lap('features', feats.extractedImages);
  recorder?.workers(feats.workers);

  const classes = ds.classes.length;
  const head = await fitChosenHead(o, concatRows(feats.train), feats.valid, classes, { progress, signal: hooks.signal });
  const headSeconds = lap('head', head.rows);
  recorder?.headSteps(head.steps);
  recorder?.epochs(head.history);

  let testLogits: Float32Array;
  let trainLogits: Float32Array;
  try {
    testLogits = await head.logits(feats.test);
    // the training views' rows start with the centre crops' (concatRows)
    trainLogits = head.trainLogits?.subarray(0, feats.train[0]!.rows * classes) ?? (await head.logits(feats.train[0]!));
  } finally {
    await head.close();
  }
  const temperature = fitTemperature(head.validLogits, feats.valid.labels, classes);
  const valid = evaluate(head.validLogits, feats.valid.labels, classes, temperature);
  const test = evaluate(testLogits, feats.test.labels, classes, temperature);
  const trainEval = evaluate(trainLogits, feats.train[0]!.labels, classes, temperature);
  const evaluateSeconds = lap('evaluate');

  const onnx = buildServingModel(await ws.artifacts.get(backbone.extractorSha), head.serving, temperature, { tta: o.tta, layout: backbone.spec.preprocess.layout });
  // the held-out images' calibrated confidence: what drift checks compare production's with
  const heldOutConfidence = confidenceQuantiles([...topConfidences(head.validLogits, classes, temperature), ...topConfidences(testLogits, classes, temperature)]);
  const card = await modelCard(run, { temperature, metrics: { train: { top1: trainEval.top1, loss: trainEval.loss }, valid, test, head: head.summary, bestEpoch: head.bestEpoch, history: head.history, heldOutConfidence } });
  const mv = await registerModel(ws, name, onnx, card);
  const exportSeconds = lap('export');
  return {
    job: jobId,
    model: `${mv.name}@${mv.version}`,
    labels: ds.classes,
    metrics: { train: { top1: trainEval.top1, loss: trainEval.loss }, valid, test },
    temperature,
    head: head.summary,
    history: head.history,
    bestEpoch: head.bestEpoch,
    seconds: (performance.now() - run.started) / 1000,
    timings: { features: featureSeconds, head: headSeconds, evaluate: evaluateSeconds, export: exportSeconds },
    features: { chunks: [...feats.train, feats.valid, feats.test].reduce((n, m) => n + m.chunks, 0), cachedChunks: [...feats.train, feats.valid, feats.test].reduce((n, m) => n + m.cachedChunks, 0), extractedImages: feats.extractedImages, backend: feats.backend, workers: feats.workers },
  };
}

/** The registered version's card: labels, preprocessing, metrics and lineage (with the resolved hyperparameters). */
async function modelCard(run: TrainingRun, fitted: { temperature: number; metrics: ModelCard['metrics'] }): Promise<ModelCard> {
  const { jobId, options: o, dataset: ds, backbone } = run;
  const minibatch = { lr: o.lr, batchSize: o.batchSize, epochs: o.epochs, weightDecay: o.weightDecay, labelSmoothing: o.labelSmoothing, hidden: o.hidden, dropout: o.dropout, optimizer: o.optimizer, patience: o.patience };
  const hyper = { head: o.head, tta: o.tta, augment: o.augment, seed: o.seed, ...(o.l2 !== undefined ? { l2: o.l2 } : {}), ...(isMinibatch(o.head) ? minibatch : {}) };
  return {
    labels: ds.classes,
    preprocess: backbone.spec.preprocess,
    inputName: backbone.spec.inputName,
    outputName: PROBABILITIES_OUTPUT,
    temperature: fitted.temperature,
    source: 'kennel',
    metrics: fitted.metrics,
    lineage: {
      ...o.lineage,
      job: jobId,
      dataset: { name: ds.dataset, version: ds.version, manifestSha: ds.manifestSha },
      backbone: { id: backbone.id, modelSha: backbone.modelSha, featureTensor: backbone.spec.featureTensor },
      hyperparameters: hyper,
      codeVersion: await codeVersion(),
    },
  };
}

const isMinibatch = (head: Resolved['head']): head is 'mlp' | 'minibatch' => head === 'mlp' || head === 'minibatch';

interface FittedHead {
  serving: ServingHead;
  summary: HeadSummary;
  /** logits of raw backbone features, until close() */
  logits: (m: Matrix) => Promise<Float32Array>;
  close: () => Promise<void>;
  /** held-out logits of the valid rows (out-of-fold when cross-validated) */
  validLogits: Float32Array;
  /** logits of the training rows (every view), where the fit computed them */
  trainLogits?: Float32Array;
  history: EpochStats[];
  bestEpoch: number;
  steps: StepSample[];
  /** rows the fit processed, for telemetry */
  rows: number;
}

/**
 * The head: the linear probe (auto, linear, prototype), fitted to convergence with its penalty
 * chosen by validation, or the minibatch trainer (mlp, minibatch) on standardised features.
 */
async function fitChosenHead(o: Resolved, train: Matrix & { labels: Int32Array }, valid: Matrix & { labels: Int32Array }, classes: number, hooks: { progress?: ProgressSink; signal?: AbortSignal }): Promise<FittedHead> {
  const started = performance.now();
  if (isMinibatch(o.head)) {
    const st = standardizer(train);
    const std = (m: Matrix) => ({ data: applyStandardizer(m, st), rows: m.rows, cols: m.cols });
    const cfg: HeadConfig = { kind: o.head === 'mlp' ? 'mlp' : 'linear', hidden: o.hidden, dropout: o.dropout, optimizer: o.optimizer, lr: o.lr, batchSize: o.batchSize, epochs: o.epochs, weightDecay: o.weightDecay, labelSmoothing: o.labelSmoothing, patience: o.patience, seed: o.seed };
    const fit = await fitHead({ train: std(train), trainLabels: train.labels, valid: std(valid), validLabels: valid.labels, classes }, cfg, {
      signal: hooks.signal,
      onEpoch: (s) => hooks.progress?.({ phase: 'train head', done: s.epoch, total: o.epochs, detail: `loss ${s.trainLoss.toFixed(3)} valid top1 ${(s.validTop1 * 100).toFixed(1)}%` }),
    });
    if (fit.stoppedEarly) hooks.progress?.({ phase: 'train head', done: o.epochs, total: o.epochs, detail: `early stop at epoch ${fit.history.length}, best ${fit.bestEpoch}` });
    const runner = await HeadRunner.create(fit.weights);
    return {
      serving: { weights: fit.weights, standardizer: st },
      summary: { kind: o.head, selectedBy: 'forced' },
      logits: (m) => runner.logits(fit.weights, std(m)),
      close: () => runner.close(),
      validLogits: await runner.logits(fit.weights, std(valid)),
      history: fit.history,
      bestEpoch: fit.bestEpoch,
      steps: fit.steps,
      rows: fit.steps.reduce((n, s) => n + s.rows, 0),
    };
  }
  const kind = o.head === 'linear' ? 'logistic' : o.head === 'prototype' ? 'prototype' : 'auto';
  const fit = await fitProbe(train, train.labels, valid, valid.labels, classes, {
    kind,
    l2: o.l2,
    seed: o.seed,
    signal: hooks.signal,
    onProgress: (done, total, detail) => hooks.progress?.({ phase: 'train head', done, total, detail }),
  });
  const { trace, ...choice } = fit.choice;
  const runner = await LinearRunner.create(fit.probe.dim, classes);
  const logits = async (m: Matrix) => runner.logits(fit.probe, probeFeatures(fit.probe, m));
  const { trainLogits } = fit;
  const validEval = lossAndTop1(fit.validLogits, valid.labels, classes);
  const trainEval = lossAndTop1(trainLogits, train.labels, classes);
  const seconds = (performance.now() - started) / 1000;
  const last = trace.at(-1);
  // no epochs: one history row for the converged fit (insights reads the same shape)
  const history: EpochStats[] = [{ epoch: 1, lr: 0, trainLoss: trainEval.loss, trainTop1: trainEval.top1, validLoss: validEval.loss, validTop1: validEval.top1, gradNorm: last?.gradNorm ?? 0, seconds }];
  return {
    serving: { weights: linearWeights(fit.probe.dim, classes, fit.probe), standardizer: { mean: fit.probe.mean, std: fit.probe.scale }, centredL2: fit.probe.centre },
    summary: choice,
    logits,
    close: () => runner.close(),
    validLogits: fit.validLogits,
    trainLogits,
    history,
    bestEpoch: 1,
    steps: fit.steps,
    rows: fit.steps.reduce((n, s) => n + s.rows, 0),
  };
}

let cachedVersion: string | undefined;
/** Package version plus the git commit when running from a checkout; lineage only, so never fatal. */
async function codeVersion(): Promise<string> {
  if (cachedVersion) return cachedVersion;
  const { readFileSync } = await import('node:fs');
  const root = new URL('../../', import.meta.url);
  const read = (path: string) => {
    try {
      return readFileSync(new URL(path, root), 'utf8').trim();
    } catch {
      return '';
    }
  };
  const version = (JSON.parse(read('package.json') || '{}') as { version?: string }).version ?? 'unknown';
  const head = read('.git/HEAD');
  const commit = head.startsWith('ref: ') ? read(`.git/${head.slice(5)}`) : head;
  cachedVersion = commit ? `${version}+${commit.slice(0, 12)}` : version;
  return cachedVersion;
}

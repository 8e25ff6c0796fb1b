import { z } from 'zod';
import { getBackbone } from '../backbones/index.js';
import { CancelledError, errorMessage, notFound, type ProgressSink, Errors } from '../core/index.js';
import { getDatasetVersion, type DatasetVersion } from '../data/index.js';
import { DEVICES } from '../inference/index.js';
import { TelemetryRecorder, saveJobInsights, type RuleResult } from '../insights/index.js';
import { checkModelName } from '../registry/index.js';
import { createJob, finishJob, getJob, listJobs, type Job, type Workspace } from '../store/index.js';
import { TrainOptionsSchema, applyStandardizer, concatRows, datasetFeatures, standardizer, train, type DatasetFeatures, type HeadConfig } from '../training/index.js';
import { PoisonedTaskError, createEngine, type Engine, type Task, type TaskEvent } from '../workers/index.js';
import { hyperparameterSpace, trainOptionsFor } from './hyperparameters.js';
import { paramImportance, type ParamImportance } from './importance.js';
import { inDomain, makeSpace, type ParamSpec, type ParamValue, type Params, type SearchSpace } from './space.js';
import { FINISHED, liveSession, listTrials, markRunning, queueTrials, recordOutcome, requeueRunning, sessionCount, startSession, type TrialRecord, type TrialStatus } from './store.js';
import { EARLY_STOPPING, stoppingPlan, type EarlyStopping, type FinishedCurve } from './stopping.js';
import { STRATEGIES, createStrategy, gridSize, type Direction, type Observation, type StrategyName } from './strategy.js';
import { TUNING_TASKS, type TrainTrialInput } from './tasks.js';
import { OBJECTIVES, encodeTrialData, naturalDirection, type Objective, type TrialOutcome } from './trial.js';

export const TuneOptionsSchema = z.object({
  dataset: z.string().min(1),
  datasetVersion: z.number().int().positive().optional(),
  backbone: z.string().min(1),
  /** the searched hyperparameters; default: DEFAULT_SPACE */
  space: z.array(z.custom<ParamSpec>()).optional(),
  strategy: z.enum(STRATEGIES).default('bayesian'),
  maxTrials: z.number().int().min(1).max(10000).default(20),
  /** trials at a time: local worker processes, or tasks in flight with a queue */
  maxParallel: z.number().int().min(1).max(1024).default(1),
  objective: z.enum(OBJECTIVES).default('valid.top1'),
  direction: z.enum(['max', 'min']).optional(),
  earlyStopping: z.enum(EARLY_STOPPING).default('none'),
  seed: z.number().int().min(0).default(0),
  /** train the best configuration and register it under this model name */
  register: z.string().optional(),
  /** warm start: an earlier tuning job whose trials seed this one */
  from: z.string().optional(),
  /** training options every trial shares */
  optimizer: z.enum(['adamw', 'sgd']).default('adamw'),
  patience: z.number().int().min(1).default(5),
  device: z.enum(DEVICES).default('cpu'),
  queue: z.string().min(1).optional(),
});
export type TuneOptions = z.input<typeof TuneOptionsSchema>;

/** A finished trial of an earlier job, kept in a warm-started job's params. */
interface PriorTrial {
  job: string;
  id: number;
  params: Params;
  objective: number | null;
  curve: Array<number | null>;
  status: TrialStatus;
}

/** What a tuning job stores as its params: everything needed to resume it the same way. */
interface TuneParams extends Omit<z.output<typeof TuneOptionsSchema>, 'datasetVersion' | 'direction' | 'space'> {
  datasetVersion: number;
  direction: Direction;
  space: SearchSpace;
  warmStart: PriorTrial[];
}

export interface TrialSummary {
  id: number;
  /** the same number, under the name the insights report reads */
  trial: number;
  params: Params;
  objective: number | null;
  status: TrialStatus;
  epochs: number | null;
  seconds: number | null;
  bestEpoch: number | null;
  error?: string;
}

export interface TuneSummary {
  job: string;
  status: string;
  dataset: string;
  datasetVersion: number;
  backbone: string;
  strategy: StrategyName;
  earlyStopping: EarlyStopping;
  maxTrials: number;
  maxParallel: number;
  seed: number;
  /** name and direction as the insights report reads them */
  objective: { name: Objective; direction: 'maximize' | 'minimize' };
  trials: TrialSummary[];
  best: { id: number; params: Params; objective: number; status: TrialStatus } | null;
  importance: ParamImportance[];
  counts: Record<TrialStatus, number>;
  /** registered model version, when --register was given and the job completed */
  model: string | null;
  from?: string;
  warmStartTrials: number;
  /** coordinator sessions: 1 plus the number of resumes */
  sessions: number;
  createdAt: string;
  error?: string;
}

export interface TuneResult extends TuneSummary {
  /** wall time of the session that finished the job */
  seconds: number;
  timings: { features: number; trials: number; register: number };
  features: { extractedImages: number; backend: string };
  /** the training job that registered the best configuration */
  registerJob?: string;
  telemetry?: string;
  rules?: RuleResult[];
  rulesError?: string;
}

export interface TuneHooks {
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** called with the job id once the job is recorded (before any work), e.g. to say how to resume it */
  onJob?: (job: string) => void;
}

function tuneJob(ws: Workspace, id: string): Job<TuneParams, TuneResult> {
  const job = getJob(ws, id);
  if (!job || job.kind !== 'tune') throw notFound(`Tuning job ${id}`, 'List tuning jobs with kennel tune list.');
  return job as Job<TuneParams, TuneResult>;
}

/** Finished trials of an earlier job that fit this space and objective: the warm start. */
function warmStartFrom(ws: Workspace, from: string, p: Omit<TuneParams, 'warmStart'>): PriorTrial[] {
  const src = tuneJob(ws, from);
  const sp = src.params;
  if (sp.objective !== p.objective) throw Errors.InvalidRequest(`Job ${from} optimised ${sp.objective}, not ${p.objective}, so its results cannot seed this job.`, `Use --objective ${sp.objective}, or start without --from.`);
  if (sp.dataset !== p.dataset || sp.backbone !== p.backbone) throw Errors.InvalidRequest(`Job ${from} tuned ${sp.dataset} with ${sp.backbone}; its objective values do not carry over to ${p.dataset} with ${p.backbone}.`, 'Warm-start from a job on the same dataset and backbone.');
  return listTrials(ws, from)
    .filter((t) => FINISHED.includes(t.status) && p.space.params.every((q) => inDomain(q, t.params[q.name])))
    .map((t) => ({ job: from, id: t.id, params: Object.fromEntries(p.space.params.map((q) => [q.name, t.params[q.name]!])), objective: t.objective, curve: t.curve, status: t.status }));
}

/**
 * Starts a tuning job: checks the options, records the job, then runs it (runJob). Trials are
 * recorded as they are suggested and finished, so `resumeTune` can continue a killed job.
 */
export async function tune(ws: Workspace, options: TuneOptions, hooks: TuneHooks = {}): Promise<TuneResult> {
  const parsed = TuneOptionsSchema.safeParse(options);
  if (!parsed.success) throw Errors.InvalidRequest(`Invalid tuning option: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}.`, 'See kennel tune --help for allowed values.');
  const o = parsed.data;
  const direction = naturalDirection(o.objective);
  if (o.direction && o.direction !== direction) throw Errors.InvalidRequest(`${o.objective} is ${direction === 'max' ? 'maximised' : 'minimised'}; --direction ${o.direction} would pick the worst trial.`, `Leave out --direction, or give --direction ${direction}.`);
  if (o.register) checkModelName(o.register);
  const ds = await getDatasetVersion(ws, o.dataset, o.datasetVersion);
  getBackbone(ws, o.backbone);
  for (const split of ['train', 'valid'] as const) {
    if (!ds.items.some((i) => i.split === split)) throw Errors.InvalidRequest(`Dataset ${ds.dataset}@${ds.version} has no ${split} images.`, 'Re-import it with a split that gives every part images (e.g. --split 0.8,0.1,0.1).');
  }
  const space = makeSpace(hyperparameterSpace(o.space ?? []));
  const base = { ...o, datasetVersion: ds.version, direction, space };
  const params: TuneParams = { ...base, warmStart: o.from ? warmStartFrom(ws, o.from, base) : [] };
  const job = createJob(ws, 'tune', params);
  return runJob(ws, job.id, hooks);
}

/**
 * Continues a tuning job that was killed or cancelled: finished trials are kept, running ones
 * run again from the start with their recorded params, and the suggestions that follow are
 * the ones the uninterrupted job would have made. A completed job returns its result.
 */
export async function resumeTune(ws: Workspace, id: string, opts: { queue?: string } = {}, hooks: TuneHooks = {}): Promise<TuneResult> {
  const job = tuneJob(ws, id);
  if (job.status === 'completed' && job.result) return job.result;
  const live = liveSession(ws, id);
  if (live) throw Errors.Conflict(`Tuning job ${id} is still running (process ${live.pid}).`, 'Wait for it, or stop that process first (Ctrl-C keeps finished trials).');
  return runJob(ws, id, hooks, opts.queue);
}

/** A trial's training options and head configuration, exactly as `train()` would resolve them. */
function trialSetup(p: TuneParams, params: Params): { augment: number; head: HeadConfig } {
  const o = TrainOptionsSchema.parse({ dataset: p.dataset, backbone: p.backbone, optimizer: p.optimizer, patience: p.patience, seed: p.seed, ...trainOptionsFor(params) });
  return { augment: o.augment, head: { kind: o.head === 'mlp' ? 'mlp' : 'linear', hidden: o.hidden, dropout: o.dropout, optimizer: o.optimizer, lr: o.lr, batchSize: o.batchSize, epochs: o.epochs, weightDecay: o.weightDecay, labelSmoothing: o.labelSmoothing, patience: o.patience, seed: o.seed } };
}

/** The largest augmentation any trial can ask for: one feature pass computes every view up to it. */
function maxAugment(space: SearchSpace): number {
  const p = space.params.find((q) => q.name === 'augment');
  if (!p) return TrainOptionsSchema.shape.augment.parse(undefined);
  return p.type === 'choice' ? Math.max(...p.values.map(Number)) : p.high;
}

/** Standardised features per augmentation value, stored as artifacts on first use. */
class TrialDataCache {
  private readonly shas = new Map<number, Promise<string>>();
  constructor(
    private readonly ws: Workspace,
    private readonly feats: DatasetFeatures,
  ) {}
  sha(augment: number): Promise<string> {
    let p = this.shas.get(augment);
    if (!p) {
      p = (async () => {
        const train = concatRows(this.feats.train.slice(0, augment + 1));
        const st = standardizer(train);
        const valid = this.feats.valid;
        return this.ws.artifacts.put(encodeTrialData({ cols: train.cols, trainX: applyStandardizer(train, st), trainY: train.labels, validX: applyStandardizer(valid, st), validY: valid.labels }));
      })();
      this.shas.set(augment, p);
    }
    return p;
  }
}

const isBetter = (direction: Direction, a: number, b: number) => (direction === 'max' ? a > b : a < b);

/** The best trial: completed ones first (a stopped trial only trained part of its budget). */
function bestTrial(trials: TrialRecord[], direction: Direction): TrialRecord | undefined {
  for (const status of ['completed', 'stopped'] as const) {
    let best: TrialRecord | undefined;
    for (const t of trials) if (t.status === status && t.objective !== null && (!best || isBetter(direction, t.objective, best.objective!))) best = t;
    if (best) return best;
  }
  return undefined;
}

function summarize(ws: Workspace, job: Job<TuneParams, TuneResult>): TuneSummary {
  const p = job.params;
  const trials = listTrials(ws, job.id);
  const best = bestTrial(trials, p.direction);
  const counts = { queued: 0, running: 0, completed: 0, stopped: 0, failed: 0 } as Record<TrialStatus, number>;
  for (const t of trials) counts[t.status]++;
  return {
    job: job.id,
    status: job.status,
    dataset: p.dataset,
    datasetVersion: p.datasetVersion,
    backbone: p.backbone,
    strategy: p.strategy,
    earlyStopping: p.earlyStopping,
    maxTrials: p.maxTrials,
    maxParallel: p.maxParallel,
    seed: p.seed,
    objective: { name: p.objective, direction: p.direction === 'max' ? 'maximize' : 'minimize' },
    trials: trials.map((t) => ({ id: t.id, trial: t.id, params: t.params, objective: t.objective, status: t.status, epochs: t.epochs, seconds: t.seconds, bestEpoch: t.bestEpoch, ...(t.error ? { error: t.error } : {}) })),
    best: best ? { id: best.id, params: best.params, objective: best.objective!, status: best.status } : null,
    importance: paramImportance(p.space, trials.filter((t) => t.status === 'completed' && t.objective !== null).map((t) => ({ params: t.params, objective: t.objective! })), p.direction),
    counts,
    model: job.result?.model ?? null,
    ...(p.from ? { from: p.from } : {}),
    warmStartTrials: p.warmStart.length,
    sessions: sessionCount(ws, job.id),
    createdAt: job.createdAt,
    ...(job.error ? { error: job.error } : {}),
  };
}

export function showTune(ws: Workspace, id: string): TuneSummary {
  return summarize(ws, tuneJob(ws, id));
}

/** Tuning jobs, oldest first. */
export function listTunes(ws: Workspace): TuneSummary[] {
  return listJobs(ws, 'tune').map((j) => summarize(ws, j as Job<TuneParams, TuneResult>));
}

/** The model a completed training for this job registered (a crash after registering must not register twice). */
function registeredBy(ws: Workspace, jobId: string): { job: string; model: string } | undefined {
  const t = listJobs(ws, 'train').find((j) => j.status === 'completed' && (j.params as { lineage?: { tuningJob?: string } }).lineage?.tuningJob === jobId);
  const model = (t?.result as { model?: string } | undefined)?.model;
  return t && model ? { job: t.id, model } : undefined;
}

/** Runs (or continues) a recorded tuning job to the end. */
async function runJob(ws: Workspace, id: string, hooks: TuneHooks, queue?: string): Promise<TuneResult> {
  const job = tuneJob(ws, id);
  hooks.onJob?.(id);
  // where trials run is not part of the job: a resume may move them onto a queue
  const p: TuneParams = { ...job.params, queue: queue ?? job.params.queue };
  const started = performance.now();
  startSession(ws, id);
  requeueRunning(ws, id);
  if (job.status !== 'running') finishJob(ws, id, 'running', {});
  const recorder = new TelemetryRecorder({ job: id, kind: 'tune', device: p.device });
  const progress = recorder.observeProgress(hooks.progress);
  let engine: Engine | undefined;
  try {
    const ds = await getDatasetVersion(ws, p.dataset, p.datasetVersion);
    const backbone = getBackbone(ws, p.backbone);
    let t = performance.now();
    const feats = await datasetFeatures(ws, ds, backbone, { augment: maxAugment(p.space), seed: p.seed, device: p.device, instances: p.maxParallel, queue: p.queue, progress, signal: hooks.signal });
    recorder.phase('features', t, performance.now(), feats.extractedImages);
    recorder.workers(feats.workers);
    const featureSeconds = (performance.now() - t) / 1000;

    t = performance.now();
    engine = await createEngine({ instances: p.maxParallel, queue: p.queue, home: ws.home, artifacts: ws.artifacts, taskModules: [TUNING_TASKS()], device: 'cpu' });
    await engine.start();
    await runTrials(ws, id, p, ds, new TrialDataCache(ws, feats), engine, recorder, progress, hooks.signal);
    const trialSeconds = (performance.now() - t) / 1000;

    t = performance.now();
    const summary = summarize(ws, tuneJob(ws, id));
    let registered: { job: string; model: string } | undefined;
    if (p.register && summary.best) {
      registered = registeredBy(ws, id);
      if (!registered) {
        const r = await train(
          ws,
          { dataset: p.dataset, datasetVersion: p.datasetVersion, backbone: p.backbone, name: p.register, optimizer: p.optimizer, patience: p.patience, seed: p.seed, device: p.device, instances: p.maxParallel, queue: p.queue, ...trainOptionsFor(summary.best.params), lineage: { tuningJob: id, trial: summary.best.id } },
          { progress: hooks.progress, signal: hooks.signal },
        );
        registered = { job: r.job, model: r.model };
      }
    }
    const registerSeconds = (performance.now() - t) / 1000;
    const insights = await saveJobInsights(ws, recorder, { dataset: { name: ds.dataset, version: ds.version, classes: ds.classes, report: ds.report } });
    const result: TuneResult = {
      ...summary,
      status: 'completed',
      model: registered?.model ?? null,
      seconds: (performance.now() - started) / 1000,
      timings: { features: featureSeconds, trials: trialSeconds, register: registerSeconds },
      features: { extractedImages: feats.extractedImages, backend: feats.backend },
      ...(registered ? { registerJob: registered.job } : {}),
      ...insights,
    };
    finishJob(ws, id, 'completed', { result });
    return result;
  } catch (e) {
    recorder.finish();
    requeueRunning(ws, id);
    finishJob(ws, id, e instanceof CancelledError ? 'cancelled' : 'failed', { error: errorMessage(e) });
    throw e;
  } finally {
    await engine?.close();
  }
}

/**
 * The trial loop. Trials are suggested in rounds of maxParallel: a round is written to the
 * database, then run; the next round is suggested once every trial of this one has finished.
 * Suggestions and early-stopping plans therefore depend only on earlier rounds (never on
 * which trial of a round happened to finish first), which makes a job deterministic for its
 * seed and parallelism, and lets a resumed job continue exactly where it stopped.
 */
async function runTrials(ws: Workspace, id: string, p: TuneParams, ds: DatasetVersion, data: TrialDataCache, engine: Engine, recorder: TelemetryRecorder, progress: ProgressSink, signal?: AbortSignal): Promise<void> {
  const strategyOptions = { space: p.space, direction: p.direction, seed: p.seed };
  const strategy = createStrategy(p.strategy, strategyOptions);
  const bar = new TrialProgress(p.direction, p.strategy === 'grid' ? Math.min(p.maxTrials, gridSize(strategyOptions)) : p.maxTrials, progress);
  for (;;) {
    const trials = listTrials(ws, id);
    const waiting = trials.filter((t) => t.status === 'queued');
    if (!waiting.length) {
      if (trials.length >= p.maxTrials) return;
      const round = roundOf(trials.length + 1, p.maxParallel);
      const history = observations(p, trials, round);
      const next: Array<{ id: number; params: Params }> = [];
      for (let k = 0; k < p.maxParallel && trials.length + next.length < p.maxTrials; k++) {
        const params = strategy.suggest({ trial: trials.length + next.length + 1, history, pending: next.map((n) => n.params) });
        if (!params) break;
        next.push({ id: trials.length + next.length + 1, params });
      }
      if (!next.length) return;
      queueTrials(ws, id, next);
      continue;
    }
    const round = roundOf(waiting[0]!.id, p.maxParallel);
    const earlier = finishedCurves(p, trials, round);
    const tasks: Array<Task<TrainTrialInput>> = [];
    for (const t of waiting) {
      const setup = trialSetup(p, t.params);
      tasks.push({
        id: `trial-${t.id}`,
        type: 'train-trial',
        label: `trial ${t.id} (${describeParams(t.params)})`,
        input: {
          data: await data.sha(setup.augment),
          spec: { head: setup.head, classes: ds.classes.length, objective: p.objective, direction: p.direction, stopping: stoppingPlan(p.earlyStopping, earlier, setup.head.epochs, p.direction) },
        },
      });
    }
    bar.round(trials);
    const startedAt = new Map<string, number>();
    const onEvent = (e: TaskEvent) => {
      if (e.type === 'started') {
        startedAt.set(e.task.id, performance.now());
        markRunning(ws, id, [trialIdOf(e.task)]);
      }
      bar.event(e);
    };
    try {
      for await (const done of engine.run(tasks, { signal, onEvent })) {
        const trialId = trialIdOf(done.task);
        const outcome = done.output as TrialOutcome;
        recordOutcome(ws, id, trialId, { ...outcome, seconds: done.seconds });
        recorder.phase(`head trial ${trialId}`, startedAt.get(done.task.id) ?? performance.now() - done.seconds * 1000, performance.now());
        bar.finished(trialId, outcome);
      }
    } catch (e) {
      // a trial that crashed its worker on every attempt fails alone; its round-mates run again
      if (!(e instanceof PoisonedTaskError)) throw e;
      const trialId = trialIdOf(e.task);
      recordOutcome(ws, id, trialId, { status: 'failed', objective: null, epochs: 0, bestEpoch: 0, curve: [], history: [], seconds: 0, error: e.reason });
      requeueRunning(ws, id);
    }
  }
}

const trialIdOf = (task: Task): number => Number(task.id.slice('trial-'.length));

/** Trials are suggested in rounds of `parallel`; this is the first trial id of the round of `trial`. */
const roundOf = (trial: number, parallel: number): number => Math.floor((trial - 1) / parallel) * parallel + 1;

/** What the strategy may learn from before the round starting at `round`: the warm start, then earlier rounds. */
function observations(p: TuneParams, trials: TrialRecord[], round: number): Observation[] {
  return [...p.warmStart, ...trials.filter((t) => t.id < round && FINISHED.includes(t.status))].map((t) => ({ params: t.params, value: t.status === 'failed' ? null : t.objective }));
}

function finishedCurves(p: TuneParams, trials: TrialRecord[], round: number): FinishedCurve[] {
  return [...p.warmStart, ...trials.filter((t) => t.id < round)].filter((t) => t.status === 'completed' || t.status === 'stopped').map((t) => ({ curve: t.curve, completed: t.status === 'completed' }));
}

/** A parameter value for people: numbers to 3 significant digits. */
export const formatValue = (v: ParamValue): string => String(typeof v === 'number' ? Number(v.toPrecision(3)) : v);

export function describeParams(params: Params): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${formatValue(v)}`)
    .join(' ');
}

/** One "trials" progress bar: finished / planned, with the best so far and what is running. */
class TrialProgress {
  private finishedCount = 0;
  private best?: { id: number; objective: number };
  private readonly epochs = new Map<string, number>();

  constructor(
    private readonly direction: Direction,
    private readonly planned: number,
    private readonly sink: ProgressSink,
  ) {}

  round(trials: TrialRecord[]): void {
    this.finishedCount = trials.filter((t) => FINISHED.includes(t.status)).length;
    for (const t of trials) if (t.status !== 'failed' && t.objective !== null && (!this.best || isBetter(this.direction, t.objective, this.best.objective))) this.best = { id: t.id, objective: t.objective };
    this.report();
  }

  event(e: TaskEvent): void {
    if (e.type === 'started') this.epochs.set(e.task.id, 0);
    else if (e.type === 'progress') this.epochs.set(e.task.id, (this.epochs.get(e.task.id) ?? 0) + e.units);
    else return;
    this.report();
  }

  finished(trialId: number, o: TrialOutcome): void {
    this.finishedCount++;
    this.epochs.delete(`trial-${trialId}`);
    if (o.objective !== null && (!this.best || isBetter(this.direction, o.objective, this.best.objective))) this.best = { id: trialId, objective: o.objective };
    this.report();
  }

  private report(): void {
    const running = [...this.epochs.entries()].map(([task, epoch]) => `${task.replace('trial-', '#')} epoch ${epoch}`);
    const best = this.best ? `best ${this.best.objective.toFixed(4)} (#${this.best.id})` : '';
    this.sink({ phase: 'trials', done: this.finishedCount, total: this.planned, detail: [best, ...running].filter(Boolean).join('; ') });
  }
}

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errors, KennelError, errorMessage, notFound } from '../core/index.js';
import { getDatasetVersion, type DatasetVersion } from '../data/index.js';
import { findJobs, getJob, listJobs, type Job, type Workspace } from '../store/index.js';
import { parseRulesConfig, runRules, type CalibrationMetrics, type JobSettings, type RuleInput, type RuleResult, type RulesConfig } from './rules.js';
import type { JobMeasurement } from './cost.js';
import type { EpochRecord, JobTelemetry, TelemetryRecorder } from './telemetry.js';

/** Job kinds that carry insights. */
export const INSIGHT_KINDS = ['train', 'tune'] as const;

/** The parts of a training (or tuning) job's params and result that insights read. */
export interface InsightJobParams extends JobSettings {
  dataset?: string;
  datasetVersion?: number;
  backbone?: string;
  device?: string;
}

export interface InsightJobResult {
  model?: string;
  metrics?: { valid?: CalibrationMetrics; test?: CalibrationMetrics };
  temperature?: number;
  history?: EpochRecord[];
  bestEpoch?: number;
  seconds?: number;
  timings?: Record<string, number>;
  features?: { extractedImages?: number };
  /** artifact sha256 of the JobTelemetry JSON */
  telemetry?: string;
  rules?: RuleResult[];
  rulesError?: string;
  /** tuning jobs: see docs/INSIGHTS.md */
  trials?: unknown;
  objective?: unknown;
}

export type InsightJob = Job<InsightJobParams, InsightJobResult>;

/**
 * Resolves a job id, or `latest`: the newest completed training job, which is what rules, report
 * and cost can use (a tuning job's best configuration is a training job too once registered).
 */
export function resolveJob(ws: Workspace, ref: string): InsightJob {
  if (ref === 'latest') {
    const [last] = findJobs(ws, { kind: 'train', status: 'completed', newestFirst: true, limit: 1 });
    if (!last) throw notFound('A completed training job', 'Train one first: kennel train --dataset NAME --backbone ID');
    return last as InsightJob;
  }
  const job = getJob(ws, ref);
  if (!job) throw notFound(`Job ${ref}`, 'Use the id that kennel train prints ("job" in --json), or "latest".');
  if (!(INSIGHT_KINDS as readonly string[]).includes(job.kind)) throw Errors.InvalidRequest(`Job ${ref} is a ${job.kind} job; insights cover training and tuning jobs.`, 'Pass the id of a kennel train job, or "latest".');
  return job as InsightJob;
}

export function requireCompleted(job: InsightJob): InsightJobResult {
  if (job.status !== 'completed' || !job.result) throw Errors.Conflict(`Job ${job.id} is ${job.status}${job.error ? ` (${job.error})` : ''}, so it has no results to analyse.`, 'Run the training again to completion, then retry.');
  return job.result;
}

export async function loadTelemetry(ws: Workspace, job: InsightJob): Promise<JobTelemetry | undefined> {
  const sha = job.result?.telemetry;
  if (!sha) return undefined;
  if (!(await ws.artifacts.has(sha))) throw Errors.NotFound(`The telemetry of job ${job.id} is missing from the artifact store.`, 'The workspace was pruned or copied partially; retrain to record it again.');
  return JSON.parse(Buffer.from(await ws.artifacts.get(sha)).toString('utf8')) as JobTelemetry;
}

/** The workspace's rules settings: $KENNEL_HOME/rules.json when present. */
export const workspaceRulesFile = (ws: Workspace): string => join(ws.home, 'rules.json');

/** Rules config from FILE, else the workspace's rules.json, else the defaults. */
export function loadRulesConfig(ws: Workspace, file?: string): RulesConfig {
  const path = file ?? workspaceRulesFile(ws);
  if (!file && !existsSync(path)) return parseRulesConfig({});
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw Errors.InvalidRequest(`The rules config ${path} could not be read: ${errorMessage(e).split('\n')[0]}.`, 'Write a JSON object such as {"Overfit": {"epochs": 4}} (see docs/INSIGHTS.md).');
  }
  return parseRulesConfig(raw, `The rules config ${path}`);
}

async function datasetOf(ws: Workspace, job: InsightJob): Promise<DatasetVersion | undefined> {
  if (!job.params.dataset) return undefined;
  try {
    return await getDatasetVersion(ws, job.params.dataset, job.params.datasetVersion);
  } catch (e) {
    if (e instanceof KennelError && e.status === 404) return undefined;
    throw e;
  }
}

export async function ruleInputForJob(ws: Workspace, job: InsightJob): Promise<RuleInput> {
  const result = requireCompleted(job);
  const ds = await datasetOf(ws, job);
  return {
    telemetry: await loadTelemetry(ws, job),
    epochs: result.history,
    dataset: ds && { name: ds.dataset, version: ds.version, classes: ds.classes, report: ds.report },
    metrics: result.metrics,
    temperature: result.temperature,
    bestEpoch: result.bestEpoch,
    settings: job.params,
  };
}

/** Re-runs the rules on a finished job (kennel rules JOB). */
export async function rulesForJob(ws: Workspace, ref: string, configFile?: string): Promise<{ job: string; rules: RuleResult[] }> {
  const job = resolveJob(ws, ref);
  const config = loadRulesConfig(ws, configFile);
  return { job: job.id, rules: runRules(await ruleInputForJob(ws, job), config) };
}

/**
 * End-of-job hook: stores the telemetry as an artifact and runs the rules with the workspace's
 * settings. A broken rules.json must not fail a finished training, so it is reported instead.
 */
export async function saveJobInsights(ws: Workspace, recorder: TelemetryRecorder, context: Omit<RuleInput, 'telemetry'>): Promise<{ telemetry: string; rules: RuleResult[]; rulesError?: string }> {
  const telemetry = recorder.finish();
  const sha = await ws.artifacts.put(Buffer.from(JSON.stringify(telemetry)));
  // the job's own settings, so advice is relative to them
  const settings = context.settings ?? (getJob(ws, recorder.meta.job)?.params as InsightJobParams | undefined);
  try {
    return { telemetry: sha, rules: runRules({ ...context, settings, telemetry }, loadRulesConfig(ws)) };
  } catch (e) {
    if (!(e instanceof KennelError)) throw e;
    return { telemetry: sha, rules: [], rulesError: `${e.message} ${e.hint ?? ''}`.trim() };
  }
}

type Extraction = NonNullable<JobMeasurement['extraction']>;

/** Backbone throughput a job measured: steady-state batches when recorded, else the whole phase. */
function extractionOf(job: InsightJob, t: JobTelemetry | undefined): Extraction | undefined {
  const steps = t?.steps.filter((s) => s.kind === 'extract') ?? [];
  const stepImages = steps.reduce((n, s) => n + s.images, 0);
  const stepMs = steps.reduce((n, s) => n + s.ms, 0);
  if (stepImages > 0 && stepMs > 0) return { imagesPerSecond: stepImages / (stepMs / 1000), images: stepImages, seconds: stepMs / 1000, fromJob: job.id };
  const phase = t?.phases.find((p) => p.name === 'features');
  const images = phase?.images ?? job.result?.features?.extractedImages ?? 0;
  const seconds = phase ? phase.ms / 1000 : (job.result?.timings?.features ?? 0);
  return images > 0 && seconds > 0 ? { imagesPerSecond: images / seconds, images, seconds, fromJob: job.id } : undefined;
}

/**
 * What a job measured, for the cost model. A job whose features all came from the cache did not
 * run the backbone; the newest other job with the same backbone and device that did is used.
 */
export async function measureJob(ws: Workspace, job: InsightJob): Promise<JobMeasurement & { notes: string[] }> {
  const result = requireCompleted(job);
  const telemetry = await loadTelemetry(ws, job);
  const ds = await datasetOf(ws, job);
  if (!ds) throw Errors.Conflict(`The dataset of job ${job.id} is no longer in the workspace, so the images a fresh run would process are unknown.`, 'Re-import the dataset under the same name, or estimate another job.');
  const notes: string[] = [];
  let extraction = extractionOf(job, telemetry);
  if (!extraction) {
    const candidates = listJobs(ws, 'train')
      .filter((j) => j.id !== job.id && j.status === 'completed' && (j.params as InsightJobParams).backbone === job.params.backbone && (j.params as InsightJobParams).device === job.params.device)
      .reverse() as InsightJob[];
    for (const other of candidates) {
      extraction = extractionOf(other, await loadTelemetry(ws, other).catch(() => undefined));
      if (extraction) break;
    }
    notes.push(extraction ? `This job's features came from the cache; backbone throughput is from job ${extraction.fromJob}.` : `No job measured backbone ${job.params.backbone ?? '?'} (every feature came from the cache); estimates cover head training only.`);
  }
  const device = job.params.device ?? 'cpu';
  if (extraction && (device === 'webgpu' || (device === 'auto' && telemetry?.host.gpus.length))) notes.push(`The backbone ran with --device ${device} here, but the scaling model treats the measured rate as CPU throughput; train once with --device cpu for a sound estimate.`);
  const phaseSeconds = (match: (name: string) => boolean, fallback: number) => (telemetry?.phases.length ? telemetry.phases.filter((p) => match(p.name)).reduce((s, p) => s + p.ms / 1000, 0) : fallback);
  const timings = result.timings ?? {};
  const { train, valid, test } = ds.report.images;
  return {
    job: job.id,
    kind: job.kind,
    extraction,
    coldImages: train * (1 + (job.params.augment ?? 0)) + valid + test,
    headSeconds: phaseSeconds((n) => n.startsWith('head'), timings.head ?? 0),
    otherSeconds: phaseSeconds((n) => n !== 'features' && !n.startsWith('head'), (timings.evaluate ?? 0) + (timings.export ?? 0)),
    seconds: result.seconds ?? telemetry?.seconds ?? 0,
    notes,
  };
}

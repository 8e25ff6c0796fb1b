import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Errors, KennelError, errorMessage, notFound } from '../core/index.js';
import { buildReport, renderReport } from '../insights/index.js';
import { getModel } from '../registry/index.js';
import { callerOf } from '../security/index.js';
import { getJob, recentJobs, type Job } from '../store/index.js';
import { TrainOptionsSchema } from '../training/index.js';
import { TuneOptionsSchema, showTune, type TuneSummary } from '../tuning/index.js';
import type { CompareRun, EpochPoint, JobSummary, KeySettings } from './api-types.js';
import { securityHeaders } from './assets.js';
import { READ, on, onAll, stream, type ConsoleContext, type RouteModule } from './context.js';

/** Jobs shown in the list, newest first. */
const LIST_LIMIT = 200;

// what the console may set: no queue URL or worker counts (those reach other machines), no lineage
const TrainRequest = TrainOptionsSchema.pick({ dataset: true, datasetVersion: true, backbone: true, name: true, lr: true, batchSize: true, epochs: true, head: true, augment: true, seed: true, labelSmoothing: true, weightDecay: true }).strict();
const TuneRequest = TuneOptionsSchema.pick({ dataset: true, datasetVersion: true, backbone: true, strategy: true, maxTrials: true, objective: true, earlyStopping: true, seed: true, register: true }).strict();
const JobRequest = z.discriminatedUnion('kind', [z.object({ kind: z.literal('train'), options: TrainRequest }), z.object({ kind: z.literal('tune'), options: TuneRequest })]);

interface TrainParams extends KeySettings {
  dataset?: string;
  datasetVersion?: number;
  backbone?: string;
  name?: string;
}
interface TrainResultLike {
  model?: string;
  seconds?: number;
  metrics?: { valid?: { top1?: number; top5?: number; loss?: number; ece?: number }; test?: { top1?: number; top5?: number; ece?: number } };
  history?: EpochPoint[];
  bestEpoch?: number;
}

const SETTING_KEYS: Array<keyof KeySettings> = ['head', 'lr', 'batchSize', 'epochs', 'augment', 'weightDecay', 'labelSmoothing', 'optimizer'];
const keySettings = (p: TrainParams): KeySettings => Object.fromEntries(SETTING_KEYS.filter((k) => p[k] !== undefined).map((k) => [k, p[k]]));

/** A tuning job's trials: from its result once it has finished, from the store while it runs. */
const tuningOf = (ctx: ConsoleContext, job: Job): TuneSummary => (job.status === 'completed' && job.result ? (job.result as TuneSummary) : showTune(ctx.ws, job.id));

function tuneCounts(t: TuneSummary): { trials: number; finished: number; best: number | null; objective: string } {
  const finished = t.trials.filter((x) => x.status !== 'queued' && x.status !== 'running').length;
  return { trials: t.maxTrials, finished, best: t.best?.objective ?? null, objective: t.objective.name };
}

/** One row of the jobs table; `tuning`, when the caller has it already, saves reading it again. */
function summary(ctx: ConsoleContext, job: Job, tuning?: TuneSummary): JobSummary {
  const p = job.params as TrainParams;
  const r = job.result as TrainResultLike | undefined;
  const progress = ctx.runner.progress(job.id);
  const tune = job.kind === 'tune' ? (tuning ?? tuningOf(ctx, job)) : undefined;
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    dataset: p.dataset ? `${p.dataset}${p.datasetVersion ? `@${p.datasetVersion}` : ''}` : undefined,
    backbone: p.backbone,
    // a batch transform names its model in its options (its result only once it completes)
    model: r?.model ?? (job.kind === 'transform' ? (job.params as { model?: string }).model : undefined),
    settings: job.kind === 'train' ? keySettings(p) : {},
    // by name: a tuning job may minimise a loss, which is not an accuracy
    objective: tune ? { ...tune.objective, value: tune.best?.objective ?? null } : job.kind === 'train' ? { name: 'valid top-1', direction: 'maximize', value: r?.metrics?.valid?.top1 ?? null } : undefined,
    seconds: r?.seconds,
    error: job.error,
    // started here, so the page can follow its phases and cancel it
    managed: progress !== undefined,
    progress,
    tune: tune && tuneCounts(tune),
  };
}

function jobOf(ctx: ConsoleContext, id: string): Job {
  const job = getJob(ctx.ws, id);
  if (!job) throw notFound(`Job ${id}`, 'The jobs page lists every job.');
  return job;
}

function detail(ctx: ConsoleContext, id: string) {
  const job = jobOf(ctx, id);
  const r = job.result as Record<string, unknown> | undefined;
  const tuning = job.kind === 'tune' ? showTune(ctx.ws, job.id) : undefined;
  return {
    ...summary(ctx, job, tuning),
    params: job.params,
    // the result without bulky parts the page does not show
    result: r && Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'trials' && k !== 'labels')),
    tuning,
    report: (job.kind === 'train' || job.kind === 'tune') && job.status === 'completed',
  };
}

/** Runs compared at once: enough for a legible overlay. */
const MAX_COMPARE = 8;
const JOB_ID = /^[a-z]+-[0-9]{14}-[0-9a-f]{6}$/;

/** A run to compare: a training job by id, or a model version (its training job when it has one). */
function compareRun(ctx: ConsoleContext, req: FastifyRequest, ref: string): CompareRun {
  const caller = callerOf(req);
  let job: Job | undefined;
  let card: { metrics?: Record<string, unknown>; lineage?: Record<string, unknown> } | undefined;
  let model: string | undefined;
  if (JOB_ID.test(ref)) {
    job = jobOf(ctx, ref);
    if (job.kind !== 'train') throw Errors.InvalidRequest(`Job ${ref} is a ${job.kind} job; only training jobs have curves to compare.`, 'Pick training jobs, or the models they registered.');
  } else {
    const mv = getModel(ctx.ws, ref);
    ctx.auth.assertAllowed(caller, READ, `model/${mv.name}`, req);
    model = `${mv.name}@${mv.version}`;
    card = mv.card as typeof card;
    const id = card?.lineage?.job;
    job = typeof id === 'string' ? getJob(ctx.ws, id) : undefined;
  }
  if (job) ctx.auth.assertAllowed(caller, READ, `job/${job.id}`, req);
  const p = (job?.params ?? card?.lineage?.hyperparameters ?? {}) as TrainParams;
  // a model imported from elsewhere has no job: its card carries what is known
  const r = (job?.result ?? card?.metrics ?? {}) as TrainResultLike & { history?: EpochPoint[] };
  const cardHistory = card?.metrics?.history as EpochPoint[] | undefined;
  return {
    ref,
    job: job?.id,
    model: model ?? r.model,
    dataset: p.dataset,
    backbone: p.backbone ?? ((card?.lineage?.backbone as { id?: string } | undefined)?.id),
    settings: keySettings(p),
    metrics: { validTop1: r.metrics?.valid?.top1, validLoss: r.metrics?.valid?.loss, testTop1: r.metrics?.test?.top1, testTop5: r.metrics?.test?.top5, ece: r.metrics?.test?.ece, seconds: r.seconds },
    bestEpoch: r.bestEpoch,
    history: (r.history ?? cardHistory ?? []).map((e) => ({ epoch: e.epoch, trainLoss: e.trainLoss, trainTop1: e.trainTop1, validLoss: e.validLoss, validTop1: e.validTop1 })),
  };
}

function compare(ctx: ConsoleContext, req: FastifyRequest, runs: string): { runs: CompareRun[] } {
  const refs = [...new Set(runs.split(',').map((r) => r.trim()).filter(Boolean))];
  if (refs.length < 2 || refs.length > MAX_COMPARE) throw Errors.InvalidRequest(`Pick 2 to ${MAX_COMPARE} runs to compare (got ${refs.length}).`, 'Pass ?runs=JOB,JOB or model references such as dogs@1,dogs@2.');
  return { runs: refs.map((ref) => compareRun(ctx, req, ref)) };
}

const jobs = (ctx: ConsoleContext) => ({ jobs: recentJobs(ctx.ws, LIST_LIMIT).map((j) => summary(ctx, j)) });

const idParams = { type: 'object', properties: { id: { type: 'string', pattern: '^[a-z]+-[0-9]{14}-[0-9a-f]{6}$' } }, required: ['id'] } as const;

/** Training, tuning and batch transform jobs: list and detail (live), start (training, tuning), cancel, and the HTML report. */
export const jobRoutes: RouteModule = (api, ctx) => {
  api.get('/api/jobs', { config: { auth: onAll(READ, 'job') } }, async () => jobs(ctx));
  api.get('/api/jobs/stream', { config: { auth: onAll(READ, 'job') } }, async (req, reply) => stream(ctx, req, reply, 1000, () => jobs(ctx)));

  api.post<{ Body: unknown }>('/api/jobs', { config: { auth: { action: 'admin:StartJob', resource: (req) => `dataset/${String((req.body as { options?: { dataset?: unknown } } | null)?.options?.dataset ?? '')}`, audit: true } } }, async (req, reply) => {
    const parsed = JobRequest.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw Errors.InvalidRequest(`Invalid job request: ${issue.path.join('.') || 'body'}: ${issue.message}.`, 'Send {"kind": "train" | "tune", "options": {...}}.');
    }
    req.auditDetail = { kind: parsed.data.kind };
    const job = await ctx.runner.start(parsed.data);
    req.auditDetail = { kind: parsed.data.kind, job };
    reply.code(201);
    return { job };
  });

  // each run is checked for console:Read on its job (and model) inside
  api.get<{ Querystring: { runs: string } }>('/api/compare', { schema: { querystring: { type: 'object', properties: { runs: { type: 'string', minLength: 1, maxLength: 2000 } }, required: ['runs'] } }, config: { auth: 'signed-in' } }, async (req) => compare(ctx, req, req.query.runs));

  api.get<{ Params: { id: string } }>('/api/jobs/:id', { schema: { params: idParams }, config: { auth: on(READ, 'job', 'id') } }, async (req) => detail(ctx, req.params.id));
  api.get<{ Params: { id: string } }>('/api/jobs/:id/stream', { schema: { params: idParams }, config: { auth: on(READ, 'job', 'id') } }, async (req, reply) => {
    jobOf(ctx, req.params.id); // 404 before the stream starts
    stream(ctx, req, reply, 1000, () => detail(ctx, req.params.id));
  });

  api.post<{ Params: { id: string } }>('/api/jobs/:id/cancel', { schema: { params: idParams }, config: { auth: { ...on('admin:CancelJob', 'job', 'id'), audit: true } } }, async (req, reply) => {
    const job = jobOf(ctx, req.params.id);
    if (job.status !== 'running') throw Errors.Conflict(`Job ${job.id} is ${job.status}, not running.`);
    if (!ctx.runner.cancel(job.id)) {
      throw Errors.Conflict(`Job ${job.id} runs in another process, not in this daemon.`, job.kind === 'tune' ? 'Stop it with Ctrl-C where it runs; continue it later with kennel tune resume.' : 'Stop it with Ctrl-C where it runs.');
    }
    reply.code(202);
    return { cancelling: job.id };
  });

  api.get<{ Params: { id: string } }>('/api/jobs/:id/report', { schema: { params: idParams }, config: { auth: on(READ, 'job', 'id') } }, async (req, reply) => {
    const html = renderReport(await buildReport(ctx.ws, req.params.id));
    // the report is self-contained: inline styles and data: images, no scripts
    return securityHeaders(reply, "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox").type('text/html; charset=utf-8').send(html);
  });
};

import sharp from 'sharp';
import { z } from 'zod';
import { median, type ProgressSink } from '../core/index.js';
import { getDatasetVersion, imagePath, type DatasetItem } from '../data/index.js';
import { classify } from '../inference/index.js';
import { getModel, type ModelVersion } from '../registry/index.js';
import type { Workspace } from '../store/index.js';
import { barChart, confusionHeatmap, esc, lineChart, parallelCoordinates, timelineChart, type Series, type TimelineSpec } from './charts.js';
import { runRules, type RuleResult } from './rules.js';
import { loadRulesConfig, requireCompleted, resolveJob, ruleInputForJob, type InsightJob } from './service.js';
import type { EpochRecord, HardwareSample, JobTelemetry, StepKind, StepRecord } from './telemetry.js';

/** One trial of a tuning job, as a 'tune' job's result lists them (docs/INSIGHTS.md). */
export const TuneTrialSchema = z.object({
  trial: z.number().int().min(0),
  params: z.record(z.string(), z.union([z.number(), z.string()])),
  objective: z.number().nullable(),
  status: z.string().optional(),
  job: z.string().optional(),
});
export type TuneTrial = z.output<typeof TuneTrialSchema>;
const TuneResultSchema = z.object({
  objective: z.object({ name: z.string(), direction: z.enum(['maximize', 'minimize']) }),
  trials: z.array(TuneTrialSchema),
});

interface Headline {
  n: number;
  top1: number;
  top5: number;
  ece: number;
  eceUncalibrated: number;
}

export interface ReportExample {
  path: string;
  predicted: string;
  score: number;
  /** data: URI of a small JPEG */
  thumbnail: string;
}

export interface ReportData {
  generatedAt: string;
  job: { id: string; kind: string; status: string; createdAt: string; params: Record<string, unknown>; seconds?: number; model?: string };
  telemetry?: JobTelemetry;
  epochs: EpochRecord[];
  bestEpoch?: number;
  rules: RuleResult[];
  metrics?: { valid?: Headline; test?: Headline };
  temperature?: number;
  evaluation?: { labels: string[]; confusion: number[][]; perClass: number[] };
  examples: Array<{ label: string; index: number; accuracy: number; items: ReportExample[] }>;
  tune?: z.output<typeof TuneResultSchema>;
  /** things the report could not show, in words */
  notes: string[];
}

export interface ReportOptions {
  /** rules config file (default: the workspace's rules.json) */
  rulesConfig?: string;
  /** misclassified test images to embed per class, default 4 (0 = none) */
  examplesPerClass?: number;
  /** worst classes to show examples for, default 8 */
  exampleClasses?: number;
  progress?: ProgressSink;
}

const THUMB = 96;

/** Collects everything the report shows: job, telemetry, rules, evaluation, misclassified examples. */
export async function buildReport(ws: Workspace, ref: string, opts: ReportOptions = {}): Promise<ReportData> {
  const job = resolveJob(ws, ref);
  const result = requireCompleted(job);
  const input = await ruleInputForJob(ws, job);
  const notes: string[] = [];
  if (!input.telemetry) notes.push('This job was recorded without telemetry (trained before insights existed), so the step timeline, throughput and hardware charts are empty.');
  const data: ReportData = {
    generatedAt: new Date().toISOString(),
    job: { id: job.id, kind: job.kind, status: job.status, createdAt: job.createdAt, params: job.params as Record<string, unknown>, seconds: result.seconds, model: result.model },
    telemetry: input.telemetry,
    epochs: input.epochs ?? input.telemetry?.epochs ?? [],
    bestEpoch: result.bestEpoch,
    rules: runRules(input, loadRulesConfig(ws, opts.rulesConfig)),
    metrics: result.metrics as ReportData['metrics'],
    temperature: result.temperature,
    examples: [],
    notes,
  };
  if (job.kind === 'tune') {
    const tune = TuneResultSchema.safeParse(result);
    if (tune.success) data.tune = tune.data;
    else notes.push(`The tuning result has no readable trials (${tune.error.issues[0]?.path.join('.')}: ${tune.error.issues[0]?.message}); see docs/INSIGHTS.md for the expected shape.`);
  }
  const mv = modelOf(ws, job, notes);
  if (mv) {
    const m = mv.card.metrics as { test?: { confusion?: number[][]; perClass?: number[] } } | undefined;
    if (m?.test?.confusion && m.test.perClass) {
      data.evaluation = { labels: mv.card.labels, confusion: m.test.confusion, perClass: m.test.perClass };
      if ((opts.examplesPerClass ?? 4) > 0) data.examples = await misclassified(ws, job, mv, data.evaluation, opts, notes);
    } else notes.push(`Model ${mv.name}@${mv.version} has no test confusion matrix in its card.`);
  }
  return data;
}

function modelOf(ws: Workspace, job: InsightJob, notes: string[]): ModelVersion | undefined {
  if (!job.result?.model) return undefined;
  try {
    return getModel(ws, job.result.model);
  } catch {
    notes.push(`Model ${job.result.model}, registered by this job, is no longer in the registry: no confusion matrix or examples.`);
    return undefined;
  }
}

/**
 * Misclassified test images of the worst classes, re-predicted with the registered model (the
 * same graph and preprocessing as `kennel predict`), as embedded thumbnails.
 */
async function misclassified(ws: Workspace, job: InsightJob, mv: ModelVersion, ev: NonNullable<ReportData['evaluation']>, opts: ReportOptions, notes: string[]): Promise<ReportData['examples']> {
  const lineage = mv.card.lineage as { dataset?: { name: string; version: number } } | undefined;
  const dsRef = lineage?.dataset ?? (job.params.dataset ? { name: job.params.dataset, version: job.params.datasetVersion } : undefined);
  if (!dsRef) return [];
  let items: DatasetItem[];
  try {
    items = (await getDatasetVersion(ws, dsRef.name, dsRef.version)).items.filter((i) => i.split === 'test');
  } catch {
    notes.push(`Dataset ${dsRef.name}@${dsRef.version} is no longer in the workspace: no example images.`);
    return [];
  }
  const support = ev.confusion.map((row) => row.reduce((a, b) => a + b, 0));
  const worst = ev.perClass
    .map((accuracy, index) => ({ index, accuracy }))
    .filter((c) => support[c.index]! > 0 && c.accuracy < 1)
    .sort((a, b) => a.accuracy - b.accuracy || a.index - b.index)
    .slice(0, opts.exampleClasses ?? 8);
  const wanted = items.filter((i) => worst.some((c) => c.index === i.label));
  if (!wanted.length) return [];
  const perClass = opts.examplesPerClass ?? 4;
  const found = new Map<number, ReportExample[]>();
  const paths = await Promise.all(wanted.map((it) => imagePath(ws, it)));
  opts.progress?.({ phase: 'classify test images', done: 0, total: wanted.length });
  const answers = await classify(ws, mv, paths, { topK: 1, batchSize: 16, progress: (e) => opts.progress?.({ ...e, phase: 'classify test images' }) });
  for (const [k, it] of wanted.entries()) {
    const answer = answers[k]!;
    if ('error' in answer) throw answer.error;
    const top = answer.predictions[0]!;
    const list = found.get(it.label) ?? [];
    if (top.index === it.label || list.length >= perClass) continue;
    list.push({ path: it.path, predicted: top.label, score: top.score, thumbnail: await thumbnail(paths[k]!) });
    found.set(it.label, list);
  }
  return worst.map((c) => ({ label: ev.labels[c.index]!, index: c.index, accuracy: c.accuracy, items: found.get(c.index) ?? [] }));
}

async function thumbnail(path: string): Promise<string> {
  const jpeg = await sharp(path, { limitInputPixels: 100_000_000 }).rotate().resize(THUMB, THUMB, { fit: 'cover' }).jpeg({ quality: 70 }).toBuffer();
  return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
}

/** GPU lines: colours the CPU and memory series do not use */
const GPU_COLORS = ['#16a34a', '#9333ea', '#0891b2', '#ca8a04', '#db2777'];
const PHASE_COLORS: Record<string, string> = { queue: '#94a3b8', decode: '#f59e0b', infer: '#2563eb', update: '#16a34a', 'batch (split not measured)': '#a78bfa' };
const MAX_BARS = 400;
const MAX_POINTS = 600;

/** Consecutive steps of one kind merged into at most `max` groups (charts stay small). */
function buckets(steps: StepRecord[], max: number): StepRecord[][] {
  const size = Math.max(1, Math.ceil(steps.length / max));
  const out: StepRecord[][] = [];
  for (let i = 0; i < steps.length; i += size) out.push(steps.slice(i, i + size));
  return out;
}

const KIND_LABEL: Record<StepKind, string> = { extract: 'feature extraction', head: 'head training' };

/** Steps merged into bars: x is the step start in seconds, or the step number with `byStep`. */
function stepBars(steps: StepRecord[], max: number, byStep: boolean): TimelineSpec['bars'] {
  return (['extract', 'head'] as const).flatMap((kind) =>
    buckets(
      steps.filter((s) => s.kind === kind),
      max,
    ).map((group) => {
      const first = group[0]!;
      const last = group[group.length - 1]!;
      const avg = (f: (s: StepRecord) => number) => group.reduce((a, s) => a + f(s), 0) / group.length;
      const parts = first.phases ? (['queue', 'decode', 'infer', 'update'] as const).map((p) => ({ phase: p, ms: avg((s) => s.phases?.[p] ?? 0) })) : [{ phase: 'batch (split not measured)', ms: avg((s) => s.ms) }];
      const label =
        kind === 'head'
          ? group.length > 1
            ? `head training steps ${first.step}-${last.step} (mean)`
            : `head training step ${first.step}`
          : group.length > 1
            ? `feature extraction, ${group.length} batches (mean)`
            : `feature extraction batch (${first.label ?? 'features'})`;
      return byStep ? { t: first.step ?? 0, width: (last.step ?? 0) - (first.step ?? 0) + 1, parts, label } : { t: first.t / 1000, width: (last.t + last.ms - first.t) / 1000, parts, label };
    }),
  );
}

/** The whole job on a time axis, then head steps by step number (they are too short to see on the first). */
function timelines(t: JobTelemetry): string[] {
  const charts = [
    timelineChart({ kind: 'timeline', title: 'Timeline: job phases and per-step wall time by phase', xLabel: 'seconds since the job started', phases: t.phases.map((p) => ({ name: p.name, start: p.t / 1000, end: (p.t + p.ms) / 1000 })), bars: stepBars(t.steps, MAX_BARS / 2, false), phaseColors: PHASE_COLORS }),
  ];
  const head = t.steps.filter((s) => s.kind === 'head');
  if (head.length) charts.push(timelineChart({ kind: 'step-phases', title: 'Head training steps: wall time by phase', xLabel: 'step', phases: [], bars: stepBars(head, MAX_BARS, true), phaseColors: PHASE_COLORS, attrs: { kind: 'head' } }));
  return charts;
}

/**
 * Throughput over time in windows of at least a second (a tenth of the span for short runs): each
 * step's images are spread over its interval. Rates of single steps spike where two workers'
 * progress events arrive a fraction of a millisecond apart; windows average that out.
 */
export function windowedRate(steps: ReadonlyArray<Pick<StepRecord, 't' | 'ms' | 'images'>>, maxPoints = MAX_POINTS): Array<[number, number]> {
  if (!steps.length) return [];
  const start = Math.min(...steps.map((s) => s.t));
  const end = Math.max(...steps.map((s) => s.t + s.ms));
  const span = end - start;
  if (!(span > 0)) return [];
  const w = Math.max(span / maxPoints, Math.min(1000, span / 10));
  const bins = new Float64Array(Math.ceil(span / w));
  for (const s of steps) {
    const a = (s.t - start) / w;
    const b = (s.t + s.ms - start) / w;
    if (!(s.ms > 0)) {
      bins[Math.min(bins.length - 1, Math.floor(a))]! += s.images;
      continue;
    }
    for (let i = Math.floor(a); i < Math.min(bins.length, Math.ceil(b)); i++) bins[i]! += (s.images * (Math.min(b, i + 1) - Math.max(a, i))) / (b - a);
  }
  return [...bins].map((images, i): [number, number] => {
    const width = Math.min(w, span - i * w);
    return [(start + i * w + width / 2) / 1000, images / (width / 1000)];
  });
}

function throughput(t: JobTelemetry): string[] {
  return (['extract', 'head'] as const)
    .map((kind) => {
      const steps = t.steps.filter((s) => s.kind === kind && s.ms > 0);
      if (!steps.length) return '';
      // extraction over time; head steps by number (an epoch of them lasts milliseconds)
      const points = kind === 'extract' ? windowedRate(steps) : buckets(steps, MAX_POINTS).map((g): [number, number] => [g[0]!.step ?? 0, g.reduce((a, s) => a + s.images, 0) / (g.reduce((a, s) => a + s.ms, 0) / 1000)]);
      const unit = kind === 'extract' ? 'images/s' : 'rows/s';
      return lineChart({ kind: 'throughput', title: `Throughput: ${KIND_LABEL[kind]} (${unit}${kind === 'extract' ? ', per window of up to 1 s' : ''})`, series: [{ name: unit, points }], xLabel: kind === 'head' ? 'step' : 'seconds since the job started', yLabel: unit, attrs: { kind } });
    })
    .filter(Boolean);
}

function hardwareCharts(t: JobTelemetry): string[] {
  const hw = t.hardware.filter((h) => h.worker === 'main');
  const gpuIds = [...new Set(hw.flatMap((h) => h.gpus?.map((g) => g.index) ?? []))];
  const util: Series[] = [
    { name: 'job CPU % (process + worker processes)', points: hw.map((h) => [h.t / 1000, jobCpuShare(h, t.host.cpus) * 100]) },
    { name: 'machine CPU %', points: hw.flatMap((h): Array<[number, number]> => (h.machineCpuShare === undefined ? [] : [[h.t / 1000, h.machineCpuShare * 100]])), color: '#ea580c' },
    { name: 'load/thread % (max 100)', points: hw.map((h) => [h.t / 1000, Math.min(100, (h.load1 / t.host.cpus) * 100)]), color: '#94a3b8' },
    ...gpuIds.map((id, k) => ({ name: `GPU ${id} %`, points: hw.flatMap((h): Array<[number, number]> => h.gpus?.filter((g) => g.index === id).map((g) => [h.t / 1000, g.utilization * 100]) ?? []), color: GPU_COLORS[k % GPU_COLORS.length] })),
  ];
  const mem: Series[] = [
    { name: 'process RSS MiB', points: hw.map((h) => [h.t / 1000, h.rssBytes / 2 ** 20]) },
    ...gpuIds.map((id, k) => ({ name: `GPU ${id} memory MiB`, points: hw.flatMap((h): Array<[number, number]> => h.gpus?.filter((g) => g.index === id).map((g) => [h.t / 1000, g.memoryMiB]) ?? []), color: GPU_COLORS[k % GPU_COLORS.length] })),
  ];
  return [
    lineChart({ kind: 'hardware', title: 'Utilisation over time', series: util, xLabel: 'seconds since the job started', yLabel: '%', yMax: 100, attrs: { gpus: gpuIds.length } }),
    lineChart({ kind: 'memory', title: 'Memory over time', series: mem, xLabel: 'seconds since the job started', yLabel: 'MiB' }),
  ];
}

function curves(d: ReportData): string[] {
  const e = d.epochs;
  if (!e.length) return [];
  const best = d.bestEpoch ? [{ x: d.bestEpoch, label: `best epoch ${d.bestEpoch}` }] : [];
  const charts = [
    lineChart({ kind: 'loss', title: 'Loss per epoch', series: [{ name: 'train', points: e.map((x) => [x.epoch, x.trainLoss]) }, { name: 'valid', points: e.map((x) => [x.epoch, x.validLoss]) }], xLabel: 'epoch', yLabel: 'cross-entropy', markers: best }),
    lineChart({ kind: 'accuracy', title: 'Top-1 accuracy per epoch', series: [{ name: 'train', points: e.map((x) => [x.epoch, x.trainTop1 * 100]) }, { name: 'valid', points: e.map((x) => [x.epoch, x.validTop1 * 100]) }], xLabel: 'epoch', yLabel: '%', yMax: 100, markers: best }),
  ];
  const steps = d.telemetry?.steps.filter((s) => s.kind === 'head' && s.gradNorm !== undefined) ?? [];
  const gradPoints: Array<[number, number]> = steps.length ? steps.map((s) => [s.step ?? 0, s.gradNorm!]) : e.map((x) => [x.epoch, x.gradNorm]);
  charts.push(lineChart({ kind: 'gradients', title: `Head gradient norm per ${steps.length ? 'step' : 'epoch (mean)'}`, series: [{ name: 'gradient norm', points: gradPoints }], xLabel: steps.length ? 'step' : 'epoch', yLabel: 'L2 norm', logY: true }));
  charts.push(lineChart({ kind: 'learning-rate', title: 'Learning rate per epoch', series: [{ name: 'lr', points: e.map((x) => [x.epoch, x.lr]) }], xLabel: 'epoch', yLabel: 'learning rate', zeroY: true }));
  return charts;
}

function tuneCharts(tune: NonNullable<ReportData['tune']>): string[] {
  const done = tune.trials.filter((t) => t.objective !== null && Number.isFinite(t.objective));
  const better = (a: number, b: number) => (tune.objective.direction === 'maximize' ? a > b : a < b);
  let best: number | undefined;
  const bestSoFar = done.map((t): [number, number] => {
    if (best === undefined || better(t.objective!, best)) best = t.objective!;
    return [t.trial, best];
  });
  const objective = lineChart({ kind: 'objective', title: `Objective (${tune.objective.name}, ${tune.objective.direction}) per trial`, series: [{ name: 'trial', points: done.map((t) => [t.trial, t.objective!]), dots: true }, { name: 'best so far', points: bestSoFar }], xLabel: 'trial', yLabel: tune.objective.name, zeroY: false });
  const names = [...new Set(done.flatMap((t) => Object.keys(t.params)))].sort();
  const axes = [
    ...names.map((n) => {
      const values = done.map((t) => t.params[n] ?? 'n/a');
      const nums = values.filter((v): v is number => typeof v === 'number');
      const log = nums.length === values.length && Math.min(...nums) > 0 && Math.max(...nums) / Math.min(...nums) >= 100;
      return { name: n, values, log };
    }),
    { name: tune.objective.name, values: done.map((t) => t.objective!) },
  ];
  const parallel = parallelCoordinates({ title: 'Hyperparameters and objective (parallel coordinates)', axes, color: done.map((t) => t.objective!), lowerIsBetter: tune.objective.direction === 'minimize' });
  return [objective, parallel];
}

const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(x * 100).toFixed(1)}%`);
const num = (x: number | undefined, digits = 3): string => (x === undefined ? '-' : Number(x.toPrecision(digits)).toString());
const tableHtml = (headers: string[], rows: Array<Array<string | number>>, cls = ''): string =>
  `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${typeof c === 'number' ? esc(c) : c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;

function rulesHtml(rules: RuleResult[]): string {
  const order = { fired: 0, ok: 1, skipped: 2 };
  const sorted = [...rules].sort((a, b) => order[a.status] - order[b.status]);
  const rows = sorted.map((r) => [
    `<span class="badge ${r.status} ${r.severity}">${esc(r.status === 'fired' ? r.severity : r.status)}</span>`,
    `<strong>${esc(r.rule)}</strong>`,
    esc(r.finding),
    `<dl>${Object.entries(r.evidence)
      .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(Array.isArray(v) ? v.join(', ') : String(v))}</dd>`)
      .join('')}</dl>`,
    esc(r.recommendation),
  ]);
  const fired = rules.filter((r) => r.status === 'fired').length;
  return `<p>${fired} of ${rules.length} rules fired.</p>` + tableHtml(['', 'rule', 'finding', 'evidence', 'recommendation'], rows, 'rules');
}

function phasesHtml(t: JobTelemetry): string {
  const rows = t.phases.map((p) => [esc(p.name), num(p.ms / 1000), p.images ?? '-', p.images && p.ms > 0 ? num(p.images / (p.ms / 1000)) : '-']);
  const kinds = (['extract', 'head'] as const).map((k) => t.steps.filter((s) => s.kind === k)).filter((s) => s.length);
  const stepRows = kinds.map((s) => {
    const phases = s[0]!.phases ? (['queue', 'decode', 'infer', 'update'] as const).map((p) => `${p} ${num(s.reduce((a, x) => a + (x.phases?.[p] ?? 0), 0) / s.length)}`).join(', ') : 'split not measured';
    return [KIND_LABEL[s[0]!.kind], s.length, num(median(s.map((x) => x.ms))), phases];
  });
  return (
    tableHtml(['phase', 'seconds', 'images (head: rows)', 'per second'], rows) +
    (stepRows.length ? tableHtml(['steps', 'count', 'median ms', 'mean ms by phase'], stepRows) : '') +
    `<p class="note">Telemetry overhead: ${num(t.overhead.ms)} ms of recorder time on the main thread, ${(t.overhead.stepRatio * 100).toFixed(2)}% of step time.</p>`
  );
}

/** CPU of this process and of the job's local worker processes, in cores. */
const jobCpuCores = (h: HardwareSample): number => h.cpuCores + (h.childCpuCores ?? 0);
const jobCpuShare = (h: HardwareSample, cpus: number): number => Math.min(1, jobCpuCores(h) / cpus);

function jobCpuLabel(hw: HardwareSample[]): string {
  const workers = Math.max(0, ...hw.map((h) => h.childProcesses ?? 0));
  if (hw.every((h) => h.childCpuCores === undefined)) return 'median CPU busy (this process; worker processes not measured here)';
  return `median CPU busy (this job: this process + ${workers} local worker process${workers === 1 ? '' : 'es'})`;
}

function hardwareHtml(t: JobTelemetry): string {
  const hw = t.hardware.filter((h) => h.worker === 'main');
  const gpus = t.host.gpus.length ? t.host.gpus.map((g) => `${esc(g.name)} (${g.memoryMiB} MiB)`).join(', ') : 'none used';
  const rows: Array<Array<string | number>> = [
    ['CPU', `${esc(t.host.cpuModel)}, ${t.host.cpus} threads`],
    ['memory', `${(t.host.memoryBytes / 2 ** 30).toFixed(1)} GiB`],
    ['device', esc(t.device)],
    ['GPUs', gpus],
    [jobCpuLabel(hw), hw.length ? `${num(median(hw.map(jobCpuCores)))} threads (${pct(median(hw.map((h) => jobCpuShare(h, t.host.cpus))))})` : '-'],
    ['median CPU busy (machine)', hw.some((h) => h.machineCpuShare !== undefined) ? pct(median(hw.flatMap((h) => (h.machineCpuShare === undefined ? [] : [h.machineCpuShare])))) : '-'],
    ['peak process RSS', hw.length ? `${(Math.max(...hw.map((h) => h.rssBytes)) / 2 ** 20).toFixed(0)} MiB` : '-'],
    ['samples', hw.length],
  ];
  const workers = t.workers ?? [];
  return (
    tableHtml(['', ''], rows, 'kv') +
    (workers.length ? '<h3>Feature extraction per worker</h3>' + tableHtml(['worker', 'tasks', 'images', 'busy seconds', 'images/s'], workers.map((w) => [esc(w.worker), w.tasks, w.images, num(w.seconds), num(w.imagesPerSecond)])) : '')
  );
}

function examplesHtml(d: ReportData): string {
  if (!d.examples.length) return '';
  return (
    '<h3>Misclassified test images, worst classes first</h3>' +
    d.examples
      .map(
        (c) =>
          `<div class="examples" data-class="${esc(c.label)}"><h4>${esc(c.label)}: ${pct(c.accuracy)} correct</h4>${
            c.items.length
              ? c.items.map((it) => `<figure><img src="${it.thumbnail}" width="${THUMB}" height="${THUMB}" alt="${esc(it.path)}"><figcaption>predicted <strong>${esc(it.predicted)}</strong> (${pct(it.score)})<br><span class="path">${esc(it.path)}</span></figcaption></figure>`).join('')
              : '<p class="note">No misclassified image found on re-prediction.</p>'
          }</div>`,
      )
      .join('')
  );
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#0f172a;margin:0;background:#f8fafc}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #cbd5e1;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}h4{margin:8px 0 4px;font-size:13px}
.meta{color:#475569}.note{color:#64748b;font-size:12px}
table{border-collapse:collapse;margin:8px 0;background:#fff}th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f1f5f9}
table.rules td:nth-child(3),table.rules td:nth-child(5){max-width:300px}
dl{margin:0;display:grid;grid-template-columns:auto auto;gap:0 8px;font-size:12px}dt{color:#64748b}dd{margin:0;word-break:break-word}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-size:12px;color:#fff;background:#64748b}.badge.fired.warning{background:#dc2626}.badge.fired.info{background:#2563eb}.badge.ok{background:#16a34a}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px}.card b{display:block;font-size:18px}
svg.chart{background:#fff;border:1px solid #e2e8f0;margin:6px 6px 6px 0;font-size:10px;max-width:100%;height:auto}
svg .chart-title{font-size:12px;font-weight:600}svg .axes line{stroke:#334155}svg .axes line.grid{stroke:#e2e8f0}svg .axis-label{fill:#475569}svg .marker line{stroke:#9333ea;stroke-dasharray:3 3}svg .empty{fill:#94a3b8}
.grid2{display:flex;flex-wrap:wrap}
.examples{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start;background:#fff;border:1px solid #e2e8f0;padding:6px;margin:6px 0}.examples h4{width:100%}
figure{margin:0;width:${THUMB + 40}px;font-size:11px}figure img{display:block;border-radius:4px}.path{color:#64748b;word-break:break-all}
`;

/** The whole report as one self-contained HTML page (inline CSS and SVG, images as data: URIs). */
export function renderReport(d: ReportData): string {
  const t = d.telemetry;
  const p = d.job.params;
  const m = d.metrics;
  const cards = [
    ['valid top-1', pct(m?.valid?.top1)],
    ['test top-1', pct(m?.test?.top1)],
    ['test top-5', pct(m?.test?.top5)],
    ['test ECE', m?.test ? `${num(m.test.eceUncalibrated)} -> ${num(m.test.ece)}` : '-'],
    ['epochs', d.epochs.length ? `${d.epochs.length} (best ${d.bestEpoch ?? '-'})` : '-'],
    ['wall time', d.job.seconds !== undefined ? `${num(d.job.seconds)} s` : '-'],
    ['rules fired', `${d.rules.filter((r) => r.status === 'fired').length}`],
  ];
  const ev = d.evaluation;
  const perClass = ev
    ? barChart(
        'per-class',
        'Per-class test accuracy, worst first',
        ev.perClass
          .map((acc, i) => ({ acc, i, n: ev.confusion[i]!.reduce((a, b) => a + b, 0) }))
          .filter((c) => c.n > 0)
          .sort((a, b) => a.acc - b.acc || a.i - b.i)
          .map((c) => ({ label: ev.labels[c.i]!, value: c.acc * 100, note: `${ev.confusion[c.i]![c.i]} of ${c.n}` })),
        { max: 100, valueFmt: (v) => `${v.toFixed(0)}%` },
      )
    : '';
  const sections = [
    `<section id="rules"><h2>Rules</h2>${rulesHtml(d.rules)}</section>`,
    t ? `<section id="profile"><h2>Profile</h2>${timelines(t).join('')}<div class="grid2">${throughput(t).join('')}</div>${phasesHtml(t)}</section>` : '',
    d.epochs.length ? `<section id="training"><h2>Training curves</h2><div class="grid2">${curves(d).join('')}</div></section>` : '',
    d.tune ? `<section id="tuning"><h2>Tuning</h2>${tuneCharts(d.tune).join('')}${tableHtml(['trial', 'objective', 'status', ...Object.keys(d.tune.trials[0]?.params ?? {})], d.tune.trials.map((tr) => [tr.trial, tr.objective === null ? '-' : num(tr.objective, 4), esc(tr.status ?? ''), ...Object.keys(d.tune!.trials[0]?.params ?? {}).map((k) => esc(String(tr.params[k] ?? '-')))]))}</section>` : '',
    ev ? `<section id="evaluation"><h2>Evaluation (test split)</h2>${confusionHeatmap(ev.labels, ev.confusion)}${perClass}${examplesHtml(d)}</section>` : '',
    t ? `<section id="hardware"><h2>Hardware utilisation</h2>${hardwareHtml(t)}<div class="grid2">${hardwareCharts(t).join('')}</div></section>` : '',
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Kennel report: ${esc(d.job.id)}</title><style>${STYLE}</style></head>
<body><main data-job="${esc(d.job.id)}" data-kind="${esc(d.job.kind)}">
<h1>${esc(d.job.kind === 'tune' ? 'Tuning' : 'Training')} job ${esc(d.job.id)}</h1>
<p class="meta">${[d.job.model ? `model ${esc(d.job.model)}` : '', p.dataset ? `dataset ${esc(String(p.dataset))}${p.datasetVersion ? `@${esc(String(p.datasetVersion))}` : ''}` : '', p.backbone ? `backbone ${esc(String(p.backbone))}` : '', `created ${esc(d.job.createdAt)}`, `report ${esc(d.generatedAt)}`].filter(Boolean).join(' · ')}</p>
<div class="cards">${cards.map(([k, v]) => `<div class="card">${esc(k!)}<b>${esc(v!)}</b></div>`).join('')}</div>
${d.notes.map((n) => `<p class="note">${esc(n)}</p>`).join('')}
${sections.join('\n')}
</main></body></html>
`;
}

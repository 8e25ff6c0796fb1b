import { z } from 'zod';
import { Errors, KennelError, median } from '../core/index.js';
import { isLeak, type ImportReport } from '../data/index.js';
import type { EpochRecord, JobTelemetry, StepKind, StepRecord } from './telemetry.js';

/**
 * Profiler and debugger rules over a job's telemetry, its dataset's import report and its
 * metrics. Each rule returns a plain-language finding, the numbers behind it, and what to do.
 */

const enabled = z.boolean().default(true);
export const RulesConfigSchema = z
  .object({
    StepOutlier: z.object({ enabled, sigma: z.number().positive().default(3), minSteps: z.number().int().min(3).default(10), warmupSteps: z.number().int().min(0).default(1), minMs: z.number().min(0).default(50), minShare: z.number().min(0).max(1).default(0.02), warnShare: z.number().min(0).max(1).default(0.05) }).strict().prefault({}),
    LowUtilization: z.object({ enabled, cpuBelow: z.number().min(0).max(1).default(0.3), gpuBelow: z.number().min(0).max(1).default(0.3), minSamples: z.number().int().min(1).default(4) }).strict().prefault({}),
    InputBottleneck: z.object({ enabled, decodeShare: z.number().min(0).max(1).default(0.5), minSteps: z.number().int().min(1).default(5) }).strict().prefault({}),
    Overfit: z.object({ enabled, epochs: z.number().int().min(1).default(3), minGrowth: z.number().min(0).default(0.02), gapRatio: z.number().min(1).default(1.5), top1Gap: z.number().min(0).max(1).default(0.15) }).strict().prefault({}),
    LossNotDecreasing: z.object({ enabled, minEpochs: z.number().int().min(2).default(3), minDecrease: z.number().min(0).max(1).default(0.05) }).strict().prefault({}),
    VanishingGradient: z.object({ enabled, below: z.number().positive().default(1e-7) }).strict().prefault({}),
    ExplodingGradient: z.object({ enabled, above: z.number().positive().default(1000), growth: z.number().min(1).default(100) }).strict().prefault({}),
    ClassImbalance: z.object({ enabled, ratio: z.number().min(1).default(3) }).strict().prefault({}),
    DuplicateLeakage: z.object({ enabled, maxLeaks: z.number().int().min(0).default(0) }).strict().prefault({}),
    PoorCalibration: z.object({ enabled, ece: z.number().min(0).max(1).default(0.1) }).strict().prefault({}),
  })
  .strict();

export type RulesConfig = z.output<typeof RulesConfigSchema>;
export type RulesConfigInput = z.input<typeof RulesConfigSchema>;
export type RuleName = keyof RulesConfig;
export const RULE_NAMES = Object.keys(RulesConfigSchema.shape) as RuleName[];

/** Validates a rules config (e.g. parsed from a JSON file); `where` names its source in errors. */
export function parseRulesConfig(raw: unknown, where = 'the rules config'): RulesConfig {
  const r = RulesConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw Errors.InvalidRequest(`${where} is not valid: ${issues}.`, `Rules: ${RULE_NAMES.join(', ')}; see docs/INSIGHTS.md for each rule's settings.`);
  }
  return r.data;
}

export type Evidence = Record<string, number | string | boolean | null | number[] | string[]>;

export interface RuleResult {
  rule: RuleName;
  /** fired: the problem is present; ok: checked and healthy; skipped: no data to check (see finding) */
  status: 'fired' | 'ok' | 'skipped';
  severity: 'warning' | 'info';
  finding: string;
  evidence: Evidence;
  /** what to do when fired; empty otherwise */
  recommendation: string;
}

export interface CalibrationMetrics {
  n: number;
  ece: number;
  eceUncalibrated: number;
}

export interface RuleInput {
  telemetry?: JobTelemetry;
  /** per-epoch history; defaults to telemetry.epochs (jobs recorded before telemetry only have this) */
  epochs?: EpochRecord[];
  dataset?: { name: string; version: number; classes: string[]; report: Pick<ImportReport, 'imbalance' | 'duplicates'> };
  metrics?: { valid?: CalibrationMetrics; test?: CalibrationMetrics };
  temperature?: number;
  bestEpoch?: number;
  /** the job's head settings, so advice is relative to what it used (never less augmentation) */
  settings?: JobSettings;
}

/** The training options the recommendations build on (a training job's params). */
export interface JobSettings {
  augment?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  head?: string;
  dropout?: number;
  patience?: number;
}

/** Limits of kennel train's options, so advice never suggests a value it would refuse. */
const MAX_AUGMENT = 32;
const MAX_DROPOUT = 0.95;

type Check<N extends RuleName> = (input: RuleInput, cfg: RulesConfig[N]) => Omit<RuleResult, 'rule'>;

const ok = (finding: string, evidence: Evidence = {}): Omit<RuleResult, 'rule'> => ({ status: 'ok', severity: 'info', finding, evidence, recommendation: '' });
const skipped = (finding: string): Omit<RuleResult, 'rule'> => ({ status: 'skipped', severity: 'info', finding, evidence: {}, recommendation: '' });

const round = (x: number, digits = 3): number => (Number.isFinite(x) ? Number(x.toPrecision(digits)) : x);
const ms = (x: number): string => `${round(x)} ms`;
const pct = (x: number): string => `${round(x * 100)}%`;
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: readonly number[]): number => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
};

const KIND_NAME: Record<StepKind, string> = { extract: 'feature-extraction batches', head: 'head training steps' };
const byKind = (steps: readonly StepRecord[]): Array<[StepKind, StepRecord[]]> =>
  (['extract', 'head'] as const).map((k) => [k, steps.filter((s) => s.kind === k)] as [StepKind, StepRecord[]]).filter(([, s]) => s.length > 0);

const stepOutlier: Check<'StepOutlier'> = ({ telemetry }, cfg) => {
  const groups = byKind(telemetry?.steps ?? []).map(([kind, all]) => [kind, all.slice(cfg.warmupSteps)] as const).filter(([, s]) => s.length >= cfg.minSteps);
  if (!groups.length) return skipped(`Fewer than ${cfg.minSteps} steps were recorded after warm-up, too few to judge step times.`);
  // spikes matter only when they are long in absolute terms and cost a share of the job's time
  const jobMs = telemetry!.seconds * 1000 || telemetry!.steps.reduce((a, s) => a + s.ms, 0);
  const found = groups.map(([kind, steps]) => {
    const times = steps.map((s) => s.ms);
    const m = mean(times);
    const limit = Math.max(m + cfg.sigma * sd(times), cfg.minMs);
    const outliers = steps.filter((s) => s.ms > limit);
    const worst = outliers.reduce<StepRecord | undefined>((w, s) => (!w || s.ms > w.ms ? s : w), undefined);
    const lostShare = jobMs > 0 ? outliers.reduce((a, s) => a + s.ms - m, 0) / jobMs : 0;
    return { kind, steps: steps.length, mean: m, limit, outliers, worst, lostShare };
  });
  const evidence: Evidence = { jobSeconds: round(jobMs / 1000), minMs: cfg.minMs, minShare: cfg.minShare };
  for (const f of found) {
    evidence[`${f.kind}Steps`] = f.steps;
    evidence[`${f.kind}MeanMs`] = round(f.mean);
    evidence[`${f.kind}LimitMs`] = round(f.limit);
    evidence[`${f.kind}Outliers`] = f.outliers.length;
    if (f.worst) {
      evidence[`${f.kind}WorstMs`] = round(f.worst.ms);
      evidence[`${f.kind}WorstAtSeconds`] = round(f.worst.t / 1000);
      evidence[`${f.kind}LostShare`] = round(f.lostShare);
    }
  }
  const bad = found.filter((f) => f.outliers.length > 0 && f.lostShare >= cfg.minShare);
  const limits = found.map((f) => `${KIND_NAME[f.kind]}: limit ${ms(f.limit)}`).join('; ');
  if (!bad.length) {
    const minor = found.filter((f) => f.outliers.length > 0);
    return ok(
      minor.length
        ? `${minor.map((f) => `${f.outliers.length} of ${f.steps} ${KIND_NAME[f.kind]}`).join(' and ')} took longer than mean + ${cfg.sigma} sigma and ${ms(cfg.minMs)}, but cost under ${pct(cfg.minShare)} of the job's time (${limits}).`
        : `No step took longer than mean + ${cfg.sigma} sigma and ${ms(cfg.minMs)} (${limits}).`,
      evidence,
    );
  }
  return {
    status: 'fired',
    severity: bad.some((f) => f.lostShare >= cfg.warnShare) ? 'warning' : 'info',
    finding: bad.map((f) => `${f.outliers.length} of ${f.steps} ${KIND_NAME[f.kind]} took longer than ${ms(f.limit)} (mean ${ms(f.mean)} + ${cfg.sigma} sigma, at least ${ms(cfg.minMs)}); the slowest took ${ms(f.worst!.ms)} at ${round(f.worst!.t / 1000)} s, and the spikes cost ${pct(f.lostShare)} of the job's time`).join('; ') + '.',
    evidence,
    recommendation:
      'Compare the slow steps with the hardware chart of the report: spikes while the load average is high mean other work competed for the CPU (run fewer jobs at once or give this one its own cores); isolated single spikes are usually garbage collection or page-cache misses and need no action unless they recur.',
  };
};

const lowUtilization: Check<'LowUtilization'> = ({ telemetry }, cfg) => {
  const samples = (telemetry?.hardware ?? []).filter((s) => s.worker === 'main');
  if (samples.length < cfg.minSamples) return skipped(`Only ${samples.length} hardware samples were recorded (at least ${cfg.minSamples} are needed).`);
  // the machine's busy share counts worker processes too; the process share is the fallback
  const machineShares = samples.flatMap((s) => (s.machineCpuShare === undefined ? [] : [s.machineCpuShare]));
  const machine = machineShares.length >= cfg.minSamples ? median(machineShares) : undefined;
  const cpus = telemetry!.host.cpus;
  // this process and the job's local worker processes
  const cores = median(samples.map((s) => s.cpuCores + (s.childCpuCores ?? 0)));
  const cpu = machine ?? Math.min(1, cores / cpus);
  const gpuSamples = samples.filter((s) => s.gpus?.length).map((s) => Math.max(...s.gpus!.map((g) => g.utilization)));
  const gpu = gpuSamples.length >= cfg.minSamples ? median(gpuSamples) : undefined;
  const evidence: Evidence = { samples: samples.length, medianCpuShare: round(cpu), medianJobCpuCores: round(cores), cpus, medianLoad1: round(median(samples.map((s) => s.load1))), ...(gpu === undefined ? {} : { medianGpuUtilization: round(gpu), gpuSamples: gpuSamples.length }) };
  const idle: string[] = [];
  const advice: string[] = [];
  if (cpu < cfg.cpuBelow) {
    idle.push(`the CPUs were ${pct(cpu)} busy on median (below ${pct(cfg.cpuBelow)}; this job's process and local workers used ${round(cores)} of ${cpus} threads)`);
    advice.push(
      'use the idle cores: extract features with more workers (or a larger extraction batch), train with a larger --batch-size, or run several trainings (e.g. a tuning job) side by side; on a cloud instance, pick one with fewer vCPUs (kennel cost shows the cheaper fit)',
    );
  }
  if (gpu !== undefined && gpu < cfg.gpuBelow) {
    idle.push(`the GPU was busy a median ${pct(gpu)} of the time (below ${pct(cfg.gpuBelow)})`);
    advice.push('feed the GPU faster: decode images with more workers, use a float backbone (quantized ones fall back to the CPU) and larger batches, or run on the CPU and save the GPU cost');
  }
  if (!idle.length) return ok(`The hardware was busy: median CPU ${pct(cpu)} of ${cpus} threads${gpu === undefined ? '' : `, GPU ${pct(gpu)}`}.`, evidence);
  return { status: 'fired', severity: 'warning', finding: `The hardware was mostly idle: ${idle.join('; ')}.`, evidence, recommendation: advice.map((a) => a[0]!.toUpperCase() + a.slice(1)).join('. ') + '.' };
};

const inputBottleneck: Check<'InputBottleneck'> = ({ telemetry }, cfg) => {
  const groups = byKind((telemetry?.steps ?? []).filter((s) => s.phases)).filter(([, s]) => s.length >= cfg.minSteps);
  if (!groups.length) return skipped('No steps with a decode/inference/update split were recorded.');
  const shares = groups.map(([kind, steps]) => {
    const total = steps.reduce((a, s) => a + s.ms, 0);
    const decode = steps.reduce((a, s) => a + s.phases!.decode, 0);
    const compute = steps.reduce((a, s) => a + s.phases!.infer + s.phases!.update, 0);
    return { kind, steps: steps.length, share: total > 0 ? decode / total : 0, decodeMs: decode / steps.length, computeMs: compute / steps.length };
  });
  const evidence: Evidence = {};
  for (const s of shares) {
    evidence[`${s.kind}DecodeShare`] = round(s.share);
    evidence[`${s.kind}DecodeMsPerStep`] = round(s.decodeMs);
    evidence[`${s.kind}ComputeMsPerStep`] = round(s.computeMs);
    evidence[`${s.kind}Steps`] = s.steps;
  }
  const bad = shares.filter((s) => s.share >= cfg.decodeShare);
  if (!bad.length) return ok(`Input preparation took ${shares.map((s) => `${pct(s.share)} of ${KIND_NAME[s.kind]}`).join(' and ')} (limit ${pct(cfg.decodeShare)}).`, evidence);
  const advice = bad.map((s) =>
    s.kind === 'extract'
      ? 'image decoding dominates extraction: add decode workers or CPU cores, keep the feature cache (a rerun with the same data and backbone decodes nothing), or import smaller images (about 256 px on the short side is enough for 224 px models)'
      : 'minibatch assembly dominates head training: raise --batch-size so each copy feeds more compute',
  );
  return {
    status: 'fired',
    severity: 'warning',
    finding: `The input pipeline is the bottleneck: decode/preprocess took ${bad.map((s) => `${pct(s.share)} of ${KIND_NAME[s.kind]} (${ms(s.decodeMs)} per step vs ${ms(s.computeMs)} of compute)`).join(' and ')}.`,
    evidence,
    recommendation: advice.map((a) => a[0]!.toUpperCase() + a.slice(1)).join('. ') + '.',
  };
};

const epochsOf = (input: RuleInput): EpochRecord[] => input.epochs ?? input.telemetry?.epochs ?? [];

/** The skip for rules that need a per-epoch history (a head fitted in one solve has none). */
const tooFewEpochs = (have: number, need: number, what: string): Omit<RuleResult, 'rule'> =>
  skipped(have === 0 ? `Skipped: no epochs were recorded (the head was fitted without an epoch history), so ${what} cannot be judged.` : `Skipped: only ${have} epoch${have === 1 ? ' was' : 's were'} recorded; ${what} needs at least ${need}.`);

/** Regularisation advice relative to what the job used: never less augmentation or decay than it had. */
function regularise(s: JobSettings = {}): string[] {
  const out: string[] = [];
  const augment = s.augment ?? 0;
  if (augment < MAX_AUGMENT) out.push(`more augmentation views (--augment ${Math.min(MAX_AUGMENT, Math.max(2, augment * 2))}${s.augment === undefined ? '' : `, this job used ${augment}`})`);
  if (s.weightDecay !== undefined) out.push(`a stronger --weight-decay (${s.weightDecay > 0 ? `${round(Math.min(1, s.weightDecay * 10))}, this job used ${s.weightDecay}` : '1e-4, this job used none'})`);
  else out.push('a stronger --weight-decay (e.g. x10)');
  if (s.labelSmoothing === undefined || s.labelSmoothing < 0.2) out.push(`--label-smoothing ${s.labelSmoothing !== undefined && s.labelSmoothing >= 0.1 ? 0.2 : 0.1}`);
  if (s.head === 'mlp') out.push(`the linear head, or a higher --dropout${s.dropout !== undefined && s.dropout < MAX_DROPOUT ? ` (${round(Math.min(MAX_DROPOUT, s.dropout + 0.2))}, this job used ${s.dropout})` : ''}`);
  if (s.patience === undefined || s.patience > 2) out.push(`a lower --patience${s.patience === undefined ? '' : ` (${Math.max(1, Math.floor(s.patience / 2))}, this job used ${s.patience})`} so early stopping ends the run sooner`);
  return out;
}

const overfit: Check<'Overfit'> = (input, cfg) => {
  const { bestEpoch } = input;
  const epochs = epochsOf(input);
  if (epochs.length < 2) return tooFewEpochs(epochs.length, 2, 'overfitting');
  const last = epochs[epochs.length - 1]!;
  const gap = epochs.map((e) => e.validLoss - e.trainLoss);
  const evidence: Evidence = { epochs: epochs.length, gap: gap.map((g) => round(g)), finalTrainLoss: round(last.trainLoss), finalValidLoss: round(last.validLoss), finalTrainTop1: round(last.trainTop1), finalValidTop1: round(last.validTop1), ...(bestEpoch ? { bestEpoch } : {}) };
  // 1. the trend: valid loss rose every epoch for K epochs (by minGrowth in total) while train loss fell
  let trend: { from: number; to: number } | undefined;
  for (let to = cfg.epochs; to < epochs.length; to++) {
    const from = to - cfg.epochs;
    const window = epochs.slice(from, to + 1);
    const rising = window.every((e, k) => k === 0 || e.validLoss > window[k - 1]!.validLoss);
    if (rising && epochs[to]!.validLoss - epochs[from]!.validLoss >= cfg.minGrowth && epochs[to]!.trainLoss < epochs[from]!.trainLoss) trend = { from, to };
  }
  // 2. the level: at the end valid loss well above train loss, and valid top-1 well below train top-1
  const wide = last.trainLoss > 0 && last.validLoss >= cfg.gapRatio * last.trainLoss && last.trainTop1 - last.validTop1 >= cfg.top1Gap;
  if (!trend && !wide) {
    return ok(
      `No sign of overfitting: the valid loss did not rise for ${cfg.epochs} epochs while the train loss fell, and at the end valid loss ${round(last.validLoss)} vs train ${round(last.trainLoss)}, valid top-1 ${pct(last.validTop1)} vs train ${pct(last.trainTop1)}.`,
      evidence,
    );
  }
  const what: string[] = [];
  if (trend) {
    const a = epochs[trend.from]!;
    const b = epochs[trend.to]!;
    Object.assign(evidence, { fromEpoch: a.epoch, toEpoch: b.epoch, validLossGrowth: round(b.validLoss - a.validLoss) });
    what.push(`from epoch ${a.epoch} to ${b.epoch} the valid loss rose every epoch (${round(a.validLoss)} -> ${round(b.validLoss)}) while the train loss fell (${round(a.trainLoss)} -> ${round(b.trainLoss)})`);
  }
  if (wide) {
    Object.assign(evidence, { lossRatio: round(last.validLoss / last.trainLoss), top1Gap: round(last.trainTop1 - last.validTop1) });
    what.push(`at the end the valid loss (${round(last.validLoss)}) was ${round(last.validLoss / last.trainLoss)}x the train loss (${round(last.trainLoss)}) and valid top-1 ${pct(last.validTop1)} was ${pct(last.trainTop1 - last.validTop1)} below train top-1 ${pct(last.trainTop1)}`);
  }
  const protectedByEarlyStop = trend !== undefined && !wide && bestEpoch !== undefined && bestEpoch <= epochs[trend.from]!.epoch;
  return {
    status: 'fired',
    severity: protectedByEarlyStop ? 'info' : 'warning',
    finding: `The model overfits: ${what.join('; and ')}.${protectedByEarlyStop ? ` Early stopping kept epoch ${bestEpoch}, before the valid loss rose, so the registered model is not affected.` : ''}`,
    evidence,
    recommendation: `Regularise or add data: ${regularise(input.settings).join('; ')}.`,
  };
};

const lossNotDecreasing: Check<'LossNotDecreasing'> = (input, cfg) => {
  const epochs = epochsOf(input);
  if (epochs.length < cfg.minEpochs) return tooFewEpochs(epochs.length, cfg.minEpochs, 'whether the loss decreases');
  const losses = epochs.map((e) => e.trainLoss);
  const broken = epochs.find((e) => !Number.isFinite(e.trainLoss));
  const first = losses[0]!;
  const best = Math.min(...losses.slice(1).filter(Number.isFinite));
  const decrease = (first - best) / Math.abs(first);
  const evidence: Evidence = { epochs: epochs.length, firstTrainLoss: round(first), bestLaterTrainLoss: round(best), relativeDecrease: round(decrease), lr: round(epochs[0]!.lr) };
  if (broken) return { status: 'fired', severity: 'warning', finding: `The training loss became ${broken.trainLoss} at epoch ${broken.epoch}: training diverged.`, evidence, recommendation: 'Lower --lr by 10x and check the data: a corrupt feature or a learning rate far too large makes the loss overflow.' };
  if (decrease >= cfg.minDecrease) return ok(`The training loss fell ${pct(decrease)} from ${round(first)} to ${round(best)}.`, evidence);
  return {
    status: 'fired',
    severity: 'warning',
    finding: `The training loss did not decrease: over ${epochs.length} epochs it went from ${round(first)} to at best ${round(best)} (${pct(decrease)}, less than ${pct(cfg.minDecrease)}).`,
    evidence,
    recommendation: `Change the learning rate (now ${round(epochs[0]!.lr)}): try --lr ${round(epochs[0]!.lr * 10)} if the loss was flat, or ${round(epochs[0]!.lr / 10)} if it jumped around; check the labels (kennel data show) and that the backbone suits the images.`,
  };
};

/** Per-step head gradient norms, or per-epoch means where steps were not recorded. */
function headGradNorms(input: RuleInput): Array<{ epoch: number; norm: number }> {
  const fromSteps = (input.telemetry?.steps ?? []).filter((s) => s.kind === 'head' && s.gradNorm !== undefined).map((s) => ({ epoch: s.epoch ?? 0, norm: s.gradNorm! }));
  // a head fitted by a solver may record epochs without a gradient norm: missing is not NaN
  return fromSteps.length ? fromSteps : epochsOf(input).flatMap((e) => (typeof e.gradNorm === 'number' ? [{ epoch: e.epoch, norm: e.gradNorm }] : []));
}

const vanishingGradient: Check<'VanishingGradient'> = (input, cfg) => {
  const norms = headGradNorms(input);
  if (!norms.length) return skipped('No head gradient norms were recorded.');
  // a tiny gradient after a single solve is convergence; vanishing is a trend over epochs
  const seen = new Set(norms.map((n) => n.epoch)).size;
  if (seen < 2) return tooFewEpochs(seen, 2, 'a vanishing gradient');
  const lastEpoch = norms[norms.length - 1]!.epoch;
  const last = median(norms.filter((n) => n.epoch === lastEpoch).map((n) => n.norm));
  const first = median(norms.filter((n) => n.epoch === norms[0]!.epoch).map((n) => n.norm));
  const evidence: Evidence = { firstEpochMedianGradNorm: round(first), lastEpochMedianGradNorm: round(last), threshold: cfg.below, steps: norms.length };
  if (!(last < cfg.below)) return ok(`The head's gradient norm stayed above ${cfg.below} (median ${round(last)} in the last epoch).`, evidence);
  return {
    status: 'fired',
    severity: 'warning',
    finding: `The head's gradients vanished: the median gradient norm in the last epoch was ${round(last)} (first epoch ${round(first)}), below ${cfg.below}, so the weights barely change.`,
    evidence,
    recommendation: 'Raise --lr, use --optimizer adamw (it rescales small gradients), or use the linear head; with label smoothing (--label-smoothing 0.1) gradients do not die out on easy data.',
  };
};

const explodingGradient: Check<'ExplodingGradient'> = (input, cfg) => {
  const norms = headGradNorms(input);
  if (!norms.length) return skipped('No head gradient norms were recorded.');
  const first = median(norms.filter((n) => n.epoch === norms[0]!.epoch).map((n) => n.norm));
  const nonFinite = norms.filter((n) => !Number.isFinite(n.norm)).length;
  const max = Math.max(...norms.map((n) => n.norm).filter(Number.isFinite));
  const evidence: Evidence = { firstEpochMedianGradNorm: round(first), maxGradNorm: round(max), nonFiniteSteps: nonFinite, above: cfg.above, growth: cfg.growth };
  // growth is a trend over epochs: within one solve (the L-BFGS probe, one "epoch") the gradient
  // starts large and falls to the tolerance by construction, so only the absolute limit applies
  const later = norms.filter((n) => n.epoch !== norms[0]!.epoch && Number.isFinite(n.norm)).map((n) => n.norm);
  const grew = first > 0 && later.length > 0 && Math.max(...later) > first * cfg.growth;
  if (!nonFinite && max <= cfg.above && !grew) return ok(`The head's gradient norm peaked at ${round(max)} (limit ${cfg.above}, or ${cfg.growth}x the first epoch's ${round(first)}).`, evidence);
  const what = nonFinite ? `${nonFinite} steps had a NaN or infinite gradient norm` : max > cfg.above ? `the gradient norm reached ${round(max)}, above ${cfg.above}` : `the gradient norm reached ${round(max)}, ${round(max / first)}x the first epoch's median ${round(first)}`;
  return { status: 'fired', severity: 'warning', finding: `The head's gradients exploded: ${what}.`, evidence, recommendation: 'Lower --lr (e.g. by 10x), switch to --optimizer adamw, and raise --weight-decay; exploding gradients on standardised features usually mean the learning rate is far too large.' };
};

const classImbalance: Check<'ClassImbalance'> = ({ dataset, settings }, cfg) => {
  if (!dataset) return skipped('The job has no dataset import report.');
  const { min, max, ratio, smallest } = dataset.report.imbalance;
  const evidence: Evidence = { minTrainImages: min, maxTrainImages: max, ratio, smallestClasses: smallest.slice(0, 5), classes: dataset.classes.length };
  if (ratio !== null && ratio < cfg.ratio) return ok(`Training classes are balanced enough: ${min} to ${max} images per class (ratio ${ratio}, limit ${cfg.ratio}).`, evidence);
  return {
    status: 'fired',
    severity: 'warning',
    finding: ratio === null ? `${smallest.length} classes have no training images (e.g. ${smallest.slice(0, 3).join(', ')}); the model can never predict them.` : `The training classes are imbalanced: from ${min} images (${smallest.slice(0, 3).join(', ')}) to ${max} per class, a ratio of ${ratio} (limit ${cfg.ratio}).`,
    evidence,
    recommendation: `Collect more images of the smallest classes (${smallest.slice(0, 3).join(', ')}) and re-import${(settings?.augment ?? 0) < MAX_AUGMENT ? `, or add augmentation views (--augment ${Math.min(MAX_AUGMENT, Math.max(2, (settings?.augment ?? 0) * 2))}) so rare classes get more varied examples` : ''}; judge the model by per-class accuracy in kennel report, not only top-1.`,
  };
};

const duplicateLeakage: Check<'DuplicateLeakage'> = ({ dataset }, cfg) => {
  if (!dataset) return skipped('The job has no dataset import report.');
  const leaks = dataset.report.duplicates.filter(isLeak);
  const within = dataset.report.duplicates.length - leaks.length;
  const evidence: Evidence = { leakedGroups: leaks.length, leakedImages: leaks.reduce((n, d) => n + d.paths.length, 0), withinSplitDuplicateGroups: within, examples: leaks.slice(0, 3).map((d) => d.paths.join(' = ')) };
  if (leaks.length <= cfg.maxLeaks) return ok(`No image appears in more than one split${within ? ` (${within} duplicate groups within a split only over-weight those images)` : ''}.`, evidence);
  return {
    status: 'fired',
    severity: 'warning',
    finding: `${leaks.length} images appear in more than one split (e.g. ${leaks[0]!.paths.slice(0, 2).join(' and ')}, in ${leaks[0]!.splits.join(' and ')}): the model is evaluated on images it trained on, so valid and test accuracy are optimistic.`,
    evidence,
    recommendation: `Delete the extra copies from the source folder (keep each image in one split) and import it again with kennel data import ... --name ${dataset.name}, then retrain.`,
  };
};

const poorCalibration: Check<'PoorCalibration'> = ({ metrics, temperature }, cfg) => {
  const [split, m] = metrics?.test?.n ? (['test', metrics.test] as const) : metrics?.valid?.n ? (['valid', metrics.valid] as const) : [];
  if (!m) return skipped('The job has no evaluation metrics.');
  const evidence: Evidence = { split: split!, n: m.n, eceUncalibrated: round(m.eceUncalibrated), eceCalibrated: round(m.ece), threshold: cfg.ece, ...(temperature === undefined ? {} : { temperature: round(temperature) }) };
  if (m.eceUncalibrated <= cfg.ece) return ok(`The raw probabilities were well calibrated on ${split}: ECE ${round(m.eceUncalibrated)} (limit ${cfg.ece}).`, evidence);
  const fixed = m.ece <= cfg.ece;
  return {
    status: 'fired',
    severity: fixed ? 'info' : 'warning',
    finding: `Before temperature scaling the probabilities were poorly calibrated on ${split}: ECE ${round(m.eceUncalibrated)} (limit ${cfg.ece}); after scaling${temperature === undefined ? '' : ` with temperature ${round(temperature)}`} it is ${round(m.ece)}.`,
    evidence,
    recommendation: fixed
      ? 'The registered model already applies the fitted temperature, so its scores are usable as probabilities; keep using the exported model (not raw logits) when thresholds matter.'
      : 'Scores are not trustworthy probabilities even after scaling: add validation images (calibration is fitted on valid), lower --label-smoothing, and do not threshold on the raw scores.',
  };
};

const CHECKS: { [N in RuleName]: Check<N> } = {
  StepOutlier: stepOutlier,
  LowUtilization: lowUtilization,
  InputBottleneck: inputBottleneck,
  Overfit: overfit,
  LossNotDecreasing: lossNotDecreasing,
  VanishingGradient: vanishingGradient,
  ExplodingGradient: explodingGradient,
  ClassImbalance: classImbalance,
  DuplicateLeakage: duplicateLeakage,
  PoorCalibration: poorCalibration,
};

/** Runs every enabled rule; results in rule order, fired ones flagged by status. */
export function runRules(input: RuleInput, config: RulesConfigInput | RulesConfig = {}): RuleResult[] {
  const cfg = parseRulesConfig(config);
  return RULE_NAMES.filter((n) => cfg[n].enabled).map((rule) => ({ rule, ...(CHECKS[rule] as Check<RuleName>)(input, cfg[rule] as never) }));
}

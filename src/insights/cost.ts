import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { Errors, KennelError } from '../core/index.js';

/**
 * The cost model: measured local throughput mapped onto catalog instance types by a stated
 * scaling model, priced from an editable catalog (catalog/instances.json). docs/INSIGHTS.md
 * explains every assumption.
 */

const GpuSchema = z.object({ model: z.string().min(1), count: z.number().int().positive(), memoryGiB: z.number().positive().optional() }).strict();
const InstanceSchema = z
  .object({
    type: z.string().min(1),
    service: z.enum(['sagemaker', 'ec2']),
    vcpu: z.number().int().positive(),
    memoryGiB: z.number().positive(),
    gpu: GpuSchema.nullable(),
    usdPerHour: z.number().positive(),
    priceDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a YYYY-MM-DD date'),
    /** burstable types: the share of each vCPU sustained without CPU credits */
    cpuBaseline: z.number().gt(0).max(1).optional(),
    note: z.string().optional(),
  })
  .strict();

export const CatalogSchema = z
  .object({
    region: z.string().min(1),
    currency: z.literal('USD'),
    priceSource: z.string().min(1),
    vcpuNote: z.string().optional(),
    gpuClasses: z.record(z.string(), z.object({ vcpuEquivalent: z.number().positive(), basis: z.string().min(1) }).strict()),
    instances: z.array(InstanceSchema).min(1),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.instances.forEach((i, n) => {
      if (seen.has(i.type)) ctx.addIssue({ code: 'custom', path: ['instances', n, 'type'], message: `${i.type} is listed twice` });
      seen.add(i.type);
      if (i.gpu && !c.gpuClasses[i.gpu.model]) ctx.addIssue({ code: 'custom', path: ['instances', n, 'gpu', 'model'], message: `GPU class ${i.gpu.model} is not in gpuClasses` });
    });
  });

export type InstanceCatalog = z.output<typeof CatalogSchema>;
export type InstanceType = InstanceCatalog['instances'][number];

export const DEFAULT_CATALOG = fileURLToPath(new URL('../../catalog/instances.json', import.meta.url));

/** How a service bills on-demand time; each estimate row shows its rule and the time it billed. */
export interface BillingRule {
  minimumSeconds: number;
  rule: string;
}

/** EC2 bills Linux instances per second with a one-minute minimum; SageMaker per second with no minimum. */
export const BILLING: Record<InstanceType['service'], BillingRule> = {
  ec2: { minimumSeconds: 60, rule: 'EC2 Linux on-demand: per second, 60 s minimum' },
  sagemaker: { minimumSeconds: 0, rule: 'SageMaker on-demand: per second, no minimum' },
};

export function loadCatalog(path = DEFAULT_CATALOG): InstanceCatalog {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw Errors.InvalidRequest(`The instance catalog ${path} could not be read: ${(e as Error).message.split('\n')[0]}.`, 'Pass --catalog FILE with a JSON catalog shaped like catalog/instances.json.');
  }
  const r = CatalogSchema.safeParse(raw);
  if (!r.success) throw Errors.InvalidRequest(`The instance catalog ${path} is not valid: ${r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}.`, 'Compare it with catalog/instances.json (docs/INSIGHTS.md describes each field).');
  return r.data;
}

export interface ScalingAssumptions {
  /** logical processors of the machine that measured (AWS counts a hardware thread as a vCPU) */
  localVcpus: number;
  /** speed of one cloud vCPU relative to one local hardware thread */
  efficiency: number;
}

export const defaultScaling = (): ScalingAssumptions => ({ localVcpus: availableParallelism(), efficiency: 0.85 });

export interface LocalCostAssumptions {
  /** power drawn while working, watts */
  watts: number;
  usdPerKwh: number;
  /** purchase price of the machine */
  machineUsd: number;
  lifetimeYears: number;
  /** share of its lifetime hours the machine does useful work (amortisation is spread over those) */
  utilization: number;
}

export const DEFAULT_LOCAL: LocalCostAssumptions = { watts: 150, usdPerKwh: 0.17, machineUsd: 1500, lifetimeYears: 3, utilization: 0.5 };

/** Electricity plus amortisation per working hour. */
export function localUsdPerHour(a: LocalCostAssumptions): number {
  return (a.watts / 1000) * a.usdPerKwh + a.machineUsd / (a.lifetimeYears * 365 * 24 * a.utilization);
}

export interface ScaledThroughput {
  imagesPerSecond: number;
  /** how the number was derived, in words */
  basis: string;
  /** speed of one of its CPU threads relative to the local machine's (for single-thread work) */
  threadSpeed: number;
}

/**
 * Backbone throughput of a type from the local measurement. CPU: per-vCPU rate x vCPUs x
 * efficiency (x the burst baseline for burstable types). GPU types: the faster of their CPUs and
 * their GPUs, each GPU worth `vcpuEquivalent` vCPUs of this backbone (a per-class assumption in
 * the catalog).
 */
export function scaleThroughput(localIps: number, t: InstanceType, catalog: InstanceCatalog, a: ScalingAssumptions): ScaledThroughput {
  const perVcpu = (localIps / a.localVcpus) * a.efficiency;
  const baseline = t.cpuBaseline ?? 1;
  const cpu = perVcpu * t.vcpu * baseline;
  const threadSpeed = a.efficiency * baseline;
  const cpuBasis = `${round(localIps)} img/s / ${a.localVcpus} local threads x ${a.efficiency} x ${t.vcpu} vCPU${baseline < 1 ? ` x ${baseline} burst baseline` : ''}`;
  if (!t.gpu) return { imagesPerSecond: cpu, basis: cpuBasis, threadSpeed };
  const gpuClass = catalog.gpuClasses[t.gpu.model]!;
  const gpu = perVcpu * gpuClass.vcpuEquivalent * t.gpu.count;
  if (cpu >= gpu) return { imagesPerSecond: cpu, basis: `${cpuBasis} (CPU beats its GPU estimate)`, threadSpeed };
  return { imagesPerSecond: gpu, basis: `${round(perVcpu)} img/s per vCPU x ${gpuClass.vcpuEquivalent} vCPU-equivalents per ${t.gpu.model}${t.gpu.count > 1 ? ` x ${t.gpu.count}` : ''}`, threadSpeed };
}

/** The time a run of `seconds` is billed for on a type (a short run on EC2 pays the minimum). */
export const billedSeconds = (t: InstanceType, seconds: number): number => Math.max(seconds, BILLING[t.service].minimumSeconds);
export const billedUsd = (t: InstanceType, seconds: number): number => (billedSeconds(t, seconds) / 3600) * t.usdPerHour;

/** What a training (or tuning) job measured locally. */
export interface JobMeasurement {
  job: string;
  kind: string;
  /** backbone images/s, from this job or an earlier one with the same backbone; undefined when never measured */
  extraction?: { imagesPerSecond: number; images: number; seconds: number; fromJob: string };
  /** images a run from an empty feature cache pushes through the backbone */
  coldImages: number;
  /** single-thread-bound work: head training, evaluation, export */
  headSeconds: number;
  otherSeconds: number;
  /** what the job took here (with whatever was cached) */
  seconds: number;
}

/** The catalog facts every estimate row shows about its instance type. */
export interface InstanceColumns {
  type: string;
  service: InstanceType['service'];
  vcpu: number;
  gpu: string | null;
  usdPerHour: number;
}

export interface JobEstimate extends InstanceColumns {
  imagesPerSecond: number;
  extractSeconds: number;
  headSeconds: number;
  seconds: number;
  /** the time the cost was computed from: `seconds` raised to the service's minimum */
  billedSeconds: number;
  /** the billing rule applied, in words */
  billing: string;
  usd: number;
  basis: string;
}

/** Wall time and cost of the job run from an empty cache on each type, cheapest first. */
export function estimateJob(m: JobMeasurement, catalog: InstanceCatalog, a: ScalingAssumptions): JobEstimate[] {
  return catalog.instances
    .map((t) => {
      const s = scaleThroughput(m.extraction?.imagesPerSecond ?? 0, t, catalog, a);
      const extractSeconds = m.extraction ? m.coldImages / s.imagesPerSecond : 0;
      const headSeconds = (m.headSeconds + m.otherSeconds) / s.threadSpeed;
      const seconds = extractSeconds + headSeconds;
      return { type: t.type, service: t.service, vcpu: t.vcpu, gpu: t.gpu ? `${t.gpu.count}x ${t.gpu.model}` : null, usdPerHour: t.usdPerHour, imagesPerSecond: m.extraction ? s.imagesPerSecond : 0, extractSeconds, headSeconds, seconds, billedSeconds: billedSeconds(t, seconds), billing: BILLING[t.service].rule, usd: billedUsd(t, seconds), basis: m.extraction ? s.basis : 'no extraction measurement' };
    })
    .sort((x, y) => x.usd - y.usd || x.seconds - y.seconds);
}

/** A serving measurement: sustained images/s of one local server and its p99 latency. */
export interface ServingMeasurement {
  imagesPerSecond: number;
  p99Ms: number;
  source: string;
}

export interface Slo {
  p99Ms: number;
  rps: number;
}

export interface ServingEstimate extends InstanceColumns {
  /** capacity of one instance */
  imagesPerSecond: number;
  /** p99 at light load, scaled from the measurement */
  p99Ms: number;
  /** requests/s one instance sustains with p99 within the SLO (capacity when no SLO is given) */
  sustainableRps: number;
  meetsSlo: boolean;
  instances?: number;
  fleetUsdPerHour?: number;
  /** cost per million predictions at the requested rate (or with one instance at capacity); null when the SLO cannot be met */
  usdPerMillion: number | null;
  basis: string;
}

/**
 * Per type: capacity mu (scaled throughput) and light-load p99 p0 = measured p99 x local/mu
 * (latency scales with the inverse of throughput). Queueing stretches latency by 1/(1 - rho),
 * so the load that keeps p99 within the SLO is rho = 1 - p0/SLO, i.e. mu x (1 - p0/SLO) rps per
 * instance; instances needed = ceil(rps / that).
 */
export function estimateServing(m: ServingMeasurement, slo: Slo | undefined, catalog: InstanceCatalog, a: ScalingAssumptions): ServingEstimate[] {
  return catalog.instances
    .map((t): ServingEstimate => {
      const s = scaleThroughput(m.imagesPerSecond, t, catalog, a);
      const mu = s.imagesPerSecond;
      const p0 = (m.p99Ms * m.imagesPerSecond) / mu;
      const base = { type: t.type, service: t.service, vcpu: t.vcpu, gpu: t.gpu ? `${t.gpu.count}x ${t.gpu.model}` : null, usdPerHour: t.usdPerHour, imagesPerSecond: mu, p99Ms: p0, basis: s.basis };
      if (!slo) return { ...base, sustainableRps: mu, meetsSlo: true, usdPerMillion: perMillion(t.usdPerHour, mu) };
      const sustainable = p0 < slo.p99Ms ? mu * (1 - p0 / slo.p99Ms) : 0;
      if (sustainable <= 0) return { ...base, sustainableRps: 0, meetsSlo: false, usdPerMillion: null };
      const instances = Math.max(1, Math.ceil(slo.rps / sustainable - 1e-9));
      const fleet = instances * t.usdPerHour;
      return { ...base, sustainableRps: sustainable, meetsSlo: true, instances, fleetUsdPerHour: fleet, usdPerMillion: slo.rps > 0 ? perMillion(fleet, slo.rps) : perMillion(t.usdPerHour, sustainable) };
    })
    .sort((x, y) => Number(y.meetsSlo) - Number(x.meetsSlo) || (x.fleetUsdPerHour ?? x.usdPerMillion ?? 0) - (y.fleetUsdPerHour ?? y.usdPerMillion ?? 0) || x.type.localeCompare(y.type));
}

/** USD per million predictions for an hourly cost serving `rps` requests per second. */
export const perMillion = (usdPerHour: number, rps: number): number => (usdPerHour / (rps * 3600)) * 1e6;

function round(x: number): number {
  return Number(x.toPrecision(3));
}

export interface CostSettings {
  catalog: InstanceCatalog;
  catalogPath: string;
  scaling: ScalingAssumptions;
  local: LocalCostAssumptions;
}

const catalogSummary = (s: CostSettings) => ({
  path: s.catalogPath,
  region: s.catalog.region,
  priceDates: [...new Set(s.catalog.instances.map((i) => i.priceDate))].sort(),
  priceSource: s.catalog.priceSource,
});

export interface JobCostReport {
  mode: 'job';
  job: string;
  kind: string;
  measured: JobMeasurement & { localVcpus: number };
  instances: JobEstimate[];
  cheapest: string;
  fastest: string;
  local: { usdPerHour: number; seconds: number; usd: number; measuredSeconds: number; measuredUsd: number };
  assumptions: { scaling: ScalingAssumptions; local: LocalCostAssumptions; gpuClasses: InstanceCatalog['gpuClasses'] };
  catalog: ReturnType<typeof catalogSummary>;
  notes: string[];
}

/** Estimates for a job on every catalog type and on this machine (a run from an empty feature cache). */
export function jobCostReport(m: JobMeasurement, notes: string[], s: CostSettings): JobCostReport {
  const instances = estimateJob(m, s.catalog, s.scaling);
  const hourly = localUsdPerHour(s.local);
  const localSeconds = (m.extraction ? m.coldImages / m.extraction.imagesPerSecond : 0) + m.headSeconds + m.otherSeconds;
  return {
    mode: 'job',
    job: m.job,
    kind: m.kind,
    measured: { ...m, localVcpus: s.scaling.localVcpus },
    instances,
    cheapest: instances[0]!.type,
    fastest: [...instances].sort((a, b) => a.seconds - b.seconds || a.usd - b.usd)[0]!.type,
    local: { usdPerHour: hourly, seconds: localSeconds, usd: (localSeconds / 3600) * hourly, measuredSeconds: m.seconds, measuredUsd: (m.seconds / 3600) * hourly },
    assumptions: { scaling: s.scaling, local: s.local, gpuClasses: s.catalog.gpuClasses },
    catalog: catalogSummary(s),
    notes,
  };
}

export interface ServingCostReport {
  mode: 'endpoint';
  endpoint?: string;
  measured: ServingMeasurement & { localVcpus: number };
  slo?: Slo;
  instances: ServingEstimate[];
  /** the cheapest fleet that meets the SLO (or the cheapest per prediction without one); null when none can */
  cheapest: { type: string; instances: number; usdPerHour: number; usdPerMillion: number | null } | null;
  local: { usdPerHour: number; usdPerMillion: number };
  assumptions: { scaling: ScalingAssumptions; local: LocalCostAssumptions; gpuClasses: InstanceCatalog['gpuClasses'] };
  catalog: ReturnType<typeof catalogSummary>;
}

export function servingCostReport(m: ServingMeasurement, slo: Slo | undefined, s: CostSettings, endpoint?: string): ServingCostReport {
  const instances = estimateServing(m, slo, s.catalog, s.scaling);
  const best = instances.find((i) => i.meetsSlo);
  const hourly = localUsdPerHour(s.local);
  return {
    mode: 'endpoint',
    ...(endpoint ? { endpoint } : {}),
    measured: { ...m, localVcpus: s.scaling.localVcpus },
    ...(slo ? { slo } : {}),
    instances,
    cheapest: best ? { type: best.type, instances: best.instances ?? 1, usdPerHour: best.fleetUsdPerHour ?? best.usdPerHour, usdPerMillion: best.usdPerMillion } : null,
    local: { usdPerHour: hourly, usdPerMillion: perMillion(hourly, m.imagesPerSecond) },
    assumptions: { scaling: s.scaling, local: s.local, gpuClasses: s.catalog.gpuClasses },
    catalog: catalogSummary(s),
  };
}

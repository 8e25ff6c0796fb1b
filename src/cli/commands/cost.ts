import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { errorMessage, Errors } from '../../core/index.js';
import {
  DEFAULT_CATALOG,
  DEFAULT_LOCAL,
  defaultScaling,
  jobCostReport,
  loadCatalog,
  measureJob,
  resolveJob,
  servingCostReport,
  type CostSettings,
  type JobCostReport,
  type ServingCostReport,
  type ServingMeasurement,
} from '../../insights/index.js';
import { emit, runAction, table, withWorkspace } from '../output.js';
import { number } from '../options.js';

/** "100ms", "0.1s" or a bare number of milliseconds. */
function milliseconds(name: string) {
  return (value: string): number => {
    const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value.trim());
    if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError(`${name} takes a positive duration such as 100ms or 0.25s, not "${value}".`);
    return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
  };
}

interface CostOpts {
  job?: string;
  endpoint?: string;
  ips?: number;
  p99?: number;
  bench?: string;
  sloP99?: number;
  rps?: number;
  catalog?: string;
  localVcpus?: number;
  efficiency?: number;
  watts: number;
  kwhPrice: number;
  machinePrice: number;
  lifetimeYears: number;
  utilization: number;
  json?: boolean;
}

/** A benchmark result file: {"imagesPerSecond": N, "p99Ms": N} (extra fields are ignored). */
function readBench(path: string): ServingMeasurement {
  let raw: { imagesPerSecond?: unknown; p99Ms?: unknown };
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw Errors.InvalidRequest(`The benchmark file ${path} could not be read: ${errorMessage(e).split('\n')[0]}.`, 'Pass a JSON file with "imagesPerSecond" and "p99Ms", or use --ips and --p99.');
  }
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
  if (!ok(raw?.imagesPerSecond) || !ok(raw?.p99Ms)) throw Errors.InvalidRequest(`The benchmark file ${path} needs positive numbers "imagesPerSecond" and "p99Ms".`, 'Example: {"imagesPerSecond": 42.5, "p99Ms": 61}');
  return { imagesPerSecond: raw.imagesPerSecond, p99Ms: raw.p99Ms, source: path };
}

const usd = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : x >= 100 ? `$${x.toFixed(0)}` : x >= 1 ? `$${x.toFixed(2)}` : `$${x.toPrecision(2)}`);
const secs = (s: number): string => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);
const n3 = (x: number): string => Number(x.toPrecision(3)).toString();

function jobText(r: JobCostReport): string {
  const m = r.measured;
  const ex = m.extraction;
  return [
    `job ${r.job}: a run from an empty feature cache processes ${m.coldImages} images; measured here (${m.localVcpus} threads): ${ex ? `backbone ${n3(ex.imagesPerSecond)} images/s` : 'backbone not measured'}, head + evaluation ${n3(m.headSeconds + m.otherSeconds)} s`,
    ...r.notes.map((n) => `note: ${n}`),
    table(
      ['INSTANCE', 'SERVICE', 'VCPU', 'GPU', '$/HOUR', 'IMAGES/S', 'TIME', 'BILLED', 'COST', 'BILLING RULE'],
      [
        ...r.instances.map((i) => [i.type, i.service, i.vcpu, i.gpu ?? '-', usd(i.usdPerHour), ex ? n3(i.imagesPerSecond) : '-', secs(i.seconds), secs(i.billedSeconds), usd(i.usd), i.billing]),
        ['this machine', 'local', m.localVcpus, '-', usd(r.local.usdPerHour), ex ? n3(ex.imagesPerSecond) : '-', secs(r.local.seconds), secs(r.local.seconds), usd(r.local.usd), 'electricity + amortisation per working hour'],
      ],
    ),
    'COST = BILLED x $/HOUR; BILLED is TIME raised to the billing minimum, so a run shorter than a minute costs a full minute on EC2.',
    `cheapest: ${r.cheapest}; fastest: ${r.fastest}`,
    footer(r),
  ].join('\n');
}

function servingText(r: ServingCostReport): string {
  const slo = r.slo;
  return [
    `${r.endpoint ? `endpoint ${r.endpoint}: ` : ''}measured ${n3(r.measured.imagesPerSecond)} images/s at p99 ${n3(r.measured.p99Ms)} ms on ${r.measured.localVcpus} threads (${r.measured.source})${slo ? `; SLO p99 <= ${n3(slo.p99Ms)} ms at ${n3(slo.rps)} requests/s` : ''}`,
    table(
      ['INSTANCE', 'SERVICE', 'VCPU', 'GPU', '$/HOUR', 'IMAGES/S', 'P99 MS', 'RPS AT SLO', 'INSTANCES', 'FLEET $/H', '$/1M PREDICTIONS'],
      [
        ...r.instances.map((i) => [i.type, i.service, i.vcpu, i.gpu ?? '-', usd(i.usdPerHour), n3(i.imagesPerSecond), n3(i.p99Ms), slo ? (i.meetsSlo ? n3(i.sustainableRps) : 'misses SLO') : '-', i.instances ?? '-', usd(i.fleetUsdPerHour), usd(i.usdPerMillion)]),
        ['this machine', 'local', r.measured.localVcpus, '-', usd(r.local.usdPerHour), n3(r.measured.imagesPerSecond), n3(r.measured.p99Ms), '-', '-', '-', usd(r.local.usdPerMillion)],
      ],
    ),
    r.cheapest ? `cheapest${slo ? ' meeting the SLO' : ' per prediction'}: ${r.cheapest.type}${slo ? ` x ${r.cheapest.instances} (${usd(r.cheapest.usdPerHour)}/hour, ${usd(r.cheapest.usdPerMillion)} per 1M predictions)` : ` (${usd(r.cheapest.usdPerMillion)} per 1M predictions at full load)`}` : 'no instance type in the catalog meets the SLO at any size: relax the p99 target or use a faster model',
    footer(r),
  ].join('\n');
}

const footer = (r: JobCostReport | ServingCostReport): string =>
  `prices: ${r.catalog.region} on-demand, dated ${r.catalog.priceDates.join(', ')}, from ${r.catalog.path}; they are list prices to check, not a quote. Scaling: ${r.assumptions.scaling.efficiency} x per-thread speed, GPU classes per the catalog; local: ${r.assumptions.local.watts} W at $${r.assumptions.local.usdPerKwh}/kWh + $${r.assumptions.local.machineUsd} over ${r.assumptions.local.lifetimeYears} years at ${r.assumptions.local.utilization * 100}% use (docs/INSIGHTS.md).`;

export function registerCost(program: Command): void {
  // not a jsonCommand yet: its option checks are error-catalogue lines being rewritten in parallel; a later pass can move them
  program
    .command('cost')
    .description('Estimate cloud cost from measured throughput: a training job on each instance type (--job), or serving cost and the cheapest type meeting a latency SLO (--endpoint/--ips/--bench).')
    .option('--job <id>', 'a finished training job (its id, or "latest": the newest completed one)')
    .option('--endpoint <name>', 'label the serving estimate with an endpoint name (measurements come from --bench or --ips/--p99)')
    .option('--ips <n>', 'measured serving throughput, images/s of one local server', number('--ips', { min: 1e-6 }))
    .option('--p99 <duration>', 'measured p99 latency at light load, e.g. 40ms', milliseconds('--p99'))
    .option('--bench <file>', 'benchmark result JSON with imagesPerSecond and p99Ms')
    .option('--slo-p99 <duration>', 'latency SLO for the serving estimate, e.g. 100ms', milliseconds('--slo-p99'))
    .option('--rps <n>', 'request rate the fleet must sustain', number('--rps', { min: 1e-6 }))
    .option('--catalog <file>', `instance catalog JSON (default ${DEFAULT_CATALOG})`)
    .option('--local-vcpus <n>', 'hardware threads of the machine that measured (default: this one)', number('--local-vcpus', { int: true, min: 1 }))
    .option('--efficiency <f>', 'speed of one cloud vCPU relative to one local thread', number('--efficiency', { min: 0.01, max: 10 }))
    .option('--watts <w>', 'local machine power while working', number('--watts', { min: 0 }), DEFAULT_LOCAL.watts)
    .option('--kwh-price <usd>', 'electricity price per kWh', number('--kwh-price', { min: 0 }), DEFAULT_LOCAL.usdPerKwh)
    .option('--machine-price <usd>', 'local machine purchase price', number('--machine-price', { min: 0 }), DEFAULT_LOCAL.machineUsd)
    .option('--lifetime-years <y>', 'years the local machine is amortised over', number('--lifetime-years', { min: 0.1 }), DEFAULT_LOCAL.lifetimeYears)
    .option('--utilization <f>', 'share of its lifetime the local machine does work (amortisation is spread over those hours)', number('--utilization', { min: 0.01, max: 1 }), DEFAULT_LOCAL.utilization)
    .option('--json', 'print JSON')
    .action((opts: CostOpts) =>
      runAction(async () => {
        const serving = opts.endpoint !== undefined || opts.ips !== undefined || opts.p99 !== undefined || opts.bench !== undefined;
        if (!!opts.job === serving) throw Errors.InvalidRequest(opts.job ? '--job estimates a training job; --endpoint, --ips, --p99 and --bench describe serving, so use one or the other.' : 'Say what to estimate: --job JOB for a training job, or serving measurements (--bench FILE, or --ips N --p99 MS).', 'Examples: kennel cost --job latest; kennel cost --ips 40 --p99 60ms --slo-p99 100ms --rps 50');
        if ((opts.sloP99 === undefined) !== (opts.rps === undefined)) throw Errors.InvalidRequest('--slo-p99 and --rps go together: the SLO is a latency target at a request rate.', 'Example: --slo-p99 100ms --rps 50');
        const catalogPath = resolve(opts.catalog ?? DEFAULT_CATALOG);
        const base = defaultScaling();
        const settings: CostSettings = {
          catalog: loadCatalog(catalogPath),
          catalogPath,
          scaling: { localVcpus: opts.localVcpus ?? base.localVcpus, efficiency: opts.efficiency ?? base.efficiency },
          local: { watts: opts.watts, usdPerKwh: opts.kwhPrice, machineUsd: opts.machinePrice, lifetimeYears: opts.lifetimeYears, utilization: opts.utilization },
        };
        const job = opts.job;
        if (job) {
          if (opts.sloP99 !== undefined) throw Errors.InvalidRequest('--slo-p99 and --rps size a serving fleet, which needs serving measurements rather than a training job.', 'Benchmark the endpoint and pass --bench FILE (or --ips and --p99) instead of --job.');
          await withWorkspace(async (ws) => {
            const m = await measureJob(ws, resolveJob(ws, job));
            const { notes, ...measurement } = m;
            const r = jobCostReport(measurement, notes, settings);
            emit(opts, r, () => jobText(r));
          });
          return;
        }
        let m: ServingMeasurement;
        if (opts.bench) {
          if (opts.ips !== undefined || opts.p99 !== undefined) throw Errors.InvalidRequest('Use --bench FILE or --ips/--p99, not both.', 'The benchmark file already holds imagesPerSecond and p99Ms.');
          m = readBench(resolve(opts.bench));
        } else {
          if (opts.ips === undefined || opts.p99 === undefined) throw Errors.InvalidRequest(`Serving estimates need measured throughput and latency${opts.endpoint ? ` for endpoint ${opts.endpoint}` : ''}: endpoints do not report them to kennel cost yet.`, 'Benchmark the endpoint, then pass --ips N --p99 MS (or --bench FILE).');
          m = { imagesPerSecond: opts.ips, p99Ms: opts.p99, source: '--ips/--p99' };
        }
        const slo = opts.sloP99 !== undefined && opts.rps !== undefined ? { p99Ms: opts.sloP99, rps: opts.rps } : undefined;
        const r = servingCostReport(m, slo, settings, opts.endpoint);
        emit(opts, r, () => servingText(r));
      }),
    );
}

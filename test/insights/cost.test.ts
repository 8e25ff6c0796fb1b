import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { KennelError } from '../../src/core/errors.ts';
import { DEFAULT_LOCAL, estimateJob, estimateServing, jobCostReport, loadCatalog, localUsdPerHour, scaleThroughput, type InstanceCatalog, type JobMeasurement } from '../../src/insights/index.ts';
import { tmpDir } from '../helpers/paths.ts';

const date = '2026-01-01';
const catalog: InstanceCatalog = {
  region: 'us-east-1',
  currency: 'USD',
  priceSource: 'hand-made for tests',
  gpuClasses: { T4: { vcpuEquivalent: 20, basis: 'test' } },
  instances: [
    { type: 'ml.m5.xlarge', service: 'sagemaker', vcpu: 4, memoryGiB: 16, gpu: null, usdPerHour: 0.23, priceDate: date },
    { type: 't3.medium', service: 'ec2', vcpu: 2, memoryGiB: 4, gpu: null, usdPerHour: 0.0416, priceDate: date, cpuBaseline: 0.2 },
    { type: 'g4dn.xlarge', service: 'ec2', vcpu: 4, memoryGiB: 16, gpu: { model: 'T4', count: 1 }, usdPerHour: 0.526, priceDate: date },
  ],
};
// 2 local threads at full cloud-vCPU speed keep the hand arithmetic simple
const scaling = { localVcpus: 2, efficiency: 1 };
const type = (name: string) => catalog.instances.find((i) => i.type === name)!;
const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);

test('throughput scales by vCPU, burst baseline and GPU class', () => {
  // 40 img/s on 2 threads = 20 per vCPU
  close(scaleThroughput(40, type('ml.m5.xlarge'), catalog, scaling).imagesPerSecond, 80, 'm5.xlarge: 20 x 4');
  close(scaleThroughput(40, type('t3.medium'), catalog, scaling).imagesPerSecond, 8, 't3.medium: 20 x 2 x 0.2');
  close(scaleThroughput(40, type('g4dn.xlarge'), catalog, scaling).imagesPerSecond, 400, 'g4dn: 20 x 20 vCPU-equivalents');
  close(scaleThroughput(40, type('ml.m5.xlarge'), catalog, { localVcpus: 2, efficiency: 0.85 }).imagesPerSecond, 68, 'efficiency 0.85');
  // a GPU slower than the instance's own CPUs: the CPU figure wins
  close(scaleThroughput(40, type('g4dn.xlarge'), { ...catalog, gpuClasses: { T4: { vcpuEquivalent: 2, basis: 'slow' } } }, scaling).imagesPerSecond, 80, 'cpu beats gpu');
});

test('training job: wall time and cost per type, with the EC2 one-minute minimum', () => {
  const m: JobMeasurement = { job: 'train-x', kind: 'train', extraction: { imagesPerSecond: 40, images: 8351, seconds: 208.775, fromJob: 'train-x' }, coldImages: 8351, headSeconds: 30, otherSeconds: 6, seconds: 244.775 };
  const rows = estimateJob(m, catalog, scaling);
  const by = (t: string) => rows.find((r) => r.type === t)!;
  // m5.xlarge: 8351 / 80 = 104.3875 s + 36 s; 140.3875 s x $0.23/h
  close(by('ml.m5.xlarge').seconds, 140.3875, 'm5 seconds');
  close(by('ml.m5.xlarge').usd, (140.3875 / 3600) * 0.23, 'm5 usd');
  // t3.medium: 8351 / 8 = 1043.875 s + 36 / 0.2 = 180 s
  close(by('t3.medium').seconds, 1223.875, 't3 seconds');
  close(by('t3.medium').usd, (1223.875 / 3600) * 0.0416, 't3 usd');
  // g4dn.xlarge: 8351 / 400 = 20.8775 s + 36 s = 56.8775 s, billed as 60 s on EC2
  close(by('g4dn.xlarge').seconds, 56.8775, 'g4dn seconds');
  close(by('g4dn.xlarge').usd, (60 / 3600) * 0.526, 'g4dn usd (minimum)');
  // each row says which rule priced it and the time it was applied to
  assert.equal(by('g4dn.xlarge').billedSeconds, 60);
  assert.match(by('g4dn.xlarge').billing, /per second, 60 s minimum/);
  close(by('ml.m5.xlarge').billedSeconds, 140.3875, 'sagemaker bills the run time');
  assert.match(by('ml.m5.xlarge').billing, /per second, no minimum/);
  for (const r of rows) close(r.usd, (r.billedSeconds / 3600) * r.usdPerHour, `${r.type}: cost = billed time x price`);
  assert.deepEqual(
    rows.map((r) => r.type),
    ['g4dn.xlarge', 'ml.m5.xlarge', 't3.medium'],
    'cheapest first',
  );

  const report = jobCostReport(m, [], { catalog, catalogPath: 'test', scaling, local: DEFAULT_LOCAL });
  assert.equal(report.cheapest, 'g4dn.xlarge');
  assert.equal(report.fastest, 'g4dn.xlarge');
  close(report.local.seconds, 8351 / 40 + 36, 'local seconds');
  close(report.local.usd, ((8351 / 40 + 36) / 3600) * localUsdPerHour(DEFAULT_LOCAL), 'local usd');
});

test('a job whose backbone was never measured is estimated from head time alone', () => {
  const rows = estimateJob({ job: 'j', kind: 'train', coldImages: 100, headSeconds: 10, otherSeconds: 2, seconds: 12 }, catalog, scaling);
  close(rows.find((r) => r.type === 'ml.m5.xlarge')!.seconds, 12, 'no extraction time');
  assert.equal(rows.find((r) => r.type === 'ml.m5.xlarge')!.basis, 'no extraction measurement');
});

test('serving: instances for an SLO, cost per million, cheapest type that meets it', () => {
  const measured = { imagesPerSecond: 40, p99Ms: 50, source: 'test' };
  const rows = estimateServing(measured, { p99Ms: 100, rps: 50 }, catalog, scaling);
  const by = (t: string) => rows.find((r) => r.type === t)!;
  // m5.xlarge: mu 80, light-load p99 50 x 40/80 = 25 ms, sustainable 80 x (1 - 25/100) = 60 rps -> 1 instance
  close(by('ml.m5.xlarge').p99Ms, 25, 'm5 p99');
  close(by('ml.m5.xlarge').sustainableRps, 60, 'm5 sustainable rps');
  assert.equal(by('ml.m5.xlarge').instances, 1);
  close(by('ml.m5.xlarge').usdPerMillion!, (0.23 / (50 * 3600)) * 1e6, 'm5 $/1M at 50 rps');
  // t3.medium: mu 8, p99 250 ms > 100 ms: cannot meet the SLO at any size
  assert.equal(by('t3.medium').meetsSlo, false);
  assert.equal(by('t3.medium').usdPerMillion, null);
  // g4dn: mu 400, p99 5 ms, sustainable 380 rps
  close(by('g4dn.xlarge').sustainableRps, 380, 'g4dn sustainable rps');
  assert.equal(rows[0]!.type, 'ml.m5.xlarge', 'cheapest fleet meeting the SLO at 50 rps');

  // at 200 rps the m5 fleet needs ceil(200 / 60) = 4 instances ($0.92/h) and one g4dn ($0.526/h) wins
  const busy = estimateServing(measured, { p99Ms: 100, rps: 200 }, catalog, scaling);
  assert.equal(busy.find((r) => r.type === 'ml.m5.xlarge')!.instances, 4);
  close(busy.find((r) => r.type === 'ml.m5.xlarge')!.fleetUsdPerHour!, 0.92, 'm5 fleet');
  assert.equal(busy[0]!.type, 'g4dn.xlarge');
  close(busy[0]!.usdPerMillion!, (0.526 / (200 * 3600)) * 1e6, 'g4dn $/1M at 200 rps');
  assert.equal(busy.at(-1)!.type, 't3.medium', 'types that miss the SLO last');

  // without an SLO: cost per million at full capacity
  const free = estimateServing(measured, undefined, catalog, scaling);
  close(free.find((r) => r.type === 'ml.m5.xlarge')!.usdPerMillion!, (0.23 / (80 * 3600)) * 1e6, 'm5 $/1M at capacity');
});

test('the local machine costs electricity plus amortisation per working hour', () => {
  // 150 W x $0.17/kWh + $1500 / (3 years x 8760 h x 50%)
  close(localUsdPerHour(DEFAULT_LOCAL), 0.15 * 0.17 + 1500 / (3 * 8760 * 0.5), 'defaults');
  close(localUsdPerHour({ watts: 1000, usdPerKwh: 0.1, machineUsd: 0, lifetimeYears: 1, utilization: 1 }), 0.1, 'electricity only');
});

test('the shipped catalog covers the seed instance types with prices and dates', () => {
  const c = loadCatalog();
  const types = c.instances.map((i) => i.type);
  for (const t of ['ml.t3.medium', 'ml.m5.large', 'ml.m5.xlarge', 'ml.g4dn.xlarge', 'ml.p3.2xlarge', 't3.medium', 'm5.xlarge', 'g4dn.xlarge', 'p3.2xlarge']) assert.ok(types.includes(t), t);
  assert.equal(c.instances.find((i) => i.type === 'ml.m5.xlarge')!.usdPerHour, 0.23);
  assert.equal(c.instances.find((i) => i.type === 'ml.g4dn.xlarge')!.gpu!.model, 'T4');
  for (const i of c.instances) assert.match(i.priceDate, /^\d{4}-\d{2}-\d{2}$/);
});

test('a broken catalog is a clear error', () => {
  const dir = tmpDir();
  const write = (name: string, value: unknown) => {
    const p = join(dir, name);
    writeFileSync(p, typeof value === 'string' ? value : JSON.stringify(value));
    return p;
  };
  const bad = (path: string, pattern: RegExp) => assert.throws(() => loadCatalog(path), (e: unknown) => e instanceof KennelError && pattern.test(e.message), path);
  bad(write('dup.json', { ...catalog, instances: [...catalog.instances, catalog.instances[0]] }), /listed twice/);
  bad(write('gpu.json', { ...catalog, gpuClasses: {} }), /GPU class T4/);
  bad(write('price.json', { ...catalog, instances: [{ ...catalog.instances[0], usdPerHour: -1 }] }), /usdPerHour/);
  bad(write('syntax.json', '{ not json'), /could not be read/);
  bad(join(dir, 'missing.json'), /could not be read/);
  assert.equal(loadCatalog(write('ok.json', catalog)).instances.length, 3);
});

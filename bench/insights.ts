/**
 * `npm run bench:insights [-- --quick] [-- --json]`: what recording telemetry costs.
 *
 * - synthetic steps (fixed JS work, yielding to the event loop like real steps do), each reported
 *   through the recorder's progress hook, with the recorder sampling vs without: a with/without
 *   comparison precise enough to see a 2% difference
 * - head training (dogImages shape: 1,280-dim features, 133 classes) with and without a recorder;
 *   the recorder's own timing of itself as a share of step time (ORT run times vary by several
 *   percent between runs, so the wall-clock comparison there is for reference)
 * - train() on breeds-mini with cached features, telemetry on vs off: the recorder's share of
 *   step time, and the fixed end-of-job cost (storing the telemetry artifact, running the rules)
 * - one hardware sample's main-thread cost, alone and with 4 worker processes to read from /proc
 * Runs are interleaved ABBA so drift in machine load hits both sides. Target: under 2% of step time.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addBackbone } from '../src/backbones/index.js';
import { importDataset } from '../src/data/index.js';
import { TelemetryRecorder, type JobTelemetry } from '../src/insights/index.js';
import { getJob, openWorkspace } from '../src/store/index.js';
import { fitHead, train, type HeadConfig } from '../src/training/index.js';
import { machineInfo } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, shared, sharedMobileNet, summaryTable, type SummaryRow } from './lib/report.js';
import { gaussianClusters } from './lib/synthetic.js';

const TARGET_RATIO = 0.02;
const args = parseBenchArgs(process.argv.slice(2), 'insights');
const log = logger(args.json);
const machine = machineInfo();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

const shape = args.quick ? { rows: 2000, dim: 1280, classes: 133, epochs: 4, pairs: 4, syntheticSteps: 1500 } : { rows: 6680, dim: 1280, classes: 133, epochs: 8, pairs: 6, syntheticSteps: 4000 };
log(`bench:insights${args.quick ? ' --quick' : ''}: ${machine.cpu}, ${machine.cores} cores, load ${machine.loadStart}`);

// ABBA order: whatever the first run of a pair pays (garbage of the previous one) hits both sides
const ordered = async <T>(i: number, run: (record: boolean) => Promise<T>): Promise<[T, T]> => {
  if (i % 2 === 0) {
    const a = await run(true);
    return [a, await run(false)];
  }
  const b = await run(false);
  return [await run(true), b];
};

// 0. synthetic steps: about 0.5 ms of arithmetic each, then a yield (where timers and I/O run)
let sink = 0;
function work(): void {
  let x = 0;
  for (let i = 0; i < 200_000; i++) x += Math.sqrt(i) * 1e-9;
  sink += x;
}
async function syntheticRun(record: boolean): Promise<number> {
  const recorder = record ? new TelemetryRecorder({ job: 'bench', kind: 'train', device: 'cpu' }) : undefined;
  const progress = recorder?.observeProgress();
  const t0 = performance.now();
  for (let i = 0; i < shape.syntheticSteps; i++) {
    work();
    progress?.({ phase: 'features train', done: (i + 1) * 16, total: shape.syntheticSteps * 16 });
    await new Promise<void>((r) => setImmediate(r));
  }
  recorder?.finish();
  return (performance.now() - t0) / 1000;
}
await syntheticRun(false);
const synthetic = { on: [] as number[], off: [] as number[] };
for (let i = 0; i < shape.pairs * 2; i++) {
  const [a, b] = await ordered(i, syntheticRun);
  synthetic.on.push(a);
  synthetic.off.push(b);
}
const syntheticAb = median(synthetic.on) / median(synthetic.off) - 1;
log(`synthetic steps: ${shape.syntheticSteps} x ${((median(synthetic.off) / shape.syntheticSteps) * 1000).toFixed(3)} ms; with / without telemetry ${(syntheticAb * 100).toFixed(2)}%`);

// 1. head training with and without a recorder, interleaved so drift in machine load hits both
const trainSet = gaussianClusters(shape.rows, shape.dim, shape.classes, { seed: 1 });
const validSet = gaussianClusters(Math.round(shape.rows / 8), shape.dim, shape.classes, { seed: 2, centresSeed: 1 });
const cfg: HeadConfig = { kind: 'linear', hidden: 512, dropout: 0.2, optimizer: 'adamw', lr: 1e-3, batchSize: 64, epochs: shape.epochs, weightDecay: 1e-4, labelSmoothing: 0.1, patience: 100, seed: 0 };
async function headRun(record: boolean): Promise<{ seconds: number; stepSeconds: number; telemetry?: JobTelemetry }> {
  const recorder = record ? new TelemetryRecorder({ job: 'bench', kind: 'train', device: 'cpu' }) : undefined;
  const t0 = performance.now();
  const fit = await fitHead({ train: trainSet, trainLabels: trainSet.labels, valid: validSet, validLabels: validSet.labels, classes: shape.classes }, cfg);
  recorder?.headSteps(fit.steps);
  recorder?.epochs(fit.history);
  const telemetry = recorder?.finish();
  return { seconds: (performance.now() - t0) / 1000, stepSeconds: fit.steps.reduce((s, x) => s + x.ms, 0) / 1000, telemetry };
}
await headRun(false); // warm-up: ORT sessions, JIT
const on: number[] = [];
const off: number[] = [];
const selfRatios: number[] = [];
let steps = 0;
for (let i = 0; i < shape.pairs; i++) {
  const [a, b] = await ordered(i, headRun);
  on.push(a.seconds);
  off.push(b.seconds);
  selfRatios.push(a.telemetry!.overhead.stepRatio);
  steps = a.telemetry!.steps.length;
  log(`head pair ${i + 1}/${shape.pairs}: with telemetry ${a.seconds.toFixed(3)}s, without ${b.seconds.toFixed(3)}s, recorder ${(a.telemetry!.overhead.ms).toFixed(2)} ms`);
}
const headAb = median(on) / median(off) - 1;

// 2. whole training jobs with cached features
const home = mkdtempSync(join(tmpdir(), 'kennel-bench-insights-'));
const jobs = { on: [] as number[], off: [] as number[], selfRatio: [] as number[], stepMs: [] as number[] };
try {
  const ws = openWorkspace(home);
  await importDataset(ws, join(shared, 'data/breeds-mini'), { name: 'breeds' });
  await addBackbone(ws, sharedMobileNet, { name: 'mobilenetv2-12-int8' });
  const opts = { dataset: 'breeds', backbone: 'mobilenetv2-12-int8', epochs: 30, patience: 100 };
  await train(ws, opts); // extracts and caches the features
  for (let i = 0; i < shape.pairs; i++) {
    const [a, b] = await ordered(i, (record) => train(ws, opts, { telemetry: record }));
    jobs.on.push(a.seconds);
    jobs.off.push(b.seconds);
    const t = JSON.parse(Buffer.from(await ws.artifacts.get((getJob(ws, a.job)!.result as { telemetry: string }).telemetry)).toString('utf8')) as JobTelemetry;
    jobs.selfRatio.push(t.overhead.stepRatio);
    jobs.stepMs.push(t.steps.reduce((s, x) => s + x.ms, 0));
    log(`train() pair ${i + 1}/${shape.pairs}: with telemetry ${a.seconds.toFixed(3)}s, without ${b.seconds.toFixed(3)}s`);
  }
  ws.close();
} finally {
  rmSync(home, { recursive: true, force: true });
}
const endOfJobMs = (median(jobs.on) - median(jobs.off)) * 1000;

// 3. a hardware sample's cost: the recorder's own time per sample, alone and with worker processes
// to read; the workers' start (node mapping its memory) slows /proc reads, so the steady cost is the
// difference between a long and a short recording of the same kind
async function recording(workers: number, ms: number): Promise<{ ms: number; samples: number }> {
  const rec = new TelemetryRecorder({ job: 'bench', kind: 'train', device: 'cpu' }, { intervalMs: 10, gpu: 'off' });
  const children = Array.from({ length: workers }, () => spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' }));
  await sleep(ms);
  const t = rec.finish();
  for (const c of children) c.kill();
  return { ms: t.overhead.ms, samples: t.hardware.length };
}
async function sampleCostUs(workers: number): Promise<number> {
  const short = await recording(workers, 1500);
  const long = await recording(workers, args.quick ? 3500 : 6500);
  return ((long.ms - short.ms) * 1000) / (long.samples - short.samples);
}
const sampleUs = { alone: [] as number[], workers: [] as number[] };
for (let i = 0; i < 3; i++) {
  sampleUs.alone.push(await sampleCostUs(0));
  sampleUs.workers.push(await sampleCostUs(4));
}
log(`hardware sample: ${median(sampleUs.alone).toFixed(1)} us alone, ${median(sampleUs.workers).toFixed(1)} us with 4 worker processes`);

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const rows: SummaryRow[] = [
  { metric: `synthetic steps, wall time with / without telemetry - 1 (median of ${shape.pairs * 2})`, value: pct(syntheticAb), target: `< ${pct(TARGET_RATIO)}`, pass: syntheticAb < TARGET_RATIO },
  { metric: `recorder time / step time, head training (${steps} steps, median of ${shape.pairs})`, value: pct(median(selfRatios)), target: `< ${pct(TARGET_RATIO)}`, pass: median(selfRatios) < TARGET_RATIO },
  { metric: 'head training wall time, with / without telemetry - 1 (median; ORT noise of several %)', value: pct(headAb) },
  { metric: 'recorder time / step time, train() on breeds-mini', value: pct(median(jobs.selfRatio)), target: `< ${pct(TARGET_RATIO)}`, pass: median(jobs.selfRatio) < TARGET_RATIO },
  { metric: 'train() end-of-job cost: store the telemetry, run the rules (median difference)', value: `${endOfJobMs.toFixed(1)} ms` },
  { metric: 'one hardware sample (every 250 ms), steady main-thread time: alone / with 4 worker processes read from /proc (median of 3)', value: `${median(sampleUs.alone).toFixed(1)} / ${median(sampleUs.workers).toFixed(1)} us` },
];
const results = {
  bench: 'insights',
  quick: args.quick,
  machine: { ...machine, loadEnd: machineInfo().loadStart },
  synthetic: { steps: shape.syntheticSteps, withSeconds: synthetic.on, withoutSeconds: synthetic.off, abRatio: syntheticAb, checksum: sink },
  head: { shape, withSeconds: on, withoutSeconds: off, abRatio: headAb, selfRatios },
  train: { withSeconds: jobs.on, withoutSeconds: jobs.off, endOfJobMs, selfRatios: jobs.selfRatio, stepMs: jobs.stepMs },
  hardwareSampleUs: sampleUs,
  summary: rows,
};
const file = saveResults('insights', results);
if (args.json) process.stdout.write(JSON.stringify({ ...results, file }, null, 2) + '\n');
else process.stdout.write(summaryTable(rows) + `\nresults: ${file}\n`);

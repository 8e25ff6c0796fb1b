/**
 * `npm run bench:capture [-- --quick] [-- --json]`: what data capture and a drift check cost on
 * CPU. Per image, one at a time: a plain prediction (decode, the model's graph, top-k) against a
 * captured one (the same graph with the backbone's features as an extra output, as a replica
 * runs a captured request) plus the endpoint's 64-number projection. Then checkDrift's time on
 * the newest 200 captures against 100 training rows, as the daemon's schedule runs it. Model: a
 * linear head trained on breeds-mini over the shared MobileNetV2.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addBackbone, FEATURES_OUTPUT } from '../src/backbones/index.js';
import { median } from '../src/core/index.js';
import { importDataset } from '../src/data/index.js';
import { checkDrift } from '../src/housekeeping/index.js';
import { Classifier, FeatureTap, tuneSharp } from '../src/inference/index.js';
import { getModel } from '../src/registry/index.js';
import { CaptureSink, captureProjection, projectRow } from '../src/serving/index.js';
import { openWorkspace } from '../src/store/index.js';
import { train } from '../src/training/index.js';
import { planCreate, insertEndpoint } from '../src/serving/endpoints.js';
import { currentLoad, machineInfo } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, shared, sharedMobileNet, summaryTable } from './lib/report.js';
import { benchHome } from './lib/serving.js';

const TARGET = { capturedOverPlain: 1.5 };
const args = parseBenchArgs(process.argv.slice(2), 'capture');
const log = logger(args.json);
const machine = machineInfo();
const date = new Date();
const t0 = performance.now();
const root = join(shared, 'data/breeds-mini');
const photos = ['test', 'valid'].flatMap((s) => readdirSync(join(root, s)).sort().flatMap((d) => readdirSync(join(root, s, d)).sort().map((f) => join(root, s, d, f))));
const images = args.quick ? photos.slice(0, 20) : photos;
const rounds = args.quick ? 1 : 3;
const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)]!;
const r2 = (x: number) => Math.round(x * 100) / 100;

async function perImage(fn: (bytes: Buffer) => Promise<unknown>, files: Buffer[]): Promise<number[]> {
  const ms: number[] = [];
  for (const f of files) {
    const s = performance.now();
    await fn(f);
    ms.push(performance.now() - s);
  }
  return ms;
}

const { home, cleanup } = benchHome('capture');
try {
  const ws = openWorkspace(home);
  log(`bench:capture${args.quick ? ' (quick)' : ''}: ${images.length} photos x ${rounds} round(s), ${machine.cores} cores, load average ${machine.loadStart}`);
  await importDataset(ws, root, { name: 'breeds' });
  await addBackbone(ws, sharedMobileNet, { name: 'mnv2' });
  await train(ws, { dataset: 'breeds', backbone: 'mnv2' });
  tuneSharp();
  const mv = getModel(ws, 'breeds');
  const path = await ws.artifacts.localPath(mv.onnxSha);
  const bytes = images.map((f) => readFileSync(f));
  const clf = await Classifier.load(path, mv.card, { spinning: false });
  const tap = await FeatureTap.load(path, mv.card, FEATURES_OUTPUT, { spinning: false });
  const projection = captureProjection('dogs', 1280);
  const captured = async (b: Buffer) => projectRow((await tap.run(b, 5)).features, projection);
  await perImage((b) => clf.classify([b], 5), bytes.slice(0, 3));
  await perImage(captured, bytes.slice(0, 3));
  const plain: number[] = [];
  const withCapture: number[] = [];
  for (let r = 0; r < rounds; r++) {
    plain.push(...(await perImage((b) => clf.classify([b], 5), bytes)));
    withCapture.push(...(await perImage(captured, bytes)));
  }
  const ratio = median(withCapture) / median(plain);
  log(`plain p50 ${r2(median(plain))} ms, captured p50 ${r2(median(withCapture))} ms (${r2(ratio)}x)`);

  // 200 captures through the sink, then the scheduled check's cost
  insertEndpoint(ws, planCreate(ws, { name: 'dogs', variants: [{ name: 'primary', model: 'breeds' }], capture: { percent: 100 } }));
  const sink = new CaptureSink(ws, 'dogs', { percent: 100, retentionDays: 30, maxRows: 100_000, images: false });
  for (let i = 0; i < 200; i++) {
    const b = bytes[i % bytes.length]!;
    const r = await tap.run(b, 1);
    sink.record(b, { model: 'breeds@1', variant: 'primary', predictions: r.predictions, features: Array.from(r.features), ms: 1 });
  }
  sink.close();
  await clf.close();
  await tap.close();
  await checkDrift(ws, 'dogs', { record: false }); // loads the training reference once
  const checks: number[] = [];
  for (let i = 0; i < (args.quick ? 3 : 5); i++) {
    const s = performance.now();
    await checkDrift(ws, 'dogs', { record: false });
    checks.push(performance.now() - s);
  }
  ws.close();
  const out = {
    plainMs: { p50: r2(median(plain)), p90: r2(p(plain, 0.9)) },
    capturedMs: { p50: r2(median(withCapture)), p90: r2(p(withCapture, 0.9)) },
    ratio: r2(ratio),
    driftCheckMs: { p50: r2(median(checks)), captures: 200, referenceRows: 100, permutations: 500 },
    quick: args.quick,
    date: date.toISOString(),
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: { ...machine, loadEnd: currentLoad() },
    images: images.length,
    rounds,
  };
  const file = saveResults('capture', out, date);
  if (args.json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  else {
    process.stdout.write(
      summaryTable([
        { metric: 'plain prediction p50 / p90 (one image at a time)', value: `${out.plainMs.p50} / ${out.plainMs.p90} ms` },
        { metric: 'captured prediction (features tapped + projected) p50 / p90', value: `${out.capturedMs.p50} / ${out.capturedMs.p90} ms (${out.ratio}x)`, target: `<= ${TARGET.capturedOverPlain}x`, pass: out.ratio <= TARGET.capturedOverPlain },
        { metric: 'drift check: 200 captures vs 100 training rows, 500 permutations, p50', value: `${out.driftCheckMs.p50} ms` },
      ]) + `\nresults: ${file}\n`,
    );
  }
} finally {
  cleanup();
}

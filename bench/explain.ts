/**
 * `npm run bench:explain [-- --quick] [-- --json]`: what an explanation costs on CPU, per image,
 * one image at a time (as `?explain=1` runs in a replica): a plain prediction (decode, the model's
 * graph, top-k) against an explanation of the same image (decode, the same graph with its last
 * feature map as an extra output, the class activation map, the PNG overlay). The model is a
 * linear head trained on breeds-mini over the shared MobileNetV2 (the exact CAM), and the
 * imported MobileNetV2 itself (int8 head: the occlusion fallback, 49 extra forward passes).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { addBackbone } from '../src/backbones/index.js';
import { median } from '../src/core/index.js';
import { importDataset } from '../src/data/index.js';
import { Classifier, Explainer, tuneSharp } from '../src/inference/index.js';
import { getModel, importModel } from '../src/registry/index.js';
import { openWorkspace } from '../src/store/index.js';
import { train } from '../src/training/index.js';
import { currentLoad, machineInfo } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, shared, sharedMobileNet, summaryTable } from './lib/report.js';
import { benchHome } from './lib/serving.js';

const TARGET = { explainOverPlain: 2 };
const args = parseBenchArgs(process.argv.slice(2), 'explain');
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

/** Milliseconds per image of `fn`, one image after the other, after one warm-up pass over 3 images; `rounds` passes alternate with the other side's. */
async function perImage(fn: (file: string) => Promise<unknown>, files: string[]): Promise<number[]> {
  const ms: number[] = [];
  for (const f of files) {
    const s = performance.now();
    await fn(f);
    ms.push(performance.now() - s);
  }
  return ms;
}

const { home, cleanup } = benchHome('explain');
try {
  const ws = openWorkspace(home);
  log(`bench:explain${args.quick ? ' (quick)' : ''}: ${images.length} photos x ${rounds} round(s), ${machine.cores} cores, load average ${machine.loadStart}`);
  await importDataset(ws, root, { name: 'breeds' });
  await addBackbone(ws, sharedMobileNet, { name: 'mnv2' });
  await train(ws, { dataset: 'breeds', backbone: 'mnv2' });
  await importModel(ws, sharedMobileNet, { name: 'imagenet', labels: Array.from({ length: 1000 }, (_, i) => `class-${i}`) });
  tuneSharp();
  const results: Record<string, { plainMs: { p50: number; p90: number }; explainMs: { p50: number; p90: number }; ratio: number; method: string }> = {};
  for (const name of ['breeds', 'imagenet']) {
    const mv = getModel(ws, name);
    const path = await ws.artifacts.localPath(mv.onnxSha);
    // the same session settings on both sides: every core, threads that do not spin, this thread
    const clf = await Classifier.load(path, mv.card, { spinning: false });
    const ex = await Explainer.load(path, mv.card, { spinning: false });
    const plain: number[] = [];
    const explain: number[] = [];
    const files = name === 'imagenet' && args.quick ? images.slice(0, 8) : images;
    await perImage((f) => clf.classify([f], 5), files.slice(0, 3));
    await perImage((f) => ex.explain(f, 5), files.slice(0, 3));
    for (let r = 0; r < rounds; r++) {
      plain.push(...(await perImage((f) => clf.classify([f], 5), files)));
      explain.push(...(await perImage((f) => ex.explain(f, 5), files)));
    }
    const ratio = median(explain) / median(plain);
    results[name] = { plainMs: { p50: r2(median(plain)), p90: r2(p(plain, 0.9)) }, explainMs: { p50: r2(median(explain)), p90: r2(p(explain, 0.9)) }, ratio: r2(ratio), method: ex.method };
    log(`${name} (${ex.method}): plain p50 ${r2(median(plain))} ms, explained p50 ${r2(median(explain))} ms (${r2(ratio)}x)`);
    await clf.close();
    await ex.close();
  }
  ws.close();
  const out = { ...results, quick: args.quick, date: date.toISOString(), seconds: Math.round((performance.now() - t0) / 1000), machine: { ...machine, loadEnd: currentLoad() }, images: images.length, rounds };
  const file = saveResults('explain', out, date);
  if (args.json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  else {
    const cam = results.breeds!;
    const occ = results.imagenet!;
    process.stdout.write(
      summaryTable([
        { metric: 'trained linear head: plain prediction p50 / p90', value: `${cam.plainMs.p50} / ${cam.plainMs.p90} ms` },
        { metric: 'trained linear head: with explanation (exact CAM) p50 / p90', value: `${cam.explainMs.p50} / ${cam.explainMs.p90} ms (${cam.ratio}x)`, target: `<= ${TARGET.explainOverPlain}x`, pass: cam.ratio <= TARGET.explainOverPlain },
        { metric: 'int8 ImageNet head: plain p50', value: `${occ.plainMs.p50} ms` },
        { metric: 'int8 ImageNet head: occlusion fallback p50 (49 extra passes)', value: `${occ.explainMs.p50} ms (${occ.ratio}x)` },
      ]) + `\nresults: ${file}\n`,
    );
  }
} finally {
  cleanup();
}

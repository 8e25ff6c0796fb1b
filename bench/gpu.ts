/**
 * `npm run bench:gpu [-- --quick] [-- --json] [-- --device webgpu|cuda]`: Kennel on a GPU against
 * a plain PyTorch script on the same card and the same JPEGs, in one run (docs/GPU.md).
 *
 * - the dogImages-shaped generated set (8,351 JPEGs of about 500x375; --quick: 1,200)
 * - Kennel: `kennel data import` + `backbones add` (the ResNet50 architecture, random weights,
 *   bench/models/resnet.ts) + `kennel train --device D` from an empty workspace, in a child
 *   process per libuv pool size (4, Node's default, and one thread per core), since decoding
 *   runs on that pool and its size is fixed when a process starts
 * - PyTorch (bench/torch_anchor.py, the machine's python3): the same JPEGs through a DataLoader
 *   with one worker per core, one bf16 channels-last ResNet50 pass, a linear head for 30 epochs;
 *   raw ResNet50 images/s at batch 32 and 256, fp32 and bf16
 * - serving: bench:serve --quick on the same device with the ResNet50 architecture
 * - input transfer: the raw session fed float32 NCHW (normalised on the host, as Kennel does
 *   today) against uint8 NHWC with the normalisation in the graph (a quarter of the bytes)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addBackbone } from '../src/backbones/index.js';
import { importDataset } from '../src/data/index.js';
import * as ort from 'onnxruntime-node';
import { ENDPOINT_DEVICES, NORMALIZATIONS, UINT8_INPUT, sessionOptions, withUint8Input, type Device } from '../src/inference/index.js';
import { openWorkspace } from '../src/store/index.js';
import { train } from '../src/training/index.js';
import { DOG_IMAGES, benchDogSet, type DogSetSpec } from './lib/dataset.js';
import { currentLoad, machineInfo } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, summaryTable, type SummaryRow } from './lib/report.js';
import { timed } from './lib/timing.js';
import { buildResnet } from './models/resnet.js';

const TARGET = { trainSeconds: 10, serveImagesPerSecond: 1500 };
const QUICK_SET: DogSetSpec = { ...DOG_IMAGES, classes: 40, images: { train: 960, valid: 120, test: 120 } };

interface KennelRun {
  uvThreadpool: number;
  importSeconds: number;
  backboneSeconds: number;
  trainSeconds: number;
  featureSeconds: number;
  headSeconds: number;
  totalSeconds: number;
  extractedImages: number;
  featureImagesPerSecond: number;
  testTop1: number;
}

/** The Kennel part, run in a child process so that each run gets its own libuv pool size. */
async function kennelPart(dir: string, device: Device): Promise<KennelRun> {
  const home = mkdtempSync(join(tmpdir(), 'kennel-bench-gpu-'));
  const ws = openWorkspace(home);
  try {
    const resnet = join(home, 'resnet50.onnx');
    writeFileSync(resnet, buildResnet({ depth: 50 }));
    const total = await timed(async () => {
      const imported = await timed(() => importDataset(ws, dir, { name: 'dogs' }));
      const backbone = await timed(() => addBackbone(ws, resnet, { name: 'resnet50' }));
      const trained = await timed(() => train(ws, { dataset: 'dogs', backbone: 'resnet50', device }, {}));
      return { imported, backbone, trained };
    });
    const t = total.value.trained.value;
    return {
      uvThreadpool: Number(process.env.UV_THREADPOOL_SIZE) || 4,
      importSeconds: total.value.imported.seconds,
      backboneSeconds: total.value.backbone.seconds,
      trainSeconds: total.value.trained.seconds,
      featureSeconds: t.timings.features,
      headSeconds: t.timings.head,
      totalSeconds: total.seconds,
      extractedImages: t.features.extractedImages,
      featureImagesPerSecond: t.features.extractedImages / t.timings.features,
      testTop1: t.metrics.test.top1,
    };
  } finally {
    ws.close();
    rmSync(home, { recursive: true, force: true });
  }
}

const self = fileURLToPath(import.meta.url);
if (process.argv[2] === '--kennel-part') {
  process.stdout.write(JSON.stringify(await kennelPart(process.argv[3]!, process.argv[4] as Device)) + '\n');
  process.exit(0);
}

const args = parseBenchArgs(process.argv.slice(2), 'gpu', {
  device: { help: 'the GPU provider Kennel uses', default: 'webgpu', choices: ENDPOINT_DEVICES.filter((d) => d !== 'cpu') },
});
const device = args.options.device as Device;
const log = logger(args.json);
const date = new Date();
const machine = machineInfo();
const started = performance.now();
const cores = availableParallelism();

const set = await benchDogSet(args.quick ? QUICK_SET : DOG_IMAGES, { json: args.json, log });

const runChild = (cmd: string, argv: string[], env: Record<string, string> = {}) => {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  // the JSON document: one line, or a pretty-printed one (bench:serve --json), after any log lines
  return JSON.parse(r.stdout.slice(r.stdout.search(/^\{/m))) as unknown;
};

const kennel: KennelRun[] = [];
for (const uv of [...new Set([4, cores])]) {
  log(`Kennel (import + backbones add + train --device ${device}), libuv pool ${uv} threads`);
  const run = runChild(process.execPath, [...process.execArgv, self, '--kennel-part', set.dir, device], { UV_THREADPOOL_SIZE: String(uv) }) as KennelRun;
  log(`  ${run.totalSeconds.toFixed(1)} s: import ${run.importSeconds.toFixed(1)}, backbone ${run.backboneSeconds.toFixed(1)}, train ${run.trainSeconds.toFixed(1)} (features ${run.featureSeconds.toFixed(1)} s = ${run.featureImagesPerSecond.toFixed(0)} images/s, head ${run.headSeconds.toFixed(1)} s)`);
  kennel.push(run);
}

log('PyTorch anchor (bench/torch_anchor.py)');
const torch = runChild('python3', [join(import.meta.dirname, 'torch_anchor.py'), '--root', set.dir, ...(args.quick ? ['--quick'] : [])]) as {
  torch: string;
  gpu: string;
  featureSeconds: number;
  featureImagesPerSecond: number;
  headSeconds: number;
  totalSeconds: number;
  rawImagesPerSecond: Record<string, number>;
};
log(`  ${torch.gpu}, torch ${torch.torch}: ${torch.totalSeconds.toFixed(1)} s (features ${torch.featureSeconds.toFixed(1)} s = ${torch.featureImagesPerSecond.toFixed(0)} images/s, head ${torch.headSeconds.toFixed(1)} s); raw ${Object.entries(torch.rawImagesPerSecond).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`);

log(`bench:serve --quick --device ${device} --model resnet50`);
const serve = runChild(process.execPath, [...process.execArgv, join(import.meta.dirname, 'serve.ts'), '--quick', '--json', '--device', device, '--model', 'resnet50']) as { kennel_ips: number; ceiling_ips: number; naive_ips: number; kennel_p99_ms_at_70pct: number };
log(`  Kennel ${serve.kennel_ips} images/s (ceiling ${serve.ceiling_ips}, naive ${serve.naive_ips}), p99 at 70% load ${serve.kennel_p99_ms_at_70pct} ms`);

/** Raw session images/s at one batch size, float32 host-normalised input against uint8 input, alternating. */
async function transferCost(graph: Uint8Array, batch: number, seconds: number): Promise<{ float32: number; uint8: number; batch: number }> {
  const size = 224;
  const float = await ort.InferenceSession.create(graph, sessionOptions({ device }));
  // the ResNet50 graph's input: 224 x 224, NCHW, ImageNet normalisation
  const spec = { size, cropFraction: 0.875, layout: 'NCHW' as const, scale: NORMALIZATIONS.imagenet.scale, mean: [...NORMALIZATIONS.imagenet.mean] as [number, number, number], std: [...NORMALIZATIONS.imagenet.std] as [number, number, number] };
  const bytes = await ort.InferenceSession.create(withUint8Input(graph, spec, float.inputNames[0]!), sessionOptions({ device }));
  const f = { [float.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(batch * 3 * size * size).fill(0.5), [batch, 3, size, size]) };
  const u = { [UINT8_INPUT]: new ort.Tensor('uint8', new Uint8Array(batch * size * size * 3).fill(128), [batch, size, size, 3]) };
  const rate = { float32: { images: 0, ms: 0 }, uint8: { images: 0, ms: 0 } };
  for (const [s, feeds] of [[float, f], [bytes, u]] as const) await s.run(feeds); // warm-up
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end)
    for (const [k, s, feeds] of [['float32', float, f], ['uint8', bytes, u]] as const) {
      const t = performance.now();
      await s.run(feeds);
      rate[k].ms += performance.now() - t;
      rate[k].images += batch;
    }
  await float.release();
  await bytes.release();
  return { float32: rate.float32.images / (rate.float32.ms / 1000), uint8: rate.uint8.images / (rate.uint8.ms / 1000), batch };
}

const transfer = [];
for (const batch of [16, 32]) {
  const r = await transferCost(buildResnet({ depth: 50 }), batch, args.quick ? 2 : 5);
  log(`raw ResNet50 on ${device}, batch ${batch}: float32 input ${r.float32.toFixed(0)} images/s, uint8 input ${r.uint8.toFixed(0)} images/s`);
  transfer.push(r);
}

const best = kennel.reduce((a, b) => (b.totalSeconds < a.totalSeconds ? b : a));
machine.loadEnd = currentLoad();
const results = {
  bench: 'gpu',
  date: date.toISOString(),
  quick: args.quick,
  device,
  machine,
  images: set.images,
  kennel,
  torch,
  serve,
  transfer,
  ratios: {
    trainKennelOverTorch: best.totalSeconds / torch.totalSeconds,
    serveKennelOverTorchBf16Batch256: serve.kennel_ips / torch.rawImagesPerSecond.bf16_batch256!,
  },
  seconds: (performance.now() - started) / 1000,
};
const file = saveResults('gpu', results, date);
if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
else {
  const rows: SummaryRow[] = [
    { metric: `import + train, ${set.images} images (Kennel, best libuv pool)`, value: `${best.totalSeconds.toFixed(1)} s`, target: `<= ${TARGET.trainSeconds} s (PyTorch ${torch.totalSeconds.toFixed(1)} s)`, pass: best.totalSeconds <= TARGET.trainSeconds },
    { metric: 'Kennel features images/s (libuv 4 / one per core)', value: kennel.map((k) => k.featureImagesPerSecond.toFixed(0)).join(' / ') },
    { metric: 'PyTorch features images/s (DataLoader, bf16)', value: torch.featureImagesPerSecond.toFixed(0) },
    { metric: 'endpoint images/s (Kennel / PyTorch raw bf16 batch 256)', value: `${serve.kennel_ips} / ${torch.rawImagesPerSecond.bf16_batch256!.toFixed(0)}`, target: `>= ${TARGET.serveImagesPerSecond}`, pass: serve.kennel_ips >= TARGET.serveImagesPerSecond },
    { metric: 'endpoint p99 at 70% load', value: `${serve.kennel_p99_ms_at_70pct} ms`, target: '<= 50 ms', pass: serve.kennel_p99_ms_at_70pct <= 50 },
  ];
  process.stdout.write(`\n${summaryTable(rows)}\n\nresults: ${file}\n`);
}

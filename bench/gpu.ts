/**
 * `npm run bench:gpu [-- --quick] [-- --json] [-- --device webgpu|cuda] [-- --precision auto|fp32|fp16]`:
 * Kennel on a GPU against a plain PyTorch script on the same card and the same JPEGs, in one run
 * (docs/GPU.md).
 *
 * - the dogImages-shaped generated set (8,351 JPEGs of about 500x375; --quick: 1,200)
 * - Kennel: `kennel data import` + `backbones add` (the ResNet50 architecture, random weights,
 *   bench/models/resnet.ts) + `kennel train --device D --precision P` from an empty workspace,
 *   twice: on a machine that has not measured the backbone yet (precision and batch size are
 *   measured during the run), then with those measurements kept (KENNEL_DEVICE_PROFILES); once
 *   from the sources in one child process with one libuv thread per core (the phases broken
 *   down), then as a user runs them: the built package's commands (bin/kennel.js), a process
 *   each, which is what the target's figure is (needs `npm run build`, which npm ci runs)
 * - PyTorch (bench/torch_anchor.py, the machine's python3): the same JPEGs through a DataLoader
 *   with one worker per core, one bf16 channels-last ResNet50 pass, a linear head for 30 epochs;
 *   raw ResNet50 images/s at batch 32 and 256, fp32 and bf16
 * - serving: bench:serve --quick on the same device with the ResNet50 architecture
 * - the raw session: float32 NCHW input (normalised on the host) against uint8 NHWC (normalised
 *   in the graph), fp32 against fp16, at batch 16, 32 and 64
 * - decoding: import's check and the model's input in one process against worker processes, and
 *   a GPU extractor's session alone against the same while its decode workers run (`--only decode`;
 *   with `--device cpu` it runs on a machine without a GPU, the session part on the CPU)
 * - fp16 against fp32 on the shared images (bench/lib/fp16.ts): top-1 agreement of the 1,000-way
 *   outputs of the ResNet50 architecture and of a pretrained MobileNetV2, and the largest
 *   difference of a probability; `--only fp16` runs this part alone
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addBackbone } from '../src/backbones/index.js';
import { mapLimit } from '../src/core/index.js';
import { checkImage, checkImages, DEFAULT_LIMITS, importDataset } from '../src/data/index.js';
import * as ort from 'onnxruntime-node';
import { Classifier, DecodePool, ENDPOINT_DEVICES, batchShapes, FeatureExtractor, PRECISIONS, UINT8_INPUT, decodeRgb, inputSize, sessionOptions, tuneSharp, withUint8Input, type Device, type Precision } from '../src/inference/index.js';
import { toFloat16 } from '../src/onnx/index.js';
import { resolveJob } from '../src/insights/index.js';
import { openWorkspace } from '../src/store/index.js';
import { CHUNK_ROWS, train } from '../src/training/index.js';
import { DOG_IMAGES, benchDogSet, listSources, type DogSetSpec } from './lib/dataset.js';
import { IMAGENET_SPEC, describeAgreement, fp16Agreement } from './lib/fp16.js';
import { currentLoad, machineInfo } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, summaryTable, type SummaryRow } from './lib/report.js';
import { repeatFor, timed } from './lib/timing.js';
import { importBenchModel } from './lib/serving.js';
import { buildResnet } from './models/resnet.js';
import { featuresProfile, type FeaturesProfile } from './lib/telemetry.js';

const TARGET = { trainSeconds: 10, serveImagesPerSecond: 1500 };
const QUICK_SET: DogSetSpec = { ...DOG_IMAGES, classes: 40, images: { train: 960, valid: 120, test: 120 } };

interface KennelRun {
  /** whether the device profile (precision, batch size) existed before the run */
  profiled: boolean;
  importSeconds: number;
  backboneSeconds: number;
  trainSeconds: number;
  featureSeconds: number;
  headSeconds: number;
  /** import + train: the two commands the target names (backbones add, once per backbone, apart) */
  importTrainSeconds: number;
  /** import + backbones add + train */
  totalSeconds: number;
  /** the trained head's evaluation, and the export and registration of the serving graph */
  evaluateSeconds: number;
  exportSeconds: number;
  extractedImages: number;
  featureImagesPerSecond: number;
  testTop1: number;
  /** seconds from the start of import to each progress phase's first and last event, and the share of each command this process's event loop was busy */
  timeline: { phases: Record<string, { from: number; to: number }>; importBusy: number; trainBusy: number };
  /** the training job's own telemetry of its features phase (featuresProfile) */
  features?: FeaturesProfile;
  /** the head chosen, penalties tried and the loss/gradient evaluations they took (each a full pass over the features) */
  head?: { kind: string; l2: number | null; penalties: number; iterations: number; evaluations: number };
}

/** The Kennel part, run in a child process: a fresh process, as a user's `kennel` command is. */
async function kennelPart(dir: string, device: Device, precision: Precision, profiled: boolean): Promise<KennelRun> {
  const home = mkdtempSync(join(tmpdir(), 'kennel-bench-gpu-'));
  const ws = openWorkspace(home);
  try {
    const resnet = join(home, 'resnet50.onnx');
    writeFileSync(resnet, buildResnet({ depth: 50 }));
    const start = performance.now();
    const phases: KennelRun['timeline']['phases'] = {};
    const progress = ({ phase }: { phase: string }) => {
      const at = (performance.now() - start) / 1000;
      phases[phase] = { from: phases[phase]?.from ?? at, to: at };
    };
    const busy = { import: 0, train: 0 };
    const total = await timed(async () => {
      let elu = performance.eventLoopUtilization();
      const imported = await timed(() => importDataset(ws, dir, { name: 'dogs', progress }));
      busy.import = performance.eventLoopUtilization(elu).utilization;
      const backbone = await timed(() => addBackbone(ws, resnet, { name: 'resnet50' }));
      elu = performance.eventLoopUtilization();
      const trained = await timed(() => train(ws, { dataset: 'dogs', backbone: 'resnet50', device, precision }, { progress }));
      busy.train = performance.eventLoopUtilization(elu).utilization;
      return { imported, backbone, trained };
    });
    const t = total.value.trained.value;
    return {
      profiled,
      importSeconds: total.value.imported.seconds,
      backboneSeconds: total.value.backbone.seconds,
      trainSeconds: total.value.trained.seconds,
      featureSeconds: t.timings.features,
      headSeconds: t.timings.head,
      evaluateSeconds: t.timings.evaluate,
      exportSeconds: t.timings.export,
      importTrainSeconds: total.value.imported.seconds + total.value.trained.seconds,
      totalSeconds: total.seconds,
      extractedImages: t.features.extractedImages,
      featureImagesPerSecond: t.features.extractedImages / t.timings.features,
      testTop1: t.metrics.test.top1,
      timeline: { phases, importBusy: busy.import, trainBusy: busy.train },
      features: await featuresProfile(ws, t.telemetry),
      head: 'scores' in t.head ? { kind: t.head.kind, l2: t.head.l2, penalties: t.head.scores.length - 1, iterations: t.head.iterations, evaluations: t.head.evaluations } : undefined,
    };
  } finally {
    ws.close();
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * The two commands the target names as a user runs them: the built package (`bin/kennel.js`,
 * dist/), `kennel data import`, `kennel backbones add` and `kennel train`, each its own process,
 * timed from its start to its exit. Unlike kennelPart (sources through tsx, one process), this
 * counts each command's start, and its worker processes and threads load no TypeScript loader.
 */
interface CommandsRun {
  /** whether the device profile (precision, batch size) existed before the run */
  profiled: boolean;
  importSeconds: number;
  backboneSeconds: number;
  trainSeconds: number;
  /** import + train, each from its process's start to its exit */
  importTrainSeconds: number;
  /** the train command's own phases (its --json `timings`) */
  timings: { features: number; head: number; evaluate: number; export: number };
  testTop1: number;
  features?: FeaturesProfile;
}

const KENNEL_BIN = join(import.meta.dirname, '..', 'bin', 'kennel.js');

async function commandsRun(dir: string, device: Device, precision: Precision, profiled: boolean, profiles: string): Promise<CommandsRun> {
  const home = mkdtempSync(join(tmpdir(), 'kennel-bench-gpu-cli-'));
  const workspace = join(home, 'workspace');
  // bin/kennel.js sizes its own libuv pool: none is passed down
  const { UV_THREADPOOL_SIZE: _pool, ...env } = process.env;
  const kennel = (argv: string[]): { seconds: number; out: Record<string, unknown> } => {
    const t = performance.now();
    const r = spawnSync(process.execPath, [KENNEL_BIN, ...argv, '--json'], { encoding: 'utf8', env: { ...env, KENNEL_HOME: workspace, KENNEL_DEVICE_PROFILES: profiles }, maxBuffer: 64 << 20 });
    const seconds = (performance.now() - t) / 1000;
    if (r.status !== 0) throw new Error(`kennel ${argv.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
    return { seconds, out: JSON.parse(r.stdout) as Record<string, unknown> };
  };
  try {
    const resnet = join(home, 'resnet50.onnx');
    writeFileSync(resnet, buildResnet({ depth: 50 }));
    const imported = kennel(['data', 'import', dir, '--name', 'dogs']);
    const backbone = kennel(['backbones', 'add', resnet, '--name', 'resnet50']);
    const trained = kennel(['train', '--dataset', 'dogs', '--backbone', 'resnet50', '--device', device, '--precision', precision]);
    const out = trained.out as { job: string; timings: CommandsRun['timings']; metrics: { test: { top1: number } } };
    const ws = openWorkspace(workspace);
    let features: FeaturesProfile | undefined;
    try {
      features = await featuresProfile(ws, resolveJob(ws, out.job).result?.telemetry);
    } finally {
      ws.close();
    }
    return { profiled, importSeconds: imported.seconds, backboneSeconds: backbone.seconds, trainSeconds: trained.seconds, importTrainSeconds: imported.seconds + trained.seconds, timings: out.timings, testTop1: out.metrics.test.top1, features };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

interface DecodeRun {
  /** what decoded: 'check' (import's image check), 'decode' (the model's RGB input) */
  work: 'check' | 'decode';
  /** 0: this process, on a libuv pool of one thread per core; N: a DecodePool of N processes */
  processes: number;
  imagesPerSecond: number;
  /** share of the time this process's event loop was busy */
  mainThreadBusy: number;
}

/**
 * How decoding scales with cores on this machine, run in a child process with one libuv thread
 * per core: import's check and the extractor's decode in one process, import's check in check
 * worker processes (one per core), then the extractor's decode in DecodePools of 4, 8 and one
 * process per core (each image decoded once per run).
 */
async function decodePart(dir: string): Promise<DecodeRun[]> {
  tuneSharp();
  const files = listSources([dir]);
  const runs: DecodeRun[] = [];
  const measure = async (work: DecodeRun['work'], processes: number, fn: () => Promise<unknown>) => {
    const elu = performance.eventLoopUtilization();
    const t = await timed(fn);
    runs.push({ work, processes, imagesPerSecond: files.length / t.seconds, mainThreadBusy: performance.eventLoopUtilization(elu).utilization });
  };
  const inFlight = 4 * cores;
  await measure('check', 0, () => mapLimit(files, inFlight, (f) => checkImage(f, DEFAULT_LIMITS)));
  await measure('decode', 0, () => mapLimit(files, inFlight, (f) => decodeRgb(f, SPEC)));
  process.env.KENNEL_DECODE_WORKERS = String(cores);
  await measure('check', cores, () => checkImages(files, DEFAULT_LIMITS, async () => {}));
  const batches: string[][] = [];
  for (let i = 0; i < files.length; i += 64) batches.push(files.slice(i, i + 64));
  for (const size of [...new Set([4, 8, cores])]) {
    const pool = await DecodePool.start(size);
    try {
      // each of the 4 batches in flight decodes into a buffer of its own, used again, as an extractor's do
      const spare = Array.from({ length: 4 }, () => new Uint8Array(64 * inputSize(SPEC)));
      await measure('decode', size, () => mapLimit(batches, 4, async (b) => {
        const into = spare.pop()!;
        await pool.decode(b.map((image) => ({ image })), SPEC, into);
        spare.push(into);
      }));
    } finally {
      await pool.close();
    }
  }
  return runs;
}

/**
 * Whether decoding slows the GPU's feeding: a GPU extractor (ResNet50 architecture, its session in
 * a thread, its decode workers) runs random batches for 3 s alone, then 3 s while its decode
 * workers decode the set without pause. Then its extract() over the whole set, as one call and as
 * training calls it (CHUNK_ROWS-image chunks, one or more at a time): where these fall short of
 * both the session and the decode workers, the pipeline between them is what waits.
 */
async function sessionUnderDecoding(dir: string, device: Device): Promise<{ batch: number; alone: number; whileDecoding: number; decodedMeanwhile: number; extract: Array<{ chunk: number; atOnce: number; imagesPerSecond: number }> }> {
  const model = join(mkdtempSync(join(tmpdir(), 'kennel-bench-gpu-')), 'resnet50.onnx');
  writeFileSync(model, buildResnet({ depth: 50 }));
  const extractor = await FeatureExtractor.create(model, { spec: SPEC, inputName: 'input', outputName: 'output', dim: 1000, device, bytesIn: true, threaded: true });
  const files = listSources([dir]).map((path) => ({ path }));
  const batch = extractor.batchSize ?? 32;
  const input = new Uint8Array(batch * inputSize(SPEC)).map((_, i) => (i * 2654435761) >>> 24);
  // images/s of the session over 3 s, after two warm-up runs
  const rate = async () => {
    const r = await repeatFor(3, async () => (await extractor.infer(input.slice(), batch), batch), 2);
    return r.units / r.seconds;
  };
  try {
    const alone = await rate();
    let decoding = true;
    let decoded = 0;
    const t = performance.now();
    const loops = Array.from({ length: 4 }, async (_, k) => {
      for (let i = k * batch; decoding; i = (i + 4 * batch) % files.length) decoded += (await extractor.decodeBatch(files.slice(i, i + batch))).length / inputSize(SPEC);
    });
    const whileDecoding = await rate();
    decoding = false;
    await Promise.all(loops);
    const decodedMeanwhile = decoded / ((performance.now() - t) / 1000);
    const extract: Array<{ chunk: number; atOnce: number; imagesPerSecond: number }> = [];
    // on the CPU (--device cpu) the session, not the pipeline, bounds these: not run
    for (const [chunk, atOnce] of device === 'cpu' ? [] : ([[files.length, 1], [CHUNK_ROWS, 1], [CHUNK_ROWS, 2], [CHUNK_ROWS, 4]] as const)) {
      const chunks: Array<typeof files> = [];
      for (let i = 0; i < files.length; i += chunk) chunks.push(files.slice(i, i + chunk));
      let next = 0;
      const run = await timed(() => Promise.all(Array.from({ length: atOnce }, async () => {
        while (next < chunks.length) await extractor.extract(chunks[next++]!, { batchSize: batch });
      })));
      extract.push({ chunk, atOnce, imagesPerSecond: files.length / run.seconds });
    }
    return { batch, alone, whileDecoding, decodedMeanwhile, extract };
  } finally {
    await extractor.close();
  }
}

const self = fileURLToPath(import.meta.url);
const cores = availableParallelism();
// the ResNet50 graph's input: 224 x 224, NCHW, ImageNet normalisation
const SPEC = IMAGENET_SPEC;
if (process.argv[2] === '--kennel-part') {
  process.stdout.write(JSON.stringify(await kennelPart(process.argv[3]!, process.argv[4] as Device, process.argv[5] as Precision, process.argv[6] === 'profiled')) + '\n');
  process.exit(0);
}
if (process.argv[2] === '--classifier-part') {
  // `bench/gpu.ts --classifier-part DEVICE`: the endpoint's classifier alone (classifierRuns), as JSON
  process.stdout.write(JSON.stringify(await classifierRuns(32, process.argv[3] as Device)) + '\n');
  process.exit(0);
}
if (process.argv[2] === '--op-profile') {
  // `bench/gpu.ts --op-profile DEVICE`: ONNX Runtime's profile of the endpoint's classifier graph (opProfiles), as JSON
  process.stdout.write(JSON.stringify(await opProfiles(process.argv[3] as Device)) + '\n');
  process.exit(0);
}
if (process.argv[2] === '--decode-part') {
  const runs = await decodePart(process.argv[3]!);
  process.stdout.write(JSON.stringify({ runs, session: await sessionUnderDecoding(process.argv[3]!, process.argv[4] as Device) }) + '\n');
  process.exit(0);
}

const args = parseBenchArgs(process.argv.slice(2), 'gpu', {
  device: { help: 'the GPU provider Kennel uses (cpu: only with --only decode, decoding on a machine without a GPU)', default: 'webgpu', choices: [...ENDPOINT_DEVICES] },
  precision: { help: "Kennel's --precision for training", default: 'auto', choices: [...PRECISIONS] },
  only: { help: 'run one part alone: fp16 (the agreement check), decode (decoding images/s in one process and in decode worker processes), train (Kennel and PyTorch on the set)', default: 'all', choices: ['all', 'fp16', 'decode', 'train'] },
});
const device = args.options.device as Device;
const precision = args.options.precision as Precision;
if (device === 'cpu' && args.options.only !== 'decode') {
  process.stderr.write('bench:gpu --device cpu measures decoding only: add --only decode, or name a GPU provider (webgpu, cuda).\n');
  process.exit(2);
}
const shared = process.env.KENNEL_SHARED ?? join(import.meta.dirname, '../../shared');
if (args.options.only === 'fp16') {
  const runs = await fp16Agreement({ device, shared, resnet: buildResnet({ depth: 50 }) });
  if (args.json) process.stdout.write(JSON.stringify({ bench: 'gpu', only: 'fp16', device, date: new Date().toISOString(), machine: machineInfo(), fp16: runs }, null, 2) + '\n');
  else for (const r of runs) process.stdout.write(`${describeAgreement(r)}\n`);
  process.exit(0);
}
const log = logger(args.json);
const date = new Date();
const machine = machineInfo();
const started = performance.now();

// the train part times the built commands: refused before anything runs, not after minutes
if (args.options.only !== 'decode' && !existsSync(join(import.meta.dirname, '..', 'dist', 'cli', 'main.js'))) {
  process.stderr.write('bench:gpu times the built kennel commands: run `npm run build` first (npm ci does).\n');
  process.exit(2);
}
const set = await benchDogSet(args.quick ? QUICK_SET : DOG_IMAGES, { json: args.json, log });

const runChild = (cmd: string, argv: string[], env: Record<string, string> = {}) => {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  // the JSON document: one line, or a pretty-printed one (bench:serve --json), after any log lines
  return JSON.parse(r.stdout.slice(r.stdout.search(/^\{/m))) as unknown;
};

const part = (name: string) => args.options.only === 'all' || args.options.only === name;
let decode: DecodeRun[] = [];
let sessionLoad: Awaited<ReturnType<typeof sessionUnderDecoding>> | undefined;
if (part('decode')) {
  log(`decoding ${set.images} images: in one process (a libuv thread per core), then in decode worker processes`);
  const measured = runChild(process.execPath, [...process.execArgv, self, '--decode-part', set.dir, device], { UV_THREADPOOL_SIZE: String(cores) }) as { runs: DecodeRun[]; session: typeof sessionLoad };
  decode = measured.runs;
  sessionLoad = measured.session;
  for (const d of decode) log(`  ${d.work}, ${d.processes ? `${d.processes} worker processes` : 'in process'}: ${d.imagesPerSecond.toFixed(0)} images/s (main thread busy ${(d.mainThreadBusy * 100).toFixed(0)}%)`);
  const l = sessionLoad!;
  log(`  a GPU extractor's session at batch ${l.batch}: ${l.alone.toFixed(0)} images/s alone, ${l.whileDecoding.toFixed(0)} while its decode workers decode ${l.decodedMeanwhile.toFixed(0)} images/s`);
  for (const e of l.extract) log(`  its extract(), ${e.chunk === set.images ? 'the whole set in one call' : `chunks of ${e.chunk}, ${e.atOnce} at a time`}: ${e.imagesPerSecond.toFixed(0)} images/s`);
}
if (args.options.only === 'decode') {
  if (args.json) process.stdout.write(JSON.stringify({ bench: 'gpu', only: 'decode', date: date.toISOString(), machine, images: set.images, decode, sessionLoad }, null, 2) + '\n');
  process.exit(0);
}

const kennel: KennelRun[] = [];
// device profiles of this run only: the first run measures, the second finds the measurements
const profiles = join(mkdtempSync(join(tmpdir(), 'kennel-bench-profiles-')), 'device-profiles.json');
for (const profiled of [false, true]) {
  log(`Kennel (import + backbones add + train --device ${device} --precision ${precision}), ${profiled ? 'device already measured' : 'first run on this machine'}`);
  const run = runChild(process.execPath, [...process.execArgv, self, '--kennel-part', set.dir, device, precision, profiled ? 'profiled' : 'fresh'], { UV_THREADPOOL_SIZE: String(cores), KENNEL_DEVICE_PROFILES: profiles }) as KennelRun;
  log(`  ${run.totalSeconds.toFixed(1)} s (import + train ${run.importTrainSeconds.toFixed(1)} s): import ${run.importSeconds.toFixed(1)}, backbone ${run.backboneSeconds.toFixed(1)}, train ${run.trainSeconds.toFixed(1)} (features ${run.featureSeconds.toFixed(1)} s = ${run.featureImagesPerSecond.toFixed(0)} images/s, head ${run.headSeconds.toFixed(1)} s)`);
  if (run.head) log(`  head: ${run.head.kind}${run.head.l2 === null ? "" : ` l2 ${run.head.l2}`} after ${run.head.penalties} penalties, ${run.head.iterations} iterations, ${run.head.evaluations} evaluations`);
  log(`  phases (s from the start): ${Object.entries(run.timeline.phases).map(([k, v]) => `${k} ${v.from.toFixed(1)}-${v.to.toFixed(1)}`).join(', ')}; event loop busy: import ${(run.timeline.importBusy * 100).toFixed(0)}%, train ${(run.timeline.trainBusy * 100).toFixed(0)}%`);
  kennel.push(run);
}
// the commands as a user runs them (the built package), on a machine without the measurements, then with them
const commands: CommandsRun[] = [];
const commandProfiles = join(mkdtempSync(join(tmpdir(), 'kennel-bench-profiles-')), 'device-profiles.json');
for (const profiled of [false, true]) {
  log(`kennel data import + backbones add + train --device ${device} --precision ${precision} (built package, a process each), ${profiled ? 'device already measured' : 'first run on this machine'}`);
  const run = await commandsRun(set.dir, device, precision, profiled, commandProfiles);
  const t = run.timings;
  log(`  import + train ${run.importTrainSeconds.toFixed(1)} s: import ${run.importSeconds.toFixed(1)}, backbone ${run.backboneSeconds.toFixed(1)}, train ${run.trainSeconds.toFixed(1)} (features ${t.features.toFixed(1)}, head ${t.head.toFixed(1)}, evaluate ${t.evaluate.toFixed(2)}, export ${t.export.toFixed(2)} s)`);
  if (run.features) log(`  features: first batch after ${run.features.firstBatchSeconds.toFixed(2)} s, then ${run.features.steadyImagesPerSecond.toFixed(0)} images/s`);
  commands.push(run);
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

if (args.options.only === 'train') {
  const results = { bench: 'gpu', only: 'train', date: date.toISOString(), quick: args.quick, device, machine, images: set.images, kennel, commands, torch, deviceProfiles: existsSync(profiles) ? (JSON.parse(readFileSync(profiles, 'utf8')) as unknown) : {} };
  const file = saveResults('gpu', results, date);
  process.stdout.write(args.json ? JSON.stringify(results, null, 2) + '\n' : `results: ${file}\n`);
  process.exit(0);
}

log(`bench:serve --quick --device ${device} --model resnet50`);
const serve = runChild(process.execPath, [...process.execArgv, join(import.meta.dirname, 'serve.ts'), '--quick', '--json', '--device', device, '--model', 'resnet50'], { KENNEL_DEVICE_PROFILES: profiles }) as { kennel_ips: number; ceiling_ips: number; naive_ips: number; kennel_p99_ms_at_70pct: number };
log(`  Kennel ${serve.kennel_ips} images/s (ceiling ${serve.ceiling_ips}, naive ${serve.naive_ips}), p99 at 70% load ${serve.kennel_p99_ms_at_70pct} ms`);

/**
 * The endpoint's classifier (the bench:serve ResNet50, graph fed bytes, auto precision) opened
 * as a replica opens it, its session in its own thread, and on this thread: ms per run at each
 * batch size a replica pads to on the device (each run once first), 10 runs each. Where the endpoint falls
 * short of the raw session, this tells the session's share from the server's.
 */
async function classifierRuns(maxBatch: number, device: Device): Promise<Array<{ batch: number; threadMs: number; mainMs: number }>> {
  const home = mkdtempSync(join(tmpdir(), 'kennel-bench-gpu-clf-'));
  try {
    const { model, onnxPath } = await importBenchModel(home, 'resnet50');
    const shapes = batchShapes(maxBatch, device);
    const ms: Record<'thread' | 'main', number[]> = { thread: [], main: [] };
    for (const where of ['thread', 'main'] as const) {
      const clf = await Classifier.load(onnxPath, model.card, { device, spinning: false, ...(where === 'thread' ? { thread: { maxBatch } } : {}) });
      try {
        const input = clf.inputBuffer(maxBatch);
        await clf.warm(input, shapes);
        for (const n of shapes) {
          const t = performance.now();
          for (let i = 0; i < 10; i++) await clf.run(input, n);
          ms[where].push((performance.now() - t) / 10);
        }
      } finally {
        await clf.close();
      }
    }
    return shapes.map((batch, i) => ({ batch, threadMs: ms.thread[i]!, mainMs: ms.main[i]! }));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

interface OpProfile {
  precision: 'fp32' | 'fp16';
  batch: number;
  /** wall ms per run, as this process waited for it */
  msPerRun: number;
  /** ms per run inside ONNX Runtime (its model_run events) */
  runMs: number;
  /** the ops that took most, summed per op type and provider, ms per run */
  ops: Array<{ op: string; provider: string; ms: number; nodes: number }>;
}

/**
 * Where a run of the endpoint's classifier spends its time on `device`: ONNX Runtime's own profile
 * of the graph a GPU replica opens (RGB bytes in, one intra-op thread), fp32 and fp16, at batch 1,
 * 24 and 32, 10 runs after 3 warm-up runs. Each op type is listed with the provider that ran it, so a
 * kernel that fell back to the CPU, or one slow kernel, shows by name.
 */
async function opProfiles(device: Device): Promise<{ profiles: OpProfile[]; shapes: number[]; mixed: Record<string, number[]> }> {
  const home = mkdtempSync(join(tmpdir(), 'kennel-bench-gpu-ops-'));
  try {
    const { model, onnxPath } = await importBenchModel(home, 'resnet50');
    const { preprocess, inputName } = model.card;
    const bytesGraph = withUint8Input(readFileSync(onnxPath), preprocess, inputName);
    const px = preprocess.size * preprocess.size * 3;
    const bytes = Uint8Array.from({ length: 32 * px }, (_, i) => (i * 2654435761) >>> 24);
    const feed = (n: number) => ({ [UINT8_INPUT]: new ort.Tensor('uint8', bytes.subarray(0, n * px), [n, preprocess.size, preprocess.size, 3]) });
    const out: OpProfile[] = [];
    for (const precision of ['fp32', 'fp16'] as const)
      for (const batch of [1, 24, 32]) {
        const prefix = `profile-${precision}-${batch}`;
        const session = await ort.InferenceSession.create(precision === 'fp16' ? toFloat16(bytesGraph) : bytesGraph, { ...sessionOptions({ device, threads: 1 }), enableProfiling: true, profileFilePrefix: join(home, prefix) });
        const feeds = feed(batch);
        for (let i = 0; i < 3; i++) await session.run(feeds);
        const t = performance.now();
        for (let i = 0; i < 10; i++) await session.run(feeds);
        const msPerRun = (performance.now() - t) / 10;
        session.endProfiling();
        await session.release();
        const file = readdirSync(home).find((f) => f.startsWith(prefix) && f.endsWith('.json'));
        if (!file) throw new Error(`ONNX Runtime wrote no profile for ${prefix}`);
        const events = JSON.parse(readFileSync(join(home, file), 'utf8')) as Array<{ cat: string; name: string; ts: number; dur: number; args?: { op_name?: string; provider?: string } }>;
        const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-10);
        const from = runs[0]?.ts ?? 0;
        const ops = new Map<string, { op: string; provider: string; us: number; nodes: Set<string> }>();
        for (const e of events) {
          if (e.cat !== 'Node' || e.ts < from || !e.name.endsWith('_kernel_time')) continue;
          const op = e.args?.op_name ?? '?';
          const provider = e.args?.provider ?? '?';
          const o = ops.get(`${op} ${provider}`) ?? { op, provider, us: 0, nodes: new Set<string>() };
          o.us += e.dur;
          o.nodes.add(e.name);
          ops.set(`${op} ${provider}`, o);
        }
        const top = [...ops.values()].sort((a, b) => b.us - a.us).slice(0, 8);
        out.push({ precision, batch, msPerRun, runMs: runs.reduce((n, r) => n + r.dur, 0) / Math.max(1, runs.length) / 1000, ops: top.map((o) => ({ op: o.op, provider: o.provider, ms: o.us / runs.length / 1000, nodes: o.nodes.size })) });
      }
    // one session through every padded shape, as a replica's is: a plain fp16 session warmed largest
    // first, the same warmed smallest first, then the Classifier
    const shapes = batchShapes(32, 'webgpu');
    const mixed: Record<string, number[]> = {};
    const timeShapes = async (run: (n: number) => Promise<unknown>, largestFirst = true) => {
      for (const n of largestFirst ? [...shapes].reverse() : shapes) await run(n);
      const ms: number[] = [];
      for (const n of shapes) {
        const t = performance.now();
        for (let i = 0; i < 10; i++) await run(n);
        ms.push((performance.now() - t) / 10);
      }
      return ms;
    };
    const plain = await ort.InferenceSession.create(toFloat16(bytesGraph), sessionOptions({ device, threads: 1 }));
    mixed.plainSession = await timeShapes((n) => plain.run(feed(n)));
    await plain.release();
    const smallestFirst = await ort.InferenceSession.create(toFloat16(bytesGraph), sessionOptions({ device, threads: 1 }));
    mixed.plainSessionSmallestFirst = await timeShapes((n) => smallestFirst.run(feed(n)), false);
    await smallestFirst.release();
    const clf = await Classifier.load(onnxPath, model.card, { device, spinning: false, precision: 'fp16' });
    const input = clf.inputBuffer(32);
    mixed.classifier = await timeShapes((n) => clf.run(input, n));
    await clf.close();
    return { profiles: out, shapes, mixed };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

process.env.KENNEL_DEVICE_PROFILES = profiles; // the precision serve's replica found
const classifier = await classifierRuns(32, device);
log(`the endpoint's classifier, ms per run at batch ${classifier.map((c) => c.batch).join('/')}: in its own thread ${classifier.map((c) => c.threadMs.toFixed(1)).join('/')}, on the main thread ${classifier.map((c) => c.mainMs.toFixed(1)).join('/')}`);

/**
 * Raw session images/s at one batch size for each way of feeding it: float32 host-normalised
 * input, uint8 input normalised in the graph, and that graph in fp16; runs alternate between them.
 */
async function rawSessions(graph: Uint8Array, batch: number, seconds: number): Promise<{ batch: number; float32: number; uint8: number; uint8Fp16: number }> {
  const size = SPEC.size;
  const options = sessionOptions({ device });
  const float = await ort.InferenceSession.create(graph, options);
  const bytesGraph = withUint8Input(graph, SPEC, float.inputNames[0]!);
  const bytes = await ort.InferenceSession.create(bytesGraph, options);
  const half = await ort.InferenceSession.create(toFloat16(bytesGraph), options);
  const f = { [float.inputNames[0]!]: new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * size * size }, (_, i) => Math.sin(i)), [batch, 3, size, size]) };
  const u = { [UINT8_INPUT]: new ort.Tensor('uint8', Uint8Array.from({ length: batch * size * size * 3 }, (_, i) => (i * 2654435761) >>> 24), [batch, size, size, 3]) };
  const runs = [['float32', float, f], ['uint8', bytes, u], ['uint8Fp16', half, u]] as const;
  const rate = { float32: { images: 0, ms: 0 }, uint8: { images: 0, ms: 0 }, uint8Fp16: { images: 0, ms: 0 } };
  for (const [, s, feeds] of runs) for (let i = 0; i < 2; i++) await s.run(feeds); // warm-up
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end)
    for (const [k, s, feeds] of runs) {
      const t = performance.now();
      await s.run(feeds);
      rate[k].ms += performance.now() - t;
      rate[k].images += batch;
    }
  for (const [, s] of runs) await s.release();
  const ips = (k: keyof typeof rate) => rate[k].images / (rate[k].ms / 1000);
  return { batch, float32: ips('float32'), uint8: ips('uint8'), uint8Fp16: ips('uint8Fp16') };
}

const resnet = buildResnet({ depth: 50 });
const raw = [];
for (const batch of [16, 32, 64]) {
  const r = await rawSessions(resnet, batch, args.quick ? 2 : 4);
  log(`raw ResNet50 on ${device}, batch ${batch}: float32 input ${r.float32.toFixed(0)}, uint8 input ${r.uint8.toFixed(0)}, uint8 input fp16 ${r.uint8Fp16.toFixed(0)} images/s`);
  raw.push(r);
}

const agreement = await fp16Agreement({ device, shared, resnet });
for (const r of agreement) log(`fp16 vs fp32, ${describeAgreement(r)}`);

// the target's figure: the commands as a user runs them; kennel (in process) breaks the time down
const best = commands.reduce((a, b) => (b.importTrainSeconds < a.importTrainSeconds ? b : a));
machine.loadEnd = currentLoad();
const results = {
  bench: 'gpu',
  date: date.toISOString(),
  quick: args.quick,
  device,
  machine,
  images: set.images,
  decode,
  sessionLoad,
  kennel,
  commands,
  torch,
  serve,
  classifier,
  raw,
  fp16: agreement,
  /** what Kennel measured on this machine: precision per graph (images/s of each, fp16's error) and the extractor's batch size */
  deviceProfiles: existsSync(profiles) ? (JSON.parse(readFileSync(profiles, 'utf8')) as unknown) : {},
  ratios: {
    trainKennelOverTorch: best.importTrainSeconds / torch.totalSeconds,
    serveKennelOverTorchBf16Batch256: serve.kennel_ips / torch.rawImagesPerSecond.bf16_batch256!,
  },
  seconds: (performance.now() - started) / 1000,
};
const file = saveResults('gpu', results, date);
if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
else {
  const rows: SummaryRow[] = [
    { metric: `kennel data import + kennel train, ${set.images} images (built package, best run; backbones add apart)`, value: `${best.importTrainSeconds.toFixed(1)} s (${commands.map((c) => c.importTrainSeconds.toFixed(1)).join(' / ')})`, target: `<= ${TARGET.trainSeconds} s (PyTorch ${torch.totalSeconds.toFixed(1)} s)`, pass: best.importTrainSeconds <= TARGET.trainSeconds },
    { metric: 'the same in one process, from the sources (first run on the machine / measured before)', value: kennel.map((k) => `${k.importTrainSeconds.toFixed(1)} s`).join(' / ') },
    { metric: 'Kennel features images/s (first run on the machine / measured before)', value: kennel.map((k) => k.featureImagesPerSecond.toFixed(0)).join(' / ') },
    { metric: 'raw ResNet50 batch 32 images/s: float32 / uint8 / uint8 fp16 input', value: [raw[1]!.float32, raw[1]!.uint8, raw[1]!.uint8Fp16].map((v) => v.toFixed(0)).join(' / ') },
    ...agreement.map((r) => ({ metric: `fp16 top-1 agreement with fp32: ${r.model.split(',')[0]}, ${r.count} ${r.images}`, value: `${(r.top1Agreement * 100).toFixed(1)}% (${r.nearTies} of ${r.disagreements.length} flips near ties; max probability difference ${r.maxProbabilityDifference.toExponential(1)})`, target: '>= 99.5%', pass: r.top1Agreement >= 0.995 })),
    { metric: 'PyTorch features images/s (DataLoader, bf16)', value: torch.featureImagesPerSecond.toFixed(0) },
    { metric: 'endpoint images/s (Kennel / PyTorch raw bf16 batch 256)', value: `${serve.kennel_ips} / ${torch.rawImagesPerSecond.bf16_batch256!.toFixed(0)}`, target: `>= ${TARGET.serveImagesPerSecond}`, pass: serve.kennel_ips >= TARGET.serveImagesPerSecond },
    { metric: 'endpoint p99 at 70% load', value: `${serve.kennel_p99_ms_at_70pct} ms`, target: '<= 50 ms', pass: serve.kennel_p99_ms_at_70pct <= 50 },
  ];
  process.stdout.write(`\n${summaryTable(rows)}\n\nresults: ${file}\n`);
}

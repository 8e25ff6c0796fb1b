import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxModel, isFloatGraph, toFloat16 } from '../onnx/index.js';
import { writeFileAtomic } from '../core/index.js';

/**
 * The arithmetic a float model runs in. 'auto' (the default) is fp32 on the CPU, and on a GPU the
 * faster of the two for this graph, measured once per machine (measurePrecision); fp16 is never
 * chosen for a quantized graph.
 */
export const PRECISIONS = ['auto', 'fp32', 'fp16'] as const;
export type Precision = (typeof PRECISIONS)[number];
/** The arithmetic a session runs in, once 'auto' is decided. */
export type ResolvedPrecision = Exclude<Precision, 'auto'>;

/** fp16 must beat fp32 by this much to be chosen: a near tie is not worth its rounding. */
const MIN_GAIN = 1.1;
/** fp16 outputs further than this from fp32's (relative L2 error) are not used. */
const MAX_RELATIVE_ERROR = 0.02;
/** The batch measurePrecision times when the graph's batch dim is free and the caller names none. */
const PROBE_BATCH = 32;

/** What a graph measured on this machine's device: kept on disk so that it is measured once. */
export interface DeviceProfile {
  precision: ResolvedPrecision;
  /** images/s of each precision at the probe batch */
  imagesPerSecond: Partial<Record<ResolvedPrecision, number>>;
  /** relative L2 error of fp16's outputs against fp32's on the probe batch */
  fp16Error?: number;
  /** the batch size with the best images/s, once measured (a GPU FeatureExtractor's) */
  batchSize?: number;
}

/** Where profiles are kept: KENNEL_DEVICE_PROFILES, else ~/.cache/kennel/device-profiles.json. */
function profileFile(): string {
  return process.env.KENNEL_DEVICE_PROFILES || join(homedir(), '.cache', 'kennel', 'device-profiles.json');
}

function readProfiles(): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(profileFile(), 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/**
 * Stores one thing measured on this machine under `key` (a lost write only means measuring
 * again: the file is a best-effort cache): graphs' profiles, and which GPU providers started.
 */
export function saveMeasured(key: string, value: unknown): void {
  // a read-only home: the next process measures again
  bestEffort(() => writeFileAtomic(profileFile(), JSON.stringify({ ...readProfiles(), [key]: value }, null, 1), undefined, { durable: false }));
}

export function loadMeasured(key: string): unknown {
  return readProfiles()[key];
}

export const saveProfile = (key: string, profile: DeviceProfile): void => saveMeasured(key, profile);
export const loadProfile = (key: string): DeviceProfile | undefined => loadMeasured(key) as DeviceProfile | undefined;

/** A graph's sha256 (hex): what its profiles are kept under. */
export function graphDigest(graph: Uint8Array): string {
  return createHash('sha256').update(graph).digest('hex');
}

/** The version of toFloat16's output that kept fp16 graphs hold: raised when the conversion changes. */
const FLOAT16_KEPT_VERSION = 1;
/** fp16 graphs kept at most (the most recently used): each is half its float graph, 50 MB for a ResNet50. */
const FLOAT16_KEPT = 4;

const float16Dir = (): string => join(dirname(profileFile()), 'fp16');
const float16Prefix = (digest: string): string => `${digest}.v${FLOAT16_KEPT_VERSION}.`;

/**
 * The kept toFloat16 of the graph whose sha256 is `digest` (float16Graph kept it), while its
 * bytes hash to the digest in its name; else undefined (a changed file is removed).
 */
function keptFloat16(digest: string): Uint8Array | undefined {
  const dir = float16Dir();
  const prefix = float16Prefix(digest);
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.onnx'));
  } catch {
    // nothing kept yet
  }
  for (const name of names.filter((n) => n.startsWith(prefix))) {
    const file = join(dir, name);
    let bytes: Buffer | undefined;
    try {
      bytes = readFileSync(file);
    } catch {
      continue; // removed meanwhile
    }
    if (name === `${prefix}${graphDigest(bytes)}.onnx`) {
      bestEffort(() => utimesSync(file, new Date(), new Date())); // the most recently used are kept
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    bestEffort(() => rmSync(file, { force: true })); // changed since it was kept: converted again
  }
  return undefined;
}

/**
 * toFloat16 of a graph whose sha256 is `digest`, kept beside the device profiles (in fp16/):
 * converting a ResNet50 took 0.47 s of every session's opening on an H100 host. A kept file is
 * used only while its bytes hash to the digest in its name; writing one is best effort.
 */
export function float16Graph(graph: Uint8Array, digest: string): Uint8Array {
  const kept = keptFloat16(digest);
  if (kept) return kept;
  const half = toFloat16(graph);
  const dir = float16Dir();
  // a read-only or full cache: converted again next time
  bestEffort(() => {
    // not fsynced: a file a crash left garbled fails its hash above and is converted again
    writeFileAtomic(join(dir, `${float16Prefix(digest)}${graphDigest(half)}.onnx`), half, undefined, { durable: false });
    const files = readdirSync(dir)
      .filter((n) => n.endsWith('.onnx'))
      .map((n) => ({ file: join(dir, n), used: statSync(join(dir, n)).mtimeMs }))
      .sort((a, b) => b.used - a.used);
    for (const old of files.slice(FLOAT16_KEPT)) rmSync(old.file, { force: true });
  });
  return half;
}

/**
 * A graph ready to open as it is: `prepared` already runs in `precision`, and `digest` is the sha256
 * of the graph it was made from, under which its device profile is kept (keptGraph).
 */
export interface PreparedGraph {
  prepared: Uint8Array;
  precision: ResolvedPrecision;
  digest: string;
}

/** A graph a session opens: a file, its bytes, or a prepared graph. */
export type ModelGraph = string | Uint8Array | PreparedGraph;

const isPrepared = (model: ModelGraph): model is PreparedGraph => typeof model === 'object' && 'prepared' in model;

/**
 * The graph a session on `provider` would open for the graph whose sha256 is `digest`, without
 * that graph: its kept fp16 conversion, where fp16 is asked or its device profile chose it on
 * this machine and the conversion is kept. Else undefined: open the graph itself.
 */
export function keptGraph(digest: string, provider: string, precision: Precision): PreparedGraph | undefined {
  if (precision === 'fp32' || (precision === 'auto' && loadProfile(profileKey(digest, provider))?.precision !== 'fp16')) return undefined;
  const prepared = keptFloat16(digest);
  return prepared && { prepared, precision: 'fp16', digest };
}

function bestEffort(fn: () => void): void {
  try {
    fn();
  } catch {
    // a cache's housekeeping: never fatal
  }
}

/** A graph's profile key on this machine: its digest (graphDigest), the provider and the host. */
export function profileKey(digest: string, provider: string): string {
  return `${digest} ${provider} ${hostname()}`;
}

/** A batch of random input for a graph's first input, `batch` images. */
function probeInput(graph: Uint8Array, batch: number): ort.Tensor {
  const input = OnnxModel.parse(graph).dataInputs[0]!;
  const shape = (input.shape ?? []).map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : 1));
  const size = shape.reduce((a, b) => a * b, 1);
  if (input.elemType === 2) return new ort.Tensor('uint8', Uint8Array.from({ length: size }, (_, i) => (i * 2654435761) >>> 24), shape);
  return new ort.Tensor('float32', Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.37)), shape);
}

/** Median seconds of a run of `session` on `feed` after two warm-up runs. */
async function timeRuns(session: ort.InferenceSession, feed: Record<string, ort.Tensor>, runs = 5): Promise<number> {
  for (let i = 0; i < 2; i++) await session.run(feed);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await session.run(feed);
    times.push((performance.now() - t) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += a[i]! ** 2;
  }
  return Math.sqrt(diff / Math.max(norm, 1e-30));
}

/**
 * ORT's intra-op threads for a session. A float graph runs whole on a GPU, where the CPU does
 * only shape arithmetic: a pool of threads for it would wait on the cores the decoders hold at
 * every small op, so it gets one (as ONNX Runtime's maintainers advise for GPU providers:
 * microsoft/onnxruntime#10081, #20494). A quantized graph's ops fall back to the CPU and keep
 * their threads, as does everything on the CPU.
 */
export function intraOpThreads(provider: string, floatGraph: boolean, threads: number | undefined): number | undefined {
  return provider !== 'cpu' && floatGraph ? 1 : threads;
}

/**
 * Opens a session at the requested precision; for 'auto' on a GPU provider, measures fp32 against
 * fp16 on a random batch (once: the profile is kept on disk) and keeps the faster one whose
 * outputs agree; a prepared graph (keptGraph) opens as it is. Returns the session (the winner of
 * the measurement, not opened twice), the precision it runs and, where it is known, the graph's
 * digest (so that nobody hashes it again).
 */
export async function openAtPrecision(
  model: ModelGraph,
  precision: Precision,
  options: ort.InferenceSession.SessionOptions,
  probeBatch = PROBE_BATCH,
): Promise<{ session: ort.InferenceSession; precision: ResolvedPrecision; profile?: DeviceProfile; digest?: string }> {
  const provider = String(options.executionProviders?.[0] ?? 'cpu');
  if (isPrepared(model)) {
    // only float graphs are converted, so a prepared one is a float graph
    const threads = intraOpThreads(provider, true, options.intraOpNumThreads);
    const session = await ort.InferenceSession.create(model.prepared, threads === undefined ? options : { ...options, intraOpNumThreads: threads });
    return { session, precision: model.precision, digest: model.digest };
  }
  // fp32 on the CPU: ORT opens the file itself, no copy of it is read here
  if (provider === 'cpu' && precision !== 'fp16') return { session: await (typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options)), precision: 'fp32' };
  const graph = typeof model === 'string' ? await readFile(model) : model;
  const floatGraph = isFloatGraph(graph);
  const threads = intraOpThreads(provider, floatGraph, options.intraOpNumThreads);
  // the binding refuses an option present but undefined
  const opts = threads === undefined ? options : { ...options, intraOpNumThreads: threads };
  const open = (bytes: Uint8Array) => ort.InferenceSession.create(bytes, opts);
  // a quantized graph runs as it was made, whatever was asked: its integer ops take float32 at their edges
  if (!floatGraph || precision === 'fp32') return { session: await open(graph), precision: 'fp32' };
  if (precision === 'fp16') {
    const digest = graphDigest(graph);
    return { session: await open(float16Graph(graph, digest)), precision, digest };
  }
  const digest = graphDigest(graph);
  const key = profileKey(digest, provider);
  const known = loadProfile(key);
  if (known) return { session: await open(known.precision === 'fp16' ? float16Graph(graph, digest) : graph), precision: known.precision, profile: known, digest };
  return { ...(await measurePrecision(graph, opts, { key, digest, probeBatch })), digest };
}

/** What measurePrecision measures under. */
export interface PrecisionMeasurement {
  /** the profile's key (profileKey) */
  key: string;
  /** the graph's digest, where known: the fp16 conversion is kept under it (float16Graph) for the sessions after this one */
  digest?: string;
  /** the batch timed: the largest the session will run, so that a CUDA session sees one shape (batchShapes says why) */
  probeBatch?: number;
}

/**
 * Times fp32 against fp16 on a random batch and compares their outputs; keeps the faster whose
 * outputs agree (fp16 must gain MIN_GAIN) and stores the profile under `key`. Returns the
 * winner's session open.
 */
export async function measurePrecision(graph: Uint8Array, options: ort.InferenceSession.SessionOptions, { key, digest, probeBatch = PROBE_BATCH }: PrecisionMeasurement): Promise<{ session: ort.InferenceSession; precision: ResolvedPrecision; profile: DeviceProfile }> {
  const open = (bytes: Uint8Array) => ort.InferenceSession.create(bytes, options);
  const input = OnnxModel.parse(graph).dataInputs[0]!;
  const tensor = probeInput(graph, probeBatch);
  const feed = { [input.name]: tensor };
  const batch = tensor.dims[0] ?? 1;
  const full = await open(graph);
  const fullSeconds = await timeRuns(full, feed);
  const profile: DeviceProfile = { precision: 'fp32', imagesPerSecond: { fp32: batch / fullSeconds } };
  let half: ort.InferenceSession | undefined;
  try {
    // kept: the sessions opened after this measurement, in fp16, convert nothing
    half = await open(digest ? float16Graph(graph, digest) : toFloat16(graph));
    const halfSeconds = await timeRuns(half, feed);
    const name = full.outputNames[0]!;
    const a = (await full.run(feed))[name]!.data as Float32Array;
    const b = (await half.run(feed))[name]!.data as Float32Array;
    profile.imagesPerSecond.fp16 = batch / halfSeconds;
    profile.fp16Error = relativeError(a, b);
    if (fullSeconds / halfSeconds >= MIN_GAIN && profile.fp16Error <= MAX_RELATIVE_ERROR) profile.precision = 'fp16';
  } catch {
    // a provider without the float16 kernels this graph needs: fp32 it is
  }
  saveProfile(key, profile);
  if (profile.precision === 'fp16') {
    await full.release();
    return { session: half!, precision: 'fp16', profile };
  }
  await half?.release();
  return { session: full, precision: 'fp32', profile };
}

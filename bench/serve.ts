/**
 * `npm run bench:serve [-- --quick] [-- --json] [-- --device webgpu --model resnet50]`: serving
 * speed, with load from a separate process replaying real photos (../shared/data/real-photos, or
 * --photos DIR).
 *
 * - ceiling: in-process decode + batched inference with all cores (no HTTP, no processes), and
 *   the raw ORT session alone (no decoding) on the same device
 * - naive peer (bench/naive-server.ts): fastify + onnxruntime-node, decode in the handler,
 *   one session.run per request
 * - Kennel: a real daemon (`kennel up`) and endpoint
 * Maximum throughput of each server (closed loop), then latency at fractions of Kennel's
 * maximum (open loop, the same schedule for both servers, run in alternating slices so that
 * both see the same machine).
 * With `--shadow on`: the cost of a shadow variant to the primary instead (bench/lib/shadow.ts).
 * With `--capture P`: the cost of capturing P% of requests instead (bench/lib/capture-serve.ts).
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { median } from '../src/core/index.js';
import { ENDPOINT_DEVICES, tuneSharp, type Device } from '../src/inference/index.js';
import { extractionCeiling, inferenceCeiling, pipelineCeiling } from './lib/ceilings.js';
import { failedCount, mergeLoads, runLoad, type LoadResult } from './lib/load.js';
import { currentLoad, machineInfo, withCorePerUvThread } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, shared, summaryTable } from './lib/report.js';
import { BENCH_MODELS, benchHome, freePort, importBenchModel, realPhotoFiles, startKennel, type BenchModel } from './lib/serving.js';

const TARGET = { ceilingFraction: 0.85, p99AtSeventyPercentMs: 100, gpuTimesNaive: 3 };

withCorePerUvThread();

const args = parseBenchArgs(process.argv.slice(2), 'serve', {
  device: { help: 'where the models run: the endpoint, the naive peer and the ceilings', default: 'cpu', choices: ENDPOINT_DEVICES },
  model: { help: 'mobilenet: the shared MobileNetV2; resnet50: the ResNet50 architecture with random weights', default: 'mobilenet', choices: BENCH_MODELS },
  photos: { help: 'a folder of photos to replay (one folder deep)', default: join(shared, 'data/real-photos') },
  'max-batch': { help: "the endpoint's largest batch", default: '8 on cpu, 32 on webgpu' },
  capture: { help: 'P (0.1-100): what capturing P% of requests costs the endpoint (throughput and p99, with and without, in the same run; a Kennel-trained model) instead of the usual comparison', default: 'off' },
  shadow: { help: 'on: what a shadow variant on 100% of requests costs the primary (throughput and p99, with and without, in the same run) instead of the usual comparison', default: 'off', choices: ['on', 'off'] },
});
if (args.options.capture !== 'off') {
  const percent = Number(args.options.capture);
  if (!(percent >= 0.1 && percent <= 100)) {
    process.stderr.write('error: --capture takes a share of requests, 0.1 to 100, or off\n');
    process.exit(2);
  }
  const { captureBench } = await import('./lib/capture-serve.js');
  await captureBench(args, percent);
  process.exit(0);
} else if (args.options.shadow === 'on') {
  const { shadowBench } = await import('./lib/shadow.js');
  await shadowBench(args);
  process.exit(0);
}
const device = args.options.device as Device;
const gpu = device !== 'cpu';
const log = logger(args.json);
const machine = machineInfo();
const date = new Date();
const t0 = performance.now();
// maxima are measured in rounds (ceiling, Kennel, naive, again): on a shared machine other work
// comes and goes, and the best of each is the fairest comparison
const settings = args.quick
  ? { rounds: 2, maxSeconds: 2.5, levelSeconds: 4, slices: 2, warmup: 0.5, levels: [0.3, 0.7], instances: 1 }
  : { rounds: 3, maxSeconds: 8, levelSeconds: 12, slices: 4, warmup: 2, levels: [0.1, 0.3, 0.5, 0.7, 0.9], instances: 1 };
/** the endpoint defaults on a CPU; a GPU needs bigger batches to be busy */
const MAX_BATCH = /^\d+$/.test(args.options['max-batch']!) ? Number(args.options['max-batch']) : gpu ? 32 : 8;
/** closed-loop clients: enough to fill two batches (one running, one being decoded) */
const CONCURRENCY = Math.max(32, 2 * MAX_BATCH);

const { home, onCleanup, cleanup } = benchHome('serve');
const files = realPhotoFiles(args.options.photos);

try {
  log(`bench:serve${args.quick ? ' (quick)' : ''}: ${args.options.model} on ${device}, ${files.length} photos, ${machine.cores} cores, load average ${machine.loadStart}`);
  const { model, onnxPath, description } = await importBenchModel(home, args.options.model as BenchModel);
  const spec = model.card.preprocess;

  // the raw session: what the device does with session.run alone
  const raw = await inferenceCeiling(onnxPath, spec, model.card.inputName, [...new Set([1, 8, MAX_BATCH])].sort((a, b) => a - b), args.quick ? 1 : 3, device);
  log(`raw ORT session on ${device}: ${raw.map((r) => `${r.imagesPerSecond.toFixed(0)} images/s at batch ${r.batch}`).join(', ')}`);
  // the ceiling: the better of two in-process ways to decode and infer with all cores
  tuneSharp(); // the replicas' decode settings
  const plain = await extractionCeiling(onnxPath, spec, model.card.inputName, args.quick ? files : [...files, ...files], args.quick ? [16] : [...new Set([8, 16, 32, MAX_BATCH])].sort((a, b) => a - b), device);
  log(`ceiling, plain loop (decode a batch, then run it): ${plain.best.imagesPerSecond.toFixed(0)} images/s (batch ${plain.best.batch}, decode ${plain.best.decodeMsPerImage.toFixed(2)} ms + inference ${plain.best.inferMsPerImage.toFixed(2)} ms per image)`);
  const kennel = await startKennel(home);
  onCleanup(() => kennel.stop());
  await kennel.admin('POST', '/v1/endpoints', { name: 'bench', variants: [{ name: 'primary', model: `${model.name}@${model.version}` }], instances: settings.instances, maxBatch: MAX_BATCH, maxInFlight: 256, device });
  const kennelUrl = `http://127.0.0.1:${kennel.port}/endpoints/bench/invocations`;

  const naivePort = await freePort();
  const naive = fork(fileURLToPath(new URL('./naive-server.ts', import.meta.url)), [JSON.stringify({ model: onnxPath, port: naivePort, size: spec.size, mean: spec.mean, std: spec.std, device })], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  onCleanup(() => naive.kill('SIGKILL'));
  await new Promise<void>((res, rej) => {
    naive.once('message', () => res());
    naive.once('exit', (c) => rej(new Error(`the naive server exited (${c})`)));
  });
  const naiveUrl = `http://127.0.0.1:${naivePort}/predict`;

  // the replica's own account of its batches (kennel_batch_*): how big they were and how long its
  // model runs took, apart from queueing, decoding and HTTP
  const batchTotals = async () => {
    const text = await (await fetch(`http://127.0.0.1:${kennel.port}/metrics`)).text();
    const read = (name: string) => Number(new RegExp(`^${name}\\{endpoint="bench",variant="primary"\\} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);
    return { batches: read('kennel_batch_size_count'), images: read('kennel_batch_size_sum'), runSeconds: read('kennel_batch_duration_seconds_sum') };
  };
  const batchesSince = async (before: Awaited<ReturnType<typeof batchTotals>>) => {
    const now = await batchTotals();
    const batches = now.batches - before.batches;
    return { batches, meanBatch: +((now.images - before.images) / Math.max(1, batches)).toFixed(1), meanRunMs: +((1000 * (now.runSeconds - before.runSeconds)) / Math.max(1, batches)).toFixed(2) };
  };
  const closed = (url: string) => runLoad({ mode: 'closed', url, files, concurrency: CONCURRENCY, seconds: settings.maxSeconds, warmupSeconds: settings.warmup, headers: kennel.auth });
  const rounds: Array<{ pipeline: number; ceilingBatches: { meanBatch: number; meanRunMs: number }; kennel: LoadResult; naive: LoadResult; batches: Awaited<ReturnType<typeof batchesSince>> }> = [];
  for (let r = 0; r < settings.rounds; r++) {
    const ceiling = await pipelineCeiling(onnxPath, model.card, files, { seconds: settings.maxSeconds, concurrency: CONCURRENCY, maxBatch: MAX_BATCH, device });
    const pipeline = ceiling.imagesPerSecond;
    const before = await batchTotals();
    const k = await closed(kennelUrl);
    const batches = await batchesSince(before);
    const n = await closed(naiveUrl);
    rounds.push({ pipeline, ceilingBatches: { meanBatch: ceiling.meanBatch, meanRunMs: ceiling.meanRunMs }, kennel: k, naive: n, batches });
    log(`round ${r + 1}: ceiling (pipelined in-process, ORT threads not spinning) ${pipeline.toFixed(0)} (${ceiling.meanBatch} images a batch, ${ceiling.meanRunMs} ms a run) | Kennel ${k.throughput} (p99 ${k.p99} ms, ${failedCount(k)} failed; replica: ${batches.meanBatch} images a batch, ${batches.meanRunMs} ms a run) | naive ${n.throughput} (p99 ${n.p99} ms, ${failedCount(n)} failed) images/s at ${CONCURRENCY} concurrent`);
  }
  const best = <T>(xs: T[], f: (x: T) => number): T => xs.reduce((a, b) => (f(b) > f(a) ? b : a));
  const ceilingIps = Math.max(plain.best.imagesPerSecond, ...rounds.map((r) => r.pipeline));
  const kennelMax = best(rounds.map((r) => r.kennel), (x) => x.throughput);
  const naiveMax = best(rounds.map((r) => r.naive), (x) => x.throughput);
  // load levels are fractions of Kennel's median round: what it sustained while the machine was shared as it is
  const reference = median(rounds.map((r) => r.kennel.throughput));

  const levels: Array<{ fraction: number; rate: number; kennel: LoadResult; naive: LoadResult; batches: Awaited<ReturnType<typeof batchesSince>> }> = [];
  for (const fraction of settings.levels) {
    const before = await batchTotals();
    const rate = Math.max(1, Math.round(fraction * reference));
    const slice = (url: string, first: boolean) => runLoad({ mode: 'open', url, files, phases: [{ rate, seconds: settings.levelSeconds / settings.slices }], warmupSeconds: first ? settings.warmup : 0, maxInFlight: 1024, headers: kennel.auth, record: true });
    // slices in the order K N N K K N ...: a change in the machine's load hits both servers alike
    const parts: { kennel: LoadResult[]; naive: LoadResult[] } = { kennel: [], naive: [] };
    for (let i = 0; i < settings.slices; i++) {
      for (const server of i % 2 === 0 ? (['kennel', 'naive'] as const) : (['naive', 'kennel'] as const)) {
        parts[server].push(await slice(server === 'kennel' ? kennelUrl : naiveUrl, i === 0));
      }
    }
    const k = mergeLoads(parts.kennel);
    const n = mergeLoads(parts.naive);
    const batches = await batchesSince(before);
    levels.push({ fraction, rate, kennel: k, naive: n, batches });
    log(`${Math.round(fraction * 100)}% (${rate}/s): Kennel p50 ${k.p50} p99 ${k.p99} ms, ${failedCount(k)} failed (replica: ${batches.meanBatch} images a batch, ${batches.meanRunMs} ms a run) | naive p50 ${n.p50} p99 ${n.p99} ms, ${failedCount(n)} failed`);
  }

  const at70 = levels.find((l) => l.fraction === 0.7)!;
  const results = {
    ceiling_ips: Math.round(ceilingIps),
    kennel_ips: Math.round(kennelMax.throughput),
    naive_ips: Math.round(naiveMax.throughput),
    kennel_p99_ms_at_70pct: at70.kennel.p99,
    naive_p99_ms: at70.naive.p99,
    quick: args.quick,
    date: date.toISOString(),
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: { ...machine, loadEnd: currentLoad() },
    raw_session_ips: Math.round(Math.max(...raw.map((r) => r.imagesPerSecond))),
    device,
    config: { levelsRelativeTo: `${reference} images/s (Kennel's median round)`, runtime: kennel.runtime, device, model: `${model.name}@${model.version} (${description})`, instances: settings.instances, maxBatch: MAX_BATCH, closedLoopConcurrency: CONCURRENCY, photos: `${files.length} from ${args.options.photos}`, levelSlices: settings.slices },
    ceiling: { plain, pipelined: rounds.map((r) => Math.round(r.pipeline)), rawSession: raw },
    max: { kennel: kennelMax, naive: naiveMax, rounds: rounds.map((r) => ({ ceiling: Math.round(r.pipeline), ceilingBatches: r.ceilingBatches, kennel: r.kennel.throughput, naive: r.naive.throughput, replicaBatches: r.batches })) },
    levels: levels.map((l) => ({ fraction: l.fraction, rate: l.rate, kennel: l.kennel, naive: l.naive, replicaBatches: l.batches })),
  };
  const file = saveResults('serve', results, date);
  const kennelFailed = failedCount(kennelMax) + levels.reduce((s, l) => s + failedCount(l.kennel), 0);
  if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else {
    process.stdout.write(
      summaryTable([
        { metric: 'ceiling (in-process decode + batched inference, best run)', value: `${results.ceiling_ips} images/s` },
        { metric: 'Kennel endpoint, max throughput', value: `${results.kennel_ips} images/s (${((results.kennel_ips / results.ceiling_ips) * 100).toFixed(0)}% of ceiling)`, target: `>= ${TARGET.ceilingFraction * 100}% of ceiling`, pass: results.kennel_ips >= TARGET.ceilingFraction * results.ceiling_ips },
        { metric: `raw ORT session on ${device} (inference alone, best batch)`, value: `${results.raw_session_ips} images/s` },
        { metric: 'naive peer, max throughput', value: `${results.naive_ips} images/s` },
        ...(gpu ? [{ metric: 'Kennel vs naive peer, max throughput (GPU)', value: `${(results.kennel_ips / results.naive_ips).toFixed(1)}x`, target: `>= ${TARGET.gpuTimesNaive}x`, pass: results.kennel_ips >= TARGET.gpuTimesNaive * results.naive_ips }] : []),
        { metric: `Kennel p99 at 70% of its max (median round, ${reference}/s)`, value: `${results.kennel_p99_ms_at_70pct} ms`, target: `<= ${TARGET.p99AtSeventyPercentMs} ms`, pass: results.kennel_p99_ms_at_70pct <= TARGET.p99AtSeventyPercentMs },
        ...levels.map((l) => ({ metric: `p99 at ${Math.round(l.fraction * 100)}% (${l.rate}/s): Kennel vs naive`, value: `${l.kennel.p99} vs ${l.naive.p99} ms`, target: 'Kennel <= naive', pass: l.kennel.p99 <= l.naive.p99 })),
        { metric: 'Kennel failed requests', value: String(kennelFailed), target: '0', pass: kennelFailed === 0 },
      ]) + `\nresults: ${file}\n`,
    );
  }
} finally {
  cleanup();
}

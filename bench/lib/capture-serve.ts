/**
 * `npm run bench:serve -- --capture P [--quick] [--json]`: what data capture costs the endpoint.
 * One daemon, two endpoints on the same Kennel-trained model (a linear head on breeds-mini over
 * the shared MobileNetV2, so captured requests have features): `plain`, and `captured`, which
 * captures P% of its requests (a captured request runs outside the batcher, with the features as
 * an extra output). Both are measured in the same run, in alternating order, so a change in the
 * machine's load hits both alike: maximum throughput (closed loop), then p50/p99 at 70% of
 * plain's median maximum (open loop, the same schedule for both).
 */
import { median } from '../../src/core/index.js';
import { join } from 'node:path';
import { addBackbone } from '../../src/backbones/index.js';
import { importDataset } from '../../src/data/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { train } from '../../src/training/index.js';
import { failedCount, mergeLoads, runLoad, type LoadResult } from './load.js';
import { currentLoad, machineInfo } from './machine.js';
import { logger, saveResults, summaryTable, type BenchArgs } from './report.js';
import { benchHome, realPhotoFiles, startKennel } from './serving.js';
import { shared, sharedMobileNet } from './report.js';

const TARGET = { throughputLoss: 0.05 };
const FILE = 'serve-capture';

export async function captureBench(args: BenchArgs, percent: number): Promise<void> {
  const log = logger(args.json);
  const machine = machineInfo();
  const date = new Date();
  const t0 = performance.now();
  const settings = args.quick ? { rounds: 2, maxSeconds: 2, levelSeconds: 4, slices: 2, warmup: 0.5 } : { rounds: 4, maxSeconds: 8, levelSeconds: 16, slices: 4, warmup: 2 };
  const { home, onCleanup, cleanup } = benchHome(FILE);
  const files = realPhotoFiles(args.options.photos);
  try {
    const ws = openWorkspace(home);
    await importDataset(ws, join(shared, 'data/breeds-mini'), { name: 'breeds' });
    await addBackbone(ws, sharedMobileNet, { name: 'mnv2' });
    await train(ws, { dataset: 'breeds', backbone: 'mnv2' });
    ws.close();
    const ref = 'breeds@1';
    const description = 'linear head trained on breeds-mini over the shared MobileNetV2 int8';
    log(`bench:serve --capture ${percent}${args.quick ? ' (quick)' : ''}: ${description}, ${files.length} photos, ${machine.cores} cores, load average ${machine.loadStart}`);
    const kennel = await startKennel(home);
    onCleanup(() => kennel.stop());
    const common = { instances: 1, maxInFlight: 256, device: 'cpu' };
    await kennel.admin('POST', '/v1/endpoints', { name: 'plain', variants: [{ name: 'primary', model: ref }], ...common });
    await kennel.admin('POST', '/v1/endpoints', { name: 'captured', variants: [{ name: 'primary', model: ref }], capture: { percent }, ...common });
    const url = (e: string) => `http://127.0.0.1:${kennel.port}/endpoints/${e}/invocations`;
    const order = (i: number) => (i % 2 === 0 ? (['plain', 'captured'] as const) : (['captured', 'plain'] as const));

    const max: { plain: LoadResult[]; captured: LoadResult[] } = { plain: [], captured: [] };
    for (let r = 0; r < settings.rounds; r++) {
      for (const e of order(r)) max[e].push(await runLoad({ mode: 'closed', url: url(e), files, concurrency: 32, seconds: settings.maxSeconds, warmupSeconds: settings.warmup, headers: kennel.auth }));
      log(`round ${r + 1}: plain ${max.plain.at(-1)!.throughput} images/s (p99 ${max.plain.at(-1)!.p99} ms) | captured ${max.captured.at(-1)!.throughput} images/s (p99 ${max.captured.at(-1)!.p99} ms)`);
    }
    const plainMax = Math.round(median(max.plain.map((x) => x.throughput)) * 10) / 10;
    const capturedMax = Math.round(median(max.captured.map((x) => x.throughput)) * 10) / 10;

    const rate = Math.max(1, Math.round(0.7 * plainMax));
    const parts: { plain: LoadResult[]; captured: LoadResult[] } = { plain: [], captured: [] };
    for (let i = 0; i < settings.slices; i++) {
      for (const e of order(i)) parts[e].push(await runLoad({ mode: 'open', url: url(e), files, phases: [{ rate, seconds: settings.levelSeconds / settings.slices }], warmupSeconds: i === 0 ? settings.warmup : 0, maxInFlight: 1024, headers: kennel.auth, record: true }));
    }
    const at70 = { plain: mergeLoads(parts.plain), captured: mergeLoads(parts.captured) };
    log(`70% (${rate}/s): plain p50 ${at70.plain.p50} p99 ${at70.plain.p99} ms | captured p50 ${at70.captured.p50} p99 ${at70.captured.p99} ms`);
    const drift = await kennel.admin<{ captures: number }>('GET', '/v1/endpoints/captured/drift?last=5000');
    log(`captured: a drift check read ${drift.captures} captures with features`);

    const loss = 1 - capturedMax / plainMax;
    const failed = [...max.plain, ...max.captured, at70.plain, at70.captured].reduce((s, x) => s + failedCount(x), 0);
    const results = {
      plain_ips: plainMax,
      captured_ips: capturedMax,
      throughput_loss: Math.round(loss * 1000) / 1000,
      plain_p99_ms_at_70pct: at70.plain.p99,
      captured_p99_ms_at_70pct: at70.captured.p99,
      capturesChecked: drift.captures,
      failed,
      quick: args.quick,
      date: date.toISOString(),
      seconds: Math.round((performance.now() - t0) / 1000),
      machine: { ...machine, loadEnd: currentLoad() },
      config: { model: `${ref} (${description})`, instances: 1, capturePercent: percent, rate70: rate, rounds: settings.rounds, closedLoopConcurrency: 32 },
      rounds: { plain: max.plain.map((x) => x.throughput), captured: max.captured.map((x) => x.throughput) },
      at70,
    };
    const file = saveResults(FILE, results, date);
    if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    else {
      process.stdout.write(
        summaryTable([
          { metric: 'max throughput, no capture (median round)', value: `${plainMax} images/s` },
          { metric: `max throughput, capture on ${percent}% of requests`, value: `${capturedMax} images/s (${(loss * 100).toFixed(1)}% less)`, target: `<= ${TARGET.throughputLoss * 100}% less`, pass: loss <= TARGET.throughputLoss },
          { metric: `p50 / p99 at 70% (${rate}/s), no capture`, value: `${at70.plain.p50} / ${at70.plain.p99} ms` },
          { metric: `p50 / p99 at 70% (${rate}/s), capture on`, value: `${at70.captured.p50} / ${at70.captured.p99} ms` },
          { metric: 'captures with features read by a drift check', value: String(drift.captures) },
          { metric: 'failed requests', value: String(failed), target: '0', pass: failed === 0 },
        ]) + `\nresults: ${file}\n`,
      );
    }
  } finally {
    cleanup();
  }
}

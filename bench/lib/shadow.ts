/**
 * `npm run bench:serve -- --shadow on [--quick] [--json]`: what a shadow variant costs the
 * primary. One daemon, three endpoints on the same model: `plain`, `shadowed`, whose shadow
 * (the same model again) gets a copy of 100% of its requests, and `control`, a second plain one.
 * They are measured in the same run, in rotating order, so a change in the machine's load hits
 * all alike: maximum throughput (closed loop, plain and shadowed), then p50/p99 at 70% of plain's
 * median maximum (open loop, the same schedule for all three). "No p99 increase beyond noise"
 * is read two ways: the 95% bootstrap interval of p99(shadowed) - p99(plain) includes 0, and the
 * A/A difference p99(control) - p99(plain) shows how far two identical endpoints differ in the
 * same run. The shadow's own report says how many requests it compared and dropped.
 */
import { median, Rng } from '../../src/core/index.js';
import type { ShadowReport } from '../../src/serving/index.js';
import { failedCount, mergeLoads, runLoad, type LoadResult } from './load.js';
import { currentLoad, machineInfo } from './machine.js';
import { logger, saveResults, summaryTable, type BenchArgs } from './report.js';
import { benchHome, importBenchModel, realPhotoFiles, startKennel, type BenchModel } from './serving.js';

const TARGET = { throughputLoss: 0.05 };

/** The 99th percentile of latencies (sorted in place). */
const p99 = (ms: Float64Array): number => ms.sort()[Math.min(ms.length - 1, Math.floor(0.99 * ms.length))]!;

/** p99(b) - p99(a) and its 95% bootstrap interval (the latencies of each resampled with replacement). */
function p99Difference(a: number[], b: number[], iterations = 2000): { ms: number; ci95: [number, number] } {
  const rng = new Rng(99);
  const resampledP99 = (x: number[]) => p99(Float64Array.from(x, () => x[rng.int(x.length)]!));
  const diffs = Float64Array.from({ length: iterations }, () => resampledP99(b) - resampledP99(a)).sort();
  const round = (x: number) => Math.round(x * 10) / 10;
  return { ms: round(p99(Float64Array.from(b)) - p99(Float64Array.from(a))), ci95: [round(diffs[Math.floor(0.025 * iterations)]!), round(diffs[Math.floor(0.975 * iterations)]!)] };
}

export async function shadowBench(args: BenchArgs): Promise<void> {
  const log = logger(args.json);
  const machine = machineInfo();
  const date = new Date();
  const t0 = performance.now();
  const settings = args.quick ? { rounds: 2, maxSeconds: 2, levelSeconds: 4, slices: 2, warmup: 0.5 } : { rounds: 4, maxSeconds: 8, levelSeconds: 16, slices: 4, warmup: 2 };
  const { home, onCleanup, cleanup } = benchHome('serve-shadow');
  const files = realPhotoFiles(args.options.photos);
  try {
    const { model, description } = await importBenchModel(home, args.options.model as BenchModel);
    const ref = `${model.name}@${model.version}`;
    log(`bench:serve --shadow on${args.quick ? ' (quick)' : ''}: ${description}, ${files.length} photos, ${machine.cores} cores, load average ${machine.loadStart}`);
    const kennel = await startKennel(home);
    onCleanup(() => kennel.stop());
    const common = { instances: 1, maxInFlight: 256, device: 'cpu' };
    await kennel.admin('POST', '/v1/endpoints', { name: 'plain', variants: [{ name: 'primary', model: ref }], ...common });
    await kennel.admin('POST', '/v1/endpoints', { name: 'shadowed', variants: [{ name: 'primary', model: ref }], shadow: { model: ref, percent: 100 }, ...common });
    await kennel.admin('POST', '/v1/endpoints', { name: 'control', variants: [{ name: 'primary', model: ref }], ...common });
    const url = (e: string) => `http://127.0.0.1:${kennel.port}/endpoints/${e}/invocations`;
    const order = (i: number) => (i % 2 === 0 ? (['plain', 'shadowed'] as const) : (['shadowed', 'plain'] as const));

    const max: { plain: LoadResult[]; shadowed: LoadResult[] } = { plain: [], shadowed: [] };
    for (let r = 0; r < settings.rounds; r++) {
      for (const e of order(r)) max[e].push(await runLoad({ mode: 'closed', url: url(e), files, concurrency: 32, seconds: settings.maxSeconds, warmupSeconds: settings.warmup, headers: kennel.auth }));
      log(`round ${r + 1}: plain ${max.plain.at(-1)!.throughput} images/s (p99 ${max.plain.at(-1)!.p99} ms) | shadowed ${max.shadowed.at(-1)!.throughput} images/s (p99 ${max.shadowed.at(-1)!.p99} ms)`);
    }
    const plainMax = Math.round(median(max.plain.map((x) => x.throughput)) * 10) / 10;
    const shadowedMax = Math.round(median(max.shadowed.map((x) => x.throughput)) * 10) / 10;

    const rate = Math.max(1, Math.round(0.7 * plainMax));
    const parts: { plain: LoadResult[]; shadowed: LoadResult[]; control: LoadResult[] } = { plain: [], shadowed: [], control: [] };
    const rotation = ['plain', 'shadowed', 'control'] as const;
    for (let i = 0; i < settings.slices * 3; i++) {
      const e = rotation[(i + Math.floor(i / 3)) % 3]!;
      parts[e].push(await runLoad({ mode: 'open', url: url(e), files, phases: [{ rate, seconds: settings.levelSeconds / settings.slices }], warmupSeconds: i < 3 ? settings.warmup : 0, maxInFlight: 1024, headers: kennel.auth, record: true }));
    }
    const at70 = { plain: mergeLoads(parts.plain), shadowed: mergeLoads(parts.shadowed), control: mergeLoads(parts.control) };
    const latencies = (ps: LoadResult[]) => ps.flatMap((p) => (p.records ?? []).filter((r) => r.status >= 200 && r.status < 300).map((r) => r.ms));
    const p99Increase = p99Difference(latencies(parts.plain), latencies(parts.shadowed));
    const p99AA = p99Difference(latencies(parts.plain), latencies(parts.control));
    log(`70% (${rate}/s): plain p50 ${at70.plain.p50} p99 ${at70.plain.p99} ms | shadowed p50 ${at70.shadowed.p50} p99 ${at70.shadowed.p99} ms | control p50 ${at70.control.p50} p99 ${at70.control.p99} ms`);
    log(`p99 shadowed - plain ${p99Increase.ms} ms (95% CI ${p99Increase.ci95.join(' to ')}); A/A control - plain ${p99AA.ms} ms (95% CI ${p99AA.ci95.join(' to ')})`);
    const report = await kennel.admin<ShadowReport>('GET', '/v1/endpoints/shadowed/shadow-report');
    const offered = report.mirrored + report.dropped;
    log(`shadow: ${report.mirrored} mirrored, ${report.dropped} dropped (of ${offered}); agreement ${report.agreement}`);

    const loss = 1 - shadowedMax / plainMax;
    const failed = [...max.plain, ...max.shadowed, at70.plain, at70.shadowed, at70.control].reduce((s, x) => s + failedCount(x), 0);
    const p99WithinNoise = p99Increase.ci95[0] <= 0;
    const results = {
      plain_ips: plainMax,
      shadowed_ips: shadowedMax,
      throughput_loss: Math.round(loss * 1000) / 1000,
      plain_p99_ms_at_70pct: at70.plain.p99,
      shadowed_p99_ms_at_70pct: at70.shadowed.p99,
      control_p99_ms_at_70pct: at70.control.p99,
      p99_increase_ms: p99Increase.ms,
      p99_increase_ci95_ms: p99Increase.ci95,
      p99_aa_difference_ms: p99AA.ms,
      p99_aa_ci95_ms: p99AA.ci95,
      p99_within_noise: p99WithinNoise,
      shadow: { mirrored: report.mirrored, dropped: report.dropped, compared: report.requests, agreement: report.agreement, shadowP50Ms: report.shadowLatency.p50Ms },
      failed,
      quick: args.quick,
      date: date.toISOString(),
      seconds: Math.round((performance.now() - t0) / 1000),
      machine: { ...machine, loadEnd: currentLoad() },
      config: { model: `${ref} (${description})`, instances: 1, shadowInstances: 1, shadowPercent: 100, rate70: rate, rounds: settings.rounds, closedLoopConcurrency: 32 },
      rounds: { plain: max.plain.map((x) => x.throughput), shadowed: max.shadowed.map((x) => x.throughput) },
      at70,
    };
    const file = saveResults('serve-shadow', results, date);
    if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    else {
      process.stdout.write(
        summaryTable([
          { metric: 'max throughput, no shadow (median round)', value: `${plainMax} images/s` },
          { metric: 'max throughput, shadow on 100% of requests', value: `${shadowedMax} images/s (${(loss * 100).toFixed(1)}% less)`, target: `<= ${TARGET.throughputLoss * 100}% less`, pass: loss <= TARGET.throughputLoss },
          { metric: `p50 / p99 at 70% (${rate}/s), no shadow`, value: `${at70.plain.p50} / ${at70.plain.p99} ms` },
          { metric: `p50 / p99 at 70% (${rate}/s), shadow on`, value: `${at70.shadowed.p50} / ${at70.shadowed.p99} ms` },
          { metric: `p50 / p99 at 70% (${rate}/s), control (no shadow, A/A)`, value: `${at70.control.p50} / ${at70.control.p99} ms` },
          { metric: 'p99 shadow on - no shadow (95% bootstrap CI)', value: `${p99Increase.ms} ms (${p99Increase.ci95.join(' to ')})`, target: 'CI includes 0', pass: p99WithinNoise },
          { metric: 'p99 control - no shadow, A/A (95% bootstrap CI)', value: `${p99AA.ms} ms (${p99AA.ci95.join(' to ')})` },
          { metric: 'shadow: compared / dropped (busy) of mirrored', value: `${report.mirrored} / ${report.dropped} of ${offered}` },
          { metric: 'failed requests', value: String(failed), target: '0', pass: failed === 0 },
        ]) + `\nresults: ${file}\n`,
      );
    }
  } finally {
    cleanup();
  }
}

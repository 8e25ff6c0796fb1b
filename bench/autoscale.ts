/**
 * `npm run bench:autoscale [-- --quick] [-- --json]`: autoscaling of a real Kennel daemon under
 * open-loop load from a separate process (real photos): 1x, a step to 10x, back to 1x, where 1x
 * is 4% of what one replica serves on this machine (measured first).
 *
 * - scale_out_seconds: from the step to the first answer served by a replica that did not
 *   exist before it (the x-kennel-replica header names the replica)
 * - failed_requests: every non-200 answer through scale-out and scale-in, plus scale-from-zero
 * - scale_from_zero_seconds: first answer of an endpoint at zero replicas
 */
import type { EndpointDescription } from '../src/serving/index.js';
import { failedCount, runLoad } from './lib/load.js';
import { currentLoad, machineInfo } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, summaryTable } from './lib/report.js';
import { benchHome, importBenchModel, realPhotoFiles, startKennel } from './lib/serving.js';

const TARGET = { scaleOutSeconds: 3, scaleFromZeroSeconds: 2 };

const args = parseBenchArgs(process.argv.slice(2), 'autoscale');
const log = logger(args.json);
const machine = machineInfo();
const date = new Date();
const t0 = performance.now();
const plan = args.quick ? { before: 5, step: 10, after: 12, scaleInCooldownS: 5, calibrateSeconds: 3 } : { before: 10, step: 30, after: 45, scaleInCooldownS: 15, calibrateSeconds: 6 };
const policy = { instances: 1, min: 1, max: 4, targetConcurrency: 0.3, scaleOutCooldownS: 2, scaleInCooldownS: plan.scaleInCooldownS, maxInFlight: 256 };
/** 1x is this fraction of one replica's measured maximum, so 10x (40%) is load the machine can serve even when shared */
const BASE_FRACTION = 0.04;

const { home, onCleanup, cleanup } = benchHome('autoscale');
const files = realPhotoFiles();

try {
  const { model } = await importBenchModel(home, 'mobilenet');
  const kennel = await startKennel(home);
  onCleanup(() => kennel.stop());
  const ref = `${model.name}@${model.version}`;
  const url = (name: string) => `http://127.0.0.1:${kennel.port}/endpoints/${name}/invocations`;
  // calibration: one replica's maximum on this machine now
  await kennel.admin('POST', '/v1/endpoints', { name: 'calibrate', variants: [{ name: 'primary', model: ref }], instances: 1, maxInFlight: 256 });
  const max = await runLoad({ mode: 'closed', url: url('calibrate'), files, concurrency: 16, seconds: plan.calibrateSeconds, warmupSeconds: 1, headers: kennel.auth });
  await kennel.admin('DELETE', '/v1/endpoints/calibrate');
  const base = Math.max(2, Math.round(BASE_FRACTION * max.throughput));
  log(`bench:autoscale${args.quick ? ' (quick)' : ''}: one replica serves ${max.throughput} images/s; ${base}/s for ${plan.before} s, ${base * 10}/s for ${plan.step} s, ${base}/s for ${plan.after} s; ${machine.cores} cores, load average ${machine.loadStart}`);
  await kennel.admin('POST', '/v1/endpoints', { name: 'auto', variants: [{ name: 'primary', model: ref }], ...policy });

  // the replica count as the load runs, from the admin API
  const timeline: Array<{ at: number; desired: number; ready: number }> = [];
  const loadStart = performance.now();
  const poll = setInterval(() => {
    void kennel.admin<EndpointDescription>('GET', '/v1/endpoints/auto').then((d) => timeline.push({ at: Math.round(performance.now() - loadStart), desired: d.variants[0]!.desired, ready: d.variants[0]!.ready }));
  }, 250);
  const load = await runLoad({
    mode: 'open',
    url: url('auto'),
    files,
    phases: [
      { rate: base, seconds: plan.before },
      { rate: base * 10, seconds: plan.step },
      { rate: base, seconds: plan.after },
    ],
    maxInFlight: 1024,
    record: true,
    headers: kennel.auth,
  });
  clearInterval(poll);
  const records = load.records!;
  const stepAt = plan.before * 1000;
  const downAt = (plan.before + plan.step) * 1000;
  const before = new Set(records.filter((r) => r.at < stepAt && r.replica).map((r) => r.replica!));
  const firstNew = records.filter((r) => r.at >= stepAt && r.replica && !before.has(r.replica)).map((r) => r.at + r.ms).sort((a, b) => a - b)[0];
  const scaleOutSeconds = firstNew === undefined ? null : Math.round(firstNew - stepAt) / 1000;
  const peak = Math.max(...timeline.map((t) => t.ready));
  const scaledIn = timeline.find((t) => t.at > downAt && t.desired < peak);
  const described = await kennel.admin<EndpointDescription>('GET', '/v1/endpoints/auto');
  log(`step to ${base * 10}/s: first answer from a new replica after ${scaleOutSeconds ?? '-'} s; peak ${peak} replicas; ${failedCount(load)} failed of ${load.sent}`);
  log(`back to ${base}/s: ${scaledIn ? `scaled in after ${((scaledIn.at - downAt) / 1000).toFixed(1)} s` : 'not scaled in during the run'}`);

  // scale from zero: an endpoint with no replica, then one request
  await kennel.admin('POST', '/v1/endpoints', { name: 'zero', variants: [{ name: 'primary', model: ref }], instances: 0, min: 0, max: 1, targetConcurrency: 1 });
  const fromZero = await runLoad({ mode: 'open', url: url('zero'), files: files.slice(0, 1), phases: [{ rate: 1, seconds: 1 }], record: true, headers: kennel.auth });
  const first = fromZero.records![0]!;
  const scaleFromZeroSeconds = first.status === 200 ? Math.round(first.ms) / 1000 : null;
  log(`scale from zero: first answer ${first.status} after ${first.ms.toFixed(0)} ms`);

  const failed = failedCount(load) + failedCount(fromZero);
  const results = {
    scale_out_seconds: scaleOutSeconds,
    scale_from_zero_seconds: scaleFromZeroSeconds,
    failed_requests: failed,
    quick: args.quick,
    date: date.toISOString(),
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: { ...machine, loadEnd: currentLoad() },
    plan: { ...plan, base, oneReplicaMax: max.throughput, policy },
    failed_by_status: { steps: load.failed, fromZero: fromZero.failed },
    runtime: kennel.runtime,
    requests: load.sent + fromZero.sent,
    peak_replicas: peak,
    scale_in_seconds: scaledIn ? (scaledIn.at - downAt) / 1000 : null,
    latency_ms: { p50: load.p50, p99: load.p99, max: load.max },
    timeline,
    events: described.events.filter((e) => e.kind === 'scale_out' || e.kind === 'scale_in').map((e) => `${e.at} ${e.message}`),
  };
  const file = saveResults('autoscale', results, date);
  if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else {
    process.stdout.write(
      summaryTable([
        { metric: 'step 1x -> 10x: a new replica serves after', value: scaleOutSeconds === null ? 'never' : `${scaleOutSeconds} s`, target: `<= ${TARGET.scaleOutSeconds} s`, pass: scaleOutSeconds !== null && scaleOutSeconds <= TARGET.scaleOutSeconds },
        { metric: 'replicas at peak / after scale-in', value: `${peak} / ${described.variants[0]!.desired}` },
        { metric: 'failed requests (scale-out, scale-in, from zero)', value: `${failed} of ${results.requests}`, target: '0', pass: failed === 0 },
        { metric: 'scale from zero: first answer after', value: scaleFromZeroSeconds === null ? `failed (${first.status})` : `${scaleFromZeroSeconds} s`, target: `<= ${TARGET.scaleFromZeroSeconds} s, no error`, pass: scaleFromZeroSeconds !== null && scaleFromZeroSeconds <= TARGET.scaleFromZeroSeconds },
      ]) + `\nresults: ${file}\n`,
    );
  }
} finally {
  cleanup();
}

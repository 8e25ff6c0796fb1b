import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { importModel } from '../../src/registry/index.js';
import { startDaemon, type Daemon } from '../../src/server/index.js';
import type { ShadowReport } from '../../src/serving/index.js';
import { repoRoot, tmpHome } from '../helpers/paths.js';
import { processState } from '../helpers/process.js';
import { bearer, invokeKey, labels, mobilenetPath, photo, realPhotos, waitFor, workspaceWithModel } from './fixtures.js';

/**
 * Shadow variants: a copy of live requests goes to a second model after the primary answered;
 * its answers are compared (kennel endpoints shadow-report), never returned; promotion is one
 * command. Models: mnet@1 (labels v1-*), twin@1 (the same network and labels: agrees on every
 * image) and other@1 (the same network, labels v2-*: disagrees on every image).
 */
let daemon: Daemon;
let home: string;
let base: string;
let key: string;
const photos = realPhotos().slice(0, 12).map((f) => readFileSync(f));

/** The CLI, run asynchronously: the daemon answering it lives in this process. */
function kennel(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], { env: { ...process.env, KENNEL_HOME: home }, encoding: 'utf8', timeout: 180_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

const invoke = async (image: Buffer) => {
  const res = await fetch(`${base}/endpoints/dogs/invocations?topK=1`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...bearer(key) }, body: image });
  return { status: res.status, body: (await res.json()) as { model?: string; variant?: string; predictions?: Array<{ label: string }>; error?: { code: string } } };
};

/** The report once `n` mirrored requests are compared (the mirror writes once a second). */
const reportWith = (n: number) => waitFor(`${n} compared requests`, () => {
  const r = daemon.runtime.shadowReport('dogs');
  return r.requests >= n && r;
}, 180_000);

/** The shadow replica's state letter (R, S, T for stopped, ...); it must still be there. */
const stateOf = (pid: number): string => processState(pid) ?? assert.fail(`process ${pid} is gone`);

/** Nice value and scheduling policy (5: SCHED_IDLE) of every thread of a process (fields 19 and 41 of /proc/PID/task/TID/stat). */
function schedulingOfThreads(pid: number): Array<{ nice: number; policy: number }> {
  const dir = `/proc/${pid}/task`;
  return readdirSync(dir).map((tid) => {
    const stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { nice: Number(fields[16]), policy: Number(fields[38]) };
  });
}

before(async () => {
  home = tmpHome();
  const ws = await workspaceWithModel(home, 'mnet', 'v1');
  await importModel(ws, mobilenetPath(), { name: 'twin', labels: labels('v1') });
  await importModel(ws, mobilenetPath(), { name: 'other', labels: labels('v2') });
  key = invokeKey(ws);
  ws.close();
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
  base = `http://127.0.0.1:${daemon.state.port}`;
  await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet@1' }], instances: 1 });
});

after(async () => {
  await daemon?.close();
});

test('kennel endpoints update --shadow: every request is mirrored, answers come from the primary only, the shadow runs at the lowest CPU priority (SCHED_IDLE, nice 19)', async () => {
  const r = await kennel(['endpoints', 'update', 'dogs', '--shadow', 'twin', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as { shadow: { model: string; percent: number; ready: number; replicas: Array<{ pid: number }> } };
  assert.equal(d.shadow.model, 'twin@1');
  assert.equal(d.shadow.percent, 100);
  assert.equal(d.shadow.ready, 1);
  const threads = schedulingOfThreads(d.shadow.replicas[0]!.pid);
  assert.ok(threads.length > 3 && threads.every((t) => t.nice === 19 && t.policy === 5), `shadow replica threads: ${JSON.stringify(threads)}`);
  const primaryPid = daemon.runtime.describe('dogs').variants[0]!.replicas[0]!.pid!;
  assert.ok(schedulingOfThreads(primaryPid).every((t) => t.nice < 19 && t.policy === 0), 'the primary keeps its priority');

  for (const image of photos) {
    const a = await invoke(image);
    assert.equal(a.status, 200);
    assert.equal(a.body.model, 'mnet@1');
    assert.equal(a.body.variant, 'primary');
    assert.match(a.body.predictions![0]!.label, /^v1-/);
  }
  const report = await reportWith(photos.length);
  assert.equal(report.requests, photos.length);
  assert.equal(report.mirrored, photos.length);
  assert.equal(report.dropped, 0);
  assert.equal(report.agreement, 1, 'the same network agrees on every image');
  assert.deepEqual(report.primaryModels, ['mnet@1']);
  assert.equal(report.primary.errors + report.shadowLatency.errors, 0);
  for (const l of [report.primary, report.shadowLatency]) assert.ok(l.p50Ms! > 0 && l.p50Ms! <= l.p95Ms! && l.p95Ms! <= l.p99Ms!, JSON.stringify(l));
  assert.ok(report.classes.every((c) => c.disagreements === 0));

  // the shadow yields the CPU to serving: stopped while requests are in flight, running again after
  const shadowPid = d.shadow.replicas[0]!.pid;
  const seen = new Set<string>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      seen.add(stateOf(shadowPid));
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const burst = await Promise.all(Array.from({ length: 48 }, (_, i) => invoke(photos[i % photos.length]!)));
  sampling = false;
  await sampler;
  assert.ok(burst.every((a) => a.status === 200));
  assert.ok(seen.has('T'), `the shadow replica was stopped during the burst (states seen: ${[...seen].join(', ')})`);
  await waitFor('the shadow replica running again', () => stateOf(shadowPid) !== 'T', 10_000);
});

test('a different shadow starts a new comparison: disagreement per class, errors of both on a corrupt image, the CLI report', async () => {
  await daemon.runtime.update('dogs', { shadow: { model: 'other' } });
  assert.equal(daemon.runtime.shadowReport('dogs').requests, 0, "the previous shadow's results are not mixed in");
  for (const image of photos) assert.equal((await invoke(image)).status, 200);
  const corrupt = photo().subarray(0, 2000);
  assert.equal((await invoke(corrupt)).status, 422);
  await reportWith(photos.length + 1);

  const r = await kennel(['endpoints', 'shadow-report', 'dogs', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as ShadowReport & { active: boolean };
  assert.equal(report.shadow!.model, 'other@1');
  assert.equal(report.requests, photos.length + 1);
  assert.equal(report.agreement, 0, 'labels v1-* against v2-*: no request agrees');
  assert.deepEqual(report.primary.errorCodes, { bad_image: 1 });
  assert.deepEqual(report.shadowLatency.errorCodes, { bad_image: 1 });
  const top = report.classes[0]!;
  assert.ok(top.disagreements > 0 && top.rate === 1);
  assert.match(top.label, /^v1-/);
  assert.match(top.shadowSaid[0]!.label, /^v2-/);
  assert.equal(report.classes.reduce((s, c) => s + c.requests, 0), photos.length);

  const human = await kennel(['endpoints', 'shadow-report', 'dogs']);
  assert.match(human.stdout, /top-1 agreement 0\.0%/);
  assert.match(human.stdout, /promote it: kennel endpoints promote-shadow dogs/);
});

test('under a burst, every request is mirrored or dropped and counted; the primary answers all of them', async () => {
  await daemon.runtime.update('dogs', { shadow: { model: 'twin', percent: 100 }, maxBatch: 1 });
  const before = daemon.runtime.shadowReport('dogs');
  const burst = await Promise.all(Array.from({ length: 48 }, (_, i) => invoke(photos[i % photos.length]!)));
  assert.ok(burst.every((a) => a.status === 200 && a.body.variant === 'primary'));
  const after = await waitFor('the burst counted', () => {
    const r = daemon.runtime.shadowReport('dogs');
    return r.mirrored + r.dropped - before.mirrored - before.dropped === 48 && r.requests - before.requests === r.mirrored - before.mirrored && r;
  }, 180_000);
  assert.ok(after.mirrored > before.mirrored);
});

test('kennel endpoints promote-shadow makes the shadow the primary in one step; a share below 100% mirrors some requests', async () => {
  await daemon.runtime.update('dogs', { shadow: { model: 'other', percent: 50 } });
  for (const image of [...photos, ...photos]) await invoke(image);
  const half = await waitFor('mirrored half', () => {
    const r = daemon.runtime.shadowReport('dogs');
    return r.requests === r.mirrored && r;
  }, 180_000);
  assert.ok(half.mirrored > 0 && half.mirrored < 2 * photos.length, `${half.mirrored} of ${2 * photos.length} mirrored at 50%`);

  const r = await kennel(['endpoints', 'promote-shadow', 'dogs', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as { shadow: unknown; variants: Array<{ name: string; model: string }> };
  assert.equal(d.shadow, null);
  assert.equal(d.variants[0]!.model, 'other@1');
  const a = await invoke(photos[0]!);
  assert.equal(a.body.model, 'other@1');
  assert.match(a.body.predictions![0]!.label, /^v2-/);
  const last = daemon.runtime.shadowReport('dogs');
  assert.equal(last.active, false);
  assert.equal(last.shadow!.model, 'other@1', 'the last comparison stays readable');
  const again = await kennel(['endpoints', 'promote-shadow', 'dogs']);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /has no shadow to promote/);
});

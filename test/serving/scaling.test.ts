import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { KennelError } from '../../src/core/index.js';
import { importModel } from '../../src/registry/index.js';
import { startDaemon, type Daemon } from '../../src/server/index.js';
import { tmpHome } from '../helpers/paths.js';
import { bearer, failures, invokeKey, labels, mobilenetPath, photo, steadyLoad, waitFor, workspaceWithModel } from './fixtures.js';

/** Autoscaling (out, in, from and to zero), overload shedding, variants and endpoint lifecycle. */
let daemon: Daemon;
let base: string;
let key: string;

const invoke = async (endpoint: string) => {
  const res = await fetch(`${base}/endpoints/${endpoint}/invocations?topK=1`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...bearer(key) }, body: photo() });
  return { status: res.status, headers: res.headers, body: (await res.json()) as { model?: string; variant?: string; predictions?: Array<{ label: string }>; error?: { code: string } } };
};

before(async () => {
  const home = tmpHome();
  const ws = await workspaceWithModel(home, 'mnet', 'v1');
  await importModel(ws, mobilenetPath(), { name: 'mnet', labels: labels('v2') });
  key = invokeKey(ws);
  ws.close();
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
  base = `http://127.0.0.1:${daemon.state.port}`;
});

after(async () => {
  await daemon?.close();
});

test('scale from zero: the first request waits for a replica and succeeds; idle, the endpoint goes back to zero', async () => {
  const created = await daemon.runtime.create({ name: 'lazy', variants: [{ name: 'primary', model: 'mnet@1' }], instances: 0, min: 0, max: 2, targetConcurrency: 4, scaleInCooldownS: 1 });
  assert.equal(created.status, 'scaled_to_zero');
  assert.equal(created.replicas.length, 0);
  const first = await invoke('lazy');
  assert.equal(first.status, 200);
  assert.equal(first.body.model, 'mnet@1');
  const events = daemon.runtime.describe('lazy').events;
  assert.ok(events.some((e) => e.kind === 'scale_out' && /scale from zero/.test(e.message)), JSON.stringify(events));
  await waitFor('scale in to zero', () => daemon.runtime.describe('lazy').replicas.length === 0, 30_000);
  const d = daemon.runtime.describe('lazy');
  assert.equal(d.status, 'scaled_to_zero');
  assert.ok(d.events.some((e) => e.kind === 'scale_in' && /below target 4/.test(e.message)));
  await daemon.runtime.delete('lazy');
});

test('target tracking scales out under load and back in when it stops, logging each decision with its reason', async () => {
  await daemon.runtime.create({ name: 'busy', variants: [{ name: 'primary', model: 'mnet@1' }], instances: 1, min: 1, max: 3, targetConcurrency: 1, scaleOutCooldownS: 1, scaleInCooldownS: 1 });
  const load = steadyLoad(`${base}/endpoints/busy/invocations`, key, 6);
  await waitFor('scale out', () => daemon.runtime.describe('busy').variants[0]!.ready > 1, 30_000);
  const results = await load.stop();
  assert.deepEqual(failures(results), []);
  await waitFor('scale in', () => daemon.runtime.describe('busy').variants[0]!.desired === 1, 30_000);
  const events = daemon.runtime.describe('busy').events;
  const out = events.find((e) => e.kind === 'scale_out')!;
  assert.match(out.message, /scaled primary out from 1 to [23] replicas: in-flight per replica [\d.]+ above target 1/);
  assert.ok(events.some((e) => e.kind === 'scale_in'));
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /kennel_scaling_events_total\{endpoint="busy",variant="primary",direction="out"\} [1-9]/);
  assert.match(metrics, /kennel_batch_size_count\{endpoint="busy",variant="primary"\} [1-9]/);
  // every batch counted is timed, and a model run takes time
  const batches = metrics.match(/kennel_batch_size_count\{endpoint="busy",variant="primary"\} (\d+)/)![1];
  assert.match(metrics, new RegExp(`kennel_batch_duration_seconds_count\\{endpoint="busy",variant="primary"\\} ${batches}\\b`));
  assert.match(metrics, /kennel_batch_duration_seconds_sum\{endpoint="busy",variant="primary"\} (0\.\d*[1-9]|[1-9])/);
  // a CPU replica runs fp32 only: its batches report no fp16 near tie run again, and none run in fp32 alone
  assert.match(metrics, /kennel_fp32_reruns_total\{endpoint="busy",variant="primary"\} 0\n/);
  assert.match(metrics, /kennel_fp32_alone_total\{endpoint="busy",variant="primary"\} 0\n/);
  assert.match(metrics, /kennel_replicas\{endpoint="busy",variant="primary",state="ready"\} [1-9]/);
  assert.match(metrics, /kennel_queue_depth\{endpoint="busy",variant="primary"\} \d/);
  assert.match(metrics, /kennel_invocation_duration_seconds_count\{endpoint="busy",variant="primary",status="200"\} [1-9]/);
  await daemon.runtime.delete('busy');
});

test('overload is answered 503 with Retry-After instead of queueing without bound', async () => {
  await daemon.runtime.create({ name: 'tight', variants: [{ name: 'primary', model: 'mnet@1' }], instances: 1, maxInFlight: 1 });
  const answers = await Promise.all(Array.from({ length: 12 }, () => invoke('tight')));
  const shed = answers.filter((a) => a.status === 503);
  assert.ok(shed.length > 0 && answers.some((a) => a.status === 200), answers.map((a) => a.status).join(','));
  for (const a of shed) {
    assert.equal(a.headers.get('retry-after'), '1');
    assert.equal(a.body.error?.code, 'overloaded');
  }
  assert.equal((await invoke('tight')).status, 200, 'serves again once the burst is over');
  await daemon.runtime.delete('tight');
});

test('variants split traffic by weight and the answer names its variant; weights and variants can change', async () => {
  await daemon.runtime.create({ name: 'ab', variants: [{ name: 'primary', model: 'mnet@1', weight: 1 }, { name: 'canary', model: 'mnet@2', weight: 1 }], instances: 1 });
  const seen = new Map<string, string>();
  for (let i = 0; i < 40; i++) {
    const a = await invoke('ab');
    assert.equal(a.status, 200);
    seen.set(a.body.variant!, a.body.model!);
    assert.equal(a.headers.get('x-kennel-variant'), a.body.variant);
  }
  assert.deepEqual([...seen.entries()].sort(), [['canary', 'mnet@2'], ['primary', 'mnet@1']]);
  // all traffic to the canary, then promote it by removing the primary
  await daemon.runtime.update('ab', { variants: [{ name: 'primary', weight: 0.0001 }, { name: 'canary', weight: 1000 }] });
  const d = await daemon.runtime.update('ab', { removeVariants: ['primary'] });
  assert.deepEqual(d.variants.map((v) => [v.name, v.model]), [['canary', 'mnet@2']]);
  for (let i = 0; i < 5; i++) assert.equal((await invoke('ab')).body.variant, 'canary');
  await assert.rejects(daemon.runtime.update('ab', { removeVariants: ['canary'] }), /at least one variant/);
  await assert.rejects(daemon.runtime.update('ab', { variants: [{ name: 'third' }] }), /needs a model/);
});

test("an endpoint's precision is part of its spec: auto by default, and a change rolls out new replicas", async () => {
  const d = daemon.runtime.describe('ab');
  assert.equal(d.spec.precision, 'auto');
  const before = d.replicas.map((r) => r.pid);
  // the shared model is quantized: fp32 and fp16 both leave it as it was made, so it keeps answering
  const after = await daemon.runtime.update('ab', { precision: 'fp32' });
  assert.equal(after.spec.precision, 'fp32');
  assert.ok(after.events.some((e) => /precision auto -> fp32/.test(e.message)), after.events.map((e) => e.message).join('\n'));
  assert.ok(after.replicas.length > 0 && after.replicas.every((r) => r.state === 'ready' && !before.includes(r.pid)));
  assert.equal((await invoke('ab')).status, 200);
  await assert.rejects(daemon.runtime.update('ab', { precision: 'fp8' as never }), (e: unknown) => e instanceof KennelError && e.status === 400 && /precision/.test(e.message));
});

test('a deleted endpoint stops its replicas and answers 404', async () => {
  const pids = daemon.runtime.describe('ab').replicas.map((r) => r.pid!);
  await daemon.runtime.delete('ab');
  assert.equal((await invoke('ab')).status, 404);
  assert.throws(() => daemon.runtime.describe('ab'), /Endpoint ab was not found/);
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/);
});

test('invalid endpoint settings are refused before anything starts', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ name: 'x', variants: [{ name: 'primary', model: 'nope' }] }, /Model nope was not found/],
    [{ name: 'Bad_Name', variants: [{ name: 'primary', model: 'mnet' }] }, /endpoint names use lower-case/],
    [{ name: 'x', variants: [] }, /variants/],
    [{ name: 'x', variants: [{ name: 'primary', model: 'mnet' }], instances: 5, max: 2 }, /between min and max|min \(5\) is above max \(2\)/],
    [{ name: 'x', variants: [{ name: 'primary', model: 'mnet' }], instances: 0 }, /needs an autoscaling target/],
    [{ name: 'x', variants: [{ name: 'primary', model: 'mnet' }], min: 1, max: 3 }, /no autoscaling target/],
    [{ name: 'x', variants: [{ name: 'primary', model: 'mnet' }], targetConcurrency: 2, targetInvocationsPerInstance: 100 }, /not both/],
    [{ name: 'x', variants: [{ name: 'a', model: 'mnet' }, { name: 'a', model: 'mnet' }] }, /given twice/],
  ];
  for (const [input, message] of cases) await assert.rejects(daemon.runtime.create(input), message);
  assert.deepEqual(daemon.runtime.list(), []);
});

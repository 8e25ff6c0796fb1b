import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { getModel, importModel, registerModel } from '../../src/registry/index.js';
import { startDaemon, type Daemon } from '../../src/server/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { ReplicaPool } from '../../src/serving/supervisor.js';
import { ReplicaGoneError } from '../../src/serving/replica-process.js';
import { tmpHome } from '../helpers/paths.js';
import { bearer, failures, invokeKey, labels, mobilenetPath, photo, realPhotos, steadyLoad, waitFor, workspaceWithModel } from './fixtures.js';

/**
 * Reliability under steady load: a replica killed with SIGKILL, a rolling update, a rollout
 * whose new replicas fail their readiness check, and a daemon restart. None may fail a request.
 */
let home: string;
let daemon: Daemon;
let key: string;
const images = realPhotos().slice(0, 12).map((f) => readFileSync(f));
const url = () => `http://127.0.0.1:${daemon.state.port}/endpoints/dogs/invocations`;
const logLines: string[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _enc, done) {
    logLines.push(chunk.toString());
    done();
  },
});
const start = (): Promise<Daemon> => startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'warn' }, logSink) });

before(async () => {
  home = tmpHome();
  const ws = await workspaceWithModel(home, 'mnet', 'v1');
  await importModel(ws, mobilenetPath(), { name: 'mnet', labels: labels('v2') });
  // loads fine, but its card promises 10 classes: the replica's readiness check refuses it
  const good = getModel(ws, 'mnet@1');
  await registerModel(ws, 'broken', await ws.artifacts.get(good.onnxSha), { ...good.card, labels: labels('x').slice(0, 10) });
  key = invokeKey(ws);
  ws.close();
  daemon = await start();
});

after(async () => {
  await daemon?.close();
});

test('kill -9 of one of three replicas under steady load: no request fails', async () => {
  const d = await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet@1' }], instances: 3 });
  assert.equal(d.replicas.filter((r) => r.state === 'ready').length, 3);
  const load = steadyLoad(url(), key, 6, images);
  await load.answers(30);
  const victim = d.replicas[1]!.pid!;
  // kill it while requests are on it: those must be retried on another replica. Stopped first, it
  // cannot answer them in the moment between seeing them and the kill (that race once left none to retry)
  process.kill(victim, 'SIGSTOP');
  await waitFor('requests on the victim', () => daemon.runtime.describe('dogs').replicas.find((r) => r.pid === victim)!.outstanding >= 2);
  process.kill(victim, 'SIGKILL');
  await load.answers(60);
  const replaced = await waitFor('a replacement replica', () => {
    const rs = daemon.runtime.describe('dogs').replicas;
    return rs.filter((r) => r.state === 'ready').length === 3 && !rs.some((r) => r.pid === victim) && rs;
  });
  await load.answers(20);
  const results = await load.stop();
  assert.deepEqual(failures(results), []);
  assert.equal(replaced.length, 3);
  const events = daemon.runtime.describe('dogs').events.map((e) => e.kind);
  assert.ok(events.includes('replica_crashed'), events.join(','));
  assert.ok(logLines.some((l) => l.includes('retrying on another')), 'in-flight requests were retried');
});

test('a replica whose channels closed (killed, its exit not yet reported) is not chosen, nor chosen again for the retry', async () => {
  const ws = openWorkspace(home);
  const mv = getModel(ws, 'mnet@1');
  const pool = new ReplicaPool('gone', 'primary', { model: 'mnet@1', onnxPath: await ws.artifacts.localPath(mv.onnxSha), card: mv.card, device: 'cpu', precision: 'auto', batching: { maxBatch: 8, maxDelayMs: 2 }, maxInFlight: 8 }, 2, pino({ level: 'silent' })).start();
  try {
    await waitFor('two ready replicas', () => pool.readyCount === 2, 60_000);
    const first = await pool.acquire(Date.now() + 5_000);
    // what the kernel does to a killed replica's request stream before its exit is seen
    (first as unknown as { requests: { destroy(): void } }).requests.destroy();
    await assert.rejects(first.infer(photo(), 1, 'r1'), ReplicaGoneError);
    assert.equal(first.state, 'ready', 'its exit is not reported yet');
    for (let i = 0; i < 4; i++) assert.notEqual(await pool.acquire(Date.now() + 5_000), first);
    assert.notEqual(pool.tryAcquire(8), first);
  } finally {
    await pool.close();
    ws.close();
  }
});

test('a rolling update under load: no request fails, every answer comes from the old or the new model', async () => {
  const before = daemon.runtime.describe('dogs').replicas.map((r) => r.pid);
  const load = steadyLoad(url(), key, 4, images);
  await load.answers(20);
  const d = await daemon.runtime.update('dogs', { variants: [{ name: 'primary', model: 'mnet@2' }] });
  await load.answers(20);
  const results = await load.stop();
  assert.deepEqual(failures(results), []);
  for (const r of results) {
    assert.ok(r.model === 'mnet@1' || r.model === 'mnet@2', r.model);
    assert.equal(r.label!.split('-')[0], r.model === 'mnet@1' ? 'v1' : 'v2', 'labels come from the version that answered');
  }
  assert.ok(results.some((r) => r.model === 'mnet@1') && results.at(-1)!.model === 'mnet@2');
  assert.equal(d.status, 'in_service');
  assert.deepEqual(d.variants.map((v) => v.model), ['mnet@2']);
  assert.equal(d.replicas.length, 3);
  assert.ok(d.replicas.every((r) => r.model === 'mnet@2' && r.state === 'ready' && !before.includes(r.pid)));
  assert.ok(d.events.some((e) => e.kind === 'rollout_completed'));
});

test('a rollout whose replicas fail the readiness check is abandoned; the old model keeps serving', async () => {
  const load = steadyLoad(url(), key, 2, images);
  await assert.rejects(daemon.runtime.update('dogs', { variants: [{ name: 'primary', model: 'broken' }] }), (e: Error & { code?: string }) => e.code === 'rollout_failed' && /readiness check/.test(e.message));
  await load.answers(10);
  const results = await load.stop();
  assert.deepEqual(failures(results), []);
  assert.ok(results.every((r) => r.model === 'mnet@2'));
  const d = daemon.runtime.describe('dogs');
  assert.deepEqual(d.variants.map((v) => v.model), ['mnet@2']);
  assert.equal(d.spec.variants[0]!.model, 'mnet@2', 'the stored spec went back too');
  assert.ok(d.events.some((e) => e.kind === 'rollout_failed'));
});

test('after a daemon restart the endpoint comes back as it was and serves', async () => {
  await daemon.close();
  daemon = await start();
  const d = daemon.runtime.describe('dogs');
  assert.deepEqual(d.variants.map((v) => [v.model, v.desired]), [['mnet@2', 3]]);
  const res = await fetch(url(), { method: 'POST', headers: { 'content-type': 'image/jpeg', ...bearer(key) }, body: photo() });
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { model: string }).model, 'mnet@2');
  await waitFor('three ready replicas', () => daemon.runtime.describe('dogs').replicas.filter((r) => r.state === 'ready').length === 3);
  // the stored endpoint is the one a fresh workspace sees too
  const ws = openWorkspace(home);
  try {
    const row = ws.db.prepare('SELECT spec FROM endpoints WHERE name = ?').get('dogs') as { spec: string };
    assert.equal((JSON.parse(row.spec) as { variants: Array<{ model: string }> }).variants[0]!.model, 'mnet@2');
  } finally {
    ws.close();
  }
});

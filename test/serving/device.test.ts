import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { addBackbone } from '../../src/backbones/index.js';
import { KennelError } from '../../src/core/index.js';
import { importDataset } from '../../src/data/index.js';
import { assertDevice, cudaProviderPath } from '../../src/inference/index.js';
import { getModel } from '../../src/registry/index.js';
import { ServingRuntime } from '../../src/serving/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { ReplicaPool, type PoolEvent } from '../../src/serving/supervisor.js';
import { kennel } from '../foundation/cli.js';
import { sharedDir, tmpHome } from '../helpers/paths.js';
import { mobilenetPath, workspaceWithModel } from './fixtures.js';

/** These tests exercise the failure path, which needs a machine without a GPU (as CI is). */
const skip = ['/dev/nvidia0', '/dev/dri/renderD128'].some((p) => existsSync(p)) ? 'this machine has a GPU, so WebGPU can start here' : false;
const NO_ADAPTER = /^No WebGPU adapter: this machine has no usable GPU; use --device cpu or auto\.$/;

test('the WebGPU probe fails fast with one sentence on a machine without a GPU (and cpu needs none)', { skip }, async () => {
  await assertDevice('cpu');
  await assert.rejects(assertDevice('webgpu'), (e: unknown) => e instanceof KennelError && e.code === 'device_unavailable' && NO_ADAPTER.test(e.message));
});

test('endpoints create --device webgpu is refused at once (422), and nothing is stored', { skip }, async () => {
  const ws = await workspaceWithModel(tmpHome());
  const runtime = new ServingRuntime(ws, { log: pino({ level: 'silent' }) });
  try {
    await assert.rejects(runtime.create({ name: 'gpu', variants: [{ name: 'primary', model: 'mnet' }], instances: 1, device: 'webgpu' }), (e: unknown) => e instanceof KennelError && e.status === 422 && NO_ADAPTER.test(e.message));
    assert.deepEqual(runtime.list(), []);
  } finally {
    await runtime.close();
    ws.close();
  }
});

test('endpoints create --device cuda without the CUDA provider is refused at once (422) with what to do', { skip: cudaProviderPath() ? 'the CUDA provider is installed here' : false }, async () => {
  const ws = await workspaceWithModel(tmpHome());
  const runtime = new ServingRuntime(ws, { log: pino({ level: 'silent' }) });
  try {
    await assert.rejects(runtime.create({ name: 'gpu', variants: [{ name: 'primary', model: 'mnet' }], instances: 1, device: 'cuda' }), (e: unknown) => e instanceof KennelError && e.status === 422 && /CUDA provider is not installed/.test(e.message));
    assert.deepEqual(runtime.list(), []);
  } finally {
    await runtime.close();
    ws.close();
  }
});

test('a replica that cannot start its device fails the pool at once: no crash-retry loop, callers get 503 with the reason', { skip }, async () => {
  const ws = await workspaceWithModel(tmpHome());
  const mv = getModel(ws, 'mnet');
  const events: PoolEvent[] = [];
  const pool = new ReplicaPool(
    'gpu',
    'primary',
    { model: 'mnet@1', onnxPath: await ws.artifacts.localPath(mv.onnxSha), card: mv.card, device: 'webgpu', precision: 'auto', batching: { maxBatch: 8, maxDelayMs: 2 }, maxInFlight: 8 },
    1,
    pino({ level: 'silent' }),
  )
    .on('event', (e) => events.push(e))
    .start();
  try {
    const deadline = Date.now() + 60_000;
    while (!pool.failed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(pool.failed ?? '', /No WebGPU adapter/, JSON.stringify(events.map((e) => e.message)));
    await new Promise((r) => setTimeout(r, 2_000)); // a retry loop would have started another replica by now (backoff 0.5 s)
    assert.equal(events.filter((e) => e.kind === 'replica_started').length, 1, events.map((e) => e.message).join('\n'));
    assert.ok(events.some((e) => e.kind === 'rollout_failed'));
    await assert.rejects(pool.acquire(Date.now() + 1000), (e: unknown) => e instanceof KennelError && e.status === 503 && e.code === 'start_failed' && /No WebGPU adapter/.test(e.message));
  } finally {
    await pool.close();
    ws.close();
  }
});

test('kennel train --device webgpu: exits 1 with the one sentence, no native Dawn/Vulkan text, no blame on the data', { skip }, async () => {
  const home = tmpHome();
  const ws = openWorkspace(home);
  try {
    await importDataset(ws, path.join(sharedDir(), 'data/breeds-mini'), { name: 'breeds' });
    await addBackbone(ws, mobilenetPath(), { name: 'mnv2' });
  } finally {
    ws.close();
  }
  const r = kennel(home, ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--device', 'webgpu']);
  assert.equal(r.code, 1, r.stderr);
  const [first, ...rest] = r.stderr.trim().split('\n').filter((l) => !/^(features|check|extract|train)\b.*(to do|done)/.test(l));
  assert.match(first ?? '', /^error: No WebGPU adapter: this machine has no usable GPU; use --device cpu or auto\.$/, r.stderr);
  assert.ok(rest.length <= 1, r.stderr);
  assert.doesNotMatch(r.stderr, /vulkan|dawn|adapter_result|onnxruntime|image|dataset/i);
});

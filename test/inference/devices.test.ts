import assert from 'node:assert/strict';
import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { KennelError } from '../../src/core/index.js';
import { assertDevice, cudaFingerprint, cudaProviderPath, deviceEnvironment, executionProviders, providersFor, type DeviceEnvironment } from '../../src/inference/index.js';

const machine = (over: Partial<DeviceEnvironment>): DeviceEnvironment => ({ cudaInstalled: false, cudaFailed: false, webgpuBuilt: true, nvidia: false, gpu: false, autoGpu: true, ...over });

test('auto prefers CUDA where it is installed on an NVIDIA machine, then WebGPU on a GPU, then the CPU', () => {
  assert.deepEqual(providersFor('auto', machine({})), ['cpu'], 'no GPU');
  assert.deepEqual(providersFor('auto', machine({ gpu: true })), ['webgpu', 'cpu'], 'a GPU, no CUDA provider');
  assert.deepEqual(providersFor('auto', machine({ gpu: true, nvidia: true })), ['webgpu', 'cpu'], 'NVIDIA without the CUDA provider');
  assert.deepEqual(providersFor('auto', machine({ gpu: true, nvidia: true, cudaInstalled: true })), ['cuda', 'cpu']);
  assert.deepEqual(providersFor('auto', machine({ gpu: true, nvidia: true, cudaInstalled: true, cudaFailed: true })), ['webgpu', 'cpu'], 'its probe failed: on without it');
  assert.deepEqual(providersFor('auto', machine({ cudaInstalled: true })), ['cpu'], 'the provider without an NVIDIA device');
  assert.deepEqual(providersFor('auto', machine({ gpu: true, nvidia: true, cudaInstalled: true, autoGpu: false })), ['cpu'], 'KENNEL_AUTO_GPU=0');
  assert.deepEqual(providersFor('auto', machine({ gpu: true, webgpuBuilt: false })), ['cpu'], 'an ORT build without WebGPU');
  // a named device is what the user asked for: its probe says why it cannot run, nothing switches silently
  assert.deepEqual(providersFor('cuda', machine({})), ['cuda', 'cpu']);
  assert.deepEqual(providersFor('webgpu', machine({})), ['webgpu', 'cpu']);
  assert.deepEqual(providersFor('cpu', machine({ gpu: true, nvidia: true, cudaInstalled: true })), ['cpu']);
});

test('--device cuda without the CUDA provider is one sentence saying what to do; auto goes on without it', { skip: cudaProviderPath() ? 'the CUDA provider is installed here' : false }, async () => {
  await assert.rejects(assertDevice('cuda'), (e: unknown) => e instanceof KennelError && e.code === 'device_unavailable' && /^ONNX Runtime's CUDA provider is not installed here/.test(e.message) && /docs\/GPU\.md/.test(e.hint ?? ''));
  await assertDevice('auto');
  assert.notEqual(executionProviders('auto')[0], 'cuda');
  assert.equal(deviceEnvironment().cudaInstalled, false);
});

test('a CUDA provider that started is remembered until its library, ONNX Runtime or the driver changes', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kennel-cuda-'));
  const [lib, driver] = [path.join(dir, 'libonnxruntime_providers_cuda.so'), path.join(dir, 'version')];
  writeFileSync(lib, 'provider');
  assert.equal(cudaFingerprint(lib, driver), undefined, 'no driver loaded: nothing to remember');
  assert.equal(cudaFingerprint(undefined, driver), undefined, 'no provider');
  writeFileSync(driver, 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05\nGCC version: 12\n');
  const first = cudaFingerprint(lib, driver);
  assert.ok(first?.includes('580.95.05') && !first.includes('GCC'), first);
  assert.equal(cudaFingerprint(lib, driver), first, 'the same machine: the same fingerprint');
  writeFileSync(driver, 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  590.10.01\n');
  const upgraded = cudaFingerprint(lib, driver);
  assert.notEqual(upgraded, first, 'a new driver');
  utimesSync(lib, new Date(), new Date(Date.now() + 60_000));
  assert.notEqual(cudaFingerprint(lib, driver), upgraded, 'a provider library installed again');
});

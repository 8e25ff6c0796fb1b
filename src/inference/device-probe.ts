import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import * as ort from 'onnxruntime-node';
import { KennelError, Errors } from '../core/index.js';
import { GraphBuilder } from '../onnx/index.js';
import { cudaProviderPath, executionProviders, markCudaFailed, type Device } from './devices.js';
import { loadMeasured, saveMeasured } from './precision.js';

/** Why a device cannot be used, or undefined when it can. */
type DeviceProblem = KennelError | undefined;

const PROBE_TIMEOUT_MS = 30_000;
const probes = new Map<Device, Promise<DeviceProblem>>();

/** A one-node graph: all a provider needs to show that it can start. */
function tinyModel(): Uint8Array {
  const g = new GraphBuilder();
  g.output(g.op('Relu', [g.input('x', [1])]), 'y', [1]);
  return g.model.serialize();
}

const noAdapter = (): KennelError =>
  Errors.DeviceUnavailable('No WebGPU adapter: this machine has no usable GPU; use --device cpu or auto.', 'auto runs on the GPU only where one works, else on the CPU.');

/**
 * Starts a session on a tiny graph with one provider, in a child process: a provider that cannot
 * start may print native warnings or crash, and neither must reach the user's terminal.
 */
function probeProvider(provider: 'webgpu' | 'cuda'): Promise<{ ok: true } | { ok: false; message: string; crashed: boolean }> {
  const script = `
    const ort = await import(${JSON.stringify(import.meta.resolve('onnxruntime-node'))});
    try {
      await ort.InferenceSession.create(Buffer.from(${JSON.stringify(Buffer.from(tinyModel()).toString('base64'))}, 'base64'), { executionProviders: [${JSON.stringify(provider)}] });
      process.stdout.write('ok');
    } catch (e) {
      process.stdout.write('failed: ' + String(e?.message ?? e));
    }`;
  return new Promise((resolve) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: PROBE_TIMEOUT_MS, encoding: 'utf8' }, (_err, stdout) => {
      if (stdout === 'ok') resolve({ ok: true });
      else resolve({ ok: false, message: stdout.replace(/^failed: /, ''), crashed: !stdout.startsWith('failed') });
    }),
  );
}

/** WebGPU: a machine without a GPU fails there (Dawn prints its Vulkan warnings to that process's stderr). */
async function probeWebGpu(): Promise<DeviceProblem> {
  const r = await probeProvider('webgpu');
  if (r.ok) return undefined;
  if (/adapter/i.test(r.message) || !r.crashed) return noAdapter();
  return Errors.DeviceUnavailable('The WebGPU device did not start (its check crashed or took over 30 s).', 'Use --device cpu, or check the GPU driver.');
}

/**
 * CUDA: onnxruntime-node ships its CUDA provider separately, so first whether it is installed
 * at all, then whether it starts (it needs an NVIDIA driver and the CUDA and cuDNN libraries it
 * was built for).
 */
async function probeCuda(): Promise<DeviceProblem> {
  if (!cudaProviderPath())
    return Errors.DeviceUnavailable(
      "ONNX Runtime's CUDA provider is not installed here (onnxruntime-node ships it separately).",
      'Install it on a machine with internet access as docs/GPU.md says, or use --device webgpu, cpu or auto.',
    );
  const started = cudaFingerprint(cudaProviderPath());
  if (started && loadMeasured(started)) return undefined;
  const r = await probeProvider('cuda');
  if (r.ok) {
    if (started) saveMeasured(started, { startedAt: new Date().toISOString() });
    return undefined;
  }
  const missing = /lib[\w.+-]+\.so[\w.]*/.exec(r.message)?.[0];
  return Errors.DeviceUnavailable(
    missing ? `The CUDA provider is installed but cannot load ${missing}: the CUDA or cuDNN libraries it needs are missing.` : r.crashed ? 'The CUDA provider is installed but its check crashed or took over 30 s.' : 'The CUDA provider is installed but did not start: no usable NVIDIA GPU or driver.',
    'See docs/GPU.md for the libraries each onnxruntime-node version needs, or use --device webgpu, cpu or auto.',
  );
}

/** The NVIDIA kernel driver's version line, where a driver is loaded. */
export const NVIDIA_DRIVER_VERSION = '/proc/driver/nvidia/version';

/**
 * What a CUDA provider that started here is remembered by (kept with the device profiles): the
 * provider library (path, size, time), ONNX Runtime's version, the driver's version line and
 * the host. A probe that passed is not run again (it takes most of a second: a process loading
 * the CUDA libraries) until one of them changes. Undefined without a provider or a driver.
 */
export function cudaFingerprint(provider: string | undefined, driverFile = NVIDIA_DRIVER_VERSION): string | undefined {
  if (!provider) return undefined;
  try {
    const driver = readFileSync(driverFile, 'utf8').split('\n')[0]!.trim();
    const lib = statSync(provider);
    return `cuda started: ${provider} ${lib.size} ${lib.mtimeMs} onnxruntime ${ort.env.versions.common} ${driver} ${hostname()}`;
  } catch {
    return undefined;
  }
}

const PROBES: Record<'webgpu' | 'cuda', () => Promise<DeviceProblem>> = { webgpu: probeWebGpu, cuda: probeCuda };

function probe(device: 'webgpu' | 'cuda'): Promise<DeviceProblem> {
  if (!probes.has(device)) probes.set(device, PROBES[device]());
  return probes.get(device)!;
}

/**
 * Checks once per process that `device` can start: training, predict and serving call this
 * before they use it, so a missing GPU is one sentence at once instead of a native error or
 * replicas that crash and restart. cpu always can; auto never fails: where it would pick a CUDA
 * provider that cannot start, it goes on without it.
 */
export async function assertDevice(device: Device): Promise<void> {
  if (device === 'cpu') return;
  if (device === 'auto') {
    if (executionProviders('auto')[0] === 'cuda' && (await probe('cuda'))) markCudaFailed();
    return;
  }
  const problem = await probe(device);
  if (problem) throw problem;
}

import { execFile } from 'node:child_process';
import { KennelError, Errors } from '../core/index.js';
import { GraphBuilder } from '../onnx/index.js';
import type { Device } from './devices.js';

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
 * Starts a WebGPU session on a tiny graph in a child process: a machine without a GPU fails
 * there (Dawn prints its Vulkan warnings to that process's stderr, not to the user's terminal).
 */
function probeWebGpu(): Promise<DeviceProblem> {
  const script = `
    const ort = await import(${JSON.stringify(import.meta.resolve('onnxruntime-node'))});
    try {
      await ort.InferenceSession.create(Buffer.from(${JSON.stringify(Buffer.from(tinyModel()).toString('base64'))}, 'base64'), { executionProviders: ['webgpu'] });
      process.stdout.write('ok');
    } catch (e) {
      process.stdout.write('failed: ' + String(e?.message ?? e));
    }`;
  return new Promise((resolve) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: PROBE_TIMEOUT_MS, encoding: 'utf8' }, (_err, stdout) => {
      if (stdout === 'ok') resolve(undefined);
      else if (/adapter/i.test(stdout) || stdout.startsWith('failed')) resolve(noAdapter());
      else resolve(Errors.DeviceUnavailable('The WebGPU device did not start (its check crashed or took over 30 s).', 'Use --device cpu, or check the GPU driver.'));
    }),
  );
}

/**
 * Checks once per process that `device` can start: training, predict and serving call this
 * before they use it, so a missing GPU is one sentence at once instead of a native error or
 * replicas that crash and restart. cpu and auto (which falls back to the CPU) always can.
 */
export async function assertDevice(device: Device): Promise<void> {
  if (device !== 'webgpu') return;
  if (!probes.has(device)) probes.set(device, probeWebGpu());
  const problem = await probes.get(device)!;
  if (problem) throw problem;
}

import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';

/**
 * Where a model runs: the one list of devices (CLI options, request and job schemas, sessions).
 * 'cuda' is ONNX Runtime's CUDA provider, which onnxruntime-node ships separately (docs/GPU.md);
 * 'auto' prefers it, then WebGPU, then the CPU.
 */
export const DEVICES = ['cpu', 'webgpu', 'cuda', 'auto'] as const;
export type Device = (typeof DEVICES)[number];

/**
 * The devices an endpoint may name: every device but 'auto', so that all replicas of an
 * endpoint run (and pad their batches) alike whichever host they start on.
 */
export type EndpointDevice = Exclude<Device, 'auto'>;
export const ENDPOINT_DEVICES = DEVICES.filter((d): d is EndpointDevice => d !== 'auto') as [EndpointDevice, ...EndpointDevice[]];

/** What this machine offers, as the choice of providers sees it. */
export interface DeviceEnvironment {
  /** the CUDA provider's library sits beside ORT's (installed, not necessarily working) */
  cudaInstalled: boolean;
  /** the CUDA provider was tried in this process's probe and failed (auto then skips it) */
  cudaFailed: boolean;
  /** this ORT build bundles WebGPU */
  webgpuBuilt: boolean;
  /** an NVIDIA device node exists */
  nvidia: boolean;
  /** any GPU device node exists (NVIDIA or a DRM render node) */
  gpu: boolean;
  /** KENNEL_AUTO_GPU=0 keeps auto on the CPU */
  autoGpu: boolean;
}

/**
 * ORT execution providers for a device name. A named GPU device falls back to nothing: its
 * probe (assertDevice) says in one sentence why it cannot run. auto takes the first that can:
 * CUDA where installed on an NVIDIA machine (and its probe has not failed), else WebGPU on a
 * machine with a GPU (without one the provider still loads but runs slowly), else the CPU.
 */
export function providersFor(device: Device, env: DeviceEnvironment): string[] {
  if (device === 'cpu') return ['cpu'];
  if (device === 'webgpu') return ['webgpu', 'cpu'];
  if (device === 'cuda') return ['cuda', 'cpu'];
  if (!env.autoGpu) return ['cpu'];
  if (env.cudaInstalled && !env.cudaFailed && env.nvidia) return ['cuda', 'cpu'];
  return env.webgpuBuilt && env.gpu ? ['webgpu', 'cpu'] : ['cpu'];
}

let cudaFailed = false;
/** Called by the CUDA probe when the provider is installed but cannot start here. */
export function markCudaFailed(): void {
  cudaFailed = true;
}

/** Picks ORT execution providers for a device name on this machine. */
export function executionProviders(device: Device): string[] {
  return providersFor(device, deviceEnvironment());
}

export function deviceEnvironment(): DeviceEnvironment {
  return {
    cudaInstalled: cudaProviderPath() !== undefined,
    cudaFailed,
    webgpuBuilt: ort.listSupportedBackends?.().some((b) => b.name === 'webgpu') ?? false,
    nvidia: existsSync('/dev/nvidia0'),
    gpu: ['/dev/nvidia0', '/dev/dri/renderD128'].some((p) => existsSync(p)),
    autoGpu: process.env.KENNEL_AUTO_GPU !== '0',
  };
}

let providerPath: string | null | undefined;
/** Where onnxruntime-node's CUDA provider library is, if its install script put it there. */
export function cudaProviderPath(): string | undefined {
  if (providerPath === undefined) {
    providerPath = null;
    try {
      const root = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..');
      const bin = join(root, 'bin');
      for (const napi of readdirSync(bin)) {
        const file = join(bin, napi, process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
        if (existsSync(file)) providerPath = file;
      }
    } catch {
      // no binary folder: no provider
    }
  }
  return providerPath ?? undefined;
}

import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';

/**
 * Where a model runs: the one list of devices (CLI options, request and job schemas, sessions).
 * 'auto' picks the GPU where there is one. A device with its own ORT provider (e.g. 'cuda') is
 * added here and in executionProviders.
 */
export const DEVICES = ['cpu', 'webgpu', 'auto'] as const;
export type Device = (typeof DEVICES)[number];

/**
 * The devices an endpoint may name: every device but 'auto', so that all replicas of an
 * endpoint run (and pad their batches) alike whichever host they start on.
 */
export type EndpointDevice = Exclude<Device, 'auto'>;
export const ENDPOINT_DEVICES = DEVICES.filter((d): d is EndpointDevice => d !== 'auto') as [EndpointDevice, ...EndpointDevice[]];

/** Picks ORT execution providers for a device name; 'auto' prefers the GPU when the build has it. */
export function executionProviders(device: Device): string[] {
  if (device === 'cpu') return ['cpu'];
  if (device === 'webgpu') return ['webgpu', 'cpu'];
  const webgpu = ort.listSupportedBackends?.().some((b) => b.name === 'webgpu');
  return webgpu && process.env.KENNEL_AUTO_GPU !== '0' && hasGpu() ? ['webgpu', 'cpu'] : ['cpu'];
}

/** Without a GPU the WebGPU provider still loads but runs slowly; only pick it where a driver exists. */
const hasGpu = (): boolean => ['/dev/nvidia0', '/dev/dri/renderD128'].some((p) => existsSync(p));

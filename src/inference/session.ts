import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';

export type Device = 'cpu' | 'webgpu' | 'auto';

/** Picks ORT execution providers for a device name; 'auto' prefers the GPU when the build has it. */
export function executionProviders(device: Device): string[] {
  if (device === 'cpu') return ['cpu'];
  if (device === 'webgpu') return ['webgpu', 'cpu'];
  const webgpu = ort.listSupportedBackends?.().some((b) => b.name === 'webgpu');
  return webgpu && process.env.KENNEL_AUTO_GPU !== '0' && hasGpu() ? ['webgpu', 'cpu'] : ['cpu'];
}

/** Without a GPU the WebGPU provider still loads but runs slowly; only pick it where a driver exists. */
const hasGpu = (): boolean => ['/dev/nvidia0', '/dev/dri/renderD128'].some((p) => existsSync(p));

export interface SessionSettings {
  device?: Device;
  /** intra-op threads, default: every core */
  threads?: number;
  /**
   * Whether ORT's worker threads spin-wait between runs. Off by default: Kennel decodes images
   * on the same cores while it infers, and spinning threads take that CPU (measured: +11%
   * extraction images/s on an idle 2-core machine, and 2-3x faster head training under load).
   */
  spinning?: boolean;
}

/** The session options every Kennel ORT session uses (extraction, head training, serving). */
export function sessionOptions(s: SessionSettings = {}): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: executionProviders(s.device ?? 'cpu'),
    intraOpNumThreads: s.threads ?? availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: s.spinning ? '1' : '0' } } },
  };
}

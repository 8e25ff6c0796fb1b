import { execFile } from 'node:child_process';
import type { GpuSample, HostGpu } from './telemetry.js';

/** Where GPU numbers come from; tests pass a scripted one. */
export interface GpuProbe {
  inventory(): Promise<HostGpu[]>;
  sample(): Promise<GpuSample[]>;
}

const fields = (line: string): string[] => line.split(',').map((f) => f.trim());

/** Parses `nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits`. */
export function parseGpuSamples(csv: string): GpuSample[] {
  return csv
    .split('\n')
    .filter((l) => l.trim())
    .map(fields)
    .filter((f) => f.length >= 3 && f.slice(0, 3).every((v) => Number.isFinite(Number(v))))
    .map(([index, util, mem]) => ({ index: Number(index), utilization: Number(util) / 100, memoryMiB: Number(mem) }));
}

/** Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`. */
export function parseGpuInventory(csv: string): HostGpu[] {
  return csv
    .split('\n')
    .filter((l) => l.trim())
    .map(fields)
    .filter((f) => f.length >= 3 && Number.isFinite(Number(f[0])))
    .map((f) => ({ index: Number(f[0]), name: f.slice(1, -1).join(','), memoryMiB: Number(f[f.length - 1]) }));
}

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile('nvidia-smi', args, { timeout: 3000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))));
}

/** Reads NVIDIA GPUs through nvidia-smi; rejects (and the recorder stops asking) where it is missing. */
export const nvidiaSmi: GpuProbe = {
  inventory: async () => parseGpuInventory(await run(['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'])),
  sample: async () => parseGpuSamples(await run(['--query-gpu=index,utilization.gpu,memory.used', '--format=csv,noheader,nounits'])),
};

import { execFile, spawn } from 'node:child_process';
import type { GpuSample, HostGpu } from './telemetry.js';

/** Where GPU numbers come from; tests pass a scripted one. */
export interface GpuProbe {
  inventory(): Promise<HostGpu[]>;
  /**
   * Reports every GPU's latest utilisation and memory about every `periodMs` until the returned
   * function is called; `onError` once if sampling cannot start or dies.
   */
  watch(periodMs: number, onSample: (gpus: GpuSample[]) => void, onError: () => void): () => void;
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

/**
 * NVIDIA GPUs through nvidia-smi. Sampling runs one long-lived `nvidia-smi -lms PERIOD` that
 * prints a line per GPU each period, rather than a process per sample: starting a process from a
 * large Node.js process costs milliseconds of main-thread time.
 */
export const nvidiaSmi: GpuProbe = {
  inventory: () =>
    new Promise((resolve, reject) =>
      execFile('nvidia-smi', ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'], { timeout: 5000 }, (err, stdout) => (err ? reject(err) : resolve(parseGpuInventory(stdout)))),
    ),
  watch(periodMs, onSample, onError) {
    const child = spawn('nvidia-smi', ['--query-gpu=index,utilization.gpu,memory.used', '--format=csv,noheader,nounits', '-lms', String(Math.max(100, Math.round(periodMs)))], { stdio: ['ignore', 'pipe', 'ignore'] });
    const latest = new Map<number, GpuSample>();
    let pending = '';
    let stopped = false;
    let failed = false;
    const fail = () => {
      if (!stopped && !failed) {
        failed = true;
        onError();
      }
    };
    child.on('error', fail);
    child.on('exit', fail);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop()!;
      for (const s of parseGpuSamples(lines.join('\n'))) latest.set(s.index, s);
      if (latest.size) onSample([...latest.values()].sort((a, b) => a.index - b.index));
    });
    // sampling must never keep a finished job's process alive
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    return () => {
      stopped = true;
      child.kill();
    };
  },
};

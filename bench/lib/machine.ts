import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

export interface MachineInfo {
  /** "model name" from /proc/cpuinfo, plus the CPU family/model numbers when the name is generic */
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  onnxruntime: string;
  sharp: string;
  libvips: string;
  /** sharp.concurrency() and the libuv pool size sharp's work runs on */
  sharpConcurrency: number;
  uvThreadpool: number;
  /** 1-minute load average when the bench started and ended: other users of a shared CPU show here */
  loadStart: number;
  loadEnd?: number;
}

function cpuModel(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(info)?.[1]?.trim();
    const name = field('model name') ?? 'unknown';
    const family = field('cpu family');
    const model = field('model');
    return family && model ? `${name} (family ${family}, model ${model})` : name;
  } catch {
    return 'unknown';
  }
}

export function machineInfo(): MachineInfo {
  return {
    cpu: cpuModel(),
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    node: process.version,
    onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
    sharp: sharp.versions.sharp ?? 'unknown',
    libvips: sharp.versions.vips,
    sharpConcurrency: sharp.concurrency(),
    uvThreadpool: Number(process.env.UV_THREADPOOL_SIZE) || 4,
    loadStart: round2(loadavg()[0]!),
  };
}

export const currentLoad = (): number => round2(loadavg()[0]!);
const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Restarts this bench with a libuv pool of one thread per core (at least 4) unless the variable
 * is set: its in-process ceiling decodes on that pool, as a replica does with its cores, and the
 * pool reads the variable once, so it is set and the process started again. Returns only in the
 * process with the pool sized.
 */
export function withCorePerUvThread(): void {
  if (process.env.UV_THREADPOOL_SIZE) return;
  const again = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, UV_THREADPOOL_SIZE: String(Math.max(4, availableParallelism())) } });
  process.exit(again.status ?? 1);
}

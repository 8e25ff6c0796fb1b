import type { JobTelemetry } from '../../src/insights/index.js';
import type { Workspace } from '../../src/store/index.js';

/** What the training job's telemetry says of its features phase: where the time went, and what was busy meanwhile. */
export interface FeaturesProfile {
  /** seconds from the phase's start to its first finished batch (opening the extractor, the first runs) */
  firstBatchSeconds: number;
  /** images/s from the first finished batch to the last */
  steadyImagesPerSecond: number;
  /** the longest waits between two finished batches: seconds, and when (s into the phase) */
  longestGaps: Array<{ seconds: number; at: number }>;
  /** means over the phase's hardware samples: this process's cores, its worker processes' cores, the machine's busy share, GPU utilisation */
  mean: { processCores: number; childCores: number; machineShare: number; gpuUtilization: number | null };
}

/** featuresProfile of a finished training job, from its telemetry artifact. */
export async function featuresProfile(ws: Workspace, telemetrySha: string | undefined): Promise<FeaturesProfile | undefined> {
  if (!telemetrySha) return undefined;
  const t = JSON.parse(Buffer.from(await ws.artifacts.get(telemetrySha)).toString('utf8')) as JobTelemetry;
  const phase = t.phases.find((p) => p.name === 'features');
  const batches = t.steps.filter((s) => s.kind === 'extract').map((s) => ({ end: s.t + s.ms, images: s.images })).sort((a, b) => a.end - b.end);
  if (!phase || batches.length < 2) return undefined;
  const ends = batches.map((b) => b.end);
  const gaps = ends.slice(1).map((end, i) => ({ seconds: (end - ends[i]!) / 1000, at: (ends[i]! - phase.t) / 1000 }));
  // the images finished after the first batch, over the time from it to the last
  const images = batches.slice(1).reduce((n, b) => n + b.images, 0);
  const during = t.hardware.filter((h) => h.t >= phase.t && h.t <= phase.t + phase.ms);
  const mean = (f: (h: (typeof during)[number]) => number | undefined) => {
    const xs = during.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  };
  return {
    firstBatchSeconds: (ends[0]! - phase.t) / 1000,
    steadyImagesPerSecond: images / ((ends.at(-1)! - ends[0]!) / 1000),
    longestGaps: gaps.sort((a, b) => b.seconds - a.seconds).slice(0, 5),
    mean: { processCores: mean((h) => h.cpuCores) ?? 0, childCores: mean((h) => h.childCpuCores) ?? 0, machineShare: mean((h) => h.machineCpuShare) ?? 0, gpuUtilization: mean((h) => (h.gpus?.length ? h.gpus.reduce((n, g) => n + g.utilization, 0) / h.gpus.length : undefined)) },
  };
}

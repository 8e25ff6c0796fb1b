import { Rng } from '../../src/core/rng.ts';
import type { EpochRecord, HardwareSample, JobTelemetry, RuleInput, StepRecord } from '../../src/insights/index.ts';

/**
 * Scripted telemetry: a healthy job (steady steps, busy CPU, falling losses with a constant
 * train-valid gap, balanced data, calibrated scores) that each test bends to trigger one rule.
 */
export interface TraceShape {
  epochs: number;
  stepsPerEpoch: number;
  extractSteps: number;
}

const SHAPE: TraceShape = { epochs: 6, stepsPerEpoch: 10, extractSteps: 30 };

export function healthyEpochs(n = SHAPE.epochs): EpochRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const trainLoss = 0.8 + 1.2 * Math.exp(-i / 2);
    return { epoch: i + 1, lr: 1e-3 * (1 - i / (2 * n)), trainLoss, validLoss: trainLoss + 0.1, trainTop1: 0.5 + 0.08 * i, validTop1: 0.45 + 0.08 * i, gradNorm: 2 * Math.exp(-i / 4), seconds: 0.1 };
  });
}

export function healthyTelemetry(shape: TraceShape = SHAPE): JobTelemetry {
  const rng = new Rng(7);
  const steps: StepRecord[] = [];
  let t = 0;
  for (let i = 0; i < shape.extractSteps; i++) {
    // uniform +-5% noise: never beyond 3 sigma
    const ms = 100 * (1 + rng.uniform(-0.05, 0.05));
    steps.push({ kind: 'extract', t, ms, images: 16, worker: 'main', label: 'features train', phases: { queue: 2, decode: 0.2 * ms, infer: 0.8 * ms - 2, update: 0 } });
    t += ms;
  }
  const epochs = healthyEpochs(shape.epochs);
  let step = 0;
  for (const e of epochs) {
    for (let k = 0; k < shape.stepsPerEpoch; k++) {
      const ms = 5 * (1 + rng.uniform(-0.05, 0.05));
      step++;
      steps.push({ kind: 'head', t, ms, images: 64, worker: 'main', phases: { queue: 0.01, decode: 0.3, infer: 0, update: ms - 0.31 }, epoch: e.epoch, step, loss: e.trainLoss, gradNorm: e.gradNorm * (1 + rng.uniform(-0.1, 0.1)), lr: e.lr });
      t += ms;
    }
  }
  const hardware: HardwareSample[] = Array.from({ length: 20 }, (_, i) => ({ t: i * 250, worker: 'main', cpuCores: 3.2, cpuShare: 0.8, machineCpuShare: 0.85, load1: 3.5, rssBytes: 300 * 2 ** 20, freeMemoryBytes: 8 * 2 ** 30 }));
  return {
    version: 1,
    job: 'train-scripted',
    kind: 'train',
    device: 'cpu',
    startedAt: '2026-01-01T00:00:00.000Z',
    seconds: t / 1000,
    host: { cpus: 4, cpuModel: 'scripted', memoryBytes: 16 * 2 ** 30, platform: 'linux', arch: 'x64', gpus: [] },
    phases: [
      { name: 'features', t: 0, ms: 3000, images: 480 },
      { name: 'head', t: 3000, ms: 300, images: 3840 },
    ],
    steps,
    epochs,
    hardware,
    workers: [],
    overhead: { ms: 1, stepRatio: 0.001 },
  };
}

export function healthyInput(): RuleInput {
  const telemetry = healthyTelemetry();
  return {
    telemetry,
    epochs: telemetry.epochs,
    dataset: {
      name: 'dogs',
      version: 1,
      classes: ['beagle', 'collie', 'poodle'],
      report: { imbalance: { min: 40, max: 60, ratio: 1.5, smallest: ['poodle'] }, duplicates: [{ sha256: 'a'.repeat(64), paths: ['train/beagle/1.jpg', 'train/beagle/1-copy.jpg'], splits: ['train'] }] },
    },
    metrics: { valid: { n: 30, ece: 0.03, eceUncalibrated: 0.05 }, test: { n: 30, ece: 0.02, eceUncalibrated: 0.04 } },
    temperature: 1.2,
    bestEpoch: 6,
  };
}

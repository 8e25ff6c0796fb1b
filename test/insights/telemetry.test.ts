import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { TelemetryRecorder, parseGpuInventory, parseGpuSamples, windowedRate, type GpuProbe } from '../../src/insights/index.ts';
import { fitHead, type HeadConfig } from '../../src/training/index.ts';
import { tmpDir } from '../helpers/paths.ts';

test('nvidia-smi CSV is parsed into utilisation, memory and inventory', () => {
  assert.deepEqual(parseGpuSamples('0, 37, 1024\n1, 100, 80000\n'), [
    { index: 0, utilization: 0.37, memoryMiB: 1024 },
    { index: 1, utilization: 1, memoryMiB: 80000 },
  ]);
  assert.deepEqual(parseGpuSamples('[N/A], [N/A], 5\n\n'), [], 'unsupported fields are dropped, not read as zero');
  assert.deepEqual(parseGpuInventory('0, NVIDIA H200, 143771\n'), [{ index: 0, name: 'NVIDIA H200', memoryMiB: 143771 }]);
});

test('the recorder keeps phases, extraction batches seen through progress, head steps and hardware samples', async () => {
  let stopped = false;
  const gpu: GpuProbe = {
    inventory: async () => [{ index: 0, name: 'Scripted GPU', memoryMiB: 16000 }],
    watch: (periodMs, onSample) => {
      const timer = setInterval(() => onSample([{ index: 0, utilization: 0.5, memoryMiB: 2000 }]), periodMs / 50);
      return () => {
        stopped = true;
        clearInterval(timer);
      };
    },
  };
  const rec = new TelemetryRecorder({ job: 'train-t', kind: 'train', device: 'webgpu' }, { intervalMs: 20, gpu });
  const seen: string[] = [];
  const progress = rec.observeProgress((e) => seen.push(`${e.phase} ${e.done}`));
  const t0 = performance.now();
  progress({ phase: 'features train', done: 0, total: 32 });
  await sleep(30);
  progress({ phase: 'features train', done: 16, total: 32 });
  await sleep(30);
  progress({ phase: 'features train', done: 32, total: 32 });
  progress({ phase: 'train head', done: 1, total: 3 });
  rec.phase('features', t0, performance.now(), 32);
  await sleep(60);
  const s = performance.now();
  rec.headSteps([
    { epoch: 1, step: 1, ms: 2, gradNorm: 1.5, loss: 3, start: s, inputMs: 0.5, updateMs: 1.5, rows: 64, lr: 0.001 },
    { epoch: 1, step: 2, ms: 2, gradNorm: 1.2, loss: 2.5, start: s + 3, inputMs: 0.5, updateMs: 1.5, rows: 36, lr: 0.001 },
    { epoch: 2, step: 3, ms: 2, gradNorm: 1.0, loss: 2, start: s + 20, inputMs: 0.5, updateMs: 1.5, rows: 64, lr: 0.0005 },
  ]);
  rec.epochs([{ epoch: 1, lr: 0.001, trainLoss: 2.8, trainTop1: 0.3, validLoss: 2.9, validTop1: 0.25, gradNorm: 1.35, seconds: 0.01 }]);
  const t = rec.finish();
  assert.equal(rec.finish(), t, 'finish is idempotent');

  assert.deepEqual(seen, ['features train 0', 'features train 16', 'features train 32', 'train head 1'], 'the wrapped sink still gets every event');
  const extract = t.steps.filter((x) => x.kind === 'extract');
  assert.deepEqual(
    extract.map((x) => x.images),
    [16, 16],
  );
  assert.ok(extract.every((x) => x.ms >= 25 && x.phases === undefined), 'batch wall time from progress, phase split unknown');
  const head = t.steps.filter((x) => x.kind === 'head');
  assert.deepEqual(
    head.map((x) => x.phases!.queue),
    [0, 1, 0],
    'queue = gap since the previous step of the same epoch',
  );
  assert.deepEqual(head[0]!.phases, { queue: 0, decode: 0.5, infer: 0, update: 1.5 });
  assert.equal(head[1]!.images, 36);
  assert.deepEqual(
    t.phases.map((p) => [p.name, p.images]),
    [['features', 32]],
  );
  assert.equal(t.epochs.length, 1);
  assert.ok(t.hardware.length >= 3, `sampled every 20 ms for about 0.1 s: ${t.hardware.length}`);
  for (const h of t.hardware) {
    assert.ok(h.cpuCores >= 0 && h.cpuShare >= 0 && h.cpuShare <= 1);
    assert.ok(h.rssBytes > 10 * 2 ** 20);
  }
  assert.ok(t.hardware.some((h) => h.gpus?.[0]?.memoryMiB === 2000), 'GPU samples from the probe');
  assert.ok(stopped, 'GPU sampling stops with the recording');
  assert.deepEqual(t.host.gpus, [{ index: 0, name: 'Scripted GPU', memoryMiB: 16000 }]);
  assert.ok(t.overhead.ms > 0 && t.overhead.stepRatio > 0, 'the recorder measures its own time');
});

test('a CPU job does not query GPUs, and a failing probe is dropped', async () => {
  let watched = false;
  const probe: GpuProbe = {
    inventory: async () => {
      throw new Error('nvidia-smi: not found');
    },
    watch: () => {
      watched = true;
      return () => {};
    },
  };
  const cpu = new TelemetryRecorder({ job: 'j', kind: 'train', device: 'cpu' }, { intervalMs: 10, gpu: 'auto' });
  const failing = new TelemetryRecorder({ job: 'k', kind: 'train', device: 'webgpu' }, { intervalMs: 10, gpu: probe });
  await sleep(50);
  assert.deepEqual(cpu.finish().host.gpus, []);
  const t = failing.finish();
  assert.equal(watched, false, 'after the inventory failed, sampling never started');
  assert.ok(t.hardware.every((h) => h.gpus === undefined));
});

test('nvidia-smi runs once, streaming a line per GPU each period', { skip: process.platform === 'win32' && 'needs a POSIX shell' }, async () => {
  // a stand-in nvidia-smi on PATH: the inventory query answers once, the -lms loop prints two GPUs per period
  const dir = tmpDir();
  const starts = path.join(dir, 'starts');
  writeFileSync(
    path.join(dir, 'nvidia-smi'),
    `#!/bin/sh\necho start >> ${starts}\ncase "$1" in *name*) echo "0, Fake GPU A, 16000"; echo "1, Fake GPU B, 16000"; exit 0;; esac\nwhile true; do echo "0, 37, 1024"; echo "1, 80, 2048"; sleep 0.05; done\n`,
    { mode: 0o755 },
  );
  const oldPath = process.env.PATH;
  process.env.PATH = `${dir}${path.delimiter}${oldPath}`;
  try {
    const rec = new TelemetryRecorder({ job: 'g', kind: 'train', device: 'webgpu' }, { intervalMs: 30 });
    await sleep(600);
    const t = rec.finish();
    assert.deepEqual(
      t.host.gpus.map((g) => g.name),
      ['Fake GPU A', 'Fake GPU B'],
    );
    const withGpu = t.hardware.filter((h) => h.gpus);
    assert.ok(withGpu.length >= 3, `${withGpu.length} samples with GPU numbers`);
    assert.deepEqual(withGpu.at(-1)!.gpus, [
      { index: 0, utilization: 0.37, memoryMiB: 1024 },
      { index: 1, utilization: 0.8, memoryMiB: 2048 },
    ]);
    assert.equal(readFileSync(starts, 'utf8').trim().split('\n').length, 2, 'one inventory call and one sampling process');
  } finally {
    process.env.PATH = oldPath;
  }
});

test('fitHead times each step: minibatch assembly plus the ONNX update make up its wall time', async () => {
  const rng = new Rng(1);
  const rows = 120;
  const dim = 8;
  const data = Float32Array.from({ length: rows * dim }, () => rng.normal());
  const labels = Int32Array.from({ length: rows }, (_, i) => i % 3);
  const cfg: HeadConfig = { kind: 'linear', hidden: 4, dropout: 0, optimizer: 'adamw', lr: 1e-2, batchSize: 32, epochs: 2, weightDecay: 0, labelSmoothing: 0, patience: 10, seed: 1 };
  const fit = await fitHead({ train: { data, rows, cols: dim }, trainLabels: labels, valid: { data, rows, cols: dim }, validLabels: labels, classes: 3 }, cfg);
  assert.equal(fit.steps.length, 8);
  assert.deepEqual(
    fit.steps.map((s) => s.rows),
    [32, 32, 32, 24, 32, 32, 32, 24],
  );
  for (const s of fit.steps) {
    assert.ok(Math.abs(s.inputMs + s.updateMs - s.ms) < 1e-6, 'the two parts add up to the step');
    assert.ok(s.start > 0 && s.lr > 0);
  }
  assert.ok(fit.steps[4]!.lr < fit.steps[0]!.lr, 'cosine decay is recorded per step');
});

test('worker processes started during the job count as its CPU; children from before it do not', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  // a busy child that spins until it has used this much CPU (not wall time, so a loaded machine
  // stretches it instead of shrinking it) and reports the CPU time it used
  const busy = (ms: number) => spawn(process.execPath, ['-e', `const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }; while (cpu() < ${ms}); console.log(cpu());`], { stdio: ['ignore', 'pipe', 'ignore'] });
  const cpuMs = (c: ChildProcess) => new Promise<number>((resolve) => {
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.once('exit', () => resolve(Number(out)));
  });
  const before = busy(900); // e.g. a daemon's serving replica
  const beforeCpu = cpuMs(before);
  await sleep(100);
  const rec = new TelemetryRecorder({ job: 'w', kind: 'train', device: 'cpu' }, { intervalMs: 50 });
  await sleep(100);
  const worker = busy(500);
  const [used] = await Promise.all([cpuMs(worker), beforeCpu]);
  const t = rec.finish();
  const counted = t.hardware.filter((h) => (h.childProcesses ?? 0) > 0);
  assert.ok(counted.length >= 3, `samples with the worker running: ${counted.length}`);
  assert.ok(counted.every((h) => h.childProcesses === 1), 'only the child started during the job');
  // CPU ms attributed to children: cores x the interval each sample covers
  const attributed = t.hardware.reduce((sum, h, i) => sum + (h.childCpuCores ?? 0) * (i ? h.t - t.hardware[i - 1]!.t : 0), 0);
  assert.ok(attributed > 0.6 * used && attributed < 1.2 * used + 20, `counted ${attributed} ms of the worker's ${used} ms of CPU (the last interval before it exits is lost)`);
  assert.ok(used > 4 * t.hardware.reduce((sum, h, i) => sum + h.cpuCores * (i ? h.t - t.hardware[i - 1]!.t : 0), 0), 'this process itself idled');
});

test('the extraction throughput chart uses windowed rates: two progress events 0.2 ms apart do not spike', () => {
  // two workers at about 34 images/s together, each finishing 8 images every ~470 ms; their events sometimes land 0.2 ms apart
  const steps: Array<{ t: number; ms: number; images: number }> = [];
  let t = 0;
  for (let i = 0; i < 40; i++) {
    const ms = i % 2 ? 0.2 : 470.4;
    steps.push({ t, ms, images: 8 });
    t += ms;
  }
  const naive = Math.max(...steps.map((s) => s.images / (s.ms / 1000)));
  assert.ok(naive > 30_000, `per-step rates spike: ${naive}`);
  const points = windowedRate(steps);
  assert.ok(points.length >= 9, `${points.length} windows`);
  for (const [, rate] of points) assert.ok(rate > 25 && rate < 45, `windowed rate ${rate} is near the true 34 images/s`);
  const window = t / points.length; // here the span splits into equal windows
  const total = points.reduce((n, [, r]) => n + (r * window) / 1000, 0);
  assert.ok(Math.abs(total - 320) < 1e-6, `every image is counted once: ${total}`);
});

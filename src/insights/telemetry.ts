import { closeSync, openSync, readSync } from 'node:fs';
import { cpus, freemem, totalmem, loadavg, availableParallelism } from 'node:os';
import type { ProgressSink } from '../core/index.js';
import { nvidiaSmi, type GpuProbe } from './gpu.js';

/**
 * What a job records about itself, stored as one JSON artifact referenced from the job result
 * (`result.telemetry`). Times are milliseconds; `t` is milliseconds since the job started.
 */
export interface JobTelemetry {
  version: 1;
  job: string;
  /** 'train' | 'tune' */
  kind: string;
  device: string;
  startedAt: string;
  /** wall time from recorder start to finish */
  seconds: number;
  host: HostInfo;
  /** coarse job phases in order: features, head, evaluate, export */
  phases: PhaseRecord[];
  steps: StepRecord[];
  epochs: EpochRecord[];
  hardware: HardwareSample[];
  /** feature-extraction throughput per worker, as the worker engine reported it */
  workers: WorkerStat[];
  /** the recorder's own main-thread time, and its share of step time */
  overhead: { ms: number; stepRatio: number };
}

export interface HostInfo {
  /** logical processors (hardware threads): the unit AWS calls a vCPU */
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  platform: string;
  arch: string;
  gpus: HostGpu[];
}

export interface HostGpu {
  index: number;
  name: string;
  memoryMiB: number;
}

export interface PhaseRecord {
  name: string;
  t: number;
  ms: number;
  /** images the phase pushed through the backbone (features), or rows it trained on (head) */
  images?: number;
}

/**
 * Wall-time split of one step. `decode` is decode + preprocess: image decoding and resizing for
 * extraction batches, minibatch assembly for head steps. `infer` is the backbone pass, `update`
 * the head's forward/backward/optimizer step, `queue` the wait before the step could start.
 */
export interface StepPhases {
  queue: number;
  decode: number;
  infer: number;
  update: number;
}

export const STEP_PHASES: ReadonlyArray<keyof StepPhases> = ['queue', 'decode', 'infer', 'update'];

export type StepKind = 'extract' | 'head';

export interface StepRecord {
  kind: StepKind;
  t: number;
  ms: number;
  images: number;
  /** which process did it: 'main', or a worker id */
  worker: string;
  /** undefined when only the step's wall time was observable */
  phases?: StepPhases;
  /** extraction: e.g. "features train"; head: undefined */
  label?: string;
  epoch?: number;
  step?: number;
  loss?: number;
  gradNorm?: number;
  lr?: number;
}

export interface EpochRecord {
  epoch: number;
  lr: number;
  trainLoss: number;
  trainTop1: number;
  validLoss: number;
  validTop1: number;
  gradNorm: number;
  seconds: number;
}

export interface WorkerStat {
  worker: string;
  tasks: number;
  images: number;
  /** seconds the worker spent on its tasks */
  seconds: number;
  imagesPerSecond: number;
}

export interface GpuSample {
  index: number;
  /** 0..1 */
  utilization: number;
  memoryMiB: number;
}

export interface HardwareSample {
  t: number;
  worker: string;
  /** CPU time used per wall time since the previous sample, in cores (1.5 = one and a half cores busy) */
  cpuCores: number;
  /** cpuCores over the logical processors available to the process, 0..1 */
  cpuShare: number;
  /**
   * CPU of the job's local worker processes (child processes started during the job), in cores;
   * undefined where /proc is not available. Redis workers on other machines are not included.
   */
  childCpuCores?: number;
  /** how many such child processes were running */
  childProcesses?: number;
  /** busy share of all the machine's logical processors (this job's worker processes and anything else), 0..1 */
  machineCpuShare?: number;
  /** one-minute load average of the machine (0 on platforms without one) */
  load1: number;
  rssBytes: number;
  freeMemoryBytes: number;
  gpus?: GpuSample[];
}

/** A head training step as fitHead reports it (the training area's StepSample is this type). */
export interface HeadStep {
  epoch: number;
  step: number;
  ms: number;
  gradNorm: number;
  loss: number;
  /** performance.now() when the step started */
  start: number;
  /** minibatch assembly (copying rows, targets, dropout mask) */
  inputMs: number;
  /** the ONNX train step: forward, backward, optimizer update */
  updateMs: number;
  rows: number;
  lr: number;
}

/** An extraction batch reported by code that can see inside it (the hook for feature extraction). */
export interface ExtractBatch {
  /** performance.now() at the start of the batch */
  start: number;
  ms: number;
  images: number;
  phases?: StepPhases;
  worker?: string;
  label?: string;
}

export interface RecorderOptions {
  /** hardware sampling period, default 250 ms */
  intervalMs?: number;
  /** GPU sampling: 'auto' reads nvidia-smi when present and the job uses a GPU device */
  gpu?: 'auto' | 'off' | GpuProbe;
}

const FEATURE_PHASE = /^features\b/;

/**
 * CPU time of all logical processors, busy and total, summed since boot. On Linux the first line
 * of /proc/stat read through a kept-open descriptor (about 10 us); os.cpus() elsewhere (it also
 * reads every core's frequency: hundreds of microseconds).
 */
class MachineCpu {
  private fd?: number;
  private readonly buf = Buffer.alloc(512);

  constructor() {
    try {
      this.fd = openSync('/proc/stat', 'r');
    } catch {
      this.fd = undefined;
    }
  }

  times(): { busy: number; total: number } {
    if (this.fd !== undefined) {
      const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
      // cpu  user nice system idle iowait irq softirq steal ...
      const f = this.buf.toString('latin1', 0, n).split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
      const idle = (f[3] ?? 0) + (f[4] ?? 0);
      const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
      return { busy, total: busy + idle };
    }
    let busy = 0;
    let total = 0;
    for (const c of cpus()) {
      const t = c.times;
      busy += t.user + t.nice + t.sys + t.irq;
      total += t.user + t.nice + t.sys + t.irq + t.idle;
    }
    return { busy, total };
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
/** Linux reports process CPU times in USER_HZ ticks, 100 a second on every mainstream architecture. */
const MS_PER_TICK = 10;

/**
 * CPU time of this process's children from /proc: process.cpuUsage() sees only this process, while
 * extraction runs in forked worker processes. Children already running when the recording starts
 * (a daemon's serving replicas) are not the job's and are left out. Files stay open and are re-read
 * at offset 0 (as for /proc/stat): opening /proc/PID/stat each time cost 10x more.
 */
class ChildCpu {
  private readonly preexisting = new Set<number>();
  /** per child: its open stat file and the CPU ticks read last */
  private readonly children = new Map<number, { fd: number; ticks: number }>();
  private listFd?: number;
  /** the children list (up to about 500 pids) and one stat line */
  private readonly listBuf = Buffer.alloc(4096);
  private readonly buf = Buffer.alloc(1024);

  constructor() {
    try {
      this.listFd = openSync(`/proc/${process.pid}/task/${process.pid}/children`, 'r');
    } catch {
      this.listFd = undefined;
    }
    for (const pid of this.list() ?? []) this.preexisting.add(pid);
  }

  /** direct children of the main thread (fork runs there), or undefined without /proc */
  private list(): number[] | undefined {
    if (this.listFd === undefined) return undefined;
    const n = readSync(this.listFd, this.listBuf, 0, this.listBuf.length, 0);
    return this.listBuf.toString('latin1', 0, n).trim().split(/\s+/).filter(Boolean).map(Number);
  }

  /** utime + stime of a child in ticks, or undefined once it has exited */
  private ticks(fd: number): number | undefined {
    try {
      const n = readSync(fd, this.buf, 0, this.buf.length, 0);
      const stat = this.buf.toString('latin1', 0, n);
      // pid (comm) state ppid ... utime stime: utime and stime are the 12th and 13th fields after ')'
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(f[11]) + Number(f[12]);
      return Number.isFinite(ticks) ? ticks : undefined;
    } catch {
      return undefined;
    }
  }

  /** CPU ms the job's children used since the previous call, and how many are running. */
  sample(): { ms: number; processes: number } | undefined {
    const pids = this.list();
    if (!pids) return undefined;
    let ms = 0;
    const running = new Set(pids);
    for (const [pid, c] of this.children) {
      if (running.has(pid)) continue;
      closeSync(c.fd);
      this.children.delete(pid);
    }
    for (const pid of pids) {
      if (this.preexisting.has(pid)) continue;
      let c = this.children.get(pid);
      if (!c) {
        try {
          c = { fd: openSync(`/proc/${pid}/stat`, 'r'), ticks: 0 };
        } catch {
          continue; // exited since the list was read
        }
        this.children.set(pid, c);
      }
      const ticks = this.ticks(c.fd);
      if (ticks === undefined) continue;
      ms += (ticks - c.ticks) * MS_PER_TICK;
      c.ticks = ticks;
    }
    return { ms, processes: this.children.size };
  }

  close(): void {
    for (const c of this.children.values()) closeSync(c.fd);
    this.children.clear();
    if (this.listFd !== undefined) closeSync(this.listFd);
    this.listFd = undefined;
  }
}

/** nvidia-smi's sampling period; once a second is plenty for a utilisation chart. */
const GPU_PERIOD_MS = 1000;

/**
 * Records a job's telemetry with little work on the hot path: head steps are timed inside
 * fitHead and ingested afterwards; extraction batches are seen through the progress sink; a
 * timer samples CPU, memory and GPU. Every method times itself, so the overhead is measured.
 */
export class TelemetryRecorder {
  private readonly origin = performance.now();
  private readonly startedAt = new Date().toISOString();
  private readonly phases: PhaseRecord[] = [];
  private readonly steps: StepRecord[] = [];
  private readonly epochRecords: EpochRecord[] = [];
  private readonly hardware: HardwareSample[] = [];
  private readonly gpus: HostGpu[] = [];
  private overheadMs = 0;
  private timer?: NodeJS.Timeout;
  private lastCpu = process.cpuUsage();
  private lastCpuAt = performance.now();
  private readonly machineCpu = new MachineCpu();
  private lastMachine = this.machineCpu.times();
  private readonly childCpu = new ChildCpu();
  private workerStats: WorkerStat[] = [];
  private lastGpu?: GpuSample[];
  private stopGpu?: () => void;
  private readonly progressPhases = new Map<string, { at: number; done: number }>();
  private finished?: JobTelemetry;

  constructor(
    readonly meta: { job: string; kind: string; device: string },
    opts: RecorderOptions = {},
  ) {
    const gpu = opts.gpu ?? 'auto';
    const probe = gpu === 'off' ? undefined : gpu === 'auto' ? (meta.device === 'cpu' ? undefined : nvidiaSmi) : gpu;
    // sampling starts once the inventory answered: no GPU tool, no GPU samples
    if (probe)
      void probe
        .inventory()
        .then((list) => {
          if (this.finished) return;
          this.gpus.push(...list);
          this.stopGpu = probe.watch(
            GPU_PERIOD_MS,
            (g) => this.timed(() => (this.lastGpu = g)),
            () => (this.lastGpu = undefined),
          );
        })
        .catch(() => undefined);
    this.sampleHardware();
    this.timer = setInterval(() => this.sampleHardware(), opts.intervalMs ?? 250);
    this.timer.unref();
  }

  /** ms since the job started, for a performance.now() value */
  private rel(at: number): number {
    return at - this.origin;
  }

  private timed<T>(fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.overheadMs += performance.now() - t0;
    }
  }

  /** A finished job phase between two performance.now() values. */
  phase(name: string, start: number, end: number, images?: number): void {
    this.timed(() => this.phases.push({ name, t: this.rel(start), ms: end - start, ...(images === undefined ? {} : { images }) }));
  }

  /**
   * Wraps a progress sink: each feature-extraction progress event marks a finished batch, so
   * per-batch wall time and throughput are recorded without reaching into the extraction code.
   */
  observeProgress(sink?: ProgressSink): ProgressSink {
    return (e) => {
      this.timed(() => {
        if (!FEATURE_PHASE.test(e.phase)) return;
        const at = performance.now();
        const prev = this.progressPhases.get(e.phase);
        this.progressPhases.set(e.phase, { at, done: e.done });
        if (prev && e.done > prev.done) this.steps.push({ kind: 'extract', t: this.rel(prev.at), ms: at - prev.at, images: e.done - prev.done, worker: 'main', label: e.phase });
      });
      sink?.(e);
    };
  }

  /** Extraction batches timed by the extraction code itself (decode/infer split known). */
  extractBatch(b: ExtractBatch): void {
    this.timed(() => this.steps.push({ kind: 'extract', t: this.rel(b.start), ms: b.ms, images: b.images, worker: b.worker ?? 'main', ...(b.phases ? { phases: b.phases } : {}), ...(b.label ? { label: b.label } : {}) }));
  }

  /** Head steps from fitHead; queue is the gap since the previous step of the same epoch. */
  headSteps(steps: readonly HeadStep[]): void {
    this.timed(() => {
      let prev: HeadStep | undefined;
      for (const s of steps) {
        const queue = prev && prev.epoch === s.epoch ? Math.max(0, s.start - (prev.start + prev.ms)) : 0;
        this.steps.push({
          kind: 'head',
          t: this.rel(s.start),
          ms: s.ms,
          images: s.rows,
          worker: 'main',
          phases: { queue, decode: s.inputMs, infer: 0, update: s.updateMs },
          epoch: s.epoch,
          step: s.step,
          loss: s.loss,
          gradNorm: s.gradNorm,
          lr: s.lr,
        });
        prev = s;
      }
    });
  }

  epochs(history: readonly EpochRecord[]): void {
    this.timed(() => this.epochRecords.push(...history.map((h) => ({ epoch: h.epoch, lr: h.lr, trainLoss: h.trainLoss, trainTop1: h.trainTop1, validLoss: h.validLoss, validTop1: h.validTop1, gradNorm: h.gradNorm, seconds: h.seconds }))));
  }

  /** Per-worker extraction throughput (the worker engine's summary). */
  workers(stats: readonly WorkerStat[]): void {
    this.timed(() => (this.workerStats = stats.map((w) => ({ worker: w.worker, tasks: w.tasks, images: w.images, seconds: w.seconds, imagesPerSecond: w.imagesPerSecond }))));
  }

  /** Samples from another process (a worker), already relative to this job's start. */
  workerSample(s: HardwareSample): void {
    this.timed(() => this.hardware.push(s));
  }

  private sampleHardware(): void {
    this.timed(() => {
      const at = performance.now();
      const wall = at - this.lastCpuAt;
      const cpu = process.cpuUsage(this.lastCpu);
      this.lastCpu = process.cpuUsage();
      this.lastCpuAt = at;
      const cores = wall > 0 ? (cpu.user + cpu.system) / 1000 / wall : 0;
      const children = this.childCpu.sample();
      const machine = this.machineCpu.times();
      const machineTotal = machine.total - this.lastMachine.total;
      const machineShare = machineTotal > 0 ? (machine.busy - this.lastMachine.busy) / machineTotal : undefined;
      this.lastMachine = machine;
      const sample: HardwareSample = {
        t: this.rel(at),
        worker: 'main',
        cpuCores: cores,
        cpuShare: Math.min(1, cores / availableParallelism()),
        ...(children && wall > 0 ? { childCpuCores: children.ms / wall, childProcesses: children.processes } : {}),
        ...(machineShare === undefined ? {} : { machineCpuShare: machineShare }),
        load1: loadavg()[0] ?? 0,
        rssBytes: process.memoryUsage.rss(),
        freeMemoryBytes: freemem(),
        ...(this.lastGpu ? { gpus: this.lastGpu } : {}),
      };
      // the first sample has no interval behind it: keep it only for memory
      if (this.hardware.length || wall > 0) this.hardware.push(sample);
    });
  }

  /** Stops sampling and returns the telemetry (idempotent). */
  finish(): JobTelemetry {
    if (this.finished) return this.finished;
    clearInterval(this.timer);
    this.stopGpu?.();
    this.sampleHardware();
    this.machineCpu.close();
    this.childCpu.close();
    const stepMs = this.steps.reduce((s, x) => s + x.ms, 0);
    const c = cpus();
    this.finished = {
      version: 1,
      job: this.meta.job,
      kind: this.meta.kind,
      device: this.meta.device,
      startedAt: this.startedAt,
      seconds: (performance.now() - this.origin) / 1000,
      host: { cpus: availableParallelism(), cpuModel: c[0]?.model.trim() ?? 'unknown', memoryBytes: totalmem(), platform: process.platform, arch: process.arch, gpus: [...this.gpus] },
      phases: this.phases,
      steps: this.steps.sort((a, b) => a.t - b.t),
      epochs: this.epochRecords,
      hardware: this.hardware.sort((a, b) => a.t - b.t),
      workers: this.workerStats,
      overhead: { ms: this.overheadMs, stepRatio: stepMs > 0 ? this.overheadMs / stepMs : 0 },
    };
    return this.finished;
  }
}

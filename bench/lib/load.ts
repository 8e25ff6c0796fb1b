/**
 * A bounded HTTP load generator that runs in its own process, so its CPU use is not the
 * server's: the bench forks this file, sends one LoadJob over IPC and gets a LoadResult back.
 *
 * - closed loop: `concurrency` clients send back to back (maximum throughput);
 * - open loop: requests start on a fixed schedule (`phases` of rate x seconds) whatever the
 *   server does, and latency counts from the scheduled start, so a slow server cannot hide its
 *   queueing (no coordinated omission). At most `maxInFlight` requests are outstanding; a
 *   request that would exceed it is counted as dropped, a failure.
 */
import { fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

export interface Phase {
  rate: number;
  seconds: number;
}

export type LoadJob = (
  | { mode: 'closed'; url: string; files: string[]; concurrency: number; seconds: number; warmupSeconds?: number }
  | { mode: 'open'; url: string; files: string[]; phases: Phase[]; maxInFlight?: number; warmupSeconds?: number; record?: boolean }
) & {
  /** sent with every request (the API key) */
  headers?: Record<string, string>;
};

/** One request, for jobs with `record`: times in ms from the start of the first phase. */
export interface RequestRecord {
  at: number;
  ms: number;
  status: number;
  replica?: string;
}

export interface LoadResult {
  seconds: number;
  sent: number;
  ok: number;
  /** non-2xx answers by status, 0 for connection errors, -1 for requests dropped at the in-flight bound */
  failed: Record<string, number>;
  /** completed requests per second over the run */
  throughput: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** CPU the load generator itself used during the run (it shares the machine with the server) */
  cpuSeconds: number;
  records?: RequestRecord[];
  /** with `records`: the wall-clock time (ms since the epoch) from which their `at` counts */
  startedAt?: number;
}

const percentile = (sorted: number[], p: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : NaN);

function post(agent: http.Agent, url: URL, body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; replica?: string }> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-type': 'image/jpeg', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, replica: res.headers['x-kennel-replica'] as string | undefined }));
      res.on('error', () => resolve({ status: 0 }));
    });
    req.on('error', () => resolve({ status: 0 }));
    req.end(body);
  });
}

async function run(job: LoadJob): Promise<LoadResult> {
  const url = new URL(job.url);
  const bodies = job.files.map((f) => readFileSync(f));
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.mode === 'closed' ? job.concurrency : (job.maxInFlight ?? 512) });
  let n = 0;
  const next = () => bodies[n++ % bodies.length]!;

  if (job.warmupSeconds) {
    const until = performance.now() + job.warmupSeconds * 1000;
    await Promise.all(Array.from({ length: job.mode === 'closed' ? job.concurrency : 4 }, async () => {
      while (performance.now() < until) await post(agent, url, next(), job.headers);
    }));
  }

  const latencies: number[] = [];
  const failed: Record<string, number> = {};
  const records: RequestRecord[] = [];
  let sent = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const finish = (start: number, r: { status: number; replica?: string }) => {
    const ms = performance.now() - start;
    if (r.status >= 200 && r.status < 300) latencies.push(ms);
    else failed[r.status] = (failed[r.status] ?? 0) + 1;
    if (job.mode === 'open' && job.record) records.push({ at: start - t0, ms, status: r.status, replica: r.replica });
  };

  if (job.mode === 'closed') {
    const until = t0 + job.seconds * 1000;
    await Promise.all(Array.from({ length: job.concurrency }, async () => {
      while (performance.now() < until) {
        const start = performance.now();
        sent++;
        finish(start, await post(agent, url, next(), job.headers));
      }
    }));
  } else {
    const maxInFlight = job.maxInFlight ?? 512;
    let inFlight = 0;
    const pending: Array<Promise<void>> = [];
    let phaseStart = t0;
    for (const phase of job.phases) {
      const count = Math.round(phase.rate * phase.seconds);
      for (let i = 0; i < count; i++) {
        const due = phaseStart + (i * 1000) / phase.rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        sent++;
        if (inFlight >= maxInFlight) {
          finish(due, { status: -1 });
          continue;
        }
        inFlight++;
        pending.push(
          post(agent, url, next(), job.headers).then((r) => {
            inFlight--;
            finish(due, r);
          }),
        );
      }
      phaseStart += phase.seconds * 1000;
    }
    await Promise.all(pending);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  // records' `at` counts from t0; startedAt places t0 on the wall clock, for events timed elsewhere
  return { ...summarize(latencies, { seconds, sent, failed, cpuSeconds: (cpu.user + cpu.system) / 1e6 }), ...(job.mode === 'open' && job.record ? { records, startedAt: Date.now() - (performance.now() - t0) } : {}) };
}

const round = (x: number) => Math.round(x * 10) / 10;

/** A LoadResult from the latencies of the answered requests and the run's totals. */
function summarize(latencies: number[], run: { seconds: number; sent: number; failed: Record<string, number>; cpuSeconds: number }): LoadResult {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    seconds: round(run.seconds),
    sent: run.sent,
    ok: sorted.length,
    failed: run.failed,
    throughput: round(sorted.length / run.seconds),
    p50: round(percentile(sorted, 0.5)),
    p90: round(percentile(sorted, 0.9)),
    p99: round(percentile(sorted, 0.99)),
    max: round(sorted.at(-1) ?? NaN),
    cpuSeconds: round(run.cpuSeconds),
  };
}

/**
 * Runs a job in a fresh load-generator process and returns its result. `via` runs that process
 * through a command, e.g. ['ip', 'netns', 'exec', NS] to load from another (namespace) host.
 */
export function runLoad(job: LoadJob, via?: string[]): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const file = fileURLToPath(import.meta.url);
    const child = via
      ? spawn(via[0]!, [...via.slice(1), process.execPath, ...process.execArgv, file], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : fork(file, [], { execArgv: process.execArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m: LoadResult) => resolve(m));
    child.once('exit', (code) => reject(new Error(`the load generator exited with code ${code} before answering`)));
    child.send(job);
  });
}

/**
 * One result from several runs of the same open-loop schedule (each with `record`), as if they
 * were one run: interleaving two servers' runs in slices lets both see the same machine.
 */
export function mergeLoads(parts: LoadResult[]): LoadResult {
  const records = parts.flatMap((p) => p.records ?? []);
  const failed: Record<string, number> = {};
  for (const p of parts) for (const [status, n] of Object.entries(p.failed)) failed[status] = (failed[status] ?? 0) + n;
  return summarize(
    records.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.ms),
    { seconds: parts.reduce((s, p) => s + p.seconds, 0), sent: parts.reduce((s, p) => s + p.sent, 0), failed, cpuSeconds: parts.reduce((s, p) => s + p.cpuSeconds, 0) },
  );
}

export const failedCount = (r: LoadResult): number => Object.values(r.failed).reduce((a, b) => a + b, 0);

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  process.once('message', (job: LoadJob) => {
    void run(job).then((result) => process.send!(result, () => process.exit(0)));
  });
}

/**
 * `npm run bench:slowloris [-- --quick] [-- --json]`: 1,000 stalled connections (200 with
 * --quick) against the daemon's data plane with its default limits: half of them send half their
 * headers, half send their headers and 1 KB of a 100 KB body, then nothing. Measured: when each
 * is closed and whether it read a 408 JSON answer, the daemon's memory (RSS, sampled from /proc)
 * and good requests (GET /healthz every 100 ms) served meanwhile. The daemon runs in its own
 * process; the stalled connections come from four loopback addresses (250 each, under the
 * default cap of 256 per client address), the good requests from a fifth.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { DEFAULT_HTTP_LIMITS, startDaemon } from '../src/server/index.js';
import { machineInfo } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, summaryTable } from './lib/report.js';

const ROLE = 'KENNEL_BENCH_SLOWLORIS_DAEMON';

/** The daemon's process: default limits, answers its port over IPC. */
async function daemonChild(): Promise<void> {
  const home = process.env[ROLE]!;
  const daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
  process.send!({ port: daemon.state.port });
  process.on('disconnect', () => void daemon.close().then(() => process.exit(0)));
}

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

interface Stalled {
  kind: 'headers' | 'body';
  closedAfterMs?: number;
  answered408: boolean;
}

function stall(port: number, localAddress: string, kind: Stalled['kind']): Promise<Stalled> {
  return new Promise((resolve) => {
    // from the moment the connection is established: the daemon's clock starts when it accepts it
    let started = Date.now();
    let received = '';
    const socket = connect({ port, host: '127.0.0.1', localAddress }, () => {
      started = Date.now();
      socket.write(
        kind === 'headers'
          ? 'POST /endpoints/dogs/invocations HTTP/1.1\r\nHost: kennel\r\nContent-Type: image/jp'
          : `POST /endpoints/dogs/invocations HTTP/1.1\r\nHost: kennel\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`,
      );
    });
    socket.on('data', (d) => (received += d.toString()));
    socket.on('error', () => {});
    // a connection the daemon never closes is given up after 120 s (and reported as not closed)
    const guard = setTimeout(() => socket.destroy(), 120_000);
    socket.on('close', () => {
      clearTimeout(guard);
      const closedAfterMs = Date.now() - started;
      resolve({ kind, closedAfterMs: closedAfterMs < 120_000 ? closedAfterMs : undefined, answered408: /^HTTP\/1.1 408 [^]*"request_timeout"/.test(received) });
    });
  });
}

async function main(): Promise<void> {
  const args = parseBenchArgs(process.argv.slice(2), 'slowloris');
  const log = logger(args.json);
  const machine = machineInfo();
  const connections = args.quick ? 200 : 1000;
  const home = mkdtempSync(join(tmpdir(), 'kennel-slowloris-'));
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, [ROLE]: home }, execArgv: process.execArgv });
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  const pid = child.pid!;
  const rssStart = rssMiB(pid);
  log(`daemon pid ${pid}, RSS ${rssStart.toFixed(1)} MiB; opening ${connections} stalled connections`);

  let rssPeak = rssStart;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid))), 250);
  const good = { served: 0, failed: 0, latencies: [] as number[] };
  let attacking = true;
  const goodLoop = (async () => {
    while (attacking) {
      const t = performance.now();
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
        await res.text();
        if (res.ok) good.served++;
        else good.failed++;
      } catch {
        good.failed++;
      }
      good.latencies.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const started = Date.now();
  const stalled = await Promise.all(Array.from({ length: connections }, (_, i) => stall(port, `127.0.0.${2 + (i % 4)}`, i % 2 ? 'body' : 'headers')));
  attacking = false;
  await goodLoop;
  clearInterval(sampler);
  const rssEnd = rssMiB(pid);
  child.disconnect();
  await new Promise((r) => child.once('exit', r));
  rmSync(home, { recursive: true, force: true });

  const closed = stalled.filter((s) => s.closedAfterMs !== undefined);
  const maxOf = (kind: Stalled['kind']) => Math.max(...stalled.filter((s) => s.kind === kind).map((s) => s.closedAfterMs ?? Infinity)) / 1000;
  const sorted = [...good.latencies].sort((a, b) => a - b);
  const results = {
    date: new Date().toISOString(),
    machine: { ...machine, loadEnd: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) },
    limits: DEFAULT_HTTP_LIMITS,
    connections,
    closed: closed.length,
    answered408: stalled.filter((s) => s.answered408).length,
    maxCloseSeconds: { headers: maxOf('headers'), body: maxOf('body') },
    totalSeconds: (Date.now() - started) / 1000,
    rssMiB: { start: rssStart, peak: rssPeak, end: rssEnd },
    goodRequests: { served: good.served, failed: good.failed, p50Ms: sorted[Math.floor(sorted.length / 2)] ?? 0, p99Ms: sorted[Math.floor(sorted.length * 0.99)] ?? 0 },
  };
  const file = saveResults('slowloris', results);
  if (args.json) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    return;
  }
  // Node checks the timeouts every second; a busy event loop adds its delay
  const headersLimit = (DEFAULT_HTTP_LIMITS.headersTimeoutMs + 2000) / 1000;
  const bodyLimit = (DEFAULT_HTTP_LIMITS.requestTimeoutMs + 2000) / 1000;
  process.stdout.write(
    summaryTable([
      { metric: 'stalled connections closed', value: `${closed.length} of ${connections}`, target: 'all', pass: closed.length === connections },
      { metric: 'answered 408 (JSON) before closing', value: `${results.answered408} of ${connections}`, target: 'all', pass: results.answered408 === connections },
      { metric: 'last half-headers connection closed after', value: `${results.maxCloseSeconds.headers.toFixed(1)} s`, target: `<= ${headersLimit} s (header timeout + 2 s)`, pass: results.maxCloseSeconds.headers <= headersLimit },
      { metric: 'last half-body connection closed after', value: `${results.maxCloseSeconds.body.toFixed(1)} s`, target: `<= ${bodyLimit} s (request timeout + 2 s)`, pass: results.maxCloseSeconds.body <= bodyLimit },
      { metric: 'daemon RSS start / peak / end', value: `${rssStart.toFixed(0)} / ${rssPeak.toFixed(0)} / ${rssEnd.toFixed(0)} MiB` },
      { metric: 'good requests served meanwhile', value: `${good.served} (failed ${good.failed}), p50 ${results.goodRequests.p50Ms.toFixed(1)} ms, p99 ${results.goodRequests.p99Ms.toFixed(1)} ms`, target: '0 failed', pass: good.failed === 0 },
    ]) + `\nresults: ${file}\n`,
  );
}

if (process.env[ROLE]) await daemonChild();
else await main();

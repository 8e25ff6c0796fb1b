/**
 * `npm run bench:events [-- --quick] [-- --json]`: an Event flood on Lambda's Invoke API of a
 * daemon in its own process (`kennel up --detach`, run through tsx): 100 events of 8 MiB (quick:
 * 16) from 4 concurrent senders to a function that runs one at a time, 1 s each, so most of
 * them wait in the queue. Reports the daemon's resident memory before, at its peak (sampled
 * every 20 ms) and after the queue drained, how fast events were accepted, and that every one ran.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createFunction, eventCounts } from '../src/functions/index.js';
import { createKey, type Actor } from '../src/security/index.js';
import { openWorkspace } from '../src/store/index.js';
import { currentLoad, machineInfo } from './lib/machine.js';
import { benchDir, logger, parseBenchArgs, saveResults, summaryTable } from './lib/report.js';

const args = parseBenchArgs(process.argv.slice(2), 'events');
const log = logger(args.json);
const machine = machineInfo();
const by: Actor = { principal: 'local:bench', plane: 'cli' };
const EVENTS = args.quick ? 16 : 100;
const EVENT_BYTES = 8 * 1024 ** 2;
const SENDERS = 4;
/** the target of issue 15: the daemon's memory grows by at most this during the flood */
const RSS_BOUND_MB = 200;

const home = mkdtempSync(join(tmpdir(), 'kennel-bench-events-'));
const runs = mkdtempSync(join(tmpdir(), 'kennel-bench-events-runs-'));
const kennel = (cmd: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(benchDir, '../src/cli/main.ts'), ...cmd, '--json'], { env: { ...process.env, KENNEL_HOME: home }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kennel ${cmd.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { pid: number; port: number };
};
const rssMb = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

const ws = openWorkspace(home);
const handler = join(home, 'handler.mjs');
writeFileSync(handler, `import { writeFileSync } from 'node:fs';\nexport async function handler(event) {\n  await new Promise((r) => setTimeout(r, 1000));\n  writeFileSync(${JSON.stringify(runs)} + '/' + event.n, String(event.image.length));\n  return { bytes: event.image.length };\n}\n`);
await createFunction(ws, 'sink', { endpoint: 'none', handler, reservedConcurrency: 1 }, by);
const { key } = createKey(ws, 'bench', { allow: ['function:Invoke:function/sink'], ratePerSecond: 1000, burst: 1000 }, by);

log(`starting a daemon in ${home}`);
const daemon = kennel(['up', '--detach', '--port', '0', '--admin-port', '0']);
const image = 'A'.repeat(EVENT_BYTES - 64);
const send = (n: number) =>
  fetch(`http://127.0.0.1:${daemon.port}/2015-03-31/functions/sink/invocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'x-amz-invocation-type': 'Event' },
    body: JSON.stringify({ n, image }),
    signal: AbortSignal.timeout(60_000),
  }).then(async (r) => {
    await r.arrayBuffer();
    return r.status;
  });

try {
  // one event first, so the handler's worker and the queue's statements exist before the baseline
  if ((await send(-1)) !== 202) throw new Error('the warm-up event was refused');
  while (eventCounts(ws, 'sink').queued + eventCounts(ws, 'sink').running > 0) await sleep(50);
  const before = rssMb(daemon.pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(daemon.pid))), 20);
  log(`daemon RSS ${before.toFixed(0)} MB; sending ${EVENTS} events of ${EVENT_BYTES / 1024 ** 2} MiB`);
  const statuses: Record<string, number> = {};
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: SENDERS }, async () => {
      while (next < EVENTS) {
        const status = await send(next++);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  const acceptSeconds = (performance.now() - started) / 1000;
  const queuedAfterFlood = eventCounts(ws, 'sink');
  while (eventCounts(ws, 'sink').queued + eventCounts(ws, 'sink').running > 0) await sleep(100);
  const drainSeconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const after = rssMb(daemon.pid);
  const ran = readdirSync(runs).filter((f) => f !== '-1').length;
  const failed = eventCounts(ws, 'sink').failed;
  const results = {
    date: new Date().toISOString(),
    machine: { ...machine, loadEnd: currentLoad() },
    events: EVENTS,
    eventBytes: EVENT_BYTES,
    senders: SENDERS,
    statuses,
    waitingWhenTheFloodEnded: queuedAfterFlood.queued + queuedAfterFlood.running,
    acceptSeconds: Math.round(acceptSeconds * 10) / 10,
    acceptedMiBPerSecond: Math.round(((statuses['202'] ?? 0) * EVENT_BYTES) / 1024 ** 2 / acceptSeconds),
    drainSeconds: Math.round(drainSeconds * 10) / 10,
    rssBeforeMb: Math.round(before),
    rssPeakMb: Math.round(peak),
    rssAfterMb: Math.round(after),
    ran,
    failed,
  };
  if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else {
    process.stdout.write(
      summaryTable([
        { metric: `events accepted (202) of ${EVENTS}`, value: String(statuses['202'] ?? 0), target: String(EVENTS), pass: statuses['202'] === EVENTS },
        { metric: 'waiting in the queue when the flood ended', value: String(results.waitingWhenTheFloodEnded) },
        { metric: 'accept rate', value: `${results.acceptedMiBPerSecond} MiB/s (${results.acceptSeconds} s)` },
        { metric: 'daemon RSS before / peak / after', value: `${results.rssBeforeMb} / ${results.rssPeakMb} / ${results.rssAfterMb} MB` },
        { metric: 'peak RSS growth', value: `${results.rssPeakMb - results.rssBeforeMb} MB`, target: `<= ${RSS_BOUND_MB} MB`, pass: results.rssPeakMb - results.rssBeforeMb <= RSS_BOUND_MB },
        { metric: 'events run / failed', value: `${ran} / ${failed}`, target: `${EVENTS} / 0`, pass: ran === EVENTS && failed === 0 },
      ]) + '\n',
    );
    log(`results: ${saveResults('events', results)}`);
  }
} finally {
  spawnSync(process.execPath, ['--import', 'tsx', join(benchDir, '../src/cli/main.ts'), 'down'], { env: { ...process.env, KENNEL_HOME: home } });
  ws.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(runs, { recursive: true, force: true });
}

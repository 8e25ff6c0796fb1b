/**
 * `npm run bench:async [-- --quick] [-- --json]`: asynchronous inference against a real daemon
 * (`kennel up`, compiled), on an endpoint that autoscales from zero (min 0, max 1):
 * - cold start: the first queued request of a scaled-to-zero endpoint, until its replica is ready
 *   and until its answer is stored;
 * - durability: N requests (default 1,000) accepted, then a kill -9 of the replica once a fifth
 *   are answered and a kill -9 of the daemon once half are; the daemon is started again and every
 *   accepted request must be answered: none lost, none failed.
 * `-- --queue redis://HOST:PORT` runs the same with the daemon's requests in BullMQ on that Redis
 * (`kennel up --queue`) instead of the workspace's SQLite queue; the bench reads them through the
 * same store interface as `kennel endpoints requests`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openAsyncRequests, type AsyncRequestStore } from '../src/serving/index.js';
import { openWorkspace } from '../src/store/index.js';
import { currentLoad, machineInfo } from './lib/machine.js';
import { logger, parseBenchArgs, saveResults, shared, summaryTable } from './lib/report.js';
import { benchHome, importBenchModel, startKennel, type RunningDaemon } from './lib/serving.js';

const TARGET = { coldStartSeconds: 2 };
const args = parseBenchArgs(process.argv.slice(2), 'async', {
  requests: { help: 'requests to queue', default: '1000 (--quick: 200)' },
  queue: { help: 'redis://HOST:PORT: the daemon keeps requests in BullMQ there (kennel up --queue); default its SQLite queue', default: '' },
});
const queue = args.options.queue || undefined;
if (queue) process.env.KENNEL_QUEUE = queue; // the daemons started below read it
const log = logger(args.json);
const machine = machineInfo();
const date = new Date();
const t0 = performance.now();
const requests = /^\d+$/.test(args.options.requests!) ? Number(args.options.requests) : args.quick ? 200 : 1000;

const { home, onCleanup, cleanup } = benchHome('async');
const photo = join(shared, 'data/real-photos/aipnd-dogs/Beagle_01125.jpg');

async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const limit = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > limit) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

try {
  const { model } = await importBenchModel(home, 'mobilenet');
  const ws = openWorkspace(home);
  const location = `kennel://artifacts/${await ws.artifacts.put(readFileSync(photo))}`;
  const store: AsyncRequestStore = await openAsyncRequests(ws, { queue });
  onCleanup(() => void store.close().catch(() => {}));
  const counts = async () => (await store.list('async', 0)).counts;
  let daemon: RunningDaemon = await startKennel(home);
  onCleanup(() => daemon.stop());
  log(`bench:async${args.quick ? ' (quick)' : ''}: ${requests} requests, queue ${queue ? 'Redis' : 'SQLite'}, ${machine.cores} cores, load average ${machine.loadStart}, daemon ${daemon.runtime}`);
  await daemon.admin('POST', '/v1/endpoints', { name: 'async', variants: [{ name: 'primary', model: `${model.name}@${model.version}` }], instances: 0, min: 0, max: 1, targetConcurrency: 4 });
  const submit = async () => {
    const res = await fetch(`http://127.0.0.1:${daemon.port}/endpoints/async/async-invocations`, { method: 'POST', headers: { ...daemon.auth, 'x-amzn-sagemaker-inputlocation': location } });
    if (res.status !== 202) throw new Error(`answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { InferenceId: string }).InferenceId;
  };
  const replicas = async () => (await daemon.admin<{ status: string; replicas: Array<{ pid?: number; state: string }> }>('GET', '/v1/endpoints/async'));

  // cold start from zero
  const c0 = performance.now();
  const first = await submit();
  let readyAt = 0;
  for (;;) {
    const d = await replicas();
    if (d.replicas.some((r) => r.state === 'ready')) {
      readyAt = performance.now();
      break;
    }
    if (performance.now() - c0 > 60_000) throw new Error('no replica became ready');
    await sleep(10);
  }
  await until('the first answer', async () => (await store.status('async', first))?.status === 'completed', 60_000);
  const cold = { replicaReadySeconds: (readyAt - c0) / 1000, answerSeconds: (performance.now() - c0) / 1000 };
  log(`cold start from zero: replica ready ${cold.replicaReadySeconds.toFixed(2)} s after the request, answer stored after ${cold.answerSeconds.toFixed(2)} s`);

  // durability: accept everything, then kill -9 the replica and the daemon mid-way
  const accepted: string[] = [];
  const a0 = performance.now();
  for (let i = 0; i < requests; i += 32) accepted.push(...(await Promise.all(Array.from({ length: Math.min(32, requests - i) }, submit))));
  log(`${accepted.length} requests accepted in ${((performance.now() - a0) / 1000).toFixed(1)} s`);
  const done = async () => (await counts()).completed;
  await until('a fifth answered', async () => (await done()) >= 1 + requests / 5, 600_000);
  const replicaPid = (await replicas()).replicas.find((r) => r.state === 'ready')?.pid;
  if (replicaPid) process.kill(replicaPid, 'SIGKILL');
  log(`kill -9 of replica ${replicaPid} at ${(await done()) - 1} answered`);
  await until('half answered', async () => (await done()) >= 1 + requests / 2, 600_000);
  const daemonPid = (JSON.parse(readFileSync(join(home, 'daemon/daemon.json'), 'utf8')) as { pid: number }).pid;
  process.kill(daemonPid, 'SIGKILL');
  const atKill = await counts();
  log(`kill -9 of the daemon ${daemonPid} at ${JSON.stringify(atKill)}`);
  await sleep(500);
  daemon.stop(); // its orphaned replicas, if any
  daemon = await startKennel(home);
  const r0 = performance.now();
  await until('every request answered or failed', async () => {
    const c = await counts();
    return c.queued + c.running === 0 ? c : undefined;
  }, 900_000);
  const statuses = await Promise.all(accepted.map((id) => store.status('async', id)));
  const lost = statuses.filter((st) => !st).length;
  const failed = statuses.filter((st) => st?.status === 'failed').length;
  const completedOfAccepted = statuses.filter((st) => st?.status === 'completed').length;
  log(`after the restart: the rest answered in ${((performance.now() - r0) / 1000).toFixed(1)} s; ${completedOfAccepted}/${accepted.length} completed, ${failed} failed, ${lost} lost`);
  ws.close();

  const results = {
    requests,
    queue: queue ? 'redis' : 'sqlite',
    accepted: accepted.length,
    completed: completedOfAccepted,
    failed,
    lost,
    cold_start: { replica_ready_s: Number(cold.replicaReadySeconds.toFixed(3)), answer_s: Number(cold.answerSeconds.toFixed(3)) },
    at_daemon_kill: atKill,
    quick: args.quick,
    date: date.toISOString(),
    seconds: Math.round((performance.now() - t0) / 1000),
    machine: { ...machine, loadEnd: currentLoad() },
    daemon: daemon.runtime,
  };
  const file = saveResults('async', results, date);
  if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else {
    process.stdout.write(
      summaryTable([
        { metric: 'scaled to zero: first queued request until its replica is ready', value: `${results.cold_start.replica_ready_s} s`, target: `<= ${TARGET.coldStartSeconds} s`, pass: results.cold_start.replica_ready_s <= TARGET.coldStartSeconds },
        { metric: 'scaled to zero: first queued request until its answer is stored', value: `${results.cold_start.answer_s} s` },
        { metric: `requests answered after kill -9 of the replica and of the daemon`, value: `${results.completed}/${results.accepted}`, target: 'all', pass: results.completed === results.accepted },
        { metric: 'requests lost', value: String(lost), target: '0', pass: lost === 0 },
      ]) + `\nresults: ${file}\n`,
    );
  }
} finally {
  cleanup();
}

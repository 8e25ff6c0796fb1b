/**
 * `npm run bench:scaling [-- --quick] [-- --json]`: the prototype behind docs/SCALING.md.
 *
 * Two serving hosts behind a load balancer, one of them lost under load. Three hosts in network
 * namespaces (bench/lib/netns.ts): `lb` runs HAProxy (Debian's `haproxy`) and the load
 * generator; `d1` and `d2` each run a Kennel daemon (`kennel up`) with the same endpoint, model
 * and API key, from copies of one workspace (what a node agent would get from the control plane:
 * the model by its sha256, and a snapshot of key hashes and policies). An open-loop load at a
 * fixed rate (10 requests/s, a rate this shared 2-core machine serves) goes through HAProxy (health checks on `GET /healthz` every 500 ms, 2 failures to
 * take a server out, retries on connection failures); a third of the way in, `d2`'s link is cut
 * (the host is gone: no resets, packets dropped). The bench reports what a client saw: requests
 * failed, how long until failures stopped, latency before and after, and each host's share.
 *
 * Needs root, iproute2 and haproxy (apt-get install -y iproute2 haproxy).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNetwork, netnsUnavailable } from './lib/netns.js';
import { runLoad, type RequestRecord } from './lib/load.js';
import { currentLoad, machineInfo } from './lib/machine.js';
import { benchDir, logger, parseBenchArgs, saveResults, summaryTable } from './lib/report.js';
import { benchHome, importBenchModel, realPhotoFiles, startKennel } from './lib/serving.js';

const args = parseBenchArgs(process.argv.slice(2), 'scaling');
const log = logger(args.json);
const date = new Date();
const machine = machineInfo();
const why = netnsUnavailable() ?? (spawnSync('haproxy', ['-v']).status === 0 ? undefined : 'haproxy is not installed (apt-get install -y haproxy)');
if (why) {
  process.stderr.write(`error: bench:scaling cannot run here: ${why}.\n`);
  process.exit(2);
}
const RATE = 10;
/** the kennel CLI from the sources, runnable from any folder and namespace */
const kennelCommand = (argv: string[]): string[] => [process.execPath, '--import', import.meta.resolve('tsx'), join(benchDir, '../src/cli/main.ts'), ...argv];
const SECONDS = args.quick ? 15 : 30;
const CUT_AT = SECONDS / 3;

const bench = benchHome('scaling');
const children: ChildProcess[] = [];
bench.onCleanup(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

// 1. one workspace: the model, the endpoint (stored in its database), an API key
const { model } = await importBenchModel(bench.home, 'mobilenet');
const setup = await startKennel(bench.home);
await setup.admin('POST', '/v1/endpoints?wait=true', { name: 'dogs', variants: [{ name: 'primary', model: `${model.name}@${model.version}` }], instances: 1, maxInFlight: 256 });
setup.stop();
rmSync(join(bench.home, 'daemon/daemon.json'), { force: true });

// 2. the hosts
const net = createNetwork(['lb', 'd1', 'd2']);
bench.onCleanup(() => net.destroy());
const { lb, d1, d2 } = net.hosts as Record<'lb' | 'd1' | 'd2', NonNullable<(typeof net.hosts)[string]>>;
const start = (via: string[], cmd: string[], env: Record<string, string> = {}): ChildProcess => {
  const c = spawn(via[0]!, [...via.slice(1), ...cmd], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  c.on('exit', (code) => {
    if (code && !stopping) process.stderr.write(`${cmd.slice(0, 3).join(' ')} exited ${code}:\n${out.slice(-2000)}\n`);
  });
  children.push(c);
  return c;
};
let stopping = false;
for (const h of [d1, d2]) {
  const home = join(h.dir, 'kennel');
  cpSync(bench.home, home, { recursive: true });
  start(h.via, kennelCommand(['up', '--host', h.address, '--port', '8080', '--admin-port', '8081']), { KENNEL_HOME: home });
}
const cfg = join(lb.dir, 'haproxy.cfg');
writeFileSync(
  cfg,
  `global
  maxconn 1024
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 5s
  retries 2
  option redispatch
  retry-on conn-failure empty-response
frontend fe
  bind ${lb.address}:8080
  default_backend kennel
backend kennel
  balance leastconn
  option httpchk GET /healthz
  http-response set-header x-kennel-replica %[srv_name]
  server d1 ${d1.address}:8080 check inter 500 fall 2 rise 2
  server d2 ${d2.address}:8080 check inter 500 fall 2 rise 2
`,
);
const haproxy = start(lb.via, ['haproxy', '-db', '-f', cfg]);
/** when d2's link was cut, wall clock */
let cutAt = 0;
/** when HAProxy's health checks took d2 out (its "is DOWN" alert), wall clock */
let downAt: number | undefined;
haproxy.stderr!.on('data', (d: Buffer) => {
  // it is DOWN at start too, until the daemon answers: only a DOWN after the cut counts
  if (cutAt && downAt === undefined && /d2 is DOWN/.test(d.toString())) downAt = Date.now();
});

// both daemons serve (their replicas loaded): ask through each host directly, from lb
const ready = async (address: string) => {
  const probe = await runLoad({ mode: 'closed', url: `http://${address}:8080/endpoints/dogs/invocations`, files: realPhotoFiles().slice(0, 1), concurrency: 1, seconds: 1, headers: setup.auth }, lb.via);
  return probe.ok > 0;
};
const deadline = Date.now() + 120_000;
for (const h of [d1, d2]) {
  while (!(await ready(h.address))) {
    if (Date.now() > deadline) throw new Error(`the daemon on ${h.name} did not serve within 120 s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
log(`bench:scaling: 2 daemons behind HAProxy, ${RATE} requests/s for ${SECONDS} s, ${d2.name}'s link cut at ${CUT_AT.toFixed(0)} s; ${machine.cpu}, ${machine.cores} cores, load ${machine.loadStart}`);

// 3. the load, and the cut: after the generator's start (about 2 s under tsx) and 2 s warm-up;
// the cut's real time on the load's clock comes from the wall clock afterwards
const cut = setTimeout(() => {
  net.cut('d2');
  cutAt = Date.now();
}, CUT_AT * 1000 + 4000);
const result = await runLoad({ mode: 'open', url: `http://${lb.address}:8080/endpoints/dogs/invocations`, files: realPhotoFiles(), phases: [{ rate: RATE, seconds: SECONDS }], maxInFlight: 256, warmupSeconds: 2, record: true, headers: setup.auth }, lb.via);
clearTimeout(cut);
stopping = true;

// 4. what the clients saw
const records: RequestRecord[] = result.records ?? [];
if (!cutAt || result.startedAt === undefined) throw new Error('the load ended before the cut');
const cutMs = cutAt - result.startedAt;
const failed = records.filter((r) => r.status < 200 || r.status >= 300);
const lastFailure = failed.reduce((m, r) => Math.max(m, r.at + r.ms), cutMs);
const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : NaN);
const okMs = (rs: RequestRecord[]) => rs.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.ms);
const before = records.filter((r) => r.at < cutMs);
const after = records.filter((r) => r.at + r.ms > lastFailure);
const share = (rs: RequestRecord[], host: string) => rs.filter((r) => r.replica === host).length;
const outcome = {
  requests: records.length,
  ok: records.length - failed.length,
  failed: failed.length,
  failedByStatus: result.failed,
  cutAtSeconds: cutMs / 1000,
  detectedAfterSeconds: downAt === undefined ? undefined : (downAt - cutAt) / 1000,
  failuresStoppedAfterSeconds: (lastFailure - cutMs) / 1000,
  before: { p50: pct(okMs(before), 0.5), p99: pct(okMs(before), 0.99), d1: share(before, 'd1'), d2: share(before, 'd2') },
  afterRecovery: { p50: pct(okMs(after), 0.5), p99: pct(okMs(after), 0.99), d1: share(after, 'd1'), d2: share(after, 'd2') },
};
machine.loadEnd = currentLoad();
const results = { bench: 'scaling', date: date.toISOString(), machine, rate: RATE, seconds: SECONDS, haproxy: { checkIntervalMs: 500, fall: 2, timeoutServerS: 5, retries: 2 }, ...outcome };
const file = saveResults('scaling', results, date);
if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
else {
  const f0 = (x: number) => x.toFixed(0);
  process.stdout.write(
    summaryTable([
      { metric: 'requests sent (open loop)', value: String(outcome.requests) },
      { metric: 'failed (all causes)', value: `${outcome.failed} (${Object.entries(result.failed).map(([s, n]) => `${s === '0' ? 'connection' : s}: ${n}`).join(', ') || 'none'})` },
      { metric: 'd2 cut at (s into the load)', value: outcome.cutAtSeconds.toFixed(1) },
      { metric: 'seconds until HAProxy took d2 out (health checks)', value: outcome.detectedAfterSeconds?.toFixed(1) ?? 'not seen' },
      { metric: 'seconds from the cut until the last failure ended', value: outcome.failuresStoppedAfterSeconds.toFixed(1) },
      { metric: 'before the cut: p50 / p99 ms, served by d1 / d2', value: `${f0(outcome.before.p50)} / ${f0(outcome.before.p99)}, ${outcome.before.d1} / ${outcome.before.d2}` },
      { metric: 'after the last failure: p50 / p99 ms, served by d1 / d2', value: `${f0(outcome.afterRecovery.p50)} / ${f0(outcome.afterRecovery.p99)}, ${outcome.afterRecovery.d1} / ${outcome.afterRecovery.d2}` },
    ]) + `\n\nload average ${machine.loadStart} -> ${machine.loadEnd} on ${machine.cores} cores\nresults: ${file}\n`,
  );
}
bench.cleanup();
process.exit(0);

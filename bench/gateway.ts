/**
 * `npm run bench:gateway [-- --quick] [-- --json]`: what the function gateway adds in front of an
 * endpoint, on the shared MobileNetV2 with real photos.
 *
 * - Added latency: the same JPEGs, at the same moderate open-loop rate (half the endpoint's
 *   maximum) from a separate process,
 *   sent alternately (a) straight to the endpoint (POST /endpoints/NAME/invocations on the
 *   daemon's data plane) and (b) through the gateway (POST /v1/classify: API key check, rate
 *   limit, policy, audit entry, the built-in classify function, its role check, the same
 *   router), so both see the same machine; p50 and p99 of each, and the difference.
 * - The gateway's own cost, without the model's noise: a stub endpoint that answers at once,
 *   behind a plain route and behind the gateway, one request at a time.
 * - Cold vs provisioned: the first call to a user handler (a worker thread) after a deploy,
 *   without and with a provisioned instance.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { KennelError } from '../src/core/index.js';
import { createFunction, endpointClientFor, FunctionGateway, functionsRoutes, updateFunction, type EndpointClient } from '../src/functions/index.js';
import { checkImage, IMAGE_TYPES } from '../src/serving/index.js';
import { importModel } from '../src/registry/index.js';
import { createKey, securityPlugin, type Actor } from '../src/security/index.js';
import { startDaemon } from '../src/server/index.js';
import { openWorkspace } from '../src/store/index.js';
import { sharedMobileNet } from './lib/report.js';
import { realPhotoFiles } from './lib/serving.js';

interface Target {
  url: string;
  headers: Record<string, string>;
}

interface LoadJob {
  /** request i goes to targets[i % targets.length], so every target sees the same conditions */
  targets: Target[];
  files: string[];
  seconds: number;
  /** closed loop: this many clients back to back (for the maximum) */
  concurrency?: number;
  /** open loop: requests start on this schedule whatever the servers do (for latency) */
  rate?: number;
}

interface LoadResult {
  /** per target: latencies of the 200 answers */
  latencies: number[][];
  /** per target: other answers by status (0: connection error) */
  failed: Array<Record<string, number>>;
  seconds: number;
}

/**
 * The load client (a forked process, so its CPU is not the servers'). In open loop, latency
 * counts from each request's scheduled start, so a server that falls behind cannot hide it.
 */
async function runLoad(job: LoadJob): Promise<LoadResult> {
  const bodies = job.files.map((f) => readFileSync(f));
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.concurrency ?? 64 });
  const urls = job.targets.map((t) => new URL(t.url));
  const latencies: number[][] = job.targets.map(() => []);
  const failed: Array<Record<string, number>> = job.targets.map(() => ({}));
  let n = 0;
  const post = (i: number, body: Buffer) =>
    new Promise<number>((done) => {
      const req = http.request(urls[i]!, { method: 'POST', agent, headers: { ...job.targets[i]!.headers, 'content-type': 'image/jpeg', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
      });
      req.on('error', () => done(0));
      req.end(body);
    });
  const send = async (scheduled: number) => {
    const k = n++;
    const target = k % job.targets.length;
    // each photo goes to every target in turn
    const status = await post(target, bodies[Math.floor(k / job.targets.length) % bodies.length]!);
    if (status === 200) latencies[target]!.push(performance.now() - scheduled);
    else failed[target]![status] = (failed[target]![status] ?? 0) + 1;
  };
  const t0 = performance.now();
  const until = t0 + job.seconds * 1000;
  if (job.rate) {
    const pending: Array<Promise<void>> = [];
    for (let i = 0; ; i++) {
      const at = t0 + (i * 1000) / job.rate;
      if (at >= until) break;
      const wait = at - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      pending.push(send(at));
    }
    await Promise.all(pending);
  } else {
    await Promise.all(
      Array.from({ length: job.concurrency ?? 1 }, async () => {
        while (performance.now() < until) await send(performance.now());
      }),
    );
  }
  agent.destroy();
  return { latencies, failed, seconds: (performance.now() - t0) / 1000 };
}

function loadFromChild(job: LoadJob): Promise<LoadResult> {
  const child = fork(fileURLToPath(import.meta.url), ['--load-client'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.send(job);
  return new Promise((done, fail) => {
    child.once('message', (r) => done(r as LoadResult));
    child.once('exit', (code) => code !== 0 && fail(new Error(`load client exited ${code}`)));
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const round2 = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 0.5);
const STUB_PREDICTIONS = ['Beagle', 'Basenji', 'Boxer', 'Collie', 'Pug'].map((label, index) => ({ label, index, score: (5 - index) / 15 }));

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const json = process.argv.includes('--json');
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const settings = quick ? { rounds: 4, seconds: 3, coldRounds: 3 } : { rounds: 6, seconds: 10, coldRounds: 7 }; // load runs rounds x seconds
  const files = realPhotoFiles();
  const home = mkdtempSync(join(tmpdir(), 'kennel-bench-gateway-'));
  const by: Actor = { principal: 'local:bench', plane: 'cli' };
  const cleanups: Array<() => Promise<void> | void> = [() => rmSync(home, { recursive: true, force: true })];
  log(`bench:gateway${quick ? ' (quick)' : ''}: ${files.length} real photos, ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(2)}`);

  try {
    const ws = openWorkspace(home);
    cleanups.unshift(() => ws.close());
    await importModel(ws, sharedMobileNet, { name: 'mobilenet', labels: Array.from({ length: 1000 }, (_, i) => `imagenet-${i}`) });
    const daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
    cleanups.unshift(() => daemon.close());
    await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mobilenet' }], instances: 1 });

    // the gateway, wired the way the daemon mounts it
    await createFunction(ws, 'classify', { endpoint: 'dogs', route: '/v1/classify' }, by);
    await createFunction(ws, 'classify-stub', { endpoint: 'stub', route: '/v1/stub' }, by);
    const { key } = createKey(ws, 'bench', { allow: ['function:Invoke:function/*', 'endpoint:Invoke:endpoint/dogs'], expiresInMs: 3_600_000, ratePerSecond: 1_000_000, burst: 1_000_000 }, by);
    const real = endpointClientFor(daemon.runtime);
    // endpoint "stub" answers at once: it isolates the gateway's own cost from the model's
    const stub: EndpointClient = { invoke: async (_e, body, _t, opts) => ({ predictions: STUB_PREDICTIONS.slice(0, opts?.topK ?? 5), model: `stub@${checkImage(body).length > 0 ? 1 : 0}`, variant: 'primary' }) };
    const gateway = new FunctionGateway({ ws, endpoints: { invoke: (endpoint, ...rest) => (endpoint === 'stub' ? stub : real).invoke(endpoint, ...rest) } });
    cleanups.unshift(() => gateway.close());
    const app = Fastify();
    app.setErrorHandler((e: Error, _req, reply) => reply.code(e instanceof KennelError ? e.status : 500).send({ error: { message: e.message } }));
    // image bodies are parsed at the root, as on the daemon's data plane
    app.addContentTypeParser([...IMAGE_TYPES], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    await app.register(securityPlugin, { ws, plane: 'data' });
    await app.register(functionsRoutes, { gateway });
    app.post('/stub', { config: { auth: 'public' } }, async (req) => stub.invoke('stub', req.body as Buffer, 'image/jpeg'));
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.unshift(() => app.close());
    const gatewayPort = (app.server.address() as AddressInfo).port;

    const paths = {
      direct: { url: `http://127.0.0.1:${daemon.state.port}/endpoints/dogs/invocations`, headers: { authorization: `Bearer ${key}` } },
      function: { url: `http://127.0.0.1:${gatewayPort}/v1/classify`, headers: { authorization: `Bearer ${key}` } },
    };
    // moderate load: half of what the endpoint sustains when called directly; the two paths
    // take turns request by request within one run, so both see the same machine
    await loadFromChild({ targets: [paths.direct, paths.function], files, concurrency: 4, seconds: 1 }); // warm up
    const max = await loadFromChild({ targets: [paths.direct], files, concurrency: 8, seconds: settings.seconds });
    const maxRate = max.latencies[0]!.length / max.seconds;
    const rate = Math.max(2, Math.round(maxRate * 0.5));
    log(`endpoint maximum ${maxRate.toFixed(0)} req/s; moderate load: ${rate} req/s open loop, alternating direct and gateway requests`);
    const run = await loadFromChild({ targets: [paths.direct, paths.function], files, rate, seconds: settings.seconds * settings.rounds });
    const stats = (xs: number[], failures: Record<string, number>) => {
      const sorted = [...xs].sort((a, b) => a - b);
      return { p50_ms: round2(percentile(sorted, 0.5)), p99_ms: round2(percentile(sorted, 0.99)), requests: xs.length, failed: failures };
    };
    const direct = stats(run.latencies[0]!, run.failed[0]!);
    const viaFunction = stats(run.latencies[1]!, run.failed[1]!);
    // the gateway's own cost: one request at a time to a stub endpoint, plain route vs gateway
    const own = await loadFromChild({ targets: [{ url: `http://127.0.0.1:${gatewayPort}/stub`, headers: {} }, { url: `http://127.0.0.1:${gatewayPort}/v1/stub`, headers: paths.function.headers }], files, concurrency: 1, seconds: settings.seconds });
    const ownPlain = stats(own.latencies[0]!, own.failed[0]!);
    const ownGateway = stats(own.latencies[1]!, own.failed[1]!);

    // cold vs provisioned: a user handler that classifies through its endpoint
    const handler = join(home, 'handler.mjs');
    writeFileSync(handler, "export async function handler(event, context) {\n  const image = Buffer.from(event.image, 'base64');\n  return context.endpoints.invoke(context.endpoint, image, 'image/jpeg', { topK: 3 });\n}\n");
    await createFunction(ws, 'on-demand', { endpoint: 'dogs', handler }, by);
    await createFunction(ws, 'provisioned', { endpoint: 'dogs', handler, provisionedConcurrency: 1 }, by);
    const event = { image: readFileSync(files[0]!).toString('base64') };
    const firstCall = async (name: string) => {
      const started = performance.now();
      const res = await fetch(`http://127.0.0.1:${gatewayPort}/functions/${name}/invoke`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(event) });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${name} answered ${res.status}`);
      return { ms: performance.now() - started, cold: res.headers.get('x-kennel-cold-start') === 'true' };
    };
    const cold: number[] = [];
    const warm: number[] = [];
    const steady: number[] = [];
    for (let round = 0; round < settings.coldRounds; round++) {
      // a new revision of each (a deploy): fresh instances, provisioned ones started ahead
      await updateFunction(ws, 'on-demand', { timeoutMs: 10_000 + round }, by);
      await updateFunction(ws, 'provisioned', { timeoutMs: 10_000 + round }, by);
      await gateway.sync();
      const c = await firstCall('on-demand');
      const w = await firstCall('provisioned');
      if (!c.cold || w.cold) throw new Error('unexpected instance state');
      cold.push(c.ms);
      warm.push(w.ms);
      steady.push((await firstCall('on-demand')).ms);
    }

    const result = {
      rate_per_second: rate,
      direct,
      function: viaFunction,
      added_p50_ms: round2(viaFunction.p50_ms - direct.p50_ms),
      added_p99_ms: round2(viaFunction.p99_ms - direct.p99_ms),
      target_added_p50_ms: 2,
      gateway_own_cost: { plain_route_p50_ms: ownPlain.p50_ms, gateway_p50_ms: ownGateway.p50_ms, added_p50_ms: round2(ownGateway.p50_ms - ownPlain.p50_ms), added_p99_ms: round2(ownGateway.p99_ms - ownPlain.p99_ms) },
      load_average: round2(loadavg()[0]!),
      cold_first_call_ms: round2(median(cold)),
      provisioned_first_call_ms: round2(median(warm)),
      warm_call_ms: round2(median(steady)),
      note: 'run through tsx: a cold worker also loads its TypeScript entry through tsx, which compiled Kennel (dist) does not',
    };
    if (json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      log('');
      log(`moderate load (${rate} req/s open loop, half the endpoint's maximum; real JPEGs):`);
      const failures = (f: Record<string, number>) => (Object.keys(f).length ? `, failed ${JSON.stringify(f)}` : '');
      log(`  endpoint directly      p50 ${direct.p50_ms} ms  p99 ${direct.p99_ms} ms  (${direct.requests} requests${failures(direct.failed)})`);
      log(`  gateway + function     p50 ${viaFunction.p50_ms} ms  p99 ${viaFunction.p99_ms} ms  (${viaFunction.requests} requests${failures(viaFunction.failed)})`);
      log(`  added                  p50 ${result.added_p50_ms} ms  p99 ${result.added_p99_ms} ms  (target: at most 2 ms at p50)`);
      log(`gateway's own cost (stub endpoint, one request at a time): plain route p50 ${ownPlain.p50_ms} ms, gateway p50 ${ownGateway.p50_ms} ms: adds ${result.gateway_own_cost.added_p50_ms} ms at p50, ${result.gateway_own_cost.added_p99_ms} ms at p99`);
      log(`first call after a deploy (user handler, median of ${settings.coldRounds}): on-demand ${result.cold_first_call_ms} ms, provisioned ${result.provisioned_first_call_ms} ms; warm ${result.warm_call_ms} ms`);
      log(`(${result.note})`);
    }
  } finally {
    for (const c of cleanups) await c();
  }
}

// after every declaration above: main() uses them
if (process.argv.includes('--load-client')) {
  process.once('message', (job: LoadJob) => void runLoad(job).then((r) => process.send!(r, () => process.exit(0))));
} else {
  await main();
}

/**
 * `npm run bench:workers [-- --quick] [-- --json] [-- --max-workers N] [-- --threads T] [-- --counts LIST] [-- --tasks-per-worker N] [-- --backend redis,redis+s3]`:
 * feature-extraction throughput of the worker engines for 1, 2, 4 … N workers.
 *
 * - local pool and Redis (BullMQ + `kennel worker` processes), each worker with T ORT threads
 *   (default 1, so adding a worker adds a core)
 * - scaling efficiency = throughput(K) / (K x throughput(1)), per backend (target >= 80% up to
 *   the core count)
 * - Redis vs local pool at the same K (target >= 80%), and the dispatch overhead per task
 * - the hardware ceiling at the same K: K independent processes, each extracting its share with
 *   nothing shared but the machine (cores, caches, memory bandwidth, clock boost), started together.
 *   Its efficiency is what the machine allows; an engine's efficiency / the ceiling's is the
 *   engine's own cost
 * - redis+s3: the Redis engine with `kennel worker` processes that have no workspace at all
 *   (no --home): artifacts in an S3 bucket (s3rver, a separate process on loopback, pinned with
 *   the rest), each worker with its own cache folder, warmed up by the warm-up tasks as a
 *   long-running worker's cache is; the timed run uploads every feature chunk to the bucket.
 *   Target: >= 80% of the local pool at the same K (`redis+s3 vs local`). With `--hosts`, Redis
 *   and s3rver run on one network namespace and each worker on its own (veth links to a bridge;
 *   root and iproute2), the coordinator on the machine itself: every request crosses a link
 * - for reference, unpinned (not with --quick): the in-process engine (what --instances 1 uses:
 *   one ORT session with every core) and the local pool with one worker per core
 *
 * Each configuration runs in its own process pinned with taskset to K cores for K workers
 * (coordinator, workers and redis-server alike), so the efficiency compares K workers on K cores
 * with one worker on one core: a lone unpinned worker also decodes on idle cores, which would
 * count against scaling. Without taskset the runs are unpinned, and the results say so.
 * Workers are started and warmed up (ORT session created) before each timed run; every run
 * uses a new augmentation seed, so nothing is served from a cache.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addBackbone, getBackbone, type Backbone } from '../src/backbones/index.js';
import { table } from '../src/cli/output.js';
import { getDatasetVersion, importDataset, type DatasetVersion } from '../src/data/index.js';
import { openWorkspace } from '../src/store/index.js';
import { TRAINING_TASKS } from '../src/training/index.js';
import { createEngine, InlineEngine, LocalPool, type Engine, type Task } from '../src/workers/index.js';
import { createNetwork } from './lib/netns.js';
import { shared, sharedMobileNet } from './lib/report.js';

const TARGET = { efficiency: 0.8, redisVsLocal: 0.8, s3VsLocal: 0.8 };
const root = fileURLToPath(new URL('..', import.meta.url));
const self = fileURLToPath(import.meta.url);

/**
 * inline: one in-process engine; local, redis: the engines; independent: K separate processes
 * each running its share of the tasks in-process, with no engine and no coordinator (the
 * hardware's own scaling, the ceiling for the engines); solo: one of those processes
 */
type Backend = 'inline' | 'local' | 'redis' | 'redis+s3' | 'independent' | 'solo';

interface Args {
  quick: boolean;
  json: boolean;
  maxWorkers: number;
  threads: number;
  /** worker counts to measure; default 1, 2, 4 … up to --max-workers */
  counts?: number[];
  /** tasks per worker in a timed run, at every worker count */
  tasksPerWorker: number;
  /** the engine series to measure (the ceiling and the local pool always run: the others are compared with them) */
  backends?: Array<'redis' | 'redis+s3'>;
  /** redis+s3 across hosts: Redis and the S3 server on one network namespace, each worker on its own */
  hosts: boolean;
  /** internal: measure one configuration in this process and print it as JSON */
  point?: { backend: Backend; workers: number; home: string; tasks: number };
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, json: false, maxWorkers: availableParallelism(), threads: 1, tasksPerWorker: 0, hosts: false };
  const int = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) fail(`${flag} takes a whole number of at least 1.`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === '--quick') a.quick = true;
    else if (x === '--json') a.json = true;
    else if (x === '--max-workers') a.maxWorkers = int(x, argv[++i]);
    else if (x === '--threads') a.threads = int(x, argv[++i]);
    else if (x === '--tasks-per-worker') a.tasksPerWorker = int(x, argv[++i]);
    else if (x === '--hosts') a.hosts = true;
    else if (x === '--backend' || x === '--backends') {
      const list = (argv[++i] ?? '').split(',');
      if (!list.every((b) => b === 'redis' || b === 'redis+s3')) fail(`${x} takes redis, redis+s3 or both (comma-separated).`);
      a.backends = list as Array<'redis' | 'redis+s3'>;
    } else if (x === '--counts') a.counts = (argv[++i] ?? '').split(',').map((v) => int(x, v));
    else if (x === '--point') a.point = { backend: argv[++i] as Backend, workers: int(x, argv[++i]), home: argv[++i]!, tasks: int(x, argv[++i]) };
    else if (x === '--help' || x === '-h') {
      process.stdout.write('usage: npm run bench:workers -- [--quick] [--json] [--max-workers N] [--threads T] [--counts LIST] [--tasks-per-worker N] [--backend LIST]\n  --quick          a smaller run, under a minute\n  --json           print the results as one JSON document\n  --max-workers N  largest worker count to measure (default: the core count)\n  --threads T      ORT threads per worker (default 1)\n  --counts LIST    worker counts to measure, e.g. 1,16 (default 1, 2, 4 ... up to --max-workers)\n  --tasks-per-worker N  tasks of 100 images per worker in a timed run (default 8, 4 with --quick)\n  --backend LIST   engines measured beside the ceiling and the local pool: redis, redis+s3 (default both)\n  --hosts          redis+s3 across hosts: Redis and s3rver on one network namespace, each worker on its own (root, iproute2)\n');
      process.exit(0);
    } else fail(`unknown option ${x}.`);
  }
  return a;
}

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\n  Run with --help for the options.\n`);
  process.exit(2);
}

interface Point {
  backend: Backend;
  workers: number;
  threads: number;
  /** cores the configuration was pinned to; undefined = unpinned */
  cores?: number;
  images: number;
  seconds: number;
  imagesPerSecond: number;
  /** wall time per task not spent computing it, at one worker */
  overheadMsPerTask?: number;
  /** throughput / (workers x this backend's single-worker throughput) */
  efficiency?: number;
}

/** `n` extract-chunk tasks of 100 training images, each an augmentation view under its own seed */
function makeTasks(ds: DatasetVersion, backbone: Backbone, n: number, seed: number): Task[] {
  const images = ds.items.filter((i) => i.split === 'train').map((i) => i.sha256);
  return Array.from({ length: n }, (_, v) => ({
    id: `s${seed}-v${v + 1}`,
    type: 'extract-chunk',
    label: `seed ${seed} view ${v + 1}`,
    input: {
      extractor: { sha: backbone.extractorSha, inputName: backbone.spec.inputName, outputName: backbone.spec.outputName, dim: backbone.spec.featureDim, preprocess: backbone.spec.preprocess },
      images,
      seed,
      view: v + 1,
      device: 'cpu',
    },
  }));
}

/** Warms the engine up with one task per worker (each creates its ORT session), then times a run of `n` tasks. */
async function measure(engine: Engine, p: { backend: Backend; workers: number; threads: number; tasks: number }, ds: DatasetVersion, backbone: Backbone): Promise<Point> {
  await engine.start();
  // every worker process up before the warm-up tasks, as the Redis workers are: otherwise the
  // first ones ready take several warm-up tasks and the others create their sessions in the timed run
  if (engine instanceof LocalPool) await engine.warm();
  for await (const _ of engine.run(makeTasks(ds, backbone, p.workers, 1))) void _;
  const tasks = makeTasks(ds, backbone, p.tasks, 2);
  const t0 = performance.now();
  let images = 0;
  let busy = 0;
  for await (const d of engine.run(tasks)) {
    images += (d.output as { rows: number }).rows;
    busy += d.seconds;
  }
  const seconds = (performance.now() - t0) / 1000;
  await engine.close();
  return { backend: p.backend, workers: p.workers, threads: p.threads, images, seconds, imagesPerSecond: images / seconds, overheadMsPerTask: p.workers === 1 ? ((seconds - busy) / tasks.length) * 1000 : undefined };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/** Waits until the S3 server answers HTTP (s3rver prints nothing with --silent). */
async function waitForS3(endpoint: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(endpoint);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`s3rver did not answer at ${endpoint}`);
}

function waitForOutput(child: ChildProcess, re: RegExp, what: string): Promise<void> {
  return new Promise((res, rej) => {
    let out = '';
    const on = (d: Buffer) => {
      out += d.toString();
      if (re.test(out)) res();
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', () => rej(new Error(`${what} exited before it was ready:\n${out}`)));
  });
}

async function stop(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => (c.once('exit', r), c.kill('SIGTERM'))))));
}

/** Spawns a bench process for one configuration (`--point`), with the given extra node arguments. */
function pointProcess(backend: Backend, workers: number, home: string, tasks: number, args: Args, cores?: number): ChildProcess {
  const argv = ['--import', 'tsx', self, '--point', backend, String(workers), home, String(tasks), '--threads', String(args.threads), ...(args.hosts ? ['--hosts'] : [])];
  const [cmd, cmdArgs] = cores ? ['taskset', ['-c', `0-${cores - 1}`, process.execPath, ...argv]] : [process.execPath, argv];
  return spawn(cmd as string, cmdArgs as string[], { stdio: ['pipe', 'pipe', 'inherit'] });
}

/**
 * A solo process of the independent series: warms up, says "ready", waits for "go" on stdin
 * (so all K start together), then extracts its tasks in-process with one engine-free host.
 */
async function runSolo(args: Args, point: NonNullable<Args['point']>): Promise<Point> {
  const ws = openWorkspace(point.home);
  try {
    const ds = await getDatasetVersion(ws, 'breeds');
    const backbone = getBackbone(ws, 'mnv2');
    const engine = new InlineEngine({ home: point.home, artifacts: ws.artifacts, threads: args.threads, taskModules: [TRAINING_TASKS()] });
    for await (const _ of engine.run(makeTasks(ds, backbone, 1, 1))) void _;
    process.stdout.write('ready\n');
    await new Promise((r) => process.stdin.once('data', r));
    const t0 = performance.now();
    let images = 0;
    for await (const d of engine.run(makeTasks(ds, backbone, point.tasks, 2))) images += (d.output as { rows: number }).rows;
    const seconds = (performance.now() - t0) / 1000;
    await engine.close();
    return { backend: 'solo', workers: 1, threads: args.threads, images, seconds, imagesPerSecond: images / seconds };
  } finally {
    ws.close();
  }
}

/** The independent series: K solo processes started together; throughput over the slowest one's time. */
async function runIndependent(workers: number, cores: number | undefined, home: string, tasks: number, args: Args): Promise<Point> {
  const each = Math.ceil(tasks / workers);
  const children = Array.from({ length: workers }, () => pointProcess('solo', 1, home, each, args, cores));
  const outputs = children.map(() => '');
  const ready = children.map(
    (c, i) =>
      new Promise<void>((res, rej) => {
        c.stdout!.on('data', (d: Buffer) => {
          outputs[i] += d.toString();
          if (outputs[i]!.startsWith('ready\n')) res();
        });
        c.once('exit', (code) => (code === 0 ? res() : rej(new Error(`a solo process failed (exit ${code})`))));
      }),
  );
  await Promise.all(ready);
  const done = children.map((c) => new Promise<void>((res, rej) => c.once('exit', (code) => (code === 0 ? res() : rej(new Error(`a solo process failed (exit ${code})`))))));
  for (const c of children) c.stdin!.end('go\n');
  await Promise.all(done);
  const points = outputs.map((o) => JSON.parse(o.slice('ready\n'.length)) as Point);
  const images = points.reduce((s, p) => s + p.images, 0);
  const seconds = Math.max(...points.map((p) => p.seconds));
  return { backend: 'independent', workers, threads: args.threads, cores, images, seconds, imagesPerSecond: images / seconds };
}

/** One configuration, measured in this process (which the parent pinned to its cores). */
async function runPoint(args: Args, point: NonNullable<Args['point']>): Promise<Point> {
  const ws = openWorkspace(point.home);
  const ds = await getDatasetVersion(ws, 'breeds');
  const backbone = getBackbone(ws, 'mnv2');
  const p = { backend: point.backend, workers: point.workers, threads: args.threads, tasks: point.tasks };
  const taskModules = [TRAINING_TASKS()];
  try {
    if (point.backend === 'inline') return await measure(new InlineEngine({ home: point.home, artifacts: ws.artifacts, threads: availableParallelism(), taskModules }), { ...p, threads: availableParallelism() }, ds, backbone);
    if (point.backend === 'local') return await measure(new LocalPool({ workers: point.workers, threads: args.threads, home: point.home, taskModules, device: 'cpu' }), p, ds, backbone);
    const children: ChildProcess[] = [];
    const scratch: string[] = [];
    // across hosts: Redis and s3rver on `svc`, worker i on `w<i>`, this coordinator on the machine itself
    const net = point.backend === 'redis+s3' && args.hosts ? createNetwork(['svc', ...Array.from({ length: point.workers }, (_, i) => `w${i}`)], { joinRoot: true }) : undefined;
    const svc = net?.hosts.svc;
    const on = (via: string[] | undefined, cmd: string, argv: string[], opts: { cwd?: string } = {}) => spawn(via ? via[0]! : cmd, via ? [...via.slice(1), cmd, ...argv] : argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    try {
      const address = svc?.address ?? '127.0.0.1';
      const port = svc ? 6379 : await freePort();
      const server = on(svc?.via, 'redis-server', ['--port', String(port), '--bind', address, '--protected-mode', 'no', '--save', '', '--appendonly', 'no']);
      children.push(server);
      await waitForOutput(server, /Ready to accept connections/, 'redis-server');
      const url = `redis://${address}:${port}`;
      let workerArgs = ['--home', point.home];
      let coordinator = { home: point.home, ws, ds, backbone };
      if (point.backend === 'redis+s3') {
        // the bucket on its own server process; the coordinator's workspace holds only metadata
        const s3port = svc ? 4568 : await freePort();
        const data = mkdtempSync(join(tmpdir(), 'kennel-bench-s3-'));
        scratch.push(data);
        const s3 = on(svc?.via, process.execPath, [join(root, 'node_modules/s3rver/bin/s3rver.js'), '-d', data, '-a', address, '-p', String(s3port), '--silent', '--configure-bucket', 'kennel']);
        children.push(s3);
        const endpoint = `http://${address}:${s3port}`;
        await waitForS3(endpoint);
        const bucket = 's3://kennel/bench';
        Object.assign(process.env, { AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'S3RVER', AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'S3RVER', AWS_REGION: process.env.AWS_REGION ?? 'us-east-1', KENNEL_ARTIFACTS: bucket, KENNEL_ARTIFACTS_ENDPOINT: endpoint });
        const home = mkdtempSync(join(tmpdir(), 'kennel-bench-coordinator-'));
        scratch.push(home);
        const cws = openWorkspace(home);
        coordinator = { home, ws: cws, ds: await importDataset(cws, join(shared, 'data/breeds-mini'), { name: 'breeds' }), backbone: await addBackbone(cws, sharedMobileNet, { name: 'mnv2' }) };
        workerArgs = ['--artifacts', bucket, '--artifacts-endpoint', endpoint];
      }
      const workers = Array.from({ length: point.workers }, (_, i) => {
        const own = mkdtempSync(join(tmpdir(), 'kennel-bench-worker-'));
        scratch.push(own);
        const args2 = point.backend === 'redis+s3' ? [...workerArgs, '--cache', join(own, 'cache')] : workerArgs;
        return on(net?.hosts[`w${i}`]!.via, process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'worker', '--queue', url, ...args2, '--threads', String(args.threads), '--name', `bench-${i}`], { cwd: root });
      });
      children.push(...workers);
      await Promise.all(workers.map((w) => waitForOutput(w, /waiting for tasks/, 'kennel worker')));
      try {
        return await measure(await createEngine({ instances: point.workers, queue: url, home: coordinator.home, artifacts: coordinator.ws.artifacts, taskModules, device: 'cpu' }), p, coordinator.ds, coordinator.backbone);
      } finally {
        if (coordinator.ws !== ws) coordinator.ws.close();
      }
    } finally {
      // workers first, while Redis is still there for them to let go of their tasks
      await stop(children.slice(1));
      await stop(children.slice(0, 1));
      for (const d of scratch) rmSync(d, { recursive: true, force: true });
      net?.destroy();
    }
  } finally {
    ws.close();
  }
}

/** Runs one configuration in a child process, pinned to `cores` cores when taskset exists. */
function runPinned(backend: Backend, workers: number, cores: number | undefined, home: string, tasks: number, args: Args): Promise<Point> {
  if (backend === 'independent') return runIndependent(workers, cores, home, tasks, args);
  return new Promise((res, rej) => {
    const child = pointProcess(backend, workers, home, tasks, args, cores);
    child.stdin!.end();
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? res({ ...(JSON.parse(out) as Point), cores }) : rej(new Error(`${backend} with ${workers} worker(s) failed (exit ${code})`))));
  });
}

async function main(args: Args): Promise<void> {
  const log = (line: string) => {
    if (!args.json) process.stderr.write(line + '\n');
  };
  const started = performance.now();
  const cores = availableParallelism();
  /** worker counts measured: 1, 2, 4 … and the maximum */
  const counts = args.counts ?? [...new Set([...Array.from({ length: 32 }, (_, i) => 2 ** i).filter((k) => k < args.maxWorkers), args.maxWorkers])];
  // the same tasks per worker at every count, so every configuration runs about as long: with
  // few tasks each, the run's tail (the slowest core finishing its last task) weighs on large counts
  const perWorker = args.tasksPerWorker || (args.quick ? 4 : 8);
  const tasks = (k: number) => perWorker * k;
  const pin = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
  const home = mkdtempSync(join(tmpdir(), 'kennel-bench-workers-'));
  process.on('exit', () => rmSync(home, { recursive: true, force: true }));
  const load0 = loadavg()[0]!;
  const ws = openWorkspace(home);
  await importDataset(ws, join(shared, 'data/breeds-mini'), { name: 'breeds' });
  await addBackbone(ws, sharedMobileNet, { name: 'mnv2' });
  ws.close();
  log(`bench:workers: ${perWorker} tasks x 100 images per worker and run; workers ${counts.join(', ')} with ${args.threads} ORT thread(s) each; ${pin ? 'K workers pinned to K cores' : 'unpinned (no taskset)'}; ${cores} cores`);

  // per worker count, the three series run one after the other in a rotating order, so a change
  // in the machine's load does not fall on one series alone
  const series: Record<'independent' | 'local' | 'redis' | 'redis+s3', Point[]> = { independent: [], local: [], redis: [], 'redis+s3': [] };
  if (!hasRedis) log('redis, redis+s3: skipped, redis-server is not on PATH (apt-get install -y redis-server)');
  const wanted = args.backends ?? ['redis', 'redis+s3'];
  const backends = (['independent', 'local', 'redis', 'redis+s3'] as const).filter((b) => !b.startsWith('redis') || (hasRedis && wanted.includes(b as 'redis')));
  for (const [i, k] of counts.entries()) {
    for (const backend of [...backends.slice(i % backends.length), ...backends.slice(0, i % backends.length)]) {
      const point = await runPinned(backend, k, pin ? Math.min(k, cores) : undefined, home, tasks(k), args);
      series[backend].push(point);
      log(`${backend}, ${k} worker(s)${point.cores ? ` on ${point.cores} core(s)` : ''}: ${point.imagesPerSecond.toFixed(1)} images/s`);
    }
  }
  // what --instances 1 and --workers give, unpinned (skipped by --quick)
  const reference = args.quick ? [] : [await runPinned('inline', 1, undefined, home, tasks(cores), args), await runPinned('local', cores, undefined, home, tasks(cores), { ...args, threads: 1 })];
  if (reference.length) log(`unpinned: in-process ${reference[0]!.imagesPerSecond.toFixed(1)} images/s, local pool of ${cores} ${reference[1]!.imagesPerSecond.toFixed(1)} images/s`);

  const withEfficiency = (ps: Point[]) => {
    const one = ps.find((q) => q.workers === 1)?.imagesPerSecond;
    return ps.map((p) => ({ ...p, efficiency: one ? p.imagesPerSecond / (p.workers * one) : undefined }));
  };
  const ceiling = withEfficiency(series.independent);
  // the engine's share of what the machine allowed at this worker count
  const vsCeiling = (ps: Point[]) => withEfficiency(ps).map((p) => ({ ...p, ofCeiling: p.imagesPerSecond / ceiling.find((c) => c.workers === p.workers)!.imagesPerSecond }));
  const local = vsCeiling(series.local);
  const redis = vsCeiling(series.redis);
  const redisS3 = vsCeiling(series['redis+s3']);
  const vsLocal = (ps: Point[]) => ps.map((r) => ({ workers: r.workers, ratio: r.imagesPerSecond / local.find((l) => l.workers === r.workers)!.imagesPerSecond }));
  const redisVsLocal = vsLocal(redis);
  const s3VsLocal = vsLocal(redisS3);
  const scaling = (ps: Point[]) => ps.filter((p) => p.workers > 1 && p.workers <= cores);
  const pass = {
    localEfficiency: scaling(local).every((p) => (p.efficiency ?? 0) >= TARGET.efficiency),
    redisEfficiency: redis.length ? scaling(redis).every((p) => (p.efficiency ?? 0) >= TARGET.efficiency) : undefined,
    redisVsLocal: redis.length ? redisVsLocal.every((r) => r.ratio >= TARGET.redisVsLocal) : undefined,
    s3VsLocal: redisS3.length ? s3VsLocal.every((r) => r.ratio >= TARGET.s3VsLocal) : undefined,
  };
  const seconds = (performance.now() - started) / 1000;
  const result = {
    bench: 'workers',
    date: new Date().toISOString(),
    machine: { cpu: cpuModel(), cores, ...cpuTopology(), loadStart: round(load0), loadEnd: round(loadavg()[0]!) },
    config: { quick: args.quick, tasksPerWorker: perWorker, imagesPerTask: 100, threadsPerWorker: args.threads, workers: counts, pinned: pin, hosts: args.hosts },
    ceiling,
    local,
    redis,
    redisS3,
    redisSkipped: hasRedis ? undefined : 'redis-server is not on PATH',
    redisVsLocal,
    s3VsLocal,
    unpinned: reference.length ? { inProcess: reference[0], localPool: reference[1] } : undefined,
    targets: TARGET,
    pass,
    seconds,
  };
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results', `workers-${result.date.replace(/[:.]/g, '-')}.json`), JSON.stringify(result, null, 2));
  if (args.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const pct = (x?: number) => (x === undefined ? '-' : `${(x * 100).toFixed(0)}%`);
  const name = { inline: 'in-process', local: 'local pool', redis: 'redis', 'redis+s3': args.hosts ? 'redis+s3, hosts (no --home)' : 'redis+s3 (no --home)', independent: 'ceiling (independent)', solo: 'solo' };
  const row = (p: Point & { ofCeiling?: number }, vsLocal?: number) => [name[p.backend], p.workers, p.threads, p.cores ?? 'all', p.imagesPerSecond.toFixed(1), pct(p.efficiency), pct(p.ofCeiling), pct(vsLocal), p.overheadMsPerTask?.toFixed(0) ?? '-'];
  const rows = [...ceiling.map((p) => row(p)), ...local.map((p) => row(p)), ...redis.map((p) => row(p, redisVsLocal.find((r) => r.workers === p.workers)?.ratio)), ...redisS3.map((p) => row(p, s3VsLocal.find((r) => r.workers === p.workers)?.ratio)), ...reference.map((p) => row(p))];
  process.stdout.write(table(['backend', 'workers', 'threads', 'cores', 'images/s', 'efficiency', 'of ceiling', 'vs local', 'overhead ms/task'], rows) + '\n');
  const verdict = (p: boolean | undefined) => (p === undefined ? 'skipped' : p ? 'pass' : 'FAIL');
  process.stdout.write(`\nscaling efficiency >= ${pct(TARGET.efficiency)} up to ${cores} cores: local ${verdict(pass.localEfficiency)}, redis ${verdict(pass.redisEfficiency)}; redis >= ${pct(TARGET.redisVsLocal)} of local: ${verdict(pass.redisVsLocal)}; redis+s3 >= ${pct(TARGET.s3VsLocal)} of local: ${verdict(pass.s3VsLocal)}\n`);
  process.stdout.write(`load average ${result.machine.loadStart} -> ${result.machine.loadEnd} on ${cores} cores (${result.machine.physicalCores ?? '?'} physical, ${result.machine.threadsPerCore ?? '?'} thread(s) per core; ${result.machine.cpu}); ${seconds.toFixed(0)} s\n`);
}

/** Physical cores behind the logical CPUs (hyperthread siblings share one core's units), from sysfs. */
function cpuTopology(): { physicalCores?: number; threadsPerCore?: number } {
  try {
    const dir = '/sys/devices/system/cpu';
    const cpus = readdirSync(dir).filter((d) => /^cpu\d+$/.test(d) && existsSync(join(dir, d, 'topology/core_id')));
    const cores = new Set(cpus.map((d) => `${readFileSync(join(dir, d, 'topology/physical_package_id'), 'utf8').trim()}:${readFileSync(join(dir, d, 'topology/core_id'), 'utf8').trim()}`));
    return cores.size ? { physicalCores: cores.size, threadsPerCore: cpus.length / cores.size } : {};
  } catch {
    return {};
  }
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

const args = parseArgs(process.argv.slice(2));
if (args.point) {
  const point = args.point.backend === 'solo' ? await runSolo(args, args.point) : await runPoint(args, args.point);
  // exit once written: a lingering handle must not keep the parent waiting
  process.stdout.write(JSON.stringify(point), () => process.exit(0));
} else await main(args);

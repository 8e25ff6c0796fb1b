import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { importModel, type ModelVersion } from '../../src/registry/index.js';
import { createKey } from '../../src/security/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { writeFileAtomic } from '../../src/core/index.js';
import { buildResnet } from '../models/resnet.js';
import { benchDir, shared, sharedMobileNet } from './report.js';

/** Shared set-up of the serving benches: a workspace with the shared MobileNetV2, a real daemon, real photos. */

/** The photos under `root` (default: the shared real photos), one folder deep, in a fixed order. */
export function realPhotoFiles(root = join(shared, 'data/real-photos')): string[] {
  return readdirSync(root, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((d) => (d.isDirectory() ? readdirSync(join(root, d.name)).sort().map((f) => join(root, d.name, f)) : [join(root, d.name)]));
}

/** The models a serving bench can deploy. */
export const BENCH_MODELS = ['mobilenet', 'resnet50'] as const;
export type BenchModel = (typeof BENCH_MODELS)[number];

/**
 * Registers a bench model (1000 ImageNet classes) in the workspace at `home`:
 * - mobilenet: the shared MobileNetV2 int8;
 * - resnet50: the ResNet50 architecture with seeded random weights (bench/models/resnet.ts,
 *   built once into bench/.cache), the seeds' model size where the pretrained file cannot be had.
 */
export async function importBenchModel(home: string, name: BenchModel): Promise<{ model: ModelVersion; onnxPath: string; description: string }> {
  let file = sharedMobileNet;
  let description = 'shared MobileNetV2 int8, 1000 classes';
  if (name === 'resnet50') {
    file = join(benchDir, '.cache/resnet50-random.onnx');
    description = 'ResNet50 architecture, random weights (bench/models/resnet.ts), float32, 1000 classes';
    if (!existsSync(file)) writeFileAtomic(file, buildResnet({ depth: 50 }));
  }
  const ws = openWorkspace(home);
  try {
    const labels = Array.from({ length: 1000 }, (_, i) => `imagenet-${i}`);
    const { model } = await importModel(ws, file, { name, labels });
    return { model, onnxPath: await ws.artifacts.localPath(model.onnxSha), description };
  } finally {
    ws.close();
  }
}

export function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/**
 * The daemon runs as users run it: compiled (npm run build, a few seconds with TypeScript 7),
 * so replicas start as plain node processes. Falls back to the sources through tsx when the
 * build cannot emit; `runtime` says which ran.
 */
function daemonCommand(): { args: string[]; runtime: 'compiled' | 'tsx' } {
  const root = join(benchDir, '..');
  spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'ignore' });
  const compiled = join(root, 'dist/cli/main.js');
  if (existsSync(compiled)) return { args: [compiled], runtime: 'compiled' };
  return { args: [...process.execArgv, join(root, 'src/cli/main.ts')], runtime: 'tsx' };
}

export interface RunningDaemon {
  runtime: 'compiled' | 'tsx';
  port: number;
  adminPort: number;
  /** authenticates data-plane requests: an API key allowed endpoint:Invoke on every endpoint, without a rate limit the bench could reach */
  auth: Record<string, string>;
  admin<T>(method: string, path: string, body?: unknown): Promise<T>;
  stop(): void;
}

/** Starts `kennel up` as its own process group (so stop() ends it and its replicas), logging to KENNEL_HOME/daemon.log. */
export async function startKennel(home: string): Promise<RunningDaemon> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const command = daemonCommand();
  const ws = openWorkspace(home);
  const { key } = createKey(ws, 'bench', { allow: ['endpoint:Invoke:endpoint/*'], ratePerSecond: 1_000_000, burst: 1_000_000 }, { principal: 'local:bench', plane: 'cli' });
  ws.close();
  const child: ChildProcess = spawn(process.execPath, [...command.args, 'up', '--port', String(port), '--admin-port', String(adminPort), '--detach'], {
    env: { ...process.env, KENNEL_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`kennel up failed: ${err.trim()}`);
  const pid = (JSON.parse(readFileSync(join(home, 'daemon/daemon.json'), 'utf8')) as { pid: number }).pid;
  const token = readFileSync(join(home, 'daemon/admin-token'), 'utf8').trim();
  return {
    runtime: command.runtime,
    port,
    adminPort,
    auth: { authorization: `Bearer ${key}` },
    async admin<T>(method: string, path: string, body?: unknown): Promise<T> {
      const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const json = (await res.json()) as T;
      if (!res.ok) throw new Error(`admin ${method} ${path}: ${JSON.stringify(json)}`);
      return json;
    },
    stop() {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    },
  };
}

export interface BenchHome {
  home: string;
  /** add a cleanup (stop a daemon, kill a server); all run in reverse order, once */
  onCleanup(fn: () => void): void;
  cleanup(): void;
}

/** A temporary KENNEL_HOME for a serving bench; its cleanups run on exit, and Ctrl-C exits. */
export function benchHome(name: string): BenchHome {
  const home = mkdtempSync(join(tmpdir(), `kennel-bench-${name}-`));
  const cleanups: Array<() => void> = [() => rmSync(home, { recursive: true, force: true })];
  const cleanup = () => {
    for (const c of cleanups.splice(0).reverse()) c();
  };
  process.on('exit', cleanup);
  process.on('SIGINT', () => process.exit(130));
  return { home, onCleanup: (fn) => cleanups.push(fn), cleanup };
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { addBackbone, type Backbone } from '../../src/backbones/index.ts';
import { importDataset, type DatasetVersion } from '../../src/data/index.ts';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { CHUNK_ROWS } from '../../src/training/index.ts';
import type { Task } from '../../src/workers/index.ts';
import { repoRoot, sharedDir, tmpHome } from '../helpers/paths.ts';

export const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
/** Why Redis tests are skipped; CI installs redis-server, so there they run. */
export const NO_REDIS = 'redis-server is not on PATH (install it: apt-get install -y redis-server)';

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export interface Proc {
  child: ChildProcess;
  /** stdout and stderr so far */
  output(): string;
  /** resolves when the output matches (rejects when the process exits first) */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
  stdout(): string;
}

/**
 * A child process with its output collected. `cwd` defaults to the repository; `bare` gives it
 * only PATH and `env`, not this process's environment (a "machine" of its own).
 */
export function startProcess(cmd: string, args: string[], env: Record<string, string> = {}, opts: { cwd?: string; bare?: boolean } = {}): Proc {
  const base = opts.bare ? { PATH: process.env.PATH ?? '' } : process.env;
  const child = spawn(cmd, args, { cwd: opts.cwd ?? repoRoot, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let stdout = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    onData(d);
  });
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      for (const l of listeners) l();
      resolve(code);
    }),
  );
  return {
    child,
    output: () => out,
    stdout: () => stdout,
    exited,
    waitFor: (re, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (re.test(out)) done(resolve);
          else if (child.exitCode !== null || child.signalCode !== null) done(() => reject(new Error(`process exited before printing ${re}:\n${out}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`timed out waiting for ${re}:\n${out}`))), timeoutMs);
        const done = (f: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      }),
  };
}

/** The kennel CLI from source (through tsx), with KENNEL_HOME = home. */
export function kennelProcess(home: string, args: string[], env: Record<string, string> = {}): Proc {
  return startProcess(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], { KENNEL_HOME: home, ...env });
}

/** The kennel CLI's command line from any folder: node with tsx's loader by its absolute URL. */
export const kennelCommand = (args: string[]): string[] => [process.execPath, '--import', import.meta.resolve('tsx'), path.join(repoRoot, 'src/cli/main.ts'), ...args];

export async function kennel(home: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; output: string }> {
  const p = kennelProcess(home, args, env);
  const code = await p.exited;
  return { code, stdout: p.stdout(), output: p.output() };
}

export async function kennelJson<T>(home: string, args: string[], env: Record<string, string> = {}): Promise<T> {
  const r = await kennel(home, [...args, '--json'], env);
  if (r.code !== 0) throw new Error(`kennel ${args.join(' ')} exited ${r.code}:\n${r.output}`);
  return JSON.parse(r.stdout) as T;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A throwaway redis-server on a free loopback port (or `port`), without persistence. */
export async function startRedis(port?: number): Promise<{ url: string; port: number; stop(): Promise<void> }> {
  port ??= await freePort();
  const p = startProcess('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await p.waitFor(/Ready to accept connections/, 10_000);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      p.child.kill('SIGKILL');
      await p.exited;
    },
  };
}

export const breedsMini = (): string => path.join(sharedDir(), 'data/breeds-mini');
export const mobilenet = (): string => path.join(sharedDir(), 'models/mobilenetv2-12-int8.onnx');

/** A fresh workspace with breeds-mini imported as "breeds" and MobileNetV2 added as "mnv2". */
export async function preparedHome(): Promise<{ home: string; ws: Workspace; ds: DatasetVersion; backbone: Backbone }> {
  const home = tmpHome();
  const ws = openWorkspace(home);
  const ds = await importDataset(ws, breedsMini(), { name: 'breeds' });
  const backbone = await addBackbone(ws, mobilenet(), { name: 'mnv2' });
  return { home, ws, ds, backbone };
}

/** 'extract-chunk' tasks for the training images, one per augmentation view (100 images each). */
export function extractTasks(ds: DatasetVersion, backbone: Backbone, views: number[]): Task[] {
  const train = ds.items.filter((i) => i.split === 'train').slice(0, CHUNK_ROWS);
  return views.map((view) => ({
    id: `view-${view}`,
    type: 'extract-chunk',
    label: `train view ${view}`,
    input: {
      extractor: { sha: backbone.extractorSha, inputName: backbone.spec.inputName, outputName: backbone.spec.outputName, dim: backbone.spec.featureDim, preprocess: backbone.spec.preprocess },
      images: train.map((i) => i.sha256),
      seed: 3,
      view,
      device: 'cpu',
    },
  }));
}

/** The parts of `kennel train --json` that must not depend on how features were computed. */
export const modelOutcome = (r: Record<string, unknown>) => ({ metrics: r.metrics, temperature: r.temperature, bestEpoch: r.bestEpoch, epochs: r.epochs });

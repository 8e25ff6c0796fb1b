import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sharedDir, tmpDir } from '../helpers/paths.js';
import { importModel } from '../../src/registry/index.js';
import { createKey } from '../../src/security/index.js';
import { openWorkspace, type Workspace } from '../../src/store/index.js';

export const mobilenetPath = (): string => path.join(sharedDir(), 'models/mobilenetv2-12-int8.onnx');

/** Real photographs from the shared data (for invocations and load). */
export function realPhotos(): string[] {
  const root = path.join(sharedDir(), 'data/real-photos');
  return readdirSync(root)
    .sort()
    .flatMap((d) => readdirSync(path.join(root, d)).sort().map((f) => path.join(root, d, f)));
}

export const photo = (name = 'aipnd-dogs/Beagle_01125.jpg'): Buffer => readFileSync(path.join(sharedDir(), 'data/real-photos', name));

/** A labels file for the 1000 ImageNet classes of the shared MobileNetV2: "PREFIX-0" ... "PREFIX-999". */
export function labelsFile(prefix: string): string {
  const file = path.join(tmpDir('kennel-labels-'), `${prefix}.txt`);
  writeFileSync(file, Array.from({ length: 1000 }, (_, i) => `${prefix}-${i}`).join('\n') + '\n');
  return file;
}

export const labels = (prefix: string): string[] => Array.from({ length: 1000 }, (_, i) => `${prefix}-${i}`);

/**
 * A workspace with the shared MobileNetV2 imported as model `name` (its logits get a Softmax
 * appended). Each call with the same name adds a version; `prefix` tells versions apart in answers.
 */
export async function workspaceWithModel(home: string, name = 'mnet', prefix = 'v1'): Promise<Workspace> {
  const ws = openWorkspace(home);
  await importModel(ws, mobilenetPath(), { name, labels: labels(prefix) });
  return ws;
}

/**
 * An API key that may invoke every endpoint, with a rate limit no test reaches (the data plane
 * answers 401 without a key, and a key gets 50 requests/s by default).
 */
export function invokeKey(ws: Workspace): string {
  return createKey(ws, 'tester', { allow: ['endpoint:Invoke:endpoint/*'], ratePerSecond: 100_000 }, { principal: 'local:test', plane: 'cli' }).key;
}

/** Headers that authenticate with `key`, for fetch. */
export const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

/** Kills a process group (a detached daemon and its replicas) and ignores one that is gone already. */
export function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/** Pids of the direct children of `pid` (replica processes of a daemon). */
export function childrenOf(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
}

/** Polls `check` until it returns a value (not undefined/false), or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const limit = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > limit) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface LoadResult {
  status: number;
  model?: string;
  variant?: string;
  label?: string;
  error?: string;
}

/**
 * Closed-loop load for tests: `concurrency` clients each POSTing photos back to back until
 * stop() is called. Every answer is kept, so a test can require zero failures.
 */
export function steadyLoad(url: string, key: string, concurrency: number, images: Buffer[] = [photo()]) {
  const results: LoadResult[] = [];
  let running = true;
  let n = 0;
  const client = async () => {
    while (running) {
      const image = images[n++ % images.length]!;
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...bearer(key) }, body: image });
        const body = (await res.json()) as { model?: string; variant?: string; predictions?: Array<{ label: string }>; error?: { message: string } };
        results.push({ status: res.status, model: body.model, variant: body.variant, label: body.predictions?.[0]?.label, error: body.error?.message });
      } catch (e) {
        results.push({ status: 0, error: (e as Error).message });
      }
    }
  };
  const clients = Array.from({ length: concurrency }, client);
  return {
    results,
    /** resolves once at least `count` more answers have arrived */
    async answers(count: number, timeoutMs = 60_000): Promise<void> {
      const target = results.length + count;
      await waitFor(`${count} answers`, () => results.length >= target, timeoutMs);
    },
    async stop(): Promise<LoadResult[]> {
      running = false;
      await Promise.all(clients);
      return results;
    },
  };
}

/** Answers that were not 200, with their errors, for assertion messages. */
export const failures = (rs: LoadResult[]): LoadResult[] => rs.filter((r) => r.status !== 200);

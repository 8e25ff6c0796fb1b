import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { addBackbone } from '../../src/backbones/index.ts';
import { importDataset } from '../../src/data/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { train } from '../../src/training/index.ts';
import { tune } from '../../src/tuning/index.ts';
import { repoRoot, sharedDir, tmpHome } from '../helpers/paths.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = path.join(repoRoot, 'test-artifacts');
const kennelBin = path.join(repoRoot, 'bin/kennel.js');

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * A workspace with breeds-mini imported, MobileNetV2 registered and a model trained on them
 * (breeds@1), a second training with other settings (breeds-fast@1) to compare with, and a small
 * tuning job that minimises valid loss.
 */
export async function trainedHome(): Promise<string> {
  const home = tmpHome();
  const ws = openWorkspace(home);
  try {
    await importDataset(ws, path.join(sharedDir(), 'data/breeds-mini'), { name: 'breeds' });
    await addBackbone(ws, path.join(sharedDir(), 'models/mobilenetv2-12-int8.onnx'), { name: 'mobilenetv2-12-int8' });
    await train(ws, { dataset: 'breeds', backbone: 'mobilenetv2-12-int8', epochs: 15 });
    await train(ws, { dataset: 'breeds', backbone: 'mobilenetv2-12-int8', name: 'breeds-fast', head: 'minibatch', epochs: 8, lr: 0.01, batchSize: 32 });
    await tune(ws, { dataset: 'breeds', backbone: 'mobilenetv2-12-int8', objective: 'valid.loss', strategy: 'random', maxTrials: 4, seed: 1 });
  } finally {
    ws.close();
  }
  return home;
}

export interface RunningDaemon {
  home: string;
  pid: number;
  adminUrl: string;
  dataUrl: string;
  token: string;
  stop(): void;
}

/** `kennel up --detach` (the built bin, as a user runs it) on free ports; stop() is `kennel down`, then SIGKILL of its group. */
export async function startDaemon(home: string): Promise<RunningDaemon> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const env = { ...process.env, KENNEL_HOME: home };
  const up = spawnSync(process.execPath, [kennelBin, 'up', '--port', String(port), '--admin-port', String(adminPort), '--detach', '--json'], { env, encoding: 'utf8', timeout: 90_000 });
  if (up.status !== 0) throw new Error(`kennel up failed: ${up.stderr}`);
  const state = JSON.parse(up.stdout) as { pid: number };
  return {
    home,
    pid: state.pid,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    dataUrl: `http://127.0.0.1:${port}`,
    token: readFileSync(path.join(home, 'daemon/admin-token'), 'utf8').trim(),
    stop() {
      spawnSync(process.execPath, [kennelBin, 'down'], { env, timeout: 30_000 });
      try {
        process.kill(-state.pid, 'SIGKILL'); // its replicas too, if down did not finish
      } catch {
        /* stopped */
      }
    },
  };
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update'] });
}

export const browserSkip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y chromium)`;

/** Runs a browser step; when it fails, a screenshot of the page is kept in test-artifacts/ (gitignored). */
export async function step<T>(page: Page, name: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `console-${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
    throw Object.assign(e as Error, { message: `${(e as Error).message}\n(screenshot: ${file})` });
  }
}

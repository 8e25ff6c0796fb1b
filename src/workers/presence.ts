import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, isAlive } from '../core/index.js';
import type { WorkerInfo } from './engine.js';

/** A worker not heard from for this long is not listed. */
export const HEARTBEAT_MS = 5_000;
const STALE_MS = 3 * HEARTBEAT_MS;

const dirOf = (home: string): string => join(home, 'workers');

interface PresenceFile {
  host: string;
  /** the coordinator's pid */
  pid: number;
  heartbeatAt: string;
  workers: WorkerInfo[];
}

/**
 * Heartbeats of local pools: each coordinator writes `KENNEL_HOME/workers/<host>-<pid>.json`
 * with its worker processes while it runs them, so `kennel workers list` can show them from
 * another shell.
 */
export class LocalPresence {
  private readonly file: string;
  private timer?: NodeJS.Timeout;

  constructor(
    home: string,
    private readonly snapshot: () => WorkerInfo[],
  ) {
    this.file = join(dirOf(home), `${hostname()}-${process.pid}.json`);
  }

  start(): void {
    if (this.timer) return;
    this.write();
    this.timer = setInterval(() => this.write(), HEARTBEAT_MS).unref();
  }

  write(): void {
    const heartbeatAt = new Date().toISOString();
    const file: PresenceFile = { host: hostname(), pid: process.pid, heartbeatAt, workers: this.snapshot().map((w) => ({ ...w, heartbeatAt })) };
    // not durable: the coordinator writes this on every task assignment, and a blocking fsync
    // there keeps idle workers waiting for their next task
    writeFileAtomic(this.file, JSON.stringify(file), undefined, { durable: false });
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    rmSync(this.file, { force: true });
  }
}

/** Local workers with a recent heartbeat whose coordinator is still alive (checked on this host). */
export function localWorkers(home: string): WorkerInfo[] {
  let files: string[];
  try {
    files = readdirSync(dirOf(home)).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  const out: WorkerInfo[] = [];
  for (const f of files) {
    try {
      const p = JSON.parse(readFileSync(join(dirOf(home), f), 'utf8')) as PresenceFile;
      const fresh = Date.now() - Date.parse(p.heartbeatAt) < STALE_MS;
      if (fresh && (p.host !== hostname() || isAlive(p.pid))) out.push(...p.workers);
    } catch {
      /* a file being replaced or left by a crash: skip it */
    }
  }
  return out;
}

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/index.js';

/** Where a running daemon is recorded: KENNEL_HOME/daemon/{daemon.json, daemon.pid, admin-token, daemon.log}. */
export interface DaemonPaths {
  dir: string;
  state: string;
  pid: string;
  token: string;
  log: string;
}

export function daemonPaths(home: string): DaemonPaths {
  const dir = join(home, 'daemon');
  return { dir, state: join(dir, 'daemon.json'), pid: join(dir, 'daemon.pid'), token: join(dir, 'admin-token'), log: join(dir, 'daemon.log') };
}

/** What the CLI needs to reach a running daemon. */
export interface DaemonState {
  pid: number;
  host: string;
  port: number;
  adminPort: number;
  startedAt: string;
  /** the data plane's image size limit, so clients refuse a larger image before sending it (absent: written by an older daemon) */
  maxImageBytes?: number;
}

export function readState(home: string): DaemonState | undefined {
  const p = daemonPaths(home);
  if (!existsSync(p.state)) return undefined;
  try {
    return JSON.parse(readFileSync(p.state, 'utf8')) as DaemonState;
  } catch {
    return undefined;
  }
}

export function writeState(home: string, state: DaemonState): void {
  const p = daemonPaths(home);
  writeFileAtomic(p.state, JSON.stringify(state, null, 2) + '\n', 0o600);
  writeFileAtomic(p.pid, `${state.pid}\n`, 0o600);
}

/** Removes the state files, only when they still describe this process (a newer daemon may have replaced them). */
export function clearState(home: string, pid = process.pid): void {
  const p = daemonPaths(home);
  if (readState(home)?.pid !== pid) return;
  rmSync(p.state, { force: true });
  rmSync(p.pid, { force: true });
}

export { isAlive } from '../core/index.js';

/** The admin token: created on the first start, readable by the owner only (mode 0600). */
export function ensureAdminToken(home: string): string {
  const p = daemonPaths(home);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  if (existsSync(p.token)) {
    chmodSync(p.token, 0o600);
    const token = readFileSync(p.token, 'utf8').trim();
    if (token.length >= 32) return token;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileAtomic(p.token, token + '\n', 0o600);
  return token;
}

export function readAdminToken(home: string): string | undefined {
  const p = daemonPaths(home);
  return existsSync(p.token) ? readFileSync(p.token, 'utf8').trim() : undefined;
}

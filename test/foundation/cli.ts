import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../helpers/paths.ts';

export const kennelBin = path.join(repoRoot, 'bin/kennel.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `kennel` bin (npm test builds first) with KENNEL_HOME = home. */
export function kennel(home: string, args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [kennelBin, ...args], { env: { ...process.env, KENNEL_HOME: home, ...env }, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function kennelJson<T = Record<string, unknown>>(home: string, args: string[], env: Record<string, string> = {}): T {
  const r = kennel(home, [...args, '--json'], env);
  if (r.code !== 0) throw new Error(`kennel ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export { spawn };

import { readFileSync } from 'node:fs';

/** Whether a process of this host is running (a zombie nobody reaped counts as exited). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // an exited process nobody has reaped yet still answers signal 0
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

let version: string | undefined;
/** Kennel's version, from its package.json (src/ and dist/ are both one level below it). */
export const kennelVersion = (): string => (version ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);

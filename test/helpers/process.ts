import { existsSync, readFileSync } from 'node:fs';

/** A process's state letter in /proc/PID/stat (R, S, T stopped, Z zombie), or undefined once it is gone. */
export function processState(pid: number): string | undefined {
  const file = `/proc/${pid}/stat`;
  if (!existsSync(file)) return undefined;
  try {
    const stat = readFileSync(file, 'utf8');
    // the command name in parentheses may hold spaces and parentheses: the state follows the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

import { KennelError, errorMessage } from './errors.js';
import * as Errors from './error-codes.js';

/** The operating-system (and SQLite) failures a user can act on, by code. */
const CODES = ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'SQLITE_FULL', 'SQLITE_READONLY'] as const;
type Code = (typeof CODES)[number];
/** as Node words them ("ENOSPC: no space left on device, write"), e.g. in a worker's error passed on as text */
const IN_TEXT = new RegExp(`\\b(${CODES.join('|')}): `);

/** The code of a system error, also when only its text came through (a worker process's error). */
function codeOf(e: unknown): Code | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (CODES as readonly string[]).includes(code)) return code as Code;
  if (/database or disk is full/i.test(errorMessage(e))) return 'SQLITE_FULL';
  return IN_TEXT.exec(errorMessage(e))?.[1] as Code | undefined;
}

/**
 * Disk full, quota, read-only, permissions and open-file limits as one sentence saying what is
 * wrong and what to free, in place of "ENOSPC: no space left on device, write". `home` is the
 * workspace (KENNEL_HOME) the failing work was writing to. Undefined for any other error.
 */
export function fromSystemError(e: unknown, opts: { home?: string } = {}): KennelError | undefined {
  const code = codeOf(e);
  if (!code) return undefined;
  // Node names the path last ("EACCES: permission denied, open '/x'"), also in a wrapping message
  const path = (e as { path?: unknown }).path ?? new RegExp(`${code}: [^']*'([^']+)'`).exec(errorMessage(e))?.[1];
  const home = opts.home ? `$KENNEL_HOME (${opts.home})` : 'the Kennel workspace';
  const where = typeof path === 'string' && !(opts.home && path.startsWith(opts.home)) ? path : home;
  const gc = 'run `kennel gc --yes` to remove unreferenced artifacts';
  switch (code) {
    case 'ENOSPC':
    case 'SQLITE_FULL':
      return Errors.DiskFull(`The disk holding ${where} is full: free space, or ${gc}.`);
    case 'EDQUOT':
      return Errors.DiskFull(`Your disk quota on the disk holding ${where} is used up: free space in it, or ${gc}.`);
    case 'EROFS':
    case 'SQLITE_READONLY':
      return Errors.ReadOnly(`${where} is on a read-only file system (or opened read-only), so Kennel cannot write to it.`, 'Point KENNEL_HOME at a writable folder, or remount it read-write.');
    case 'EACCES':
    case 'EPERM':
      return Errors.PermissionDenied(`Permission denied on ${where}.`, 'Give your user access to it (e.g. chown -R "$USER" on the folder), or point KENNEL_HOME at a folder you own.');
    case 'EMFILE':
    case 'ENFILE':
      return Errors.TooManyOpenFiles('Too many files are open at once (the process or system limit was reached).', 'Raise the limit (ulimit -n 65536), or run fewer Kennel commands at the same time.');
  }
}

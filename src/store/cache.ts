import { appendFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/index.js';
import { sha256File } from './artifacts.js';

/** Entries used this recently are never evicted: a caller may be about to read a path it was just given. */
const PINNED_MS = 60_000;
/** The verification record is started again past this size (its entries are then checked once more). */
const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** The kernel's id of this boot (Linux), undefined elsewhere. */
const BOOT_ID = (() => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
})();

/** What identifies a file's bytes between checks: entries are only ever renamed into place, never rewritten. */
const fingerprint = (st: Stats): string => `${st.ino}:${st.size}`;

/**
 * A bounded local read-through cache of a remote artifact store, on each machine: files named by
 * their sha256 like the workspace's own `artifacts/` folder, so an entry is never stale. The
 * least recently used entries go when the folder grows past `maxBytes` (down to 90% of it),
 * except entries used in the last minute, so the folder may briefly exceed its bound.
 *
 * Entries are written without fsync (they can always be fetched again); in exchange, each one is
 * checked against its name before it is first used after the machine started, so a file that a
 * crash of the machine left short or garbled is fetched again instead of trusted. Until then the
 * written bytes are what the kernel serves, so an entry checked (or written verified) in this boot
 * is recorded in `verified` with the boot's id and its inode and size, and a later process, such as
 * the next `kennel train`, trusts it without hashing it again. Without a boot id (not Linux), each
 * process checks each entry once.
 */
export class BlobCache {
  private total?: number;
  /** entries this process may use without a check */
  private readonly verified = new Set<string>();
  /** entries checked in this boot by any process: sha -> fingerprint */
  private readonly checkedThisBoot = new Map<string, string>();
  private readonly record: string;

  constructor(
    readonly root: string,
    readonly maxBytes: number,
    private readonly pinnedMs = PINNED_MS,
  ) {
    mkdirSync(root, { recursive: true });
    this.record = join(root, 'verified');
    this.loadRecord();
  }

  /** Reads the entries checked in this boot; a record of another boot (or none, or one grown too large) is started again. */
  private loadRecord(): void {
    if (!BOOT_ID) return;
    let lines: string[] = [];
    try {
      if (statSync(this.record).size <= MAX_RECORD_BYTES) lines = readFileSync(this.record, 'utf8').split('\n');
    } catch {
      /* none yet */
    }
    if (lines[0] !== BOOT_ID) {
      writeFileAtomic(this.record, `${BOOT_ID}\n`, 0o644, { durable: false });
      return;
    }
    for (const line of lines.slice(1)) {
      const [sha, print] = line.split(' ');
      if (sha && print && /^[0-9a-f]{64}$/.test(sha)) this.checkedThisBoot.set(sha, print);
    }
  }

  /** The entry at `path` holds the bytes named `sha`: this process and, in this boot, later ones trust it. */
  private markVerified(sha: string, path: string): void {
    this.verified.add(sha);
    if (!BOOT_ID) return;
    try {
      const print = fingerprint(statSync(path));
      this.checkedThisBoot.set(sha, print);
      // one short line per append: whole even with several processes appending at once
      appendFileSync(this.record, `${sha} ${print}\n`);
    } catch {
      /* evicted meanwhile, or the record is not writable: the next process checks it again */
    }
  }

  pathOf(sha: string): string {
    return join(this.root, sha.slice(0, 2), sha.slice(2));
  }

  /** The entry's path when it is present and intact (then marked as used), else undefined. */
  async lookup(sha: string): Promise<string | undefined> {
    const path = this.pathOf(sha);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) return undefined;
    if (!this.verified.has(sha)) {
      if (this.checkedThisBoot.get(sha) === fingerprint(st)) this.verified.add(sha);
      else {
        let actual: string | undefined;
        try {
          actual = await sha256File(path);
        } catch {
          return undefined; // evicted meanwhile by another process
        }
        if (actual !== sha) {
          this.remove(sha);
          return undefined;
        }
        this.markVerified(sha, path);
      }
    }
    this.touch(path);
    return path;
  }

  /** Adds verified bytes. */
  add(sha: string, data: Uint8Array): string {
    const path = this.pathOf(sha);
    const existed = existsSync(path);
    // a file this process has not checked yet is replaced by the verified bytes rather than trusted
    if (!existed || !this.verified.has(sha)) {
      writeFileAtomic(path, data, 0o444, { durable: false });
      this.markVerified(sha, path);
      if (!existed) this.grew(data.byteLength);
    } else this.touch(path);
    return path;
  }

  /** Moves a verified temp file (written by the caller under `tempDir()`) into place. */
  adopt(sha: string, tmp: string, bytes: number): string {
    const path = this.pathOf(sha);
    mkdirSync(join(this.root, sha.slice(0, 2)), { recursive: true });
    renameSync(tmp, path);
    this.markVerified(sha, path);
    this.grew(bytes);
    return path;
  }

  /** Where callers write temp files that they then adopt (same filesystem, so the rename is atomic). */
  tempDir(): string {
    const dir = join(this.root, 'tmp');
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  remove(sha: string): void {
    this.verified.delete(sha);
    this.checkedThisBoot.delete(sha);
    rmSync(this.pathOf(sha), { force: true });
    this.total = undefined;
  }

  private touch(path: string): void {
    try {
      const t = new Date();
      utimesSync(path, t, t);
    } catch {
      /* evicted meanwhile: the caller fetches it again next time */
    }
  }

  private grew(bytes: number): void {
    this.total = (this.total ?? this.scan().reduce((n, e) => n + e.bytes, 0) - bytes) + bytes;
    if (this.total > this.maxBytes) this.evict();
  }

  private scan(): Array<{ sha: string; bytes: number; usedAt: number }> {
    const out: Array<{ sha: string; bytes: number; usedAt: number }> = [];
    for (const dir of safeReaddir(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(dir)) continue;
      for (const name of safeReaddir(join(this.root, dir))) {
        const st = lstatSync(join(this.root, dir, name), { throwIfNoEntry: false });
        if (st?.isFile() && /^[0-9a-f]{62}$/.test(name)) out.push({ sha: dir + name, bytes: st.size, usedAt: st.mtimeMs });
      }
    }
    return out;
  }

  /** Removes least recently used entries until the cache holds 90% of its bound (or only pinned entries are left). */
  private evict(): void {
    const entries = this.scan().sort((a, b) => a.usedAt - b.usedAt);
    let total = entries.reduce((n, e) => n + e.bytes, 0);
    const target = this.maxBytes * 0.9;
    const pinnedSince = Date.now() - this.pinnedMs;
    for (const e of entries) {
      if (total <= target) break;
      if (e.usedAt >= pinnedSince) break; // sorted: everything after is newer
      rmSync(this.pathOf(e.sha), { force: true });
      this.verified.delete(e.sha);
      this.checkedThisBoot.delete(e.sha);
      total -= e.bytes;
    }
    this.total = total;
  }

  /** Bytes held now (a scan of the folder). */
  bytes(): number {
    return this.scan().reduce((n, e) => n + e.bytes, 0);
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

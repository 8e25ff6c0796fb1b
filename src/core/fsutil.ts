import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';

/** A temp path beside `target`, so the final rename stays on one filesystem (and so is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Writes a file atomically: temp file, fsync, rename. Readers see the old or the new file, never
 * half. `durable: false` skips the fsyncs, for state that is rewritten every second anyway (a
 * heartbeat): an fsync can block for tens of milliseconds while other processes write.
 */
export function writeFileAtomic(target: string, data: Uint8Array | string, mode?: number, opts: { durable?: boolean } = {}): void {
  const durable = opts.durable ?? true;
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fd = openSync(tmp, 'w', mode);
  let open = true;
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    if (durable) fsyncSync(fd);
    open = false;
    closeSync(fd);
    renameSync(tmp, target);
  } catch (e) {
    if (open) closeSync(fd);
    rmSync(tmp, { force: true }); // a full disk must not keep the half-written temp file
    throw e;
  }
  if (durable) fsyncDir(dirname(target));
}

/**
 * writeFileAtomic on the libuv pool: for a caller that writes many files at once (an import's
 * images), where each one's open, write and rename on the event loop would hold it up.
 */
export async function writeFileAtomicAsync(target: string, data: Uint8Array, mode?: number, opts: { durable?: boolean } = {}): Promise<void> {
  const durable = opts.durable ?? true;
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, 'w', mode);
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true }); // a full disk must not keep the half-written temp file
    throw e;
  }
  if (durable) fsyncDir(dirname(target));
}

/** Makes a rename durable. Some filesystems refuse fsync on directories; that only loses durability, not atomicity. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

import { createWriteStream, mkdirSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { basename, dirname, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { Errors, CancelledError, KennelError, errorMessage, type ProgressSink } from '../core/index.js';
import { isIgnored } from './layout.js';

export interface ExtractOptions {
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** entries larger than this are not extracted but listed in `oversized` */
  maxEntryBytes: number;
  /** how messages name the archive (e.g. the URL it came from), default its file name */
  label?: string;
}

export interface ExtractResult {
  /** entries left in the archive because they are over maxEntryBytes (paths inside the zip) */
  oversized: Array<{ path: string; bytes: number }>;
}

/** bytes kept free on the disk after extraction, so Kennel never fills it completely */
const DISK_MARGIN = 256 * 1024 * 1024;
const S_IFMT = 0o170000;
/** yauzl's messages for entry names it refuses, and ours for one resolving outside destDir */
const UNSAFE_NAME = /^(invalid relative path|absolute path|invalid characters in fileName)/;
const S_IFLNK = 0o120000;

/**
 * Extracts a zip archive into `destDir`, streaming entry by entry. Refuses archives with paths
 * that would land outside destDir (zip-slip) and archives whose declared size does not fit on
 * the disk; yauzl checks every entry's real size against its declared one while reading, so a
 * zip bomb cannot lie its way past that check.
 */
export async function extractZip(zipPath: string, destDir: string, opts: ExtractOptions): Promise<ExtractResult> {
  const name = opts.label ?? basename(zipPath);
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(zipPath, { lazyEntries: true, autoClose: false, validateEntrySizes: true });
  } catch (e) {
    throw Errors.InvalidRequest(`${name} is not a readable zip file: ${errorMessage(e)}.`, 'Download it again, or unpack it yourself and import the folder.');
  }
  try {
    const root = resolve(destDir);
    const entries: yauzl.Entry[] = [];
    const oversized: ExtractResult['oversized'] = [];
    try {
      for await (const entry of zip.eachEntry()) {
        if (entry.fileName.endsWith('/') || entry.fileName.split('/').some(isIgnored) || isSymlink(entry)) continue;
        const target = resolve(root, entry.fileName);
        if (!target.startsWith(root + sep)) throw new Error(`invalid relative path: ${entry.fileName}`);
        if (entry.uncompressedSize > opts.maxEntryBytes) oversized.push({ path: entry.fileName, bytes: entry.uncompressedSize });
        else entries.push(entry);
      }
    } catch (e) {
      if (e instanceof KennelError) throw e;
      const msg = errorMessage(e);
      if (UNSAFE_NAME.test(msg)) throw Errors.InvalidRequest(`${name} contains an unsafe path (${msg}); refusing to extract it.`, 'Only use archives from sources you trust.');
      throw Errors.InvalidRequest(`${name} is not a valid zip file: ${msg}.`, 'Download it again, or unpack it yourself and import the folder.');
    }

    const declared = entries.reduce((sum, e) => sum + e.uncompressedSize, 0);
    mkdirSync(root, { recursive: true });
    const fs = await statfs(root);
    const free = fs.bavail * fs.bsize;
    if (declared > free - DISK_MARGIN) {
      throw Errors.InvalidRequest(
        `${name} expands to ${gb(declared)} but only ${gb(free)} are free in ${root}.`,
        'Free some disk space, or unpack a part of the archive yourself and import that folder.',
      );
    }

    const progress = opts.progress ?? (() => {});
    progress({ phase: 'extract', done: 0, total: entries.length });
    for (const [i, entry] of entries.entries()) {
      if (opts.signal?.aborted) throw new CancelledError();
      if (entry.isEncrypted()) throw Errors.InvalidRequest(`${name} is encrypted (${entry.fileName}).`, 'Unpack it yourself with its password and import the folder.');
      const target = resolve(root, entry.fileName);
      mkdirSync(dirname(target), { recursive: true });
      try {
        await pipeline(await zip.openReadStreamPromise(entry), createWriteStream(target));
      } catch (e) {
        throw Errors.InvalidRequest(`could not extract ${entry.fileName} from ${name}: ${errorMessage(e)}.`, 'The archive is damaged; download it again.');
      }
      progress({ phase: 'extract', done: i + 1, total: entries.length });
    }
    return { oversized };
  } finally {
    zip.close();
  }
}

function isSymlink(entry: yauzl.Entry): boolean {
  // links are never followed out of an archive; they cannot be images anyway
  return ((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK;
}

const gb = (n: number): string => `${(n / 1e9).toFixed(1)} GB`;

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Errors, assertExpected, downloadFile, CancelledError, KennelError, type ProgressSink } from '../core/index.js';
import { sha256, sha256File, type Workspace } from '../store/index.js';
import { extractZip, type ExtractResult } from './zip.js';

/** A dataset source made available as a local folder. */
export interface PreparedSource {
  dir: string;
  /** what the version records as its source: an absolute path or the URL */
  source: string;
  /** entries left in a zip for being too large (paths inside the zip) */
  oversized: ExtractResult['oversized'];
  /** removes scratch files; a finished download is removed only after a successful import */
  release(succeeded: boolean): void;
}

interface SourceOptions {
  progress?: ProgressSink;
  signal?: AbortSignal;
  expectedSize?: number;
  sha256?: string;
  maxBytes: number;
}

const SOURCE_HINT = 'Give a folder of class folders, a .zip file of one, or an http(s) URL of such a zip.';

/**
 * Resolves a folder, a zip file or an http(s) URL of a zip. A URL is downloaded into
 * `<home>/downloads/`, named after the URL, so rerunning the same command resumes an interrupted
 * download, and a download that finished before a failed import is not fetched again.
 */
export async function prepareSource(ws: Workspace, source: string, opts: SourceOptions): Promise<PreparedSource> {
  if (/^https?:\/\//i.test(source)) {
    const dest = join(ws.home, 'downloads', `${sha256(source).slice(0, 16)}.zip`);
    await downloadFile(source, dest, { expectedSize: opts.expectedSize, sha256: opts.sha256, progress: opts.progress, signal: opts.signal, reuse: true });
    return fromZip(ws, dest, source, opts, dest);
  }
  const path = resolve(/^file:\/\//i.test(source) ? fileURLToPath(source) : source);
  if (!existsSync(path)) throw Errors.NotFound(`${source} does not exist.`, SOURCE_HINT);
  if (statSync(path).isDirectory()) {
    if (opts.expectedSize !== undefined || opts.sha256 !== undefined) {
      throw Errors.InvalidRequest(`--size and --sha256 check a zip file or a download, but ${source} is a folder.`, 'Leave them out for a folder.');
    }
    return { dir: path, source: path, oversized: [], release() {} };
  }
  if (!(await isZip(path))) throw Errors.InvalidRequest(`${source} is neither a folder nor a zip file.`, SOURCE_HINT);
  if (opts.expectedSize !== undefined || opts.sha256 !== undefined) {
    assertExpected(source, { bytes: statSync(path).size, sha256: opts.sha256 ? await sha256File(path) : '' }, opts);
  }
  return fromZip(ws, path, path, opts);
}

/** an extraction folder this old was left by a killed import (live ones are removed when done) */
const STALE_MS = 24 * 3600 * 1000;

function removeStaleExtractions(tmpDir: string): void {
  for (const name of readdirSync(tmpDir)) {
    const path = join(tmpDir, name);
    if (name.startsWith(EXTRACT_PREFIX) && Date.now() - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true });
  }
}

const EXTRACT_PREFIX = 'import-';

async function fromZip(ws: Workspace, zipPath: string, source: string, opts: SourceOptions, download?: string): Promise<PreparedSource> {
  removeStaleExtractions(ws.tmpDir);
  const dir = join(ws.tmpDir, `${EXTRACT_PREFIX}${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    const { oversized } = await extractZip(zipPath, dir, { progress: opts.progress, signal: opts.signal, maxEntryBytes: opts.maxBytes, label: source });
    return {
      dir,
      source,
      oversized,
      release(succeeded) {
        cleanup();
        if (succeeded && download) rmSync(download, { force: true });
      },
    };
  } catch (e) {
    cleanup();
    // a download that is not a usable zip would otherwise be reused by every rerun
    if (download && !(e instanceof CancelledError)) rmSync(download, { force: true });
    throw e;
  }
}

/** Zip files start with a local file header, or with the end record when empty. */
async function isZip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(4), 0, 4, 0);
    const magic = buffer.readUInt32LE(0);
    return bytesRead === 4 && (magic === 0x04034b50 || magic === 0x06054b50);
  } finally {
    await fh.close();
  }
}

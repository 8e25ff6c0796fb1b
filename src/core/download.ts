import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CancelledError, KennelError, errorMessage } from './errors.js';
import * as Errors from './error-codes.js';
import { fsyncDir } from './fsutil.js';
import type { ProgressSink } from './progress.js';

export interface DownloadOptions {
  /** size in bytes the finished file must have */
  expectedSize?: number;
  /** hex sha256 the finished file must have */
  sha256?: string;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** progress phase name, default "download" */
  label?: string;
  /**
   * Use a file already at `dest` instead of fetching again (after checking it against sha256 and
   * expectedSize when given). An existing dest is always reused when sha256 is given and matches.
   */
  reuse?: boolean;
  /** give up when no data arrives for this long, default 60 s */
  idleTimeoutMs?: number;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** true when an earlier partial download was continued instead of restarted */
  resumed: boolean;
}

const MAX_REDIRECTS = 5;
const SHA256_HEX = /^[0-9a-f]{64}$/i;

/**
 * Downloads `url` (http, https, file:// or a local path) to `dest`. Bytes go to `dest.part`
 * first, so an interrupted download is continued with a Range request on the next call; the
 * finished file is checked against expectedSize/sha256 and only then renamed to `dest`.
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  if (opts.sha256 !== undefined && !SHA256_HEX.test(opts.sha256)) {
    throw Errors.InvalidRequest(`"${opts.sha256}" is not a sha256 digest.`, 'A sha256 is 64 hexadecimal digits, as printed by `sha256sum FILE`.');
  }
  const expected = { expectedSize: opts.expectedSize, sha256: opts.sha256?.toLowerCase() };
  if (existsSync(dest) && (opts.reuse || expected.sha256)) {
    const existing = await reuseExisting(dest, expected);
    if (existing) return existing;
  }
  mkdirSync(dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  const label = opts.label ?? 'download';
  const progress = opts.progress ?? (() => {});

  let offset = existsSync(part) ? statSync(part).size : 0;
  if (expected.expectedSize !== undefined && offset > expected.expectedSize) offset = 0; // a stale, longer part: start over
  const fh = await open(part, offset > 0 ? 'r+' : 'w');
  let hash = createHash('sha256');
  let resumed = false;
  let written = 0;
  try {
    if (offset > 0) await hashFileInto(part, offset, hash);
    const body = await openBody(url, offset, opts);
    if (body.start !== offset) {
      // the source could not continue from `offset`: start the file again
      await fh.truncate(0);
      hash = createHash('sha256');
    }
    resumed = offset > 0 && body.start === offset;
    written = body.start;
    const total = body.total;
    if (total !== undefined && expected.expectedSize !== undefined && total !== expected.expectedSize) {
      body.discard();
      throw mismatch(url, `is ${total} bytes but ${expected.expectedSize} were expected`, part);
    }
    const report = () => {
      if (total !== undefined) progress({ phase: label, done: written, total });
    };
    report();
    for await (const chunk of body.chunks) {
      // a server that sends more than promised is cut off rather than allowed to fill the disk
      if (expected.expectedSize !== undefined && written + chunk.length > expected.expectedSize) {
        body.discard();
        throw mismatch(url, `is more than the ${expected.expectedSize} bytes expected`, part);
      }
      await writeAll(fh, chunk as Buffer, written);
      hash.update(chunk as Buffer);
      written += (chunk as Buffer).length;
      report();
      if (opts.signal?.aborted) throw new CancelledError();
    }
    if (total !== undefined && written < total) {
      throw new Error(`the connection closed after ${written} of ${total} bytes`);
    }
    await fh.sync();
  } catch (e) {
    await fh.close();
    if (e instanceof KennelError || e instanceof CancelledError) throw e;
    if (opts.signal?.aborted) throw new CancelledError();
    const reason = isCut(e) ? `the connection was cut after ${written} bytes` : errorMessage(e).replace(/\.$/, '');
    throw Errors.DownloadFailed(`could not download ${url}: ${reason}.`, 'Run the same command again to resume the download.');
  }
  await fh.close();

  const digest = hash.digest('hex');
  try {
    assertExpected(url, { bytes: written, sha256: digest }, expected);
  } catch (e) {
    rmSync(part, { force: true });
    throw e;
  }
  progress({ phase: label, done: written, total: written });
  renameSync(part, dest);
  fsyncDir(dirname(dest));
  return { path: dest, bytes: written, sha256: digest, resumed };
}

/** node reports a connection dropped mid-body as "aborted" or ECONNRESET */
function isCut(e: unknown): boolean {
  return (e as NodeJS.ErrnoException).code === 'ECONNRESET' || errorMessage(e) === 'aborted';
}

/**
 * Throws a KennelError when a finished file does not have the expected size or sha256. Shared by
 * downloads and by importers that take a local archive with the same --size/--sha256 checks.
 */
export function assertExpected(what: string, actual: { bytes: number; sha256: string }, expected: { expectedSize?: number; sha256?: string }): void {
  if (expected.expectedSize !== undefined && actual.bytes !== expected.expectedSize) {
    throw mismatch(what, `is ${actual.bytes} bytes but ${expected.expectedSize} were expected`);
  }
  if (expected.sha256 !== undefined && actual.sha256 !== expected.sha256.toLowerCase()) {
    throw mismatch(what, `has sha256 ${actual.sha256} but ${expected.sha256.toLowerCase()} was expected`);
  }
}

function mismatch(what: string, problem: string, partToDelete?: string): KennelError {
  if (partToDelete) rmSync(partToDelete, { force: true });
  return Errors.ChecksumMismatch(
    `the file from ${what} ${problem}.`,
    'The file is corrupted or was replaced (the bad copy was deleted); check the URL and the expected --size/--sha256, then run again.',
  );
}

async function reuseExisting(dest: string, expected: { expectedSize?: number; sha256?: string }): Promise<DownloadResult | undefined> {
  const bytes = statSync(dest).size;
  if (expected.expectedSize !== undefined && bytes !== expected.expectedSize) return undefined;
  const hash = createHash('sha256');
  await hashFileInto(dest, bytes, hash);
  const digest = hash.digest('hex');
  if (expected.sha256 !== undefined && digest !== expected.sha256) return undefined;
  return { path: dest, bytes, sha256: digest, resumed: false };
}

function hashFileInto(path: string, length: number, hash: Hash): Promise<void> {
  return new Promise((res, rej) => {
    createReadStream(path, { start: 0, end: length - 1 })
      .on('data', (c) => hash.update(c))
      .on('error', rej)
      .on('end', () => res());
  });
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    off += bytesWritten;
  }
}

/** A stream of the source's bytes starting at `start` (0 when the source ignored the requested offset). */
interface Body {
  start: number;
  /** full size of the resource, when the source says */
  total?: number;
  chunks: AsyncIterable<Buffer | string>;
  discard(): void;
}

const EMPTY: AsyncIterable<Buffer> = { async *[Symbol.asyncIterator]() {} };

function openBody(url: string, offset: number, opts: DownloadOptions): Promise<Body> {
  if (/^https?:\/\//i.test(url)) return openHttpBody(url, offset, opts);
  const path = /^file:\/\//i.test(url) ? fileURLToPath(url) : resolve(url);
  return Promise.resolve(openFileBody(path, offset));
}

function openFileBody(path: string, offset: number): Body {
  if (!existsSync(path)) throw Errors.NotFound(`${path} does not exist.`, 'Check the path, or give an http(s) URL.');
  const size = statSync(path).size;
  const start = offset <= size ? offset : 0;
  if (start === size) return { start, total: size, chunks: EMPTY, discard() {} };
  const stream = createReadStream(path, { start });
  return { start, total: size, chunks: stream, discard: () => stream.destroy() };
}

async function openHttpBody(url: string, offset: number, opts: DownloadOptions): Promise<Body> {
  let res = await get(url, offset, opts);
  if (res.statusCode === 416) {
    // nothing left to send: the part is complete when it already has the full size
    const total = parseTotal(res.headers['content-range']);
    res.resume();
    if (total === offset) return { start: offset, total, chunks: EMPTY, discard() {} };
    res = await get(url, 0, opts);
  } else if (res.statusCode === 206 && parseStart(res.headers['content-range']) !== offset) {
    res.resume();
    res = await get(url, 0, opts);
  }
  const status = res.statusCode ?? 0;
  if (status === 206) {
    return { start: offset, total: parseTotal(res.headers['content-range']), chunks: res, discard: () => res.destroy() };
  }
  if (status === 200) {
    const length = Number(res.headers['content-length']);
    return { start: 0, total: Number.isFinite(length) && res.headers['content-length'] !== undefined ? length : undefined, chunks: res, discard: () => res.destroy() };
  }
  res.resume();
  throw new Error(`the server answered ${status} ${res.statusMessage ?? ''}`.trim());
}

/** GET with redirects followed; resolves with the final response, whatever its status. */
async function get(url: string, offset: number, opts: DownloadOptions): Promise<IncomingMessage> {
  let current = new URL(url);
  for (let hop = 0; ; hop++) {
    const res = await request(current, offset, opts);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (![301, 302, 303, 307, 308].includes(status) || !location) return res;
    res.resume();
    if (hop >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(location, current);
    if (current.protocol === 'https:' && next.protocol !== 'https:') throw new Error(`refusing to follow a redirect from https to ${next.protocol}`);
    current = next;
  }
}

function request(url: URL, offset: number, opts: DownloadOptions): Promise<IncomingMessage> {
  const client = url.protocol === 'https:' ? https : http;
  const idle = opts.idleTimeoutMs ?? 60_000;
  return new Promise((res, rej) => {
    const req = client.get(url, { headers: offset > 0 ? { Range: `bytes=${offset}-` } : {}, signal: opts.signal }, res);
    req.on('error', rej);
    req.setTimeout(idle, () => req.destroy(new Error(`no data received for ${Math.round(idle / 1000)} s`)));
  });
}

/** "bytes 100-199/200" or "bytes *\/200" → 200 */
function parseTotal(contentRange: string | undefined): number | undefined {
  const m = /\/(\d+)\s*$/.exec(contentRange ?? '');
  return m ? Number(m[1]) : undefined;
}

function parseStart(contentRange: string | undefined): number | undefined {
  const m = /^bytes\s+(\d+)-/.exec(contentRange ?? '');
  return m ? Number(m[1]) : undefined;
}

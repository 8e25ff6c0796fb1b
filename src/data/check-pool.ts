import { availableParallelism } from 'node:os';
import { ChildGoneError, ChildPool, decodeWorkerCount, mapLimit } from '../core/index.js';
import { LocalArtifactStore } from '../store/index.js';
import { checkImage, type ImageCheck, type ImageLimits } from './images.js';

/** A check worker's job: files checked in order. */
export interface CheckJob {
  paths: string[];
  limits: ImageLimits;
  /** a local artifact store's folder: the worker puts the good files there itself (not yet durable), and their bytes do not come back */
  store?: string;
}

/**
 * A file's check: a good file's bytes, or, where a check worker put it in the store itself,
 * whether the store held it before (`stored`).
 */
export type CheckedImage = ImageCheck | { ok: true; stored: 'new' | 'existing'; sha256: string; width: number; height: number; format: string };

/** Checks a job's files in a check worker, and puts the good ones into the job's store where it names one. */
export async function runCheckJob({ paths, limits, store }: CheckJob): Promise<Buffer[]> {
  const target = store === undefined ? undefined : new LocalArtifactStore(store);
  return encodeChecks(
    await Promise.all(
      paths.map(async (path): Promise<CheckedImage> => {
        const check = await checkImage(path, limits);
        if (!check.ok || !target) return check;
        const stored = await target.putHashed(check.sha256, check.bytes, { durable: false });
        return { ok: true, stored, sha256: check.sha256, width: check.width, height: check.height, format: check.format };
      }),
    ),
  );
}

/** images checked at once in this process: decoding and hashing run on the libuv pool, so this keeps it busy */
const CHECKS_IN_PROCESS = Math.max(4, availableParallelism());
/** files per job: enough to amortise a message, few enough that the workers' shares stay even */
const FILES_PER_JOB = 16;

type CheckHeader = Exclude<CheckedImage, { bytes: Buffer }> | { ok: true; sha256: string; width: number; height: number; format: string; length: number };

/** A job's answer, in parts: a JSON header's length (4 bytes), the header (one entry per file), then the bytes of the good files not stored, in order. */
function encodeChecks(checks: CheckedImage[]): Buffer[] {
  const header = Buffer.from(JSON.stringify(checks.map((c): CheckHeader => (c.ok && 'bytes' in c ? { ok: true, sha256: c.sha256, width: c.width, height: c.height, format: c.format, length: c.bytes.length } : c))));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  return [length, header, ...checks.flatMap((c) => (c.ok && 'bytes' in c ? [c.bytes] : []))];
}

function decodeChecks(bytes: Uint8Array): CheckedImage[] {
  const answer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerEnd = 4 + answer.readUInt32LE(0);
  let offset = headerEnd;
  return (JSON.parse(answer.subarray(4, headerEnd).toString()) as CheckHeader[]).map((h) => {
    if (!h.ok || !('length' in h)) return h;
    const bytes = answer.subarray(offset, offset + h.length);
    offset += h.length;
    return { ok: true, bytes, sha256: h.sha256, width: h.width, height: h.height, format: h.format };
  });
}

/**
 * Checks files (checkImage) with every core: in this process on its libuv pool, or for many
 * images on a machine of many cores in check worker processes (decodeWorkerCount), which one
 * process's decoding and event loop cannot keep up with. Given a local artifact store's folder
 * (`store`), the workers put the good files there themselves, in parallel, and only their
 * digests come back. `onChecked` is called as each file's check ends, in no particular order;
 * resolves when all have been.
 */
export async function checkImages(paths: string[], limits: ImageLimits, onChecked: (index: number, check: CheckedImage) => Promise<void>, opts: { signal?: AbortSignal; store?: string } = {}): Promise<void> {
  const { signal, store } = opts;
  const workers = decodeWorkerCount(paths.length);
  if (workers === 0) {
    await mapLimit(paths, CHECKS_IN_PROCESS, (path, i) => checkImage(path, limits).then((c) => onChecked(i, c)), signal);
    return;
  }
  const pool = await ChildPool.start<CheckJob>({ entry: new URL('./check-worker.js', import.meta.url), size: workers, name: 'check worker' });
  try {
    const jobs: number[] = [];
    for (let start = 0; start < paths.length; start += FILES_PER_JOB) jobs.push(start);
    // two jobs a worker: each has the next in hand when one ends
    const run = async (files: string[]) => decodeChecks(await pool.run({ paths: files, limits, store }));
    await mapLimit(jobs, 2 * workers, async (start) => {
      const checks = await checkOrIsolate(run, paths.slice(start, start + FILES_PER_JOB));
      await Promise.all(checks.map((c, k) => onChecked(start + k, c)));
    }, signal);
  } finally {
    await pool.close();
  }
}

/** The reason given for a file that a check worker died on, alone. */
export const CRASHED_DECODER = 'the image decoder crashed on it';

/**
 * Checks `files` with `run` (one worker job). A job whose worker died is run again file by file,
 * so that only a file that kills a worker on its own is refused (CRASHED_DECODER), and the others
 * are checked: a hostile file costs one worker, not the import.
 */
export async function checkOrIsolate(run: (files: string[]) => Promise<CheckedImage[]>, files: string[]): Promise<CheckedImage[]> {
  try {
    return await run(files);
  } catch (e) {
    if (!(e instanceof ChildGoneError)) throw e;
    if (files.length === 1) return [{ ok: false, reason: CRASHED_DECODER }];
    const checks: CheckedImage[] = [];
    for (const file of files) checks.push(...(await checkOrIsolate(run, [file])));
    return checks;
  }
}

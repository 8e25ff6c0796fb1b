import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { copyFile, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDir, mapLimit, tempPathFor, writeFileAtomicAsync } from '../core/index.js';

/**
 * Content-addressed artifact storage: every blob is named by its sha256. Every area talks only
 * to this interface: the workspace folder (LocalArtifactStore, the embedded default) or an
 * S3-compatible bucket with a local read-through cache (S3ArtifactStore, src/store/s3.ts).
 */
export interface ArtifactStore {
  /**
   * Stores bytes, returns their sha256 (a no-op when already present). With `durable: false`
   * the bytes may still sit in the OS's cache: the caller then calls `sync` with the digests
   * before it records them anywhere (one flush for many blobs instead of one each).
   */
  put(data: Uint8Array, opts?: { durable?: boolean }): Promise<string>;
  /**
   * makes blobs put with `durable: false` durable (a store that is always durable needs none):
   * their bytes, then their names. `only` does one of the two: a caller can flush bytes while it
   * writes more, and the names (a folder each, shared by many blobs) once at the end.
   */
  sync?(shas: readonly string[], opts?: { only?: 'bytes' | 'names' }): Promise<void>;
  /** copies a local file in, returns its sha256 */
  putFile(path: string): Promise<string>;
  /** asynchronous, as a remote store's HEAD request is */
  has(sha: string): Promise<boolean>;
  /** about to check and store about this many blobs: a remote store may list what it holds once instead of asking per blob */
  preload?(expectedBlobs: number): Promise<void>;
  get(sha: string): Promise<Uint8Array>;
  /** a local filesystem path with the blob's bytes (for libraries that read files) */
  localPath(sha: string): Promise<string>;
  /** a remote store checks that it can be reached (fails with one clear sentence if not) */
  ready?(): Promise<void>;
  /** releases connections (a remote store's client) */
  close?(): void;
}

const SHA = /^[0-9a-f]{64}$/;
/** fsyncs in flight at once: enough for the journal to batch them, bounded by the libuv pool anyway */
const SYNC_CONCURRENCY = 64;

export class LocalArtifactStore implements ArtifactStore {
  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  pathOf(sha: string): string {
    if (!SHA.test(sha)) throw new Error(`not a sha256 digest: ${sha}`);
    return join(this.root, sha.slice(0, 2), sha.slice(2));
  }

  async has(sha: string): Promise<boolean> {
    return this.present(sha);
  }

  private present(sha: string): boolean {
    return existsSync(this.pathOf(sha));
  }

  /**
   * Whether the blob is stored already; if so it is touched, so that the garbage collector,
   * which spares recently changed files, does not remove a blob a writer has just reused.
   */
  private reused(sha: string): boolean {
    if (!this.present(sha)) return false;
    try {
      const t = new Date();
      utimesSync(this.pathOf(sha), t, t);
    } catch {
      /* another user's blob: only its age is not refreshed */
    }
    return true;
  }

  async put(data: Uint8Array, opts: { durable?: boolean } = {}): Promise<string> {
    const sha = createHash('sha256').update(data).digest('hex');
    await this.putHashed(sha, data, opts);
    return sha;
  }

  /**
   * Stores bytes whose sha256 the caller has just computed from them (an import's check worker
   * hashes each image once), and says whether this store lacked them.
   */
  async putHashed(sha: string, data: Uint8Array, opts: { durable?: boolean } = {}): Promise<'new' | 'existing'> {
    if (this.reused(sha)) return 'existing';
    await writeFileAtomicAsync(this.pathOf(sha), data, 0o444, { durable: opts.durable ?? true });
    return 'new';
  }

  /**
   * fsyncs the blobs and then their folders, many at once on the libuv pool: concurrent fsyncs
   * share the filesystem's journal commits, where one per file in turn costs a commit each
   * (measured: a 1,200-image import 18 s -> see docs/BENCHMARKS.md).
   */
  async sync(shas: readonly string[], opts: { only?: 'bytes' | 'names' } = {}): Promise<void> {
    const files = [...new Set(shas)].map((sha) => this.pathOf(sha));
    const folders = [...new Set(files.map((f) => dirname(f)))];
    for (const paths of opts.only === 'bytes' ? [files] : opts.only === 'names' ? [folders] : [files, folders])
      await mapLimit(paths, SYNC_CONCURRENCY, async (path) => {
        const fh = await open(path, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      });
  }

  async putFile(path: string): Promise<string> {
    const sha = await sha256File(path);
    if (this.reused(sha)) return sha;
    const target = this.pathOf(sha);
    mkdirSync(join(this.root, sha.slice(0, 2)), { recursive: true });
    const tmp = tempPathFor(target);
    try {
      await copyFile(path, tmp);
      const fh = await open(tmp, 'r+');
      await fh.sync();
      await fh.close();
      renameSync(tmp, target);
      fsyncDir(join(this.root, sha.slice(0, 2)));
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    return sha;
  }

  async get(sha: string): Promise<Uint8Array> {
    return readFileSync(this.pathOf(sha));
  }

  async localPath(sha: string): Promise<string> {
    const p = this.pathOf(sha);
    statSync(p);
    return p;
  }
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

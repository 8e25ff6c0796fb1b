import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { Errors, KennelError, tempPathFor } from '../core/index.js';
import { sha256File, type ArtifactStore } from './artifacts.js';
import { BlobCache } from './cache.js';

type Sdk = typeof import('@aws-sdk/client-s3');

const SHA = /^[0-9a-f]{64}$/;
/** Objects larger than this are uploaded in parts (S3's minimum part is 5 MiB). */
export const MULTIPART_THRESHOLD = 16 * 1024 * 1024;
export const PART_SIZE = 8 * 1024 * 1024;
/** parts of one upload in flight at once */
const PART_CONCURRENCY = 4;
/**
 * A blob reused by a writer is "touched" (copied onto itself, which renews its LastModified) when
 * it is older than this, so `kennel gc`, which spares recent objects, does not remove a blob that
 * a running import is about to reference again. Younger ones are within any sensible grace.
 */
const TOUCH_AFTER_MS = 10 * 60_000;
/** Below this many expected blobs a listing is not worth it: one HEAD each is few requests anyway. */
const LIST_MIN_BLOBS = 500;
/** A listing is given up past this many objects per expected blob: it would cost more than one HEAD each. */
const LIST_MAX_OBJECTS_PER_BLOB = 10;

export interface S3Location {
  bucket: string;
  /** '' or ending in '/' */
  prefix: string;
}

/** Checks an `s3://bucket/prefix` URL. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw Errors.InvalidArtifactsUrl(`"${url}" is not an S3 URL.`);
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  return { bucket: m[1]!, prefix: prefix ? `${prefix}/` : '' };
}

export interface S3StoreOptions {
  /** s3://bucket/prefix */
  url: string;
  /** the S3 API's URL (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS's own) */
  endpoint?: string;
  /** the local read-through cache */
  cacheDir: string;
  cacheBytes: number;
  /** cache entries used this recently are never evicted (default one minute) */
  cachePinnedMs?: number;
}

/** An object as listed, for the garbage collector. */
export interface RemoteBlob {
  sha: string;
  bytes: number;
  /** ms since the epoch */
  lastModified: number;
}

/**
 * Artifacts in an S3-compatible object store, through the AWS SDK's S3 client: each blob at
 * `PREFIX/ab/cdef…` (its sha256, as in the workspace folder), uploaded in parts when large,
 * checked against its name whenever it is downloaded, and kept in a bounded local cache so that
 * libraries that read files (ONNX Runtime, sharp) get a path. Endpoint, region and credentials
 * come from the standard AWS variables and files. The SDK is loaded on first use.
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly cache: BlobCache;
  readonly endpoint?: string;
  /** blobs known to be in the bucket and recent enough not to need a touch (content-addressed: once there, they stay unless gc removes them) */
  private readonly known = new Set<string>();
  /** blobs found in the bucket (HEAD or listing) with their LastModified (ms): a writer reusing an old one touches it */
  private readonly seen = new Map<string, number>();
  /** blobs a has() just found absent: the upload that usually follows skips its own HEAD */
  private readonly absent = new Set<string>();
  /** a listing of the whole prefix (preload): blobs not in it are taken as absent without a HEAD */
  private listing?: Map<string, number>;
  private readonly downloads = new Map<string, Promise<string>>();
  private client?: Promise<{ sdk: Sdk; s3: S3Client }>;

  constructor(readonly opts: S3StoreOptions) {
    const loc = parseS3Url(opts.url);
    this.bucket = loc.bucket;
    this.prefix = loc.prefix;
    this.endpoint = opts.endpoint || process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
    if (this.endpoint && !/^https?:\/\/[^/]/.test(this.endpoint)) throw Errors.InvalidArtifactsUrl(`"${this.endpoint}" is not an S3 endpoint URL.`, 'Give the S3 server as http://HOST:PORT or https://HOST (AWS_ENDPOINT_URL or --artifacts-endpoint).');
    this.cache = new BlobCache(opts.cacheDir, opts.cacheBytes, opts.cachePinnedMs);
  }

  get url(): string {
    return `s3://${this.bucket}/${this.prefix}`.replace(/\/$/, '');
  }

  keyOf(sha: string): string {
    if (!SHA.test(sha)) throw new Error(`not a sha256 digest: ${sha}`);
    return `${this.prefix}${sha.slice(0, 2)}/${sha.slice(2)}`;
  }

  /** The SDK and a client, loaded once; the bucket is checked then, so a wrong name is one clear error. */
  private connect(): Promise<{ sdk: Sdk; s3: S3Client }> {
    this.client ??= (async () => {
      // Kennel supports Node 20; the SDK's notice about later releases is not the user's concern
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const sdk = await import('@aws-sdk/client-s3');
      const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || (this.endpoint ? 'us-east-1' : undefined);
      const s3 = new sdk.S3Client({
        ...(this.endpoint ? { endpoint: this.endpoint, forcePathStyle: true } : {}),
        ...(region ? { region } : {}),
        // a restarting server or a dropped link: about 3 s of retries with backoff
        maxAttempts: 6,
        requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
      });
      try {
        await s3.send(new sdk.HeadBucketCommand({ Bucket: this.bucket }));
      } catch (e) {
        s3.destroy();
        const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 404) throw this.noSuchBucket();
        throw this.wrap(e, 'open the bucket');
      }
      return { sdk, s3 };
    })().catch((e: unknown) => {
      this.client = undefined; // the next call tries again (the server may be back)
      throw e;
    });
    return this.client;
  }

  private where(): string {
    return `${this.url}${this.endpoint ? ` (endpoint ${this.endpoint})` : ''}`;
  }

  private noSuchBucket(): KennelError {
    return Errors.ArtifactStoreUnavailable(`The bucket "${this.bucket}" of the artifact store ${this.where()} does not exist.`, `Create it (e.g. aws s3 mb s3://${this.bucket}), or fix KENNEL_ARTIFACTS or --artifacts.`);
  }

  /** An SDK error as one sentence saying what to do; never the SDK's own message. */
  wrap(e: unknown, action: string): Error {
    if (e instanceof KennelError) return e;
    const err = (e ?? {}) as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };
    // a HEAD answer has no body, so no error name: the SDK calls it Unknown
    const name = err.name && err.name !== 'Unknown' ? err.name : err.$metadata?.httpStatusCode ? `HTTP ${err.$metadata.httpStatusCode}` : 'Error';
    const status = err.$metadata?.httpStatusCode;
    const code = err.code ?? err.cause?.code;
    if (name === 'CredentialsProviderError') return Errors.ArtifactStoreUnavailable(`No AWS credentials were found for the artifact store ${this.where()}.`, 'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a credentials file.');
    if (name === 'NoSuchBucket') return this.noSuchBucket();
    if (status === 403 || ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden'].includes(name)) {
      return Errors.ArtifactStoreUnavailable(`The artifact store ${this.where()} refused to ${action} with these credentials (${name}).`, 'Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket\'s policy.');
    }
    if (!status && /region is missing/i.test(err.message ?? '')) return Errors.ArtifactStoreUnavailable(`No AWS region is set for the artifact store ${this.where()}.`, 'Set AWS_REGION (any value will do for an S3-compatible server).');
    if (!status && (code || ['TimeoutError', 'RequestTimeout', 'AbortError'].includes(name))) {
      return Errors.ArtifactStoreUnavailable(`Cannot reach the artifact store ${this.where()} (${code ?? name}).`, 'Start the S3 server or fix its address (AWS_ENDPOINT_URL or --artifacts-endpoint); work finished so far is kept.');
    }
    return Errors.ArtifactStoreUnavailable(`The artifact store ${this.where()} failed to ${action} (${name}${status && !name.startsWith('HTTP') ? `, HTTP ${status}` : ''}).`, 'Try again; if it keeps failing, look at the S3 server\'s logs.');
  }

  private async send<T = unknown>(action: string, make: (sdk: Sdk) => object): Promise<T> {
    const { sdk, s3 } = await this.connect();
    try {
      // each command's own input/output types are checked where it is made; send() sees them as one union
      return (await s3.send(make(sdk) as Parameters<S3Client['send']>[0])) as T;
    } catch (e) {
      throw this.wrap(e, action);
    }
  }

  async ready(): Promise<void> {
    await this.connect();
  }

  /** HEAD: the object's LastModified (ms), or undefined when absent. */
  private async head(sha: string): Promise<number | undefined> {
    const { sdk, s3 } = await this.connect();
    try {
      const r = await s3.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha) }));
      return r.LastModified?.getTime() ?? 0;
    } catch (e) {
      if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw this.wrap(e, 'look up an artifact');
    }
  }

  /**
   * Whether the store has the blob: known to be in the bucket, or in this machine's cache (which
   * holds only blobs that were in the bucket: uploaded, then cached), else a HEAD. A cached retrain
   * so checks its feature chunks without a request each.
   */
  async has(sha: string): Promise<boolean> {
    if (this.known.has(sha) || this.seen.has(sha) || existsSync(this.cache.pathOf(sha))) return true;
    const modified = this.listing ? this.listing.get(sha) : await this.head(sha);
    if (modified !== undefined) this.seen.set(sha, modified);
    else {
      if (this.absent.size >= 10_000) this.absent.clear(); // has() without a put: keep it bounded
      this.absent.add(sha);
    }
    return modified !== undefined;
  }

  /**
   * About to check and store about `expectedBlobs` blobs (an import): lists the prefix once, when
   * that takes fewer requests than a HEAD per blob (a listing page names 1,000 objects; it is
   * given up past LIST_MAX_OBJECTS_PER_BLOB objects per expected blob). Blobs written by others
   * after the listing are then uploaded again, which is harmless: their bytes are the same.
   */
  async preload(expectedBlobs: number): Promise<void> {
    if (expectedBlobs < LIST_MIN_BLOBS) return;
    const listing = new Map<string, number>();
    for await (const b of this.list()) {
      if (listing.size >= expectedBlobs * LIST_MAX_OBJECTS_PER_BLOB) return; // a large bucket: HEADs are cheaper
      listing.set(b.sha, b.lastModified);
    }
    this.listing = listing;
  }

  /** Uploads unless the bucket has the blob already (then touches it when old, see TOUCH_AFTER_MS). */
  private async ensure(sha: string, upload: () => Promise<void>): Promise<void> {
    if (this.known.has(sha)) return;
    // absent a moment ago: upload without asking again (a concurrent upload of the same bytes is harmless)
    const modified = this.absent.delete(sha) ? undefined : this.seen.has(sha) ? this.seen.get(sha) : this.listing ? this.listing.get(sha) : await this.head(sha);
    this.seen.delete(sha);
    if (modified === undefined) await upload();
    else if (Date.now() - modified > TOUCH_AFTER_MS) {
      const key = this.keyOf(sha);
      await this.send('touch an artifact', (sdk) => new sdk.CopyObjectCommand({ Bucket: this.bucket, Key: key, CopySource: `${this.bucket}/${key}`, MetadataDirective: 'REPLACE', Metadata: { 'kennel-touched': new Date().toISOString() } }));
    }
    this.known.add(sha);
  }

  async put(data: Uint8Array): Promise<string> {
    const sha = createHash('sha256').update(data).digest('hex');
    await this.ensure(sha, () => (data.byteLength > MULTIPART_THRESHOLD ? this.uploadParts(sha, data.byteLength, async (off, len) => data.subarray(off, off + len)) : this.putObject(sha, data)));
    this.cache.add(sha, data);
    return sha;
  }

  async putFile(path: string): Promise<string> {
    const sha = await sha256File(path);
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const slice = async (off: number, len: number) => {
        const buf = Buffer.allocUnsafe(len);
        let got = 0;
        while (got < len) {
          const { bytesRead } = await fh.read(buf, got, len - got, off + got);
          if (!bytesRead) break;
          got += bytesRead;
        }
        return buf.subarray(0, got);
      };
      await this.ensure(sha, async () => (size > MULTIPART_THRESHOLD ? this.uploadParts(sha, size, slice) : this.putObject(sha, await slice(0, size))));
      // the writer usually reads it back (a backbone's graph): keep a copy in the cache
      if (!(await this.cache.lookup(sha)) && size <= this.cache.maxBytes / 4) this.cache.add(sha, await slice(0, size));
    } finally {
      await fh.close();
    }
    return sha;
  }

  private async putObject(sha: string, data: Uint8Array): Promise<void> {
    const checksum = Buffer.from(sha, 'hex').toString('base64');
    // the server checks the bytes against our sha256 as it stores them (where it supports checksums)
    await this.send('store an artifact', (sdk) => new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha), Body: data, ContentLength: data.byteLength, ChecksumSHA256: checksum }));
  }

  /** A multipart upload, PART_CONCURRENCY parts at a time; aborted on failure so no parts linger. */
  private async uploadParts(sha: string, size: number, slice: (offset: number, length: number) => Promise<Uint8Array>): Promise<void> {
    const Key = this.keyOf(sha);
    const created = await this.send<{ UploadId?: string }>('start an upload', (sdk) => new sdk.CreateMultipartUploadCommand({ Bucket: this.bucket, Key }));
    const UploadId = created.UploadId!;
    const count = Math.ceil(size / PART_SIZE);
    const parts: Array<{ ETag?: string; PartNumber: number }> = new Array(count);
    let next = 0;
    try {
      const lane = async () => {
        while (next < count) {
          const i = next++;
          const body = await slice(i * PART_SIZE, Math.min(PART_SIZE, size - i * PART_SIZE));
          const r = await this.send<{ ETag?: string }>('upload a part', (sdk) => new sdk.UploadPartCommand({ Bucket: this.bucket, Key, UploadId, PartNumber: i + 1, Body: body, ContentLength: body.byteLength }));
          parts[i] = { ETag: r.ETag, PartNumber: i + 1 };
        }
      };
      await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, count) }, lane));
      await this.send('finish an upload', (sdk) => new sdk.CompleteMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (e) {
      await this.send('abort an upload', (sdk) => new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId })).catch(() => {});
      throw e;
    }
  }

  private corrupt(sha: string, actual: string): KennelError {
    return Errors.ArtifactCorrupt(
      `Artifact ${sha.slice(0, 12)} in the artifact store ${this.where()} is corrupt: its bytes hash to ${actual.slice(0, 12)}.`,
      `Remove the object ${this.keyOf(sha)} and store it again (re-import the data, re-add the backbone, or retrain); nothing was read from it.`,
    );
  }

  private missing(sha: string): KennelError {
    return Errors.ArtifactMissing(`Artifact ${sha.slice(0, 12)} is not in the artifact store ${this.where()}.`, 'Every machine must use the coordinator\'s artifact store: give the same --artifacts (KENNEL_ARTIFACTS) and endpoint.');
  }

  private async getObject(sha: string, range?: string): Promise<Readable & { transformToByteArray(): Promise<Uint8Array> }> {
    const { sdk, s3 } = await this.connect();
    try {
      const r = await s3.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha), Range: range }));
      return r.Body as Readable & { transformToByteArray(): Promise<Uint8Array> };
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 && (e as { name?: string }).name !== 'NoSuchBucket') throw this.missing(sha);
      throw this.wrap(e, 'read an artifact');
    }
  }

  async get(sha: string): Promise<Uint8Array> {
    const cached = await this.cache.lookup(sha);
    if (cached) return readFile(cached);
    let data: Uint8Array;
    try {
      data = await (await this.getObject(sha)).transformToByteArray();
    } catch (e) {
      throw this.wrap(e, 'read an artifact');
    }
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== sha) throw this.corrupt(sha, actual);
    this.known.add(sha);
    this.cache.add(sha, data);
    return data;
  }

  async localPath(sha: string): Promise<string> {
    const cached = await this.cache.lookup(sha);
    if (cached) return cached;
    let pending = this.downloads.get(sha);
    if (!pending) {
      pending = this.download(sha).finally(() => this.downloads.delete(sha));
      this.downloads.set(sha, pending);
    }
    return pending;
  }

  /** Streams the object into the cache, hashing as it goes; a mismatch keeps nothing. */
  private async download(sha: string): Promise<string> {
    const tmp = tempPathFor(join(this.cache.tempDir(), sha));
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      const body = await this.getObject(sha);
      await pipeline(
        body,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const c of chunks) {
            hash.update(c);
            bytes += c.length;
            yield c;
          }
        },
        createWriteStream(tmp, { mode: 0o444 }),
      );
    } catch (e) {
      await rm(tmp, { force: true });
      throw this.wrap(e, 'read an artifact');
    }
    const actual = hash.digest('hex');
    if (actual !== sha) {
      await rm(tmp, { force: true });
      throw this.corrupt(sha, actual);
    }
    this.known.add(sha);
    return this.cache.adopt(sha, tmp, bytes);
  }

  /** Every blob under the prefix (for the garbage collector). */
  async *list(): AsyncIterable<RemoteBlob> {
    let token: string | undefined;
    do {
      const page = await this.send<{ Contents?: Array<{ Key?: string; Size?: number; LastModified?: Date }>; IsTruncated?: boolean; NextContinuationToken?: string }>('list artifacts', (sdk) => new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        const rest = (o.Key ?? '').slice(this.prefix.length);
        const m = /^([0-9a-f]{2})\/([0-9a-f]{62})$/.exec(rest);
        if (m) yield { sha: m[1]! + m[2]!, bytes: o.Size ?? 0, lastModified: o.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** The blob's first byte (the garbage collector looks for JSON documents), from the cache or a ranged GET. */
  async firstByte(sha: string): Promise<number | undefined> {
    const cached = await this.cache.lookup(sha);
    if (cached) {
      const fh = await open(cached, 'r');
      try {
        const b = Buffer.alloc(1);
        return (await fh.read(b, 0, 1, 0)).bytesRead ? b[0] : undefined;
      } finally {
        await fh.close();
      }
    }
    const body = await this.getObject(sha, 'bytes=0-0');
    const bytes = await body.transformToByteArray();
    return bytes[0];
  }

  /** When the blob last changed (ms), or undefined when it is gone. */
  lastModified(sha: string): Promise<number | undefined> {
    return this.head(sha);
  }

  async delete(shas: string[]): Promise<void> {
    for (let i = 0; i < shas.length; i += 1000) {
      const batch = shas.slice(i, i + 1000);
      await this.send('delete artifacts', (sdk) => new sdk.DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((s) => ({ Key: this.keyOf(s) })), Quiet: true } }));
      for (const s of batch) {
        this.known.delete(s);
        this.seen.delete(s);
        this.listing?.delete(s);
        this.cache.remove(s);
      }
    }
  }

  close(): void {
    void this.client?.then(({ s3 }) => s3.destroy(), () => {});
    this.client = undefined;
  }
}

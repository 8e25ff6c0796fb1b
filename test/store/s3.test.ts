import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Errors, KennelError } from '../../src/core/index.ts';
import { MULTIPART_THRESHOLD, S3ArtifactStore } from '../../src/store/s3.ts';
import { collectStoreGarbage, createJob, finishJob, openWorkspace, sha256 } from '../../src/store/index.ts';
import { tmpDir, tmpHome } from '../helpers/paths.ts';
import { S3_BUCKET, S3_CREDENTIALS, startS3, type S3Server } from '../helpers/s3.ts';

Object.assign(process.env, S3_CREDENTIALS, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });

let s3: S3Server;
let raw: S3Client;
before(async () => {
  s3 = await startS3();
  raw = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
});
after(async () => {
  raw.destroy();
  await s3.stop();
});

const storeAt = (prefix: string, o: { cacheBytes?: number; endpoint?: string; bucket?: string } = {}) =>
  new S3ArtifactStore({ url: `s3://${o.bucket ?? S3_BUCKET}/${prefix}`, endpoint: o.endpoint ?? s3.endpoint, cacheDir: tmpDir('kennel-cache-'), cacheBytes: o.cacheBytes ?? 1024 ** 3, cachePinnedMs: 0 });

const isKennel = (kind: (typeof Errors)[keyof typeof Errors], message: RegExp) => (e: unknown) => {
  assert.ok(e instanceof KennelError, `a KennelError, not ${String(e)}`);
  assert.equal(e.code, (kind as { code: string }).code);
  assert.match(e.message, message);
  assert.doesNotMatch(e.message, /\n/, 'one sentence');
  return true;
};

test('put, get, has and localPath through the real SDK: content-addressed keys under the prefix, read back through the cache', async () => {
  const store = storeAt('team/a');
  const data = Buffer.from('a small artifact');
  const sha = await store.put(data);
  assert.equal(sha, sha256(data));
  assert.equal(store.keyOf(sha), `team/a/${sha.slice(0, 2)}/${sha.slice(2)}`);
  const head = await raw.send(new HeadObjectCommand({ Bucket: S3_BUCKET, Key: store.keyOf(sha) }));
  assert.equal(head.ContentLength, data.length);
  assert.equal(await store.has(sha), true);
  assert.equal(await store.has(sha256('absent')), false);

  // another machine: an empty cache, so the bytes come from the bucket
  const other = storeAt('team/a');
  assert.deepEqual(Buffer.from(await other.get(sha)), data);
  const p = await other.localPath(sha);
  assert.ok(p.startsWith(other.cache.root));
  assert.deepEqual(readFileSync(p), data);
  await assert.rejects(other.get(sha256('absent')), isKennel(Errors.ArtifactMissing, /is not in the artifact store s3:\/\/kennel\/team\/a/));
  store.close();
  other.close();
});

test('an import-sized batch lists the prefix once instead of a HEAD per blob; a small one asks per blob', async () => {
  const writer = storeAt('preload');
  const present = await Promise.all(['one', 'two', 'three'].map((t) => writer.put(Buffer.from(t))));
  const reader = storeAt('preload');
  await reader.preload(600);
  // changes behind the listing's back show that has() answers from the listing, not from a HEAD each
  await raw.send(new DeleteObjectCommand({ Bucket: S3_BUCKET, Key: reader.keyOf(present[0]!) }));
  const late = Buffer.from('written after the listing');
  await raw.send(new PutObjectCommand({ Bucket: S3_BUCKET, Key: reader.keyOf(sha256(late)), Body: late }));
  assert.equal(await reader.has(present[0]!), true, 'in the listing');
  assert.equal(await reader.has(present[1]!), true);
  assert.equal(await reader.has(sha256(late)), false, 'not in the listing: taken as absent');
  assert.equal(await reader.put(late), sha256(late), 'and uploaded again: the same bytes');
  // ten blobs expected: no listing, a HEAD each
  const small = storeAt('preload');
  await small.preload(10);
  assert.equal(await small.has(present[0]!), false, 'asked: the object is gone');
  assert.equal(await small.has(present[2]!), true);
  for (const s of [writer, reader, small]) s.close();
});

test('a large file goes up in parts and comes back whole', async () => {
  const store = storeAt('big');
  const file = path.join(tmpDir(), 'graph.onnx');
  const bytes = randomBytes(MULTIPART_THRESHOLD + 3 * 1024 * 1024 + 17);
  writeFileSync(file, bytes);
  const sha = await store.putFile(file);
  assert.equal(sha, sha256(bytes));
  const parts = s3.log().match(/partNumber=\d+&uploadId=[^ ]*x-id=UploadPart 200/g) ?? [];
  assert.equal(parts.length, 3, `three parts of 8 MiB at most:\n${s3.log().slice(-2000)}`);
  assert.match(s3.log(), /\?uploadId=[0-9a-f]+ 200/, "the upload was completed");
  const reader = storeAt('big');
  assert.ok(readFileSync(await reader.localPath(sha)).equals(bytes));
  store.close();
  reader.close();
});

test('the server restarts: stored objects survive, and an open store carries on', async () => {
  const store = storeAt('restart');
  const a = await store.put(Buffer.from('before the restart'));
  await s3.restart();
  const b = await store.put(Buffer.from('after the restart'));
  const fresh = storeAt('restart');
  assert.equal(Buffer.from(await fresh.get(a)).toString(), 'before the restart');
  assert.equal(Buffer.from(await fresh.get(b)).toString(), 'after the restart');
  store.close();
  fresh.close();
});

test('a corrupted object is detected by its sha256 and never cached', async () => {
  const store = storeAt('corrupt');
  const sha = await store.put(Buffer.from('the true bytes'));
  await raw.send(new PutObjectCommand({ Bucket: S3_BUCKET, Key: store.keyOf(sha), Body: Buffer.from('the wrong bytes') }));
  const reader = storeAt('corrupt');
  await assert.rejects(reader.get(sha), isKennel(Errors.ArtifactCorrupt, /^Artifact [0-9a-f]{12} in the artifact store .* is corrupt: its bytes hash to [0-9a-f]{12}\.$/));
  await assert.rejects(reader.localPath(sha), isKennel(Errors.ArtifactCorrupt, /is corrupt/));
  assert.equal(reader.cache.bytes(), 0, 'nothing kept');
  // a cache file garbled on disk is not trusted either: it is dropped and the bucket read
  const cached = reader.cache.pathOf(sha);
  reader.cache.add(sha, Buffer.from('the true bytes'));
  writeFileSync(cached, 'garbled', { flag: 'w', mode: 0o644 });
  const third = new S3ArtifactStore({ url: `s3://${S3_BUCKET}/corrupt`, endpoint: s3.endpoint, cacheDir: reader.cache.root, cacheBytes: 1024 ** 3 });
  await assert.rejects(third.get(sha), isKennel(Errors.ArtifactCorrupt, /is corrupt/), 'the garbled cache file was dropped and the bucket read');
  store.close();
  reader.close();
  third.close();
});

test('the cache stays within its bound, least recently used first', async () => {
  const store = storeAt('lru', { cacheBytes: 3000 });
  const shas: string[] = [];
  for (let i = 0; i < 6; i++) shas.push(await store.put(Buffer.alloc(1000, i)));
  assert.ok(store.cache.bytes() <= 3000, `cache holds ${store.cache.bytes()} bytes`);
  assert.ok(await store.cache.lookup(shas[5]!), 'the newest is kept');
  assert.equal(await store.cache.lookup(shas[0]!), undefined, 'the oldest went');
  assert.equal(Buffer.from(await store.get(shas[0]!))[0], 0, 'and comes back from the bucket');
  store.close();
});

test('no server, no bucket, bad credentials: one sentence saying what to do', async () => {
  const down = storeAt('x', { endpoint: 'http://127.0.0.1:9' });
  await assert.rejects(down.has(sha256('a')), isKennel(Errors.ArtifactStoreUnavailable, /^Cannot reach the artifact store s3:\/\/kennel\/x \(endpoint http:\/\/127\.0\.0\.1:9\) \(ECONNREFUSED\)\.$/));
  const nobucket = storeAt('x', { bucket: 'no-such-bucket' });
  await assert.rejects(nobucket.put(Buffer.from('a')), (e: unknown) => isKennel(Errors.ArtifactStoreUnavailable, /^The bucket "no-such-bucket" of the artifact store .* does not exist\.$/)(e) && /aws s3 mb/.test((e as KennelError).hint ?? ''));
  // s3rver checks the key id, not the signature's secret
  const saved = process.env.AWS_ACCESS_KEY_ID;
  process.env.AWS_ACCESS_KEY_ID = 'NOBODY';
  try {
    const denied = storeAt('x');
    await assert.rejects(denied.has(sha256('a')), isKennel(Errors.ArtifactStoreUnavailable, /refused to open the bucket with these credentials \(HTTP 403\)\.$/));
  } finally {
    process.env.AWS_ACCESS_KEY_ID = saved;
  }
  down.close();
  nobucket.close();
});

test('kennel gc on an S3 store: unreferenced objects go after the grace period, referenced ones and what JSON documents name stay', async () => {
  process.env.KENNEL_ARTIFACTS = `s3://${S3_BUCKET}/gc`;
  process.env.KENNEL_ARTIFACTS_ENDPOINT = s3.endpoint;
  try {
    const ws = openWorkspace(tmpHome());
    assert.ok(ws.artifacts instanceof S3ArtifactStore);
    const inner = await ws.artifacts.put(Buffer.from('an image a manifest lists'));
    const doc = await ws.artifacts.put(Buffer.from(JSON.stringify({ items: [inner] })));
    const loose = await ws.artifacts.put(Buffer.from('nobody references this'));
    const job = createJob(ws, 'train', { dataset: 'x' });
    finishJob(ws, job.id, 'completed', { result: { manifest: doc } });
    const dry = await collectStoreGarbage(ws, { apply: false, graceMs: 3600_000 });
    assert.equal(dry.items.length, 0, 'all recent');
    // s3rver's LastModified has whole seconds
    await new Promise((r) => setTimeout(r, 1100));
    const report = await collectStoreGarbage(ws, { apply: true, graceMs: 0 });
    assert.deepEqual(report.items.map((i) => i.path), [`s3://${S3_BUCKET}/gc/${loose.slice(0, 2)}/${loose.slice(2)}`]);
    assert.equal(report.kept.referenced, 2);
    assert.equal(await ws.artifacts.has(doc), true);
    assert.equal(await ws.artifacts.has(inner), true);
    await assert.rejects(raw.send(new GetObjectCommand({ Bucket: S3_BUCKET, Key: `gc/${loose.slice(0, 2)}/${loose.slice(2)}` })), /NoSuchKey|NotFound/);
    ws.close();
  } finally {
    delete process.env.KENNEL_ARTIFACTS;
    delete process.env.KENNEL_ARTIFACTS_ENDPOINT;
  }
});

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { downloadFile } from '../../src/core/download.js';
import { CancelledError, KennelError } from '../../src/core/errors.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { serveBytes } from '../helpers/http.js';
import { tmpDir } from '../helpers/paths.js';

const body = randomBytes(300_000);
const bodySha = createHash('sha256').update(body).digest('hex');

test('downloads over http with progress and checks', async () => {
  const server = await serveBytes(body);
  try {
    const dest = join(tmpDir(), 'file.bin');
    const events: ProgressEvent[] = [];
    const r = await downloadFile(`${server.url}/file`, dest, { sha256: bodySha, expectedSize: body.length, progress: (e) => events.push(e) });
    assert.deepEqual(r, { path: dest, bytes: body.length, sha256: bodySha, resumed: false });
    assert.deepEqual(readFileSync(dest), body);
    assert.ok(!existsSync(`${dest}.part`));
    assert.ok(events.every((e) => e.phase === 'download' && e.total === body.length));
    assert.deepEqual(events.at(-1), { phase: 'download', done: body.length, total: body.length });
  } finally {
    await server.close();
  }
});

test('an interrupted download resumes with a Range request on the next call', async () => {
  const server = await serveBytes(body, { cutFirstAfter: body.length / 2 });
  try {
    const dest = join(tmpDir(), 'file.bin');
    await assert.rejects(downloadFile(`${server.url}/file`, dest), (e: unknown) => {
      assert.ok(e instanceof KennelError);
      assert.match(e.message, /^could not download http:\/\/127\.0\.0\.1:\d+\/file: /);
      assert.match(e.hint ?? '', /run the same command again to resume/i);
      return true;
    });
    const partial = statSync(`${dest}.part`).size;
    assert.ok(partial > 0 && partial <= body.length / 2, `kept ${partial} bytes`);

    const r = await downloadFile(`${server.url}/file`, dest, { sha256: bodySha });
    assert.equal(r.resumed, true);
    assert.equal(r.sha256, bodySha);
    assert.deepEqual(server.ranges, ['', `bytes=${partial}-`]);
    assert.deepEqual(readFileSync(dest), body);
  } finally {
    await server.close();
  }
});

test('cancelling keeps the bytes so far for the next call', async () => {
  const server = await serveBytes(body);
  try {
    const dest = join(tmpDir(), 'file.bin');
    const controller = new AbortController();
    const progress = (e: ProgressEvent) => {
      if (e.done > 0) controller.abort();
    };
    await assert.rejects(downloadFile(`${server.url}/file`, dest, { progress, signal: controller.signal }), CancelledError);
    assert.ok(statSync(`${dest}.part`).size > 0);
    const r = await downloadFile(`${server.url}/file`, dest, { sha256: bodySha });
    assert.equal(r.resumed, true);
  } finally {
    await server.close();
  }
});

test('a server that ignores Range restarts the download cleanly', async () => {
  const server = await serveBytes(body, { ignoreRange: true });
  try {
    const dest = join(tmpDir(), 'file.bin');
    writeFileSync(`${dest}.part`, body.subarray(0, 1000));
    const r = await downloadFile(`${server.url}/file`, dest, { sha256: bodySha });
    assert.equal(r.resumed, false);
    assert.equal(r.bytes, body.length);
    assert.deepEqual(server.ranges, ['bytes=1000-']);
  } finally {
    await server.close();
  }
});

test('a complete .part answered with 416 finishes without downloading again', async () => {
  const server = await serveBytes(body);
  try {
    const dest = join(tmpDir(), 'file.bin');
    writeFileSync(`${dest}.part`, body);
    const r = await downloadFile(`${server.url}/file`, dest, { sha256: bodySha });
    assert.deepEqual([r.resumed, r.bytes, r.sha256], [true, body.length, bodySha]);
  } finally {
    await server.close();
  }
});

test('a wrong sha256 or size fails with a clear message and deletes the bad file', async () => {
  const server = await serveBytes(body);
  try {
    const dest = join(tmpDir(), 'file.bin');
    const wrong = '0'.repeat(64);
    await assert.rejects(downloadFile(`${server.url}/file`, dest, { sha256: wrong }), (e: unknown) => {
      assert.ok(e instanceof KennelError);
      assert.equal(e.message, `the file from ${server.url}/file has sha256 ${bodySha} but ${wrong} was expected.`);
      assert.match(e.hint ?? '', /bad copy was deleted/);
      return true;
    });
    assert.ok(!existsSync(dest) && !existsSync(`${dest}.part`));

    await assert.rejects(downloadFile(`${server.url}/file`, dest, { expectedSize: 5 }), /is 300000 bytes but 5 were expected/);
    assert.ok(!existsSync(`${dest}.part`));
    await assert.rejects(downloadFile(`${server.url}/file`, dest, { sha256: 'abc' }), /not a sha256 digest/);
  } finally {
    await server.close();
  }
});

test('a body of unknown length is accepted, and cut off once it exceeds the expected size', async () => {
  const server = await serveBytes(body, { chunked: true });
  try {
    const events: ProgressEvent[] = [];
    const r = await downloadFile(`${server.url}/file`, join(tmpDir(), 'file.bin'), { progress: (e) => events.push(e) });
    assert.equal(r.sha256, bodySha);
    assert.deepEqual(events, [{ phase: 'download', done: body.length, total: body.length }], 'no bar without a known total, one final event');

    const dest = join(tmpDir(), 'small.bin');
    await assert.rejects(downloadFile(`${server.url}/file`, dest, { expectedSize: 1000 }), /is more than the 1000 bytes expected/);
    assert.ok(!existsSync(`${dest}.part`));
  } finally {
    await server.close();
  }
});

test('follows redirects; an http error status is a KennelError', async () => {
  const server = await serveBytes(body);
  try {
    const r = await downloadFile(`${server.url}/redirect`, join(tmpDir(), 'file.bin'));
    assert.equal(r.sha256, bodySha);
    await assert.rejects(downloadFile(`${server.url}/missing`, join(tmpDir(), 'file.bin')), /could not download .*: the server answered 404/);
  } finally {
    await server.close();
  }
});

test('copies local paths and file:// URLs; reuses a verified existing file', async () => {
  const dir = tmpDir();
  const src = join(dir, 'source.bin');
  writeFileSync(src, body);
  const a = await downloadFile(src, join(dir, 'a.bin'));
  const b = await downloadFile(pathToFileURL(src).href, join(dir, 'b.bin'), { sha256: bodySha });
  assert.deepEqual([a.sha256, b.sha256], [bodySha, bodySha]);
  // the existing, verified destination is returned without reading the source
  const c = await downloadFile(join(dir, 'gone.bin'), join(dir, 'b.bin'), { sha256: bodySha });
  assert.equal(c.sha256, bodySha);
  await assert.rejects(downloadFile(join(dir, 'gone.bin'), join(dir, 'c.bin')), /gone\.bin does not exist/);
});

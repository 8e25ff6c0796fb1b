import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { KennelError } from '../../src/core/errors.js';
import { importDataset, listDatasets } from '../../src/data/index.js';
import { serveBytes } from '../helpers/http.js';
import { tmpDir } from '../helpers/paths.js';
import { makeZip, zipDirectory } from '../helpers/zip.js';
import { breedsMini, freshWorkspace } from './fixtures.js';

/** breeds-mini zipped the way dogImages.zip is: everything inside one top folder */
const breedsZip = (): Buffer => zipDirectory(breedsMini(), 'dogImages/');

function writeTemp(name: string, data: Buffer): string {
  const path = join(tmpDir(), name);
  writeFileSync(path, data);
  return path;
}

test('a zip with a wrapping folder imports to the same content as the folder', async () => {
  const ws = freshWorkspace();
  try {
    const folder = await importDataset(ws, breedsMini(), { name: 'from-folder' });
    const zipped = await importDataset(ws, writeTemp('dogImages.zip', breedsZip()), { name: 'from-zip' });
    assert.deepEqual(zipped.report.images, { train: 100, valid: 25, test: 25 });
    assert.equal(zipped.manifestSha, folder.manifestSha, 'same images, labels and paths → same manifest');
    assert.equal(zipped.report.copiedFiles, 0);
    assert.deepEqual(readdirSync(ws.tmpDir), [], 'the extracted copy is removed');
  } finally {
    ws.close();
  }
});

test('zip entries: clutter ignored, oversized entries not extracted, deflate supported', async () => {
  const ws = freshWorkspace();
  try {
    const jpeg = readFileSync(join(breedsMini(), 'train/002.Beagle/Beagle_00001.jpg'));
    const zip = makeZip([
      { name: 'Beagle/', data: Buffer.alloc(0), method: 0 },
      { name: 'Beagle/a.jpg', data: jpeg },
      { name: 'Beagle/big.jpg', data: Buffer.alloc(2_000_000, 7) },
      { name: 'Boxer/b.jpg', data: jpeg, method: 0 },
      { name: '__MACOSX/Beagle/._a.jpg', data: Buffer.from('junk') },
      { name: 'Boxer/.DS_Store', data: Buffer.from('junk') },
    ]);
    const v = await importDataset(ws, writeTemp('small.zip', zip), { name: 'z', maxBytes: 1_000_000, split: [1, 0, 0] });
    assert.deepEqual(v.classes, ['Beagle', 'Boxer']);
    assert.deepEqual(v.report.images, { train: 2, valid: 0, test: 0 });
    assert.deepEqual(v.report.skipped, [{ path: 'Beagle/big.jpg', reason: 'file is 2.0 MB, over the 1.0 MB limit' }]);
    assert.equal(v.report.duplicates.length, 1, 'the same JPEG under two classes is listed');
  } finally {
    ws.close();
  }
});

test('a zip with a path escaping the folder (zip-slip) is refused', async () => {
  const ws = freshWorkspace();
  try {
    const zip = makeZip([
      { name: 'Beagle/a.jpg', data: Buffer.from('x') },
      { name: '../escaped.jpg', data: Buffer.from('x') },
    ]);
    const evil = writeTemp('evil.zip', zip);
    await assert.rejects(importDataset(ws, evil, { name: 'evil' }), (e: unknown) => {
      assert.ok(e instanceof KennelError);
      assert.equal(e.message, `${evil} contains an unsafe path (invalid relative path: ../escaped.jpg); refusing to extract it.`);
      return true;
    });
    assert.ok(!existsSync(join(ws.tmpDir, 'escaped.jpg')), 'nothing was written outside the extraction folder');
    assert.deepEqual(readdirSync(ws.tmpDir), []);
    await assert.rejects(importDataset(ws, writeTemp('junk.zip', Buffer.from('not a zip')), { name: 'junk' }), /neither a folder nor a zip file/);
  } finally {
    ws.close();
  }
});

test('a URL import resumes an interrupted download on the next run and checks --sha256', async () => {
  const zip = breedsZip();
  const zipSha = createHash('sha256').update(zip).digest('hex');
  const server = await serveBytes(zip, { cutFirstAfter: Math.floor(zip.length / 2) });
  const ws = freshWorkspace();
  try {
    const url = `${server.url}/dogImages.zip`;
    await assert.rejects(importDataset(ws, url, { name: 'web', sha256: zipSha }), (e: unknown) => e instanceof KennelError && /could not download/.test(e.message));
    assert.deepEqual(listDatasets(ws), []);
    assert.equal(readdirSync(join(ws.home, 'downloads')).filter((f) => f.endsWith('.part')).length, 1, 'the partial download is kept');

    const v = await importDataset(ws, url, { name: 'web', sha256: zipSha, expectedSize: zip.length });
    assert.equal(v.version, 1);
    assert.equal(v.source, url);
    assert.deepEqual(v.report.images, { train: 100, valid: 25, test: 25 });
    assert.match(server.ranges[1] ?? '', /^bytes=\d+-$/, 'the second run asked only for the rest');
    assert.deepEqual(readdirSync(join(ws.home, 'downloads')), [], 'the zip is removed once imported');

    const folder = await importDataset(ws, breedsMini(), { name: 'local' });
    assert.equal(v.manifestSha, folder.manifestSha);

    await assert.rejects(importDataset(ws, url, { name: 'web', sha256: 'f'.repeat(64) }), (e: unknown) => {
      assert.ok(e instanceof KennelError);
      assert.equal(e.message, `the file from ${url} has sha256 ${zipSha} but ${'f'.repeat(64)} was expected.`);
      return true;
    });
    assert.deepEqual(readdirSync(join(ws.home, 'downloads')), [], 'the bad download is deleted');

    const html = await serveBytes(Buffer.from('<html>moved</html>'));
    try {
      await assert.rejects(importDataset(ws, `${html.url}/page`, { name: 'html' }), new RegExp(`^KennelError: ${html.url}/page is not a readable zip file`));
      assert.deepEqual(readdirSync(join(ws.home, 'downloads')), [], 'a download that is no zip is not kept for reruns');
    } finally {
      await html.close();
    }
    assert.equal(listDatasets(ws).find((d) => d.name === 'web')?.versions, 1);
  } finally {
    ws.close();
    await server.close();
  }
});

test('--sha256 and --size also check a local zip, and make no sense for a folder', async () => {
  const ws = freshWorkspace();
  try {
    const path = writeTemp('dogImages.zip', breedsZip());
    await assert.rejects(importDataset(ws, path, { name: 'x', expectedSize: 10 }), /bytes but 10 were expected/);
    await assert.rejects(importDataset(ws, breedsMini(), { name: 'x', sha256: '0'.repeat(64) }), /is a folder/);
  } finally {
    ws.close();
  }
});

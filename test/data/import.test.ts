import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CancelledError, KennelError } from '../../src/core/errors.js';
import { getDatasetVersion, imagePath, importDataset, isLeak, listDatasets, parseDatasetRef } from '../../src/data/index.js';
import { pngClaimingSize } from '../helpers/images.js';
import { tmpDir } from '../helpers/paths.js';
import { breedsMini, copyOfBreedsMini, distinctJpeg, freshWorkspace } from './fixtures.js';
import { sha256 } from '../../src/store/index.js';

test('imports breeds-mini with its splits, readable class names and version 1', async () => {
  const ws = freshWorkspace();
  try {
    const v = await importDataset(ws, breedsMini(), { name: 'dogs' });
    assert.equal(v.version, 1);
    assert.deepEqual(v.report.images, { train: 100, valid: 25, test: 25 });
    assert.equal(v.classes.length, 25);
    assert.equal(v.classes[0], 'Australian Shepherd');
    assert.ok(v.classes.includes('German Shepherd'));
    assert.equal(v.report.layout, 'splits');
    assert.deepEqual(v.report.skipped, []);
    assert.equal(v.report.copiedFiles, 150);
    assert.equal(v.report.reused, false);
    assert.deepEqual(v.report.imbalance, { min: 4, max: 4, ratio: 1, smallest: v.classes });
    assert.ok(v.report.classCounts.valid.every((n) => n === 1));

    const item = v.items.find((i) => i.path === 'train/001.Australian_Shepherd/Australian_Shepherd_00001.jpg');
    assert.ok(item, 'items keep their path relative to the dataset root');
    assert.equal(item.label, 0);
    assert.equal(item.split, 'train');
    assert.deepEqual([item.width, item.height], [449, 573]);
    const bytes = readFileSync(await imagePath(ws, item));
    assert.deepEqual(bytes, readFileSync(join(breedsMini(), item.path)));

    const again = await getDatasetVersion(ws, 'dogs');
    assert.equal(again.manifestSha, v.manifestSha);
    assert.deepEqual(again.items, v.items);
    assert.deepEqual(listDatasets(ws), [{ name: 'dogs', versions: 1, latest: 1, classes: 25, images: { train: 100, valid: 25, test: 25 } }]);
  } finally {
    ws.close();
  }
});

test('re-importing unchanged files reuses the version; one new file makes version 2 with one copy', async () => {
  const ws = freshWorkspace();
  try {
    const dir = copyOfBreedsMini();
    const v1 = await importDataset(ws, dir, { name: 'dogs' });
    const same = await importDataset(ws, dir, { name: 'dogs' });
    assert.equal(same.version, 1);
    assert.equal(same.report.reused, true);
    assert.equal(same.report.copiedFiles, 0);
    assert.equal(same.manifestSha, v1.manifestSha);

    writeFileSync(join(dir, 'train/002.Beagle/Beagle_new.jpg'), await distinctJpeg(1));
    const v2 = await importDataset(ws, dir, { name: 'dogs' });
    assert.equal(v2.version, 2);
    assert.equal(v2.report.reused, false);
    assert.equal(v2.report.copiedFiles, 1);
    assert.deepEqual(v2.report.images, { train: 101, valid: 25, test: 25 });
    assert.deepEqual(v2.report.imbalance, { min: 4, max: 5, ratio: 1.25, smallest: v2.classes.filter((c) => c !== 'Beagle') });

    assert.equal((await getDatasetVersion(ws, 'dogs', 1)).items.length, 150);
    assert.equal((await getDatasetVersion(ws, 'dogs')).version, 2);
    assert.equal(listDatasets(ws)[0]!.versions, 2);
  } finally {
    ws.close();
  }
});

/** Imports a copy of breeds-mini with bad files planted, checked in this process or by `workers` check worker processes. */
async function importPlanted(workers: number) {
  const ws = freshWorkspace();
  const before = process.env.KENNEL_DECODE_WORKERS;
  process.env.KENNEL_DECODE_WORKERS = String(workers);
  try {
    const dir = copyOfBreedsMini();
    const real = readFileSync(join(dir, 'train/002.Beagle/Beagle_00001.jpg'));
    writeFileSync(join(dir, 'train/001.Australian_Shepherd/notes.jpg'), 'these are my notes, not a photo\n');
    writeFileSync(join(dir, 'train/002.Beagle/truncated.jpg'), real.subarray(0, real.length >> 1));
    writeFileSync(join(dir, 'valid/003.Border_Collie/empty.jpg'), '');
    const bomb = pngClaimingSize(20000, 20000);
    assert.ok(bomb.length < 50_000, 'the planted bomb stays small on disk');
    writeFileSync(join(dir, 'test/004.Boxer/huge.png'), bomb);
    // operating-system clutter is ignored without a word
    writeFileSync(join(dir, 'train/.DS_Store'), 'junk');
    mkdirSync(join(dir, '__MACOSX/train'), { recursive: true });
    writeFileSync(join(dir, '__MACOSX/train/._Beagle_00001.jpg'), 'junk');

    const started = Date.now();
    const v = await importDataset(ws, dir, { name: 'planted' });
    assert.ok(Date.now() - started < 30_000, 'the 400 MP image is refused from its header, never decoded');
    assert.deepEqual(v.report.images, { train: 100, valid: 25, test: 25 });
    const reasons = Object.fromEntries(v.report.skipped.map((s) => [s.path, s.reason]));
    assert.deepEqual(Object.keys(reasons).sort(), [
      'test/004.Boxer/huge.png',
      'train/001.Australian_Shepherd/notes.jpg',
      'train/002.Beagle/truncated.jpg',
      'valid/003.Border_Collie/empty.jpg',
    ]);
    assert.equal(reasons['train/001.Australian_Shepherd/notes.jpg'], 'not an image (unrecognised format)');
    // the decoder's detail ("premature end of JPEG image") is not always kept by libvips under concurrency
    assert.match(reasons['train/002.Beagle/truncated.jpg']!, /^corrupt or truncated image(: .*premature end.*)?$/i);
    assert.equal(reasons['valid/003.Border_Collie/empty.jpg'], 'empty file');
    assert.equal(reasons['test/004.Boxer/huge.png'], 'image is 20000x20000 (400 MP), over the 100 MP limit');
    // every image is in the store whole (check workers put them there themselves), and counted once
    for (const item of v.items) assert.equal(sha256(await ws.artifacts.get(item.sha256)), item.sha256);
    assert.equal(v.report.copiedFiles, 150);
    assert.equal((await importDataset(ws, dir, { name: 'planted' })).report.copiedFiles, 0);
    return v;
  } finally {
    if (before === undefined) delete process.env.KENNEL_DECODE_WORKERS;
    else process.env.KENNEL_DECODE_WORKERS = before;
    ws.close();
  }
}

test('planted bad files are skipped with a reason each, and the rest is imported, alike in this process and in check worker processes', async () => {
  const here = await importPlanted(0);
  const workers = await importPlanted(2);
  assert.deepEqual(workers.items, here.items);
  assert.equal(workers.manifestSha, here.manifestSha);
});

test('files over the byte limit are skipped unread', async () => {
  const ws = freshWorkspace();
  try {
    const v = await importDataset(ws, breedsMini(), { name: 'small', maxBytes: 80_000 });
    const files = v.report.skipped.filter((s) => !s.path.endsWith('/'));
    assert.ok(files.length > 0);
    for (const s of files) assert.match(s.reason, /^file is \d+(\.\d)? MB, over the 0\.1 MB limit$/);
    assert.equal(v.items.length + files.length, 150);
    // a class that lost all its images is left out, and says so
    for (const s of v.report.skipped.filter((s) => s.path.endsWith('/'))) assert.equal(s.reason, 'class folder has no usable image; class left out');
    assert.equal(v.classes.length + v.report.skipped.length - files.length, 25);
  } finally {
    ws.close();
  }
});

/** A flat copy of breeds-mini's first `n` breeds: CLASS/*.jpg with all 6 images of each. */
function flatBreeds(n: number): string {
  const src = copyOfBreedsMini();
  const flat = join(src, '..', 'flat');
  for (const split of ['train', 'valid', 'test']) {
    for (const breed of readdirSync(join(src, split)).sort().slice(0, n)) {
      mkdirSync(join(flat, breed), { recursive: true });
      for (const f of readdirSync(join(src, split, breed))) copyFileSync(join(src, split, breed, f), join(flat, breed, f));
    }
  }
  return flat;
}

test('a flat layout is split per class, the same way for the same seed', async () => {
  const ws = freshWorkspace();
  try {
    const flat = flatBreeds(5);
    const a = await importDataset(ws, flat, { name: 'flat' });
    assert.equal(a.report.layout, 'flat');
    assert.deepEqual(a.classes, ['Australian Shepherd', 'Beagle', 'Border Collie', 'Boxer', 'Bulldog English']);
    // stratified: 6 images per class → 4 train, 1 valid, 1 test in every class
    assert.deepEqual(a.report.classCounts, { train: [4, 4, 4, 4, 4], valid: [1, 1, 1, 1, 1], test: [1, 1, 1, 1, 1] });
    assert.ok(a.items.every((i) => i.path.startsWith(`${['001.Australian_Shepherd', '002.Beagle', '003.Border_Collie', '004.Boxer', '005.Bulldog_English'][i.label]}/`)));

    const again = await importDataset(ws, flat, { name: 'flat', seed: 0 });
    assert.equal(again.report.reused, true, 'the same seed gives the same split');

    const reseeded = await importDataset(ws, flat, { name: 'flat', seed: 7 });
    assert.equal(reseeded.version, 2, 'another seed gives another split');
    assert.deepEqual(reseeded.report.classCounts, a.report.classCounts);
    const splitOf = (items: typeof a.items) => items.map((i) => `${i.path}:${i.split}`).sort();
    assert.notDeepEqual(splitOf(reseeded.items), splitOf(a.items));

    const halves = await importDataset(ws, flat, { name: 'halves', split: [0.5, 0.25, 0.25] });
    assert.deepEqual(halves.report.classCounts.train, [2, 2, 2, 2, 2]);
    assert.deepEqual(halves.report.images, { train: 10, valid: 10, test: 10 });

    await assert.rejects(importDataset(ws, flat, { name: 'bad', split: [0.8, 0.1, 0.2] }), (e: unknown) => e instanceof KennelError && /add up to 1/.test(e.message));
  } finally {
    ws.close();
  }
});

test('the same image in two splits is flagged as leakage, twice in one split as a duplicate', async () => {
  const ws = freshWorkspace();
  try {
    const dir = copyOfBreedsMini();
    copyFileSync(join(dir, 'train/006.Chihuahua/Chihuahua_00001.jpg'), join(dir, 'test/006.Chihuahua/leaked.jpg'));
    copyFileSync(join(dir, 'train/007.Chow_Chow/Chow_Chow_00001.jpg'), join(dir, 'train/007.Chow_Chow/copy.jpg'));
    const v = await importDataset(ws, dir, { name: 'leaky' });
    assert.equal(v.report.duplicates.length, 2);
    const [leak, dupe] = v.report.duplicates;
    assert.ok(leak && isLeak(leak), 'leakage is listed first');
    assert.deepEqual(leak.splits, ['train', 'test']);
    assert.deepEqual(leak.paths, ['test/006.Chihuahua/leaked.jpg', 'train/006.Chihuahua/Chihuahua_00001.jpg']);
    assert.ok(dupe && !isLeak(dupe));
    assert.deepEqual(dupe.splits, ['train']);
    assert.equal(v.report.copiedFiles, 150, 'identical bytes are stored once');
  } finally {
    ws.close();
  }
});

test('a dataset wrapped in a single folder is found; missing names and versions are 404s with hints', async () => {
  const ws = freshWorkspace();
  try {
    const dir = copyOfBreedsMini();
    const wrapper = join(dir, '..');
    const v = await importDataset(ws, wrapper, { name: 'wrapped' });
    assert.deepEqual(v.report.images, { train: 100, valid: 25, test: 25 });
    assert.ok(v.items[0]!.path.startsWith('train/'), 'paths are relative to the detected root');

    await assert.rejects(getDatasetVersion(ws, 'nope'), (e: unknown) => e instanceof KennelError && e.status === 404 && /Known datasets: wrapped/.test(e.hint ?? ''));
    await assert.rejects(getDatasetVersion(ws, 'wrapped', 9), (e: unknown) => e instanceof KennelError && e.status === 404 && /version 1/.test(e.hint ?? ''));
    assert.deepEqual(parseDatasetRef('dogs@3'), { name: 'dogs', version: 3 });
    assert.deepEqual(parseDatasetRef('dogs'), { name: 'dogs', version: undefined });
    await assert.rejects(importDataset(ws, dir, { name: '../evil' }), KennelError);
    await assert.rejects(importDataset(ws, join(dir, 'nowhere'), { name: 'x' }), (e: unknown) => e instanceof KennelError && /does not exist/.test(e.message));
  } finally {
    ws.close();
  }
});

test('split folders may be named training/val; files outside class folders are reported', async () => {
  const ws = freshWorkspace();
  try {
    const dir = tmpDir();
    const put = async (rel: string, seed: number) => {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), await distinctJpeg(seed));
    };
    await put('training/002.Beagle/1.jpg', 1);
    await put('training/001.Boxer/2.jpg', 2);
    await put('training/001.Boxer/nested/deeper/3.jpg', 3);
    await put('val/001.Boxer/4.jpg', 4);
    await put('training/stray.jpg', 5);
    writeFileSync(join(dir, 'README.txt'), 'about this dataset');
    const v = await importDataset(ws, dir, { name: 'named' });
    assert.equal(v.report.layout, 'splits');
    assert.deepEqual(v.classes, ['Boxer', 'Beagle'], 'labels follow the sorted folder names');
    assert.deepEqual(v.report.images, { train: 3, valid: 1, test: 0 });
    assert.ok(v.items.some((i) => i.path === 'training/001.Boxer/nested/deeper/3.jpg' && i.label === 0));
    assert.deepEqual(v.report.skipped, [
      { path: 'README.txt', reason: 'outside the train/valid/test folders' },
      { path: 'training/stray.jpg', reason: 'not inside a class folder' },
    ]);

    mkdirSync(join(dir, 'validation'));
    await assert.rejects(importDataset(ws, dir, { name: 'named' }), /the folders "val" and "validation" both look like the valid split/);
  } finally {
    ws.close();
  }
});

test('a cancelled import throws CancelledError and records no version', async () => {
  const ws = freshWorkspace();
  try {
    const controller = new AbortController();
    let seen = 0;
    const progress = () => {
      if (++seen === 5) controller.abort();
    };
    await assert.rejects(importDataset(ws, breedsMini(), { name: 'dogs', progress, signal: controller.signal }), CancelledError);
    assert.deepEqual(listDatasets(ws), []);
    assert.deepEqual(readdirSync(ws.tmpDir), []);
    assert.ok(existsSync(ws.home));
  } finally {
    ws.close();
  }
});

test('a file that kills a check worker is refused alone; the others of its job are checked again', async () => {
  const { checkOrIsolate, CRASHED_DECODER } = await import('../../src/data/check-pool.ts');
  const { ChildGoneError } = await import('../../src/core/index.ts');
  const jobs: string[][] = [];
  const run = async (files: string[]) => {
    jobs.push(files);
    if (files.includes('poison.jpg')) throw new ChildGoneError('a check worker ended (SIGSEGV)');
    return files.map((f) => ({ ok: true as const, bytes: Buffer.from(f), sha256: f, width: 1, height: 1, format: 'jpeg' }));
  };
  const checks = await checkOrIsolate(run, ['a.jpg', 'poison.jpg', 'b.jpg']);
  assert.deepEqual(checks.map((c) => (c.ok ? c.sha256 : c.reason)), ['a.jpg', CRASHED_DECODER, 'b.jpg']);
  assert.deepEqual(jobs, [['a.jpg', 'poison.jpg', 'b.jpg'], ['a.jpg'], ['poison.jpg'], ['b.jpg']]);
  // any other failure (an unreadable folder, a closed pool) is the import's error, as in one process
  await assert.rejects(checkOrIsolate(async () => Promise.reject(new Error('EACCES')), ['a.jpg']), /EACCES/);
});

test('an import flushes every stored image, in batches while it checks, and then their folders, before it records the version', async () => {
  const dir = join(tmpDir(), 'many');
  // more images than one flush batch (512), in two classes
  for (let i = 0; i < 700; i++) {
    const folder = join(dir, i % 2 ? 'b' : 'a');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, `${i}.jpg`), await distinctJpeg(i));
  }
  const ws = freshWorkspace();
  try {
    const calls: Array<{ shas: string[]; only?: string; versions: number }> = [];
    const sync = ws.artifacts.sync!.bind(ws.artifacts);
    ws.artifacts.sync = async (shas, opts) => {
      calls.push({ shas: [...shas], only: opts?.only, versions: listDatasets(ws).length });
      return sync(shas, opts);
    };
    const v = await importDataset(ws, dir, { name: 'many' });
    const items = v.items.map((i) => i.sha256);
    const bytes = calls.filter((c) => c.only === 'bytes');
    assert.ok(bytes.length >= 2, `bytes flushed in ${bytes.length} batches`);
    assert.deepEqual(new Set(bytes.flatMap((c) => c.shas)), new Set(items), 'every stored image flushed');
    const last = calls.at(-1)!;
    assert.equal(last.only, 'names', 'the folders last');
    assert.deepEqual(new Set(last.shas), new Set(items));
    assert.ok(calls.every((c) => c.versions === 0), 'all before the version is recorded');
  } finally {
    ws.close();
  }
});

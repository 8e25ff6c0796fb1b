import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DecodePool } from '../../src/inference/decode-pool.js';
import { NORMALIZATIONS, decodeRgb } from '../../src/inference/index.js';
import { tmpHome } from '../helpers/paths.js';
import { photo } from '../serving/fixtures.js';

const spec = { size: 64, cropFraction: 0.875, layout: 'NCHW' as const, ...NORMALIZATIONS.imagenet, mean: [...NORMALIZATIONS.imagenet.mean] as [number, number, number], std: [...NORMALIZATIONS.imagenet.std] as [number, number, number] };

test('decode workers give the bytes this process decodes (from files or bytes), in order, and say which image failed', async () => {
  const dir = tmpHome();
  const names = ['aipnd-dogs/Beagle_01125.jpg', 'udacity-samples/Brittany_02625.jpg', 'aipnd-dogs/Basenji_00963.jpg'];
  const files = names.map((n, i) => {
    const f = path.join(dir, `${i}.jpg`);
    writeFileSync(f, photo(n));
    return f;
  });
  const items = [...files, ...files, files[0]!].map((p, i) => ({ image: p, view: i === 4 ? { left: 0.1, top: 0.2, width: 0.5, height: 0.6, flip: true } : undefined }));
  const pool = await DecodePool.start(2);
  try {
    assert.equal(pool.size, 2);
    const bytes = await pool.decode(items, spec);
    const expected = Buffer.concat(await Promise.all(items.map((it) => decodeRgb(it.image, spec, it.view))));
    assert.equal(bytes.length, items.length * 64 * 64 * 3);
    assert.ok(Buffer.from(bytes).equals(expected));
    // an image's bytes decode as its file does
    assert.ok(Buffer.from(await pool.decode([{ image: photo(names[1]!) }], spec)).equals(expected.subarray(64 * 64 * 3, 2 * 64 * 64 * 3)));
    const broken = path.join(dir, 'broken.jpg');
    writeFileSync(broken, 'not an image');
    await assert.rejects(pool.decode([...items.slice(0, 2), { image: broken }], spec), /unsupported image format|Input file/i);
    // a pool keeps working after a failed image
    assert.ok(Buffer.from(await pool.decode(items.slice(0, 2), spec)).equals(expected.subarray(0, 2 * 64 * 64 * 3)));
    // and after a worker is killed: its jobs fail, a new worker takes its place
    const [victim] = pool.pids;
    const during = pool.decode(items, spec);
    process.kill(victim!, 'SIGKILL');
    await during.catch((e: Error) => assert.match(e.message, /decode worker ended/));
    assert.ok(Buffer.from(await pool.decode(items, spec)).equals(expected));
    assert.notEqual(pool.pids[0], victim);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.decode(items, spec), /closed|ended/);
});

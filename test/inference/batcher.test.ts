import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DynamicBatcher, batchShapes } from '../../src/inference/index.js';

/** A runner whose batches finish only when the test says so, recording every batch. */
function gatedRunner() {
  const batches: number[][] = [];
  const gates: Array<() => void> = [];
  const run = async (items: number[]) => {
    batches.push(items);
    await new Promise<void>((r) => gates.push(r));
    return items.map((x) => x * 10);
  };
  const release = async () => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()!();
  };
  return { batches, run, release };
}

const ready = (x: number) => async () => x;

test('an item runs at once when nothing else is on its way', async () => {
  const g = gatedRunner();
  const b = new DynamicBatcher<number, number>({ maxBatch: 8, maxDelayMs: 10_000 }, g.run);
  const out = b.submit(ready(1));
  await g.release();
  assert.equal(await out, 10);
  assert.deepEqual(g.batches, [[1]]);
});

test('items arriving while a batch runs form the next batch, up to maxBatch', async () => {
  const g = gatedRunner();
  const b = new DynamicBatcher<number, number>({ maxBatch: 3, maxDelayMs: 10_000 }, g.run);
  const first = b.submit(ready(0));
  await new Promise((r) => setImmediate(r));
  const rest = [1, 2, 3, 4, 5].map((x) => b.submit(ready(x)));
  await g.release();
  await g.release();
  await g.release();
  assert.deepEqual(await Promise.all([first, ...rest]), [0, 10, 20, 30, 40, 50]);
  assert.deepEqual(g.batches, [[0], [1, 2, 3], [4, 5]]);
  await b.idle();
  assert.equal(b.size, 0);
});

test('a ready item waits for items still being prepared, at most maxDelayMs', async () => {
  const g = gatedRunner();
  const b = new DynamicBatcher<number, number>({ maxBatch: 4, maxDelayMs: 20 }, g.run);
  let finishPrep!: (x: number) => void;
  const slow = b.submit(() => new Promise<number>((r) => (finishPrep = r)));
  const fast = b.submit(ready(1));
  // the slow item is still being prepared: the fast one waits for it, then runs alone after the delay
  await g.release();
  assert.equal(await fast, 10);
  assert.deepEqual(g.batches, [[1]]);
  finishPrep(2);
  await g.release();
  assert.equal(await slow, 20);
});

test('an item being prepared joins the batch when it is ready before the delay ends', async () => {
  const g = gatedRunner();
  const b = new DynamicBatcher<number, number>({ maxBatch: 4, maxDelayMs: 60_000 }, g.run);
  let finishPrep!: (x: number) => void;
  const slow = b.submit(() => new Promise<number>((r) => (finishPrep = r)));
  const fast = b.submit(ready(1));
  await new Promise((r) => setImmediate(r));
  assert.equal(g.batches.length, 0);
  finishPrep(2);
  await g.release();
  assert.deepEqual(await Promise.all([fast, slow]), [10, 20]);
  assert.deepEqual(g.batches, [[1, 2]]);
});

test('a failed preparation rejects only its own item; a failed batch rejects its items', async () => {
  let fail = false;
  const b = new DynamicBatcher<number, number>({ maxBatch: 4, maxDelayMs: 1 }, async (items) => {
    if (fail) throw new Error('model failed');
    return items.map((x) => x + 1);
  });
  const bad = b.submit(async () => {
    throw new Error('cannot decode');
  });
  const good = b.submit(ready(1));
  await assert.rejects(bad, /cannot decode/);
  assert.equal(await good, 2);
  fail = true;
  await assert.rejects(b.submit(ready(5)), /model failed/);
  await b.idle();
});

test('a GPU pads batches to a few shapes; CUDA to one, since a CUDA session slows at every shape once it has run several', () => {
  assert.deepEqual(batchShapes(32, 'webgpu'), [1, 2, 4, 8, 16, 24, 32]);
  assert.deepEqual(batchShapes(20, 'webgpu'), [1, 2, 4, 8, 16, 20]);
  assert.deepEqual(batchShapes(1, 'webgpu'), [1]);
  assert.deepEqual(batchShapes(32, 'cuda'), [32]);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChildJobError, ChildPool } from '../../src/core/index.ts';
import { FRAME_HEADER, FrameReader } from '../../src/core/child-pool.ts';

function frame(id: number, status: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_HEADER);
  head.writeUInt32LE(id, 0);
  head.writeUInt32LE(status, 4);
  head.writeUInt32LE(payload.length, 8);
  return Buffer.concat([head, payload]);
}

test('frames read alike whatever chunks the socket gives, each payload copied once into the buffer its job named, none kept in the read buffer', () => {
  const big = Buffer.alloc(70_000, 7);
  const stream = Buffer.concat([frame(1, 0, big), frame(2, 0, Buffer.from('small')), frame(3, 1, Buffer.from('it failed')), frame(4, 0, Buffer.alloc(0))]);
  for (const size of [1, 5, 13, 4096, stream.length]) {
    const target = new Uint8Array(big.length);
    const frames: Array<[number, number, Uint8Array]> = [];
    const reader = new FrameReader(
      (id, _status, length) => (id === 1 && length === target.length ? target : undefined),
      (id, status, payload) => {
        if (id === 1) assert.equal(payload, target, 'written into the named buffer');
        frames.push([id, status, payload]);
      },
    );
    // as a socket's reads come: each chunk in one buffer, overwritten by the next
    const scratch = Buffer.alloc(size);
    for (let at = 0; at < stream.length; at += size) {
      const n = stream.copy(scratch, 0, at, at + size);
      reader.push(scratch.subarray(0, n));
      scratch.fill(0xee);
    }
    // read after the chunks were overwritten: payloads are copies
    const seen = frames.map(([id, status, payload]) => [id, status, id === 1 ? `${payload.length}` : Buffer.from(payload).toString()]);
    assert.deepEqual(seen, [[1, 0, '70000'], [2, 0, 'small'], [3, 1, 'it failed'], [4, 0, '']], `chunks of ${size}`);
    assert.ok(Buffer.from(target).equals(big));
  }
});

test('a ChildPool answers jobs from its least busy workers, into a buffer when named; a failing job is its own error', async () => {
  const pool = await ChildPool.start<{ size: number; fill: number; fail?: string }>({ entry: new URL('./fixtures/pool-worker.js', import.meta.url), size: 2, name: 'test worker' });
  try {
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => pool.run({ size: 100_000 + i, fill: i })));
    answers.forEach((a, i) => assert.ok(a.length === 100_000 + i && a.every((b) => b === i)));
    const into = new Uint8Array(300_000);
    assert.equal(await pool.run({ size: 300_000, fill: 9 }, into), into);
    assert.ok(into.every((b) => b === 9));
    await assert.rejects(pool.run({ size: 10, fill: 1 }, new Uint8Array(5)), /answered 10 bytes where 5 were expected/);
    await assert.rejects(pool.run({ size: 1, fill: 1, fail: 'no such image' }), (e: unknown) => e instanceof ChildJobError && e.message === 'no such image');
    assert.equal((await pool.run({ size: 3, fill: 2 })).length, 3, 'the pool keeps working');
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.run({ size: 1, fill: 0 }), /pool is closed/);
});

test("a ChildPool's workers run 10 nice values below the pool's process", async () => {
  const { getPriority } = await import('node:os');
  const pool = await ChildPool.start<{ size: number; fill: number }>({ entry: new URL('./fixtures/pool-worker.js', import.meta.url), size: 1, name: 'test worker' });
  try {
    assert.equal(getPriority(pool.pids[0]!), Math.min(19, getPriority() + 10));
  } finally {
    await pool.close();
  }
});

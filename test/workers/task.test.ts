import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { KennelError } from '../../src/core/errors.ts';
import { Channel } from '../../src/workers/engine.ts';
import { Resources, runTask, type TaskContext } from '../../src/workers/task.ts';
import { defineTask, registerTaskTypes } from '../../src/workers/index.ts';

const ctx = (): TaskContext => ({ artifacts: undefined as never, home: '/nowhere', threads: 1, progress: () => {}, resources: new Resources() });

test('runTask runs a registered type with validated input, and refuses unknown types and bad input clearly', async () => {
  registerTaskTypes([defineTask({ type: 'double', input: z.object({ n: z.number() }), run: async (_c, i) => i.n * 2 })]);
  assert.equal(await runTask(ctx(), { id: 'a', type: 'double', label: 'double 21', input: { n: 21 } }), 42);
  await assert.rejects(runTask(ctx(), { id: 'b', type: 'triple', label: 'triple', input: {} }), (e: unknown) => e instanceof KennelError && e.code === 'unknown_task_type' && /"triple"/.test(e.message));
  await assert.rejects(runTask(ctx(), { id: 'c', type: 'double', label: 'double nothing', input: { n: 'x' } }), (e: unknown) => e instanceof KennelError && e.code === 'invalid_task' && /double nothing/.test(e.message));
});

test('Resources keeps the most recently used entries and closes the rest', async () => {
  const closed: string[] = [];
  const r = new Resources(2);
  const get = (k: string) => r.get(k, async () => k, async (v) => void closed.push(v));
  await get('a');
  await get('b');
  await get('a');
  await get('c');
  assert.deepEqual(closed, ['b']);
  await r.closeAll();
  assert.deepEqual(closed.sort(), ['a', 'b', 'c']);
});

test('a Channel delivers results that arrived before a failure, then the failure', async () => {
  const c = new Channel<number>();
  c.push(1);
  c.push(2);
  c.fail(new Error('boom'));
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const x of c) got.push(x);
    })(),
    /boom/,
  );
  assert.deepEqual(got, [1, 2]);
});

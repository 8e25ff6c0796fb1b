import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openWorkspace } from '../../src/store/index.ts';
import { tmpHome } from '../helpers/paths.ts';
import { hasRedis, kennelProcess, NO_REDIS, startRedis } from './helpers.ts';

const skip = hasRedis ? false : NO_REDIS;

function workspace(): string {
  const home = tmpHome();
  openWorkspace(home).close();
  return home;
}

/** Resolves with the exit code, or rejects when the process is still running after `ms` (then it is killed). */
async function exitWithin(p: ReturnType<typeof kennelProcess>, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still running after ${ms} ms:\n${p.output()}`)), ms)));
  try {
    return await Promise.race([p.exited, late]);
  } finally {
    clearTimeout(timer);
    p.child.kill('SIGKILL');
  }
}

test('a kennel worker whose Redis is gone stops on SIGTERM at once, exiting 1 with one line saying why', { skip }, async () => {
  const redis = await startRedis();
  const home = workspace();
  const worker = kennelProcess(home, ['worker', '--queue', redis.url, '--home', home, '--threads', '1']);
  try {
    await worker.waitFor(/waiting for tasks/, 60_000);
    await redis.stop();
    await new Promise((r) => setTimeout(r, 500));
    worker.child.kill('SIGTERM');
    // generous bound: before the fix it kept running for over an hour
    const code = await exitWithin(worker, 20_000);
    assert.equal(code, 1, worker.output());
    const errors = worker.output().split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, worker.output());
    assert.match(errors[0]!, /^error: Worker \S+ stopped without a clean hand-over: Redis at redis:\/\/127\.0\.0\.1:\d+ is unreachable\.$/);
    assert.ok(!/\n\s+at /.test(worker.output()), 'no stack trace');
  } finally {
    worker.child.kill('SIGKILL');
    await redis.stop();
  }
});

test('with Redis up, SIGTERM stops a worker cleanly (exit 0) within its grace period (KENNEL_WORKER_GRACE)', { skip }, async () => {
  const redis = await startRedis();
  const home = workspace();
  const worker = kennelProcess(home, ['worker', '--queue', redis.url, '--home', home, '--threads', '1'], { KENNEL_WORKER_GRACE: '0' });
  try {
    await worker.waitFor(/waiting for tasks/, 60_000);
    worker.child.kill('SIGTERM');
    assert.equal(await exitWithin(worker, 20_000), 0, worker.output());
    assert.match(worker.output(), /for up to 0s/);
    assert.match(worker.output(), /stopped\n/);
  } finally {
    worker.child.kill('SIGKILL');
    await redis.stop();
  }
});

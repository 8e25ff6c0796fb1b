import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { KennelError } from '../../src/core/errors.ts';
import { TRAINING_TASKS } from '../../src/training/index.ts';
import { InlineEngine, PoisonedTaskError, listWorkers, type Task, type TaskDone, type TaskEvent } from '../../src/workers/index.ts';
import { RedisEngine } from '../../src/workers/redis.ts';
import { extractTasks, freePort, hasRedis, kennel, kennelJson, kennelProcess, modelOutcome, NO_REDIS, preparedHome, startProcess, startRedis, type Proc } from './helpers.ts';

const skip = hasRedis ? false : NO_REDIS;

/** `kennel worker` from source; --lock-seconds 2 so a killed worker's task is taken over within seconds. */
async function startWorker(home: string, url: string, name: string): Promise<Proc> {
  const p = kennelProcess(home, ['worker', '--queue', url, '--home', home, '--threads', '1', '--name', name, '--lock-seconds', '2']);
  await p.waitFor(/waiting for tasks/);
  return p;
}

async function stopAll(procs: Proc[]): Promise<void> {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}

test('Redis down at start: kennel train --queue and kennel worker fail at once with a clear error', { skip: false }, async () => {
  const { home, ws } = await preparedHome();
  ws.close();
  const url = `redis://127.0.0.1:${await freePort()}`;
  const trained = await kennel(home, ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--instances', '2', '--queue', url]);
  assert.equal(trained.code, 1, trained.output);
  assert.match(trained.output, new RegExp(`^error: Cannot reach Redis at ${url} \\(connect ECONNREFUSED`, 'm'));
  assert.match(trained.output, /apt-get install -y redis-server/);
  assert.doesNotMatch(trained.output, /\n\s+at /, 'no stack trace');
  const worker = await kennel(home, ['worker', '--queue', url, '--home', home]);
  assert.equal(worker.code, 1);
  assert.match(worker.output, /^error: Cannot reach Redis at/m);
  await assert.rejects(new RedisEngine({ url, concurrency: 2 }).start(), (e: unknown) => e instanceof KennelError && e.code === 'queue_unavailable');
});

test('two kennel worker processes on a shared home serve kennel train --instances 2 --queue: same metrics as local runs', { skip }, async () => {
  const redis = await startRedis();
  const { home, ws } = await preparedHome();
  const workers: Proc[] = [];
  try {
    const args = ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--augment', '2', '--seed', '9', '--new-version'];
    const inline = await kennelJson<Record<string, any>>(home, [...args, '--instances', '1']);
    const clear = () => ws.db.prepare('DELETE FROM feature_chunks').run();
    clear();
    const local = await kennelJson<Record<string, any>>(home, [...args, '--instances', '2']);
    clear();

    workers.push(...(await Promise.all([startWorker(home, redis.url, 'alpha'), startWorker(home, redis.url, 'beta')])));
    const listed = await kennelJson<{ workers: Array<{ id: string; backend: string; host: string; cores: number; threads: number; device: string; heartbeatAt: string }> }>(home, ['workers', 'list', '--queue', redis.url]);
    assert.deepEqual(listed.workers.map((w) => w.id).sort(), ['alpha', 'beta']);
    for (const w of listed.workers) {
      assert.equal(w.backend, 'redis');
      assert.ok(w.host && w.cores >= 1 && w.threads === 1 && w.device === 'cpu');
      assert.ok(Date.now() - Date.parse(w.heartbeatAt) < 15_000);
    }

    const viaRedis = await kennelJson<Record<string, any>>(home, [...args, '--instances', '2', '--queue', redis.url]);
    assert.equal(inline.features.backend, 'inline');
    assert.equal(local.features.backend, 'local');
    assert.equal(viaRedis.features.backend, 'redis');
    assert.deepEqual(viaRedis.features.workers.map((w: { worker: string }) => w.worker).sort(), ['alpha', 'beta'], 'both kennel workers took shards');
    for (const r of [local, viaRedis]) assert.equal(r.features.extractedImages, 350);
    assert.deepEqual(modelOutcome(local), modelOutcome(inline));
    assert.deepEqual(modelOutcome(viaRedis), modelOutcome(inline));

    // SIGTERM: each worker stops, leaves the list, exits 0
    for (const w of workers) w.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(workers.map((w) => w.exited)), [0, 0]);
    assert.deepEqual(await listWorkers({ home, queue: redis.url }), []);
  } finally {
    ws.close();
    await stopAll(workers);
    await redis.stop();
  }
});

test('Redis: a kennel worker killed with SIGKILL mid-task: another worker takes the task over, no shard missing or duplicated', { skip }, async () => {
  const redis = await startRedis();
  const { home, ws, ds, backbone } = await preparedHome();
  const workers: Proc[] = [];
  try {
    const tasks = extractTasks(ds, backbone, [0, 1, 2, 3]);
    const shaOf = (d: TaskDone[]) => Object.fromEntries(d.map((x) => [x.task.id, (x.output as { artifactSha: string }).artifactSha]));
    const reference: TaskDone[] = [];
    const inline = new InlineEngine({ home, artifacts: ws.artifacts, threads: 2, taskModules: [TRAINING_TASKS()] });
    for await (const d of inline.run(tasks)) reference.push(d);
    await inline.close();

    workers.push(...(await Promise.all([startWorker(home, redis.url, 'alpha'), startWorker(home, redis.url, 'beta')])));
    const engine = new RedisEngine({ url: redis.url, concurrency: 2 });
    await engine.start();
    const events: TaskEvent[] = [];
    let killed: string | undefined;
    const done: TaskDone[] = [];
    try {
      for await (const d of engine.run(tasks, {
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'progress' && e.task.id === 'view-1' && e.units > 0 && !killed) {
            killed = e.worker;
            workers.find((w) => w.output().includes(`worker ${e.worker} `))!.child.kill('SIGKILL');
          }
        },
      })) {
        done.push(d);
      }
    } finally {
      await engine.close();
    }
    assert.ok(killed);
    assert.deepEqual(done.map((d) => d.task.id).sort(), ['view-0', 'view-1', 'view-2', 'view-3']);
    assert.deepEqual(shaOf(done), shaOf(reference));
    const retried = done.find((d) => d.task.id === 'view-1')!;
    assert.notEqual(retried.worker, killed, 'finished by the surviving worker');
    assert.equal(retried.attempts, 2);
    assert.ok(events.some((e) => e.type === 'retrying' && e.task.id === 'view-1'), 'the stall was reported');
  } finally {
    ws.close();
    await stopAll(workers);
    await redis.stop();
  }
});

test('Redis: a task that kills every worker that takes it is reported after 3 attempts', { skip }, async () => {
  const redis = await startRedis();
  const { home, ws } = await preparedHome();
  ws.close();
  const workers: Proc[] = [];
  let stopped = false;
  // a supervisor: every worker the poisoned task kills is replaced, as systemd would
  const spawnWorker = async (n: number): Promise<void> => {
    const p = startProcess(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'fixtures/redis-worker.ts'), redis.url, home, `w${n}`]);
    workers.push(p);
    void p.exited.then(() => {
      // a replacement may take the poisoned task and die before it says ready: its own exit replaces it
      if (!stopped) spawnWorker(n + 2).catch(() => {});
    });
    await p.waitFor(/ready/);
  };
  const engine = new RedisEngine({ url: redis.url, concurrency: 2 });
  try {
    await Promise.all([spawnWorker(1), spawnWorker(2)]);
    await engine.start();
    const tasks: Task[] = [
      { id: 'poison', type: 'crash', label: 'image train/poison.jpg', input: {} },
      { id: 'ok', type: 'echo', label: 'echo', input: { value: 1 } },
    ];
    const done: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const d of engine.run(tasks)) done.push(d.task.id);
      })(),
      (e: unknown) => e instanceof PoisonedTaskError && e.task.id === 'poison' && e.attempts >= 3 && /image train\/poison\.jpg failed on \d attempts.*worker died/.test(e.message),
    );
    assert.deepEqual(done, ['ok']);
    assert.ok(workers.length >= 5, `${workers.length} worker processes: 2 + 3 killed and replaced`);
  } finally {
    stopped = true;
    await engine.close();
    await stopAll(workers);
    await redis.stop();
  }
});

test('Redis restarted mid-run (its jobs lost): coordinator and worker reconnect with backoff and the run completes', { skip }, async () => {
  let redis = await startRedis();
  const { home, ws, ds, backbone } = await preparedHome();
  ws.close();
  const workers: Proc[] = [];
  const engine = new RedisEngine({ url: redis.url, concurrency: 1 });
  try {
    workers.push(await startWorker(home, redis.url, 'alpha'));
    await engine.start();
    const notices: string[] = [];
    const done: string[] = [];
    for await (const d of engine.run(extractTasks(ds, backbone, [1, 2, 3, 4]), {
      onEvent: (e) => e.type === 'notice' && notices.push(e.message),
    })) {
      done.push(d.task.id);
      if (done.length === 1) {
        await redis.stop();
        await new Promise((r) => setTimeout(r, 1000));
        redis = await startRedis(redis.port);
      }
    }
    assert.deepEqual(done.sort(), ['view-1', 'view-2', 'view-3', 'view-4']);
    assert.ok(notices.some((n) => /^lost the connection to Redis .*reconnecting$/.test(n)), notices.join('\n'));
    assert.ok(notices.includes('reconnected to Redis'), notices.join('\n'));
  } finally {
    await engine.close();
    await stopAll(workers);
    await redis.stop();
  }
});

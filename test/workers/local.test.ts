import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getModel } from '../../src/registry/index.ts';
import { train } from '../../src/training/index.ts';
import { InlineEngine, LocalPool, PoisonedTaskError, listWorkers, type Engine, type Task, type TaskDone, type TaskEvent } from '../../src/workers/index.ts';
import { TRAINING_TASKS } from '../../src/training/index.ts';
import { extractTasks, kennelJson, modelOutcome, preparedHome } from './helpers.ts';

const fixtureTasks = new URL('./fixtures/tasks.ts', import.meta.url).href;
const chunkRows = (db: import('../../src/store/index.ts').Db) => db.prepare('SELECT cache_key, chunk, artifact_sha, rows FROM feature_chunks ORDER BY cache_key, chunk').all();

async function collect(engine: Engine, tasks: Task[], onEvent?: (e: TaskEvent) => void): Promise<TaskDone[]> {
  const out: TaskDone[] = [];
  try {
    await engine.start();
    for await (const d of engine.run(tasks, { onEvent })) out.push(d);
  } finally {
    await engine.close();
  }
  return out;
}

test('features and the model are identical with one (in-process) and two local workers', async () => {
  const { home, ws } = await preparedHome();
  try {
    const one = await train(ws, { dataset: 'breeds', backbone: 'mnv2', augment: 2, seed: 5, name: 'one', instances: 1 });
    assert.equal(one.features.backend, 'inline');
    const cached = chunkRows(ws.db);
    assert.equal(cached.length, 5, '3 training views + valid + test, one chunk each');
    ws.db.prepare('DELETE FROM feature_chunks').run();

    const two = await kennelJson<Record<string, any>>(home, ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--augment', '2', '--seed', '5', '--name', 'two', '--workers', '2']);
    assert.equal(two.features.backend, 'local');
    assert.equal(two.features.extractedImages, 350);
    assert.equal(two.features.workers.length, 2, 'both workers took shards');
    for (const w of two.features.workers) assert.ok(w.tasks >= 1 && w.images > 0 && w.imagesPerSecond > 0, JSON.stringify(w));
    assert.deepEqual(chunkRows(ws.db), cached, 'bit-identical feature chunks');
    const brief = (m: typeof one.metrics.valid) => ({ n: m.n, top1: m.top1, top5: m.top5, loss: m.loss, ece: m.ece, eceUncalibrated: m.eceUncalibrated });
    assert.deepEqual(modelOutcome(two), modelOutcome({ metrics: { train: one.metrics.train, valid: brief(one.metrics.valid), test: { ...brief(one.metrics.test), perClass: one.metrics.test.perClass } }, temperature: one.temperature, bestEpoch: one.bestEpoch, epochs: one.history.length }));
    assert.equal(getModel(ws, 'two').onnxSha, getModel(ws, 'one').onnxSha, 'the same ONNX model, byte for byte');
  } finally {
    ws.close();
  }
});

test('a worker killed with SIGKILL mid-task: the task is retried on another worker, every shard arrives once with the same bytes', async () => {
  const { home, ws, ds, backbone } = await preparedHome();
  try {
    const tasks = extractTasks(ds, backbone, [0, 1, 2, 3]);
    const reference = await collect(new InlineEngine({ home, artifacts: ws.artifacts, threads: 2, taskModules: [TRAINING_TASKS()] }), tasks);
    const shaOf = (ds: TaskDone[]) => Object.fromEntries(ds.map((d) => [d.task.id, (d.output as { artifactSha: string }).artifactSha]));
    // an inline engine running two tasks at once (as on a GPU) through one extractor: the same bytes
    const twoAtOnce = await collect(new InlineEngine({ home, artifacts: ws.artifacts, threads: 2, taskModules: [TRAINING_TASKS()], concurrency: 2 }), tasks);
    assert.deepEqual(shaOf(twoAtOnce), shaOf(reference));

    const events: TaskEvent[] = [];
    let killed: number | undefined;
    const done = await collect(new LocalPool({ workers: 2, home, taskModules: [TRAINING_TASKS()], device: 'cpu' }), tasks, (e) => {
      events.push(e);
      // after the first batch of view-1 has gone through the backbone
      if (e.type === 'progress' && e.task.id === 'view-1' && killed === undefined) {
        const started = events.find((x) => x.type === 'started' && x.task.id === 'view-1') as Extract<TaskEvent, { type: 'started' }>;
        killed = started.pid;
        process.kill(killed, 'SIGKILL');
      }
    });
    assert.ok(killed, 'a worker was killed');
    assert.deepEqual(done.map((d) => d.task.id).sort(), ['view-0', 'view-1', 'view-2', 'view-3'], 'no missing or duplicated shard');
    assert.deepEqual(shaOf(done), shaOf(reference));
    assert.equal(done.find((d) => d.task.id === 'view-1')!.attempts, 2);
    const retry = events.find((e) => e.type === 'retrying') as Extract<TaskEvent, { type: 'retrying' }>;
    assert.equal(retry.task.id, 'view-1');
    assert.match(retry.reason, new RegExp(`pid ${killed}\\) died \\(SIGKILL\\)`));
    const second = events.filter((e) => e.type === 'started' && e.task.id === 'view-1') as Array<Extract<TaskEvent, { type: 'started' }>>;
    assert.equal(second.length, 2);
    assert.notEqual(second[1]!.pid, killed, 'the retry ran on another process');
  } finally {
    ws.close();
  }
});

test('a task that crashes its worker every time is reported after 3 attempts, not retried forever', async () => {
  const { home, ws } = await preparedHome();
  ws.close();
  const retries: string[] = [];
  const tasks: Task[] = [
    { id: 'ok-1', type: 'echo', label: 'echo 1', input: { value: 1 } },
    { id: 'poison', type: 'crash', label: 'image train/poison.jpg', input: {} },
    { id: 'ok-2', type: 'echo', label: 'echo 2', input: { value: 2 } },
  ];
  const pool = new LocalPool({ workers: 2, home, taskModules: [fixtureTasks], device: 'cpu' });
  await assert.rejects(
    collect(pool, tasks, (e) => e.type === 'retrying' && retries.push(e.task.id)),
    (e: unknown) => e instanceof PoisonedTaskError && e.attempts === 3 && e.task.id === 'poison' && /image train\/poison\.jpg failed on 3 attempts/.test(e.message) && /died \(SIGKILL\)/.test(e.message),
  );
  assert.deepEqual(retries, ['poison', 'poison']);

  const failing = new LocalPool({ workers: 2, home, taskModules: [fixtureTasks], device: 'cpu', attempts: 2 });
  await assert.rejects(
    collect(failing, [{ id: 'f', type: 'fail', label: 'always fails', input: { message: 'disk on fire' } }]),
    (e: unknown) => e instanceof PoisonedTaskError && e.attempts === 2 && /always fails failed on 2 attempts.*disk on fire/.test(e.message),
  );
});

test('kennel workers list shows the processes of a running local pool and their current task', async () => {
  const { home, ws } = await preparedHome();
  ws.close();
  const pool = new LocalPool({ workers: 2, home, taskModules: [fixtureTasks], device: 'cpu' });
  let listed: Awaited<ReturnType<typeof listWorkers>> = [];
  const tasks: Task[] = [1, 2].map((v) => ({ id: `slow-${v}`, type: 'echo', label: `slow echo ${v}`, input: { value: v, ms: 1500 } }));
  let started = 0;
  await collect(pool, tasks, (e) => {
    if (e.type === 'started' && ++started === 2) setTimeout(() => void listWorkers({ home }).then((w) => (listed = w)), 300);
  });
  assert.equal(listed.length, 2);
  for (const w of listed) {
    assert.equal(w.backend, 'local');
    assert.ok(w.cores >= 1 && w.threads >= 1 && w.pid > 0 && w.host);
    assert.match(w.task?.label ?? '', /^slow echo [12]$/);
  }
  assert.deepEqual(await listWorkers({ home }), [], 'gone after close');
});

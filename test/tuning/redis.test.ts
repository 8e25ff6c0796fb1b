import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TRAINING_TASKS } from '../../src/training/index.ts';
import { TUNING_TASKS, parseParamFlag, tune, type TuneOptions } from '../../src/tuning/index.ts';
import { startRedisWorker } from '../../src/workers/index.ts';
import { NO_REDIS, hasRedis, preparedHome, startRedis } from '../workers/helpers.ts';

test('trials run as tasks on Redis workers and give what a local pool of the same size gives', { skip: hasRedis ? false : NO_REDIS }, async () => {
  const { home, ws } = await preparedHome();
  const redis = await startRedis();
  // what `kennel worker` runs, with the tuning task types loaded
  const workers = await Promise.all([1, 2].map((i) => startRedisWorker({ url: redis.url, home, threads: 1, device: 'cpu', taskModules: [TRAINING_TASKS(), TUNING_TASKS()], name: `tune-test-${i}` })));
  try {
    const o: TuneOptions = { dataset: 'breeds', backbone: 'mnv2', objective: 'valid.loss', space: ['lr=loguniform:1e-3:3e-2', 'epochs=int:2:6'].map(parseParamFlag), maxTrials: 6, maxParallel: 2, earlyStopping: 'asha', seed: 4 };
    const viaRedis = await tune(ws, { ...o, queue: redis.url });
    const local = await tune(ws, o);
    assert.equal(viaRedis.trials.length, 6);
    assert.ok(viaRedis.trials.every((t) => t.status === 'completed' || t.status === 'stopped'));
    // one ORT thread per worker in both: the same numbers, so the same suggestions and decisions
    const key = (r: typeof local) => r.trials.map((t) => [t.params, t.status, t.objective, t.epochs]);
    assert.deepEqual(key(viaRedis), key(local));
  } finally {
    await Promise.all(workers.map((w) => w.close(0)));
    await redis.stop();
    ws.close();
  }
});
